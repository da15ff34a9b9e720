"""Native functions and their queues: the server side of CVAT Online's agent protocol.

CVAT Online and Enterprise let a user register a *native* function (``cvat-cli function
create-native``) and run an agent (``cvat-cli function run-agent``) that takes the function's
annotation requests ("ARs") from a queue on the server. That server code is not open source;
this module and :mod:`.endpoints.functions` rebuild it from what cvat-cli 2.80's agent sends
and expects (``cvat_cli/_internal/agent*.py``) and from the ``/api/functions`` paths and
schemas of app.cvat.ai's OpenAPI schema (CVAT 2.72).

The API (``Q`` is a queue id, ``function:<function id>``; bodies are JSON)::

    POST   /api/functions                  create: {"provider": "native", "name", "kind",
                                           "visibility", kind's fields} -> 201 Function
    GET    /api/functions                  list (paginated; org, search, filter by kind...)
    GET    /api/functions/{id}             -> Function
    DELETE /api/functions/{id}             -> 204; its queued and running ARs fail
    POST   /api/functions/requests/        submit a batch AR: {"function": id, "task",
                                           "job"?, "type": "annotate_task", "threshold"?,
                                           "mapping"?, "cleanup"?, "conv_mask_to_poly"?}
                                           -> 201 AnnotationRequest
    GET    /api/functions/requests/        -> [AnnotationRequest] (batch ARs one may see)
    GET    /api/functions/requests/{ar}    -> AnnotationRequest
    DELETE /api/functions/requests/{ar}    cancel -> 204
    POST   /api/functions/{id}/run         an interactive AR ({"type": "annotate_frame",
                                           "task", "frame", ...}, "interact", "init_tracking",
                                           "track"): waits for an agent's result -> 200 result
    POST   /api/functions/queues/Q/requests/acquire   {"agent_id", "request_category":
                                           "interactive"|"batch"} -> 200 {"ar_assignment":
                                           null | {"function_id", "ar_id", "ar_params"}}
    POST   /api/functions/queues/Q/requests/{ar}/update    {"agent_id", "progress"} -> 204
    POST   /api/functions/queues/Q/requests/{ar}/complete  {"agent_id", result} -> 204
    POST   /api/functions/queues/Q/requests/{ar}/fail      {"agent_id", "exc_info"} -> 204
    GET    /api/functions/queues/Q/watch   text/event-stream: "retry: <ms>", then
                                           ``event: newrequest`` / ``data: {"request_category":
                                           ...}`` for each AR queued; ":" keep-alive comments

How the queue behaves (the test server's reading of the protocol):

* An AR is ``queued``, ``started`` (held by one agent under a lease), then ``finished`` or
  ``failed``. Acquire hands out the oldest queued AR of the category asked for, or null (no
  long poll: cvat-cli asks again on its own schedule, woken by the watch stream).
* A lease lasts ``lease_seconds`` (``TestServer(agent_lease_seconds=...)``); update extends it.
  When it runs out the AR goes back to the queue (watchers hear ``newrequest``) and the agent
  that held it is refused with 409 on update, complete and fail. cvat-cli updates at most every
  30 s, and only between frames of a whole-task AR, so a real lease must be longer than that.
* An agent that asks to acquire in a category while it holds an AR of that category gets that
  AR again: cvat-cli works one AR per category at a time, so it lost the reply of the first
  acquire. Completing an AR one already completed answers 204 again and changes nothing (the
  reply of the first was lost); cvat-cli retries a complete that fails.
* Completing applies the result at once: a batch AR's ``annotations`` (CVAT's LabeledData with
  the task's label ids, as the agent maps them) are added to the task, or to the job's frames
  for a job AR, after clearing them if ``cleanup``; an interactive AR's result is kept for the
  caller of ``/run``. Failing keeps ``exc_info``. Unknown queue, function or AR: 404; an AR
  not held by the agent: 409; a bad body or result: 400.
"""

from __future__ import annotations

import datetime
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs

logger = logging.getLogger(__name__)

BATCH = "batch"
INTERACTIVE = "interactive"
CATEGORIES = (INTERACTIVE, BATCH)
#: AR types by category: what ``/api/functions/requests/`` and ``/run`` accept.
BATCH_TYPES = ("annotate_task",)
INTERACTIVE_TYPES = ("annotate_frame", "interact", "init_tracking", "track")

DEFAULT_LEASE_SECONDS = 120.0
#: How long ``/run`` waits for an agent to complete an interactive AR.
DEFAULT_INTERACTIVE_TIMEOUT = 60.0
#: What the watch stream tells agents to wait before reconnecting, in milliseconds.
WATCH_RETRY_MS = 5000
WATCH_KEEPALIVE_SECONDS = 5.0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def drf_datetime(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class QueueError(Exception):
    """A refused queue operation: its HTTP status and message."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@attrs.define
class NativeFunction:
    """A registered function, as ``POST /api/functions`` made it."""

    id: int
    owner_id: int
    organization_id: int | None
    name: str
    kind: str
    visibility: str = "private"
    labels_v2: list[dict[str, Any]] = attrs.field(factory=list)
    min_pos_points: int = 0
    min_neg_points: int = -1
    startswith_box: bool = False
    startswith_box_optional: bool = False
    supported_shape_types: list[str] = attrs.field(factory=list)
    provider: str = "native"
    url: str = ""
    created: datetime.datetime = attrs.field(factory=_now)
    updated: datetime.datetime = attrs.field(factory=_now)

    @property
    def queue_id(self) -> str:
        return f"function:{self.id}"


@attrs.define
class AnnotationRequest:
    """One AR: what was asked (``params``, the agent's ``ar_params``) and where it stands."""

    function_id: int
    category: str
    params: dict[str, Any]
    owner_id: int
    task_id: int
    job_id: int | None = None
    id: str = attrs.field(factory=lambda: str(uuid.uuid4()))
    status: str = "queued"
    progress: float = 0.0
    agent_id: str | None = None
    lease_until: float | None = None
    enqueued: datetime.datetime = attrs.field(factory=_now)
    started: datetime.datetime | None = None
    ended: datetime.datetime | None = None
    exc_info: str | None = None
    result: dict[str, Any] | None = None
    #: Every agent the AR was handed to, in order (more than one after a lease ran out).
    assignments: list[str] = attrs.field(factory=list)
    completed_by: str | None = None

    @property
    def ended_ok(self) -> bool:
        return self.status == "finished"

    def to_dict(self) -> dict[str, Any]:
        """CVAT Online's AnnotationRequest serializer of it."""
        return {
            "id": self.id,
            "function": {"id": self.function_id, "task": self.task_id},
            "status": self.status,
            "progress": int(self.progress * 100),
            "enqueued": drf_datetime(self.enqueued),
            "started": drf_datetime(self.started),
            "ended": drf_datetime(self.ended),
            "exc_info": self.exc_info or "",
        }


#: ``apply(request, result)``: writes a batch AR's result; raises to refuse it (400).
ApplyResult = Callable[[AnnotationRequest, dict[str, Any]], None]


class FunctionQueues:
    """The native functions of one server, their ARs, leases and watch streams. Thread-safe."""

    def __init__(
        self,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        interactive_timeout: float = DEFAULT_INTERACTIVE_TIMEOUT,
    ) -> None:
        self.lease_seconds = lease_seconds
        self.interactive_timeout = interactive_timeout
        self._lock = threading.Condition()
        self._functions: dict[int, NativeFunction] = {}
        self._next_function_id = 1
        self._requests: dict[str, AnnotationRequest] = {}
        self._watchers: dict[int, set[queue.SimpleQueue[str | None]]] = {}
        self._closed = False
        self._reaper = threading.Thread(
            target=self._reap, name="cvat-aa function leases", daemon=True
        )
        self._reaper.start()

    # functions

    def create_function(self, **fields: Any) -> NativeFunction:
        with self._lock:
            function = NativeFunction(id=self._next_function_id, **fields)
            self._next_function_id += 1
            self._functions[function.id] = function
            return function

    def function(self, function_id: int) -> NativeFunction | None:
        with self._lock:
            return self._functions.get(function_id)

    def functions(self) -> list[NativeFunction]:
        with self._lock:
            return sorted(self._functions.values(), key=lambda f: f.id)

    def delete_function(self, function_id: int) -> None:
        """Removes a function: its unfinished ARs fail, its watch streams end."""
        with self._lock:
            if self._functions.pop(function_id, None) is None:
                raise QueueError(404, "No Function matches the given query.")
            for request in self._requests.values():
                if request.function_id == function_id and request.status in ("queued", "started"):
                    self._end(request, "failed", "The function has been deleted.")
            for watcher in self._watchers.pop(function_id, set()):
                watcher.put(None)
            self._lock.notify_all()

    # requests, as users make them

    def submit(self, request: AnnotationRequest) -> AnnotationRequest:
        with self._lock:
            if request.function_id not in self._functions:
                raise QueueError(404, "No Function matches the given query.")
            self._requests[request.id] = request
            self._announce(request)
            return request

    def request(self, request_id: str) -> AnnotationRequest | None:
        with self._lock:
            self._expire_leases()
            return self._requests.get(request_id)

    def requests(self) -> list[AnnotationRequest]:
        with self._lock:
            self._expire_leases()
            return sorted(self._requests.values(), key=lambda r: r.enqueued)

    def snapshot(self, request_id: str) -> dict[str, Any] | None:
        """The AR's representation, with its result, agents and who completed it."""
        with self._lock:
            self._expire_leases()
            request = self._requests.get(request_id)
            if request is None:
                return None
            return {
                **request.to_dict(),
                "category": request.category,
                "result": request.result,
                "assignments": list(request.assignments),
                "completed_by": request.completed_by,
            }

    def cancel(self, request_id: str) -> None:
        """Removes an AR; the agent holding it is refused from then on (404)."""
        with self._lock:
            request = self._requests.pop(request_id, None)
            if request is None:
                raise QueueError(404, "No AnnotationRequest matches the given query.")
            if request.status in ("queued", "started"):
                self._end(request, "failed", "The request was cancelled.")
            self._lock.notify_all()

    def wait(self, request_id: str, timeout: float) -> AnnotationRequest | None:
        """The AR once it has finished or failed; None if it is unknown or still running."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                self._expire_leases()
                request = self._requests.get(request_id)
                if request is None or request.status in ("finished", "failed"):
                    return request
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._lock.wait(min(left, self._next_expiry_in()))

    # the queue, as agents use it

    def _queue_function(self, function_id: int) -> NativeFunction:
        function = self._functions.get(function_id)
        if function is None:
            raise QueueError(404, "No Function matches the given query.")
        return function

    def acquire(self, function_id: int, agent_id: str, category: str) -> dict[str, Any] | None:
        with self._lock:
            self._queue_function(function_id)
            self._expire_leases()
            mine = [
                r
                for r in self._requests.values()
                if r.function_id == function_id
                and r.category == category
                and r.status == "started"
                and r.agent_id == agent_id
            ]
            if mine:
                request = mine[0]
            else:
                waiting = [
                    r
                    for r in self._requests.values()
                    if r.function_id == function_id
                    and r.category == category
                    and r.status == "queued"
                ]
                if not waiting:
                    return None
                request = min(waiting, key=lambda r: r.enqueued)
                request.status = "started"
                request.agent_id = agent_id
                request.progress = 0.0
                request.started = request.started or _now()
                request.assignments.append(agent_id)
            request.lease_until = time.monotonic() + self.lease_seconds
            self._lock.notify_all()
            return {"function_id": function_id, "ar_id": request.id, "ar_params": request.params}

    def _held(self, function_id: int, request_id: str, agent_id: str) -> AnnotationRequest:
        self._queue_function(function_id)
        self._expire_leases()
        request = self._requests.get(request_id)
        if request is None or request.function_id != function_id:
            raise QueueError(404, "No AnnotationRequest matches the given query.")
        if request.status != "started" or request.agent_id != agent_id:
            raise QueueError(
                409, f"The annotation request {request_id} is not assigned to agent {agent_id}."
            )
        return request

    def update(self, function_id: int, request_id: str, agent_id: str, progress: float) -> None:
        with self._lock:
            request = self._held(function_id, request_id, agent_id)
            request.progress = progress
            request.lease_until = time.monotonic() + self.lease_seconds
            self._lock.notify_all()

    def complete(
        self,
        function_id: int,
        request_id: str,
        agent_id: str,
        result: dict[str, Any],
        apply: ApplyResult,
    ) -> None:
        with self._lock:
            request = self._requests.get(request_id)
            if (
                request is not None
                and request.function_id == function_id
                and request.status == "finished"
                and request.completed_by == agent_id
            ):
                return  # a retry after a lost reply
            request = self._held(function_id, request_id, agent_id)
            # Under the lock, so that the lease cannot run out while the result is written.
            apply(request, result)
            request.result = result
            request.completed_by = agent_id
            request.progress = 1.0
            self._end(request, "finished")

    def fail(self, function_id: int, request_id: str, agent_id: str, exc_info: str) -> None:
        with self._lock:
            request = self._held(function_id, request_id, agent_id)
            self._end(request, "failed", exc_info)

    def watch(self, function_id: int) -> Iterator[str]:
        """The function's event stream, as text chunks; ends when the function is deleted."""
        with self._lock:
            self._queue_function(function_id)
            events: queue.SimpleQueue[str | None] = queue.SimpleQueue()
            self._watchers.setdefault(function_id, set()).add(events)

        def stream() -> Iterator[str]:
            try:
                yield f"retry: {WATCH_RETRY_MS}\n\n"
                while not self._closed:
                    try:
                        event = events.get(timeout=WATCH_KEEPALIVE_SECONDS)
                    except queue.Empty:
                        yield ":\n\n"
                        continue
                    if event is None:
                        return
                    yield event
            finally:
                with self._lock:
                    self._watchers.get(function_id, set()).discard(events)

        return stream()

    def shutdown(self) -> None:
        """Ends every watch stream and wakes every waiter."""
        with self._lock:
            self._closed = True
            for watchers in self._watchers.values():
                for watcher in watchers:
                    watcher.put(None)
            self._watchers.clear()
            self._lock.notify_all()
        self._reaper.join(1.0)

    # inside

    def _announce(self, request: AnnotationRequest) -> None:
        data = json.dumps({"request_category": request.category})
        for watcher in self._watchers.get(request.function_id, ()):
            watcher.put(f"event: newrequest\ndata: {data}\n\n")
        self._lock.notify_all()

    def _end(self, request: AnnotationRequest, status: str, exc_info: str | None = None) -> None:
        request.status = status
        request.ended = _now()
        request.exc_info = exc_info
        request.lease_until = None
        self._lock.notify_all()

    def _expire_leases(self) -> None:
        now = time.monotonic()
        for request in self._requests.values():
            lease = request.lease_until
            if request.status == "started" and lease is not None and now >= lease:
                logger.debug("the lease of AR %s by %s ran out", request.id, request.agent_id)
                request.status = "queued"
                request.agent_id = None
                request.lease_until = None
                request.progress = 0.0
                self._announce(request)

    def _next_expiry_in(self) -> float:
        leases = [r.lease_until for r in self._requests.values() if r.lease_until is not None]
        if not leases:
            return 3600.0
        return max(0.0, min(leases) - time.monotonic()) + 0.001

    def _reap(self) -> None:
        """Puts ARs whose lease ran out back in the queue, so that watchers hear of them."""
        with self._lock:
            while not self._closed:
                self._expire_leases()
                self._lock.wait(self._next_expiry_in())
