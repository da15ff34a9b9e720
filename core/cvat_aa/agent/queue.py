"""What an agent says to CVAT: native functions, and the function's queue of requests.

CVAT Online and Enterprise keep a queue per *native function* (``provider: "native"``): CVAT
puts a request there when a user runs the function on a task (category ``batch``) or on one
frame from the UI (``interactive``), and agents running on their users' machines take
requests from it. The protocol is cvat-cli 2.80's (``cvat-cli function run-agent``), written
anew here and tested against it:

* ``POST /api/functions`` creates a native function (its ``kind`` and that kind's fields),
  ``GET /api/functions/{id}`` reads one, ``DELETE`` removes it;
* ``POST /api/functions/queues/function:{id}/requests/acquire`` with ``agent_id`` and
  ``request_category`` answers ``{"ar_assignment": null}`` or the request's id and
  parameters; the server hands a request to one agent at a time, so agents on one queue never
  share work;
* ``.../requests/{ar_id}/update`` with ``progress`` renews the agent's hold on the request;
* ``.../requests/{ar_id}/complete`` with the result (a detector's annotations, an
  interactor's shapes, a tracker's states and shapes), or ``.../fail`` with ``exc_info``;
* ``GET /api/functions/queues/function:{id}/watch`` is a stream of server-sent events
  (``newrequest`` with the request's category) that wakes agents when work arrives.

POSTs are retried here as cvat-cli retries them (urllib3 retries only idempotent requests):
on 429, 5xx and lost connections, after the server's ``Retry-After`` or an exponential
back-off from 5 seconds up to 10 minutes with 15% jitter; a 4xx other than 429 is final. An
answer of 4xx to ``update`` means the request is no longer this agent's (cancelled, or handed
to another agent after the hold lapsed): :class:`RequestLostError`, so the agent drops it
rather than submit what it no longer holds.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http import HTTPStatus
from typing import Any, TypeVar

import attrs
import urllib3.exceptions
from cvat_sdk import Client
from cvat_sdk.api_client.exceptions import ApiException

from ..errors import RequestLostError

__all__ = [
    "BATCH",
    "INTERACTIVE",
    "Backoff",
    "Event",
    "FunctionQueue",
    "NewReconnectionDelay",
    "RequestLostError",
    "create_native_function",
    "delete_function",
    "get_function",
    "list_functions",
    "parse_event_stream",
]

logger = logging.getLogger(__name__)

NATIVE = "native"
BATCH = "batch"
INTERACTIVE = "interactive"

RETRY_START = timedelta(seconds=5)
RETRY_MAX = timedelta(minutes=10)
JITTER = 0.15
COMPLETE_ATTEMPTS = 4
"""Submitting a result is tried this many times before the request is given up."""

T = TypeVar("T")


class Backoff:
    """Exponential delays: ``start``, twice that, ... up to ``maximum``."""

    def __init__(self, start: timedelta | None = None, maximum: timedelta | None = None) -> None:
        # The module's values at the time of the call (tests shorten them).
        self._current = RETRY_START if start is None else start
        self._maximum = RETRY_MAX if maximum is None else maximum

    def reset(self, delay: timedelta) -> None:
        self._current = delay

    def next(self) -> timedelta:
        delay = self._current
        self._current = min(self._current * 2, self._maximum)
        return delay


def _json(response: Any) -> Any:
    return json.loads(response.data)


def create_native_function(
    client: Client,
    *,
    name: str,
    visibility: str = "private",
    kind: str = "detector",
    **fields: Any,
) -> dict[str, Any]:
    """Register a native function on the server; its record (with ``id``).

    ``kind`` and ``fields`` are what :func:`.native.native_fields` makes of a spec (a
    detector's ``labels_v2``, an interactor's rules for prompts, a tracker's shape types).
    """
    body = {"provider": NATIVE, "name": name, "visibility": visibility, "kind": kind, **fields}
    _, response = client.api_client.call_api("/api/functions", "POST", body=body)
    return _json(response)


def get_function(client: Client, function_id: int) -> dict[str, Any]:
    _, response = client.api_client.call_api(
        "/api/functions/{function_id}", "GET", path_params={"function_id": function_id}
    )
    return _json(response)


def list_functions(client: Client) -> list[dict[str, Any]]:
    """Every function the user may see, page after page."""
    functions: list[dict[str, Any]] = []
    page = 1
    while True:
        _, response = client.api_client.call_api(
            "/api/functions", "GET", query_params=[("page", page), ("page_size", 100)]
        )
        data = _json(response)
        if isinstance(data, list):  # an unpaginated answer
            return data
        functions.extend(data.get("results") or [])
        if not data.get("next"):
            return functions
        page += 1


def delete_function(client: Client, function_id: int) -> bool:
    """Delete a function; False if there was none with that id."""
    _, response = client.api_client.call_api(
        "/api/functions/{function_id}",
        "DELETE",
        path_params={"function_id": function_id},
        _check_status=False,
    )
    if response.status == HTTPStatus.NOT_FOUND:
        return False
    if not 200 <= response.status <= 299:
        raise ApiException(http_resp=response)
    return True


@attrs.frozen
class Event:
    type: str
    data: str


@attrs.frozen
class NewReconnectionDelay:
    delay: timedelta


def parse_event_stream(readline: Callable[[], bytes]) -> Iterator[Event | NewReconnectionDelay]:
    """Server-sent events, as the HTML standard reads them (CVAT sends no lone CRs)."""
    event_type = event_data = ""
    while True:
        raw = readline()
        if not raw:
            return
        line = raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
        if "\r" in line:
            raise ValueError("CR found in event stream")
        if not line:
            yield Event(event_type, event_data.removesuffix("\n"))
            event_type = event_data = ""
            continue
        if line.startswith(":"):
            continue  # a comment, or a keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event_type = value
        elif name == "data":
            event_data += value + "\n"
        elif name == "retry" and value.isascii() and value.isdecimal():
            yield NewReconnectionDelay(timedelta(milliseconds=int(value)))


class FunctionQueue:
    """One native function's queue, as one agent (``agent_id``) sees it.

    ``sleep`` waits between retries; it returns True when the agent is stopping, which ends
    the retries by raising the last error.
    """

    def __init__(
        self,
        client: Client,
        function_id: int,
        agent_id: str,
        *,
        sleep: Callable[[float], bool] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.function_id = function_id
        self.agent_id = agent_id
        self._rng = rng or random.Random()  # jitter, not secrets
        self._sleep = sleep or (lambda seconds: threading.Event().wait(seconds))

    @property
    def queue_id(self) -> str:
        return f"function:{self.function_id}"

    def _post(self, path: str, body: dict[str, Any], **path_params: Any) -> Any:
        _, response = self.client.api_client.call_api(
            "/api/functions/queues/{queue_id}/requests" + path,
            "POST",
            path_params={"queue_id": self.queue_id, **path_params},
            body={"agent_id": self.agent_id, **body},
        )
        return response

    def _retry_delay(self, ex: Exception, backoff: Backoff) -> float | None:
        """Seconds to wait before trying a POST again, or None if it cannot succeed."""
        delay: float | None = None
        if isinstance(ex, ApiException):
            try:
                delay = int((ex.headers or {})["Retry-After"])
            except (KeyError, ValueError, TypeError):
                pass
            status = ex.status or 0
            if 400 <= status < 500 and status != HTTPStatus.TOO_MANY_REQUESTS:
                return None
            if status == HTTPStatus.TOO_MANY_REQUESTS and delay is not None:
                logger.warning("Rate limited; will retry in %.2fs", delay)
                return float(delay)
        if delay is None:
            delay = backoff.next().total_seconds() * self._rng.uniform(1, 1 + JITTER)
        logger.warning("Request to the server failed (%s); will retry in %.2fs", ex, delay)
        return float(delay)

    def _with_retries(self, call: Callable[[], T], *, attempts: int | None = None) -> T:
        backoff = Backoff()
        attempt = 1
        while True:
            try:
                return call()
            except (urllib3.exceptions.HTTPError, ApiException) as ex:
                if attempts is not None and attempt >= attempts:
                    raise
                delay = self._retry_delay(ex, backoff)
                if delay is None or self._sleep(delay):
                    raise
            attempt += 1

    def acquire(self, category: str) -> dict[str, Any] | None:
        """The next request of ``category``, now this agent's, or None if there is none."""
        logger.debug("Trying to acquire a request of category %r", category)
        response = self._with_retries(
            lambda: self._post("/acquire", {"request_category": category})
        )
        return _json(response)["ar_assignment"]

    def update(self, ar_id: str, progress: float) -> None:
        """Report progress, which renews the hold on the request.

        Raises :class:`RequestLostError` if the server says the request is not this agent's
        any more; other failures are logged (progress is not worth failing the request for).
        """
        logger.info("Request %s: %.0f%% done", ar_id, progress * 100)
        try:
            self._post("/{request_id}/update", {"progress": progress}, request_id=ar_id)
        except ApiException as ex:
            status = ex.status or 0
            if 400 <= status < 500 and status != HTTPStatus.TOO_MANY_REQUESTS:
                raise RequestLostError(
                    f"the server answered {status} to a progress update of request {ar_id}"
                ) from ex
            logger.warning("Could not update the progress of request %s: %s", ar_id, ex)
        except urllib3.exceptions.HTTPError as ex:
            logger.warning("Could not update the progress of request %s: %s", ar_id, ex)

    def complete(self, ar_id: str, result: dict[str, Any]) -> None:
        """Submit a request's result (tried up to four times, as cvat-cli does)."""
        logger.info("Submitting the result of request %s", ar_id)
        self._with_retries(
            lambda: self._post("/{request_id}/complete", result, request_id=ar_id),
            attempts=COMPLETE_ATTEMPTS,
        )

    def fail(self, ar_id: str, message: str) -> None:
        """Tell the server a request failed, with the message its user sees."""
        self._post("/{request_id}/fail", {"exc_info": message}, request_id=ar_id)

    def watch(self) -> Any:
        """The open event stream (an urllib3 response; read it with readline)."""
        _, response = self.client.api_client.call_api(
            "/api/functions/queues/{queue_id}/watch",
            "GET",
            path_params={"queue_id": self.queue_id},
            _parse_response=False,
        )
        return response
