"""The server side of CVAT Online's agent protocol for the agent tests, and how tests use it.

:class:`Queues` drives a native function's queue through cvat-sdk's client, with the paths of
CVAT's ``/api/functions`` API: create a native function, submit a whole-task request, run a
single-frame request (which waits for an agent's answer), read and cancel requests.

cvat-aa's test server was getting its own implementation while these tests were written;
until a server answers ``/api/functions``, :func:`install_fake` stands in for it: it catches
those paths in ``ApiClient.call_api`` (through which cvat-aa's agent, cvat-cli's agent and the
tests all go) and serves them from memory with the rules of cvat-cli's agent protocol: the
oldest queued request of the category asked for goes to one agent under a lease, the holder
alone may update, complete or fail it (409 otherwise), a lapsed lease puts it back in the
queue, and a completed task request's annotations are added to the task on the real server.
"""

from __future__ import annotations

import itertools
import json
import queue
import re
import threading
import time
import uuid
from typing import Any

import attrs
import pytest
from cvat_sdk.api_client import ApiClient
from cvat_sdk.api_client.exceptions import ApiException


@attrs.define
class _Response:
    status: int
    payload: Any = None

    @property
    def data(self) -> bytes:
        return json.dumps(self.payload).encode()

    def json(self) -> Any:
        return self.payload


class _Stream:
    """A watch response: ``readline`` blocks until an event or the end."""

    def __init__(self) -> None:
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.lines.put(b"retry: 5000\n")
        self.lines.put(b"\n")
        self.status = 200

    def readline(self) -> bytes:
        return self.lines.get()

    def shutdown(self) -> None:
        self.lines.put(b"")

    def close(self) -> None:
        self.lines.put(b"")

    def release_conn(self) -> None:
        pass


@attrs.define
class _Request:
    id: str
    function_id: int
    category: str
    params: dict[str, Any]
    status: str = "queued"
    agent: str | None = None
    lease_until: float = 0.0
    progress: float = 0.0
    result: Any = None
    exc_info: str | None = None
    completions: int = 0
    done: threading.Event = attrs.Factory(threading.Event)


def _error(status: int, detail: str) -> ApiException:
    return ApiException(status=status, reason=detail)


class FakeFunctionsApi:
    """``/api/functions`` served from memory (see the module docstring)."""

    def __init__(self, original: Any, lease_seconds: float = 120.0) -> None:
        self._original = original
        self.lease_seconds = lease_seconds
        self.functions: dict[int, dict[str, Any]] = {}
        self.requests: dict[str, _Request] = {}
        self.lock = threading.RLock()
        self.watchers: list[tuple[int, _Stream]] = []
        self._ids = itertools.count(1)
        self.log: list[tuple[str, str, dict[str, Any]]] = []
        """(agent id, operation, body) for every queue operation."""

    def handles(self, path: str) -> bool:
        return path.startswith("/api/functions")

    def _announce(self, request: _Request) -> None:
        line = json.dumps({"request_category": request.category}).encode()
        for function_id, stream in self.watchers:
            if function_id == request.function_id:
                stream.lines.put(b"event: newrequest\n")
                stream.lines.put(b"data: " + line + b"\n")
                stream.lines.put(b"\n")

    def _expire(self) -> None:
        now = time.monotonic()
        for request in self.requests.values():
            if request.status == "started" and request.lease_until < now:
                request.status, request.agent = "queued", None
                self._announce(request)

    def _held(self, queue_id: str, ar_id: str, agent: str) -> _Request:
        self._expire()
        request = self.requests.get(ar_id)
        if request is None or f"function:{request.function_id}" != queue_id:
            raise _error(404, "Not found")
        if request.agent != agent or request.status not in ("started", "finished"):
            raise _error(409, "The request is not held by this agent")
        return request

    def add(self, function_id: int, category: str, params: dict[str, Any]) -> _Request:
        with self.lock:
            if function_id not in self.functions:
                raise _error(404, "Not found")
            request = _Request(uuid.uuid4().hex, function_id, category, params)
            self.requests[request.id] = request
            self._announce(request)
            return request

    def call(
        self, client: ApiClient, path: str, method: str, path_params: dict, query: list, body: Any
    ) -> Any:
        for key, value in (path_params or {}).items():
            path = path.replace("{" + key + "}", str(value))
        body = client.sanitize_for_serialization(body) if body is not None else None
        if method == "GET" and path.endswith("/watch"):
            function_id = int(path.split("function:")[1].split("/")[0])
            with self.lock:
                if function_id not in self.functions:
                    raise _error(404, "Not found")
                stream = _Stream()
                self.watchers.append((function_id, stream))
            return stream
        with self.lock:
            if match := re.fullmatch(r"/api/functions/queues/([^/]+)/requests/acquire", path):
                self._expire()
                function_id = int(match[1].removeprefix("function:"))
                if function_id not in self.functions:
                    raise _error(404, "Not found")
                self.log.append((body["agent_id"], "acquire", body))
                candidates = [
                    r
                    for r in self.requests.values()
                    if r.function_id == function_id and r.category == body["request_category"]
                ]
                held = [
                    r for r in candidates if r.status == "started" and r.agent == body["agent_id"]
                ]
                queued = [r for r in candidates if r.status == "queued"]
                chosen = (held or queued or [None])[0]
                if chosen is None:
                    return _Response(200, {"ar_assignment": None})
                chosen.status, chosen.agent = "started", body["agent_id"]
                chosen.lease_until = time.monotonic() + self.lease_seconds
                return _Response(
                    200,
                    {
                        "ar_assignment": {
                            "function_id": function_id,
                            "ar_id": chosen.id,
                            "ar_params": chosen.params,
                        }
                    },
                )
            if match := re.fullmatch(
                r"/api/functions/queues/([^/]+)/requests/([^/]+)/(update|complete|fail)", path
            ):
                queue_id, ar_id, operation = match.groups()
                self.log.append((body["agent_id"], operation, body))
                request = self._held(queue_id, ar_id, body["agent_id"])
                if request.status == "finished":
                    return _Response(204)
                if operation == "update":
                    request.progress = body["progress"]
                    request.lease_until = time.monotonic() + self.lease_seconds
                elif operation == "fail":
                    request.status, request.exc_info = "failed", body["exc_info"]
                    request.done.set()
                else:
                    request.completions += 1
                    request.result = {k: v for k, v in body.items() if k != "agent_id"}
                    if request.category == "batch":
                        self._original(
                            client,
                            "/api/tasks/{id}/annotations",
                            "PATCH",
                            path_params={"id": request.params["task"]},
                            query_params=[("action", "create")],
                            body=request.result["annotations"],
                        )
                    request.status = "finished"
                    request.done.set()
                return _Response(204)
            if path == "/api/functions" and method == "POST":
                function_id = next(self._ids)
                record = {"id": function_id, **body}
                record["labels_v2"] = [
                    {"type": "any", **label, "attributes": label.get("attributes", [])}
                    for label in body.get("labels_v2", [])
                ]
                self.functions[function_id] = record
                return _Response(201, record)
            if path == "/api/functions" and method == "GET":
                records = list(self.functions.values())
                return _Response(200, {"count": len(records), "next": None, "results": records})
            if path == "/api/functions/requests/" and method == "POST":
                params = {k: v for k, v in body.items() if k != "function"}
                params.setdefault("threshold", None)
                params.setdefault("conv_mask_to_poly", False)
                request = self.add(body["function"], "batch", params)
                return _Response(201, {"id": request.id})
            if match := re.fullmatch(r"/api/functions/requests/([^/]+)", path):
                request = self.requests.get(match[1])
                if request is None:
                    raise _error(404, "Not found")
                if method == "DELETE":
                    del self.requests[request.id]
                    return _Response(204)
                return _Response(
                    200,
                    {
                        "id": request.id,
                        "status": request.status,
                        "progress": request.progress,
                        "exc_info": request.exc_info,
                    },
                )
            if match := re.fullmatch(r"/api/functions/(\d+)", path):
                function_id = int(match[1])
                if function_id not in self.functions:
                    raise _error(404, "Not found")
                if method == "DELETE":
                    del self.functions[function_id]
                    return _Response(204)
                return _Response(200, self.functions[function_id])
            if match := re.fullmatch(r"/api/functions/(\d+)/run", path):
                params = dict(body)
                params.setdefault("threshold", None)
                params.setdefault("conv_mask_to_poly", False)
                request = self.add(int(match[1]), "interactive", params)
        # Outside the lock: wait for an agent.
        if not request.done.wait(60):
            raise _error(504, "No agent answered")
        if request.status == "failed":
            raise _error(500, request.exc_info or "")
        return _Response(200, request.result)


def install_fake(monkeypatch: Any, lease_seconds: float = 120.0) -> FakeFunctionsApi:
    """Serve ``/api/functions`` from memory in every cvat-sdk client of this process."""
    original = ApiClient.call_api
    fake = FakeFunctionsApi(original, lease_seconds)

    def call_api(self, resource_path, method, path_params=None, query_params=None, *a, **kw):
        if not fake.handles(resource_path):
            return original(self, resource_path, method, path_params, query_params, *a, **kw)
        body = kw.get("body", a[1] if len(a) > 1 else None)
        check = kw.get("_check_status", True)
        try:
            response = fake.call(self, resource_path, method, path_params, query_params, body)
        except ApiException as ex:
            if check:
                raise
            response = _Response(ex.status, {"detail": ex.reason})
        return None, response

    monkeypatch.setattr(ApiClient, "call_api", call_api)
    return fake


class Queues:
    """What a CVAT user does with native functions, through ``client``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _call(self, path: str, method: str, **kw: Any) -> Any:
        _, response = self.client.api_client.call_api(path, method, _parse_response=False, **kw)
        return json.loads(response.data) if response.data else None

    def function(self, function_id: int) -> dict[str, Any]:
        return self._call(f"/api/functions/{function_id}", "GET")

    def delete(self, function_id: int) -> None:
        self._call(f"/api/functions/{function_id}", "DELETE")

    def submit_task(self, function_id: int, task: int, **params: Any) -> str:
        body = {"function": function_id, "task": task, "type": "annotate_task", **params}
        return self._call("/api/functions/requests/", "POST", body=body)["id"]

    def request(self, ar_id: str) -> dict[str, Any]:
        return self._call(f"/api/functions/requests/{ar_id}", "GET")

    def cancel(self, ar_id: str) -> None:
        self._call(f"/api/functions/requests/{ar_id}", "DELETE")

    def run_frame(self, function_id: int, task: int, frame: int, **params: Any) -> Any:
        """A single-frame request; blocks until an agent answers (run it in a thread)."""
        body = {"type": "annotate_frame", "task": task, "frame": frame, **params}
        return self._call(f"/api/functions/{function_id}/run", "POST", body=body)


QUEUE_KINDS = ["test server", "stand-in"]


def queues_for(kind: str, client: Any, monkeypatch: Any) -> Queues:
    """The queue of the test server, or of the in-memory stand-in of this module."""
    if kind == "stand-in":
        install_fake(monkeypatch)
    else:
        try:
            client.api_client.call_api("/api/functions", "GET", _parse_response=False)
        except ApiException as ex:
            if ex.status != 404:
                raise
            pytest.skip("this test server has no /api/functions")
    return Queues(client)
