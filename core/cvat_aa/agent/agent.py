"""The agent: takes a native function's requests from CVAT's queue and serves them.

It does what cvat-cli 2.80's ``function run-agent`` does, in the same order and with the same
requests and bodies (see :mod:`.queue`): interactive requests before task requests; acquire,
compute, submit or fail, repeat; when the queue is empty, wait for the queue's event stream to
announce work (or poll every minute while there is no stream, every ten minutes while there
is one, with jitter so agents do not poll in step); ``burst`` serves what is queued and
returns. While a task request runs, the agent checks in after every batch: it renews its hold
on the request every 30 seconds and, when an interactive request is waiting (announced on
the stream, or found by asking at most every ``interactive_poll`` seconds), serves it at once
with the same loaded model, so a user clicking in the UI does not wait for a whole task.

The function is loaded once, before the first request, and stays loaded (here, or, for a
detector, on Ray actors). What a request's result is depends on the function's kind, and is
its runner's business (:func:`runner_for`): a detector's requests are runs of the pipeline
(:mod:`.requests`), an interactor's and a tracker's are single frames (:mod:`.interactive`);
the loop is the same for all three. Each agent has a random id; the server hands each
request to one agent, so several agents on one function share the queue without duplicating
work. A request the agent loses
(its progress update is refused: cancelled, or reassigned after the hold lapsed) is dropped,
never submitted. An agent killed mid-request submits nothing; the server gives the request to
another agent when the hold lapses.

Stopping (:meth:`Agent.stop`, which the CLI calls on the first Ctrl-C or SIGTERM) lets the
request in progress finish and be submitted, then returns. :meth:`Agent.abandon` (the second
signal) drops the request in progress at the next batch without submitting or failing it, to
be handed to another agent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

import attrs
import urllib3.exceptions
from cvat_sdk import Client
from cvat_sdk.api_client.exceptions import ApiException

from ..errors import (
    BadFunctionError,
    BadRequestError,
    FunctionFailedError,
    LabelMapError,
    LabelMismatchError,
    NoDataError,
    NotFoundError,
)
from ..interaction import Interactor
from ..interface import function_kind
from ..pipeline.executors import Executor
from ..tracking import Tracker
from .interactive import InteractionRunner, TrackingRunner
from .native import check_compatible
from .queue import (
    BATCH,
    INTERACTIVE,
    JITTER,
    Backoff,
    Event,
    FunctionQueue,
    NewReconnectionDelay,
    RequestLostError,
    get_function,
    parse_event_stream,
)
from .requests import RequestRunner, UnservableRequestError

__all__ = ["Agent", "AgentSummary", "Runner", "failure_message", "runner_for"]

logger = logging.getLogger(__name__)

CATEGORIES = (INTERACTIVE, BATCH)
"""In the order the agent serves them."""

POLL_WITHOUT_STREAM = timedelta(seconds=60)
POLL_WITH_STREAM = timedelta(minutes=10)
UPDATE_INTERVAL = timedelta(seconds=30)


def _brief(ex: BaseException) -> str:
    """An error in a few words (an API exception's text carries response headers)."""
    if isinstance(ex, ApiException):
        return f"HTTP {ex.status} {ex.reason}"
    return f"{type(ex).__name__}: {ex}"


class Runner(Protocol):
    """Computes the results of one function's requests: :class:`.requests.RequestRunner`
    (detectors), :class:`.interactive.InteractionRunner`, :class:`.interactive.TrackingRunner`."""

    spec: Any

    def result(
        self, params: Mapping[str, Any], check_in: Callable[[float], None] | None
    ) -> dict[str, Any]:
        """The body (without ``agent_id``) that completes the request ``params``;
        ``check_in(fraction_done)`` is given for task requests only."""
        ...


def runner_for(
    client: Client, executor: Executor, function: Any, *, name: str, batch_size: int
) -> Runner:
    """The runner for ``function`` (loaded by ``executor``), whatever its kind.

    Interactors and trackers run in this process: a tracker's states and an interactor's
    cached images must stay where the next request of the same user is served.
    """
    if isinstance(function, (str, os.PathLike)):
        # Only a remote executor leaves the function unloaded here.
        return RequestRunner(client, executor, function, name=name, batch_size=batch_size)
    kind = function_kind(function)
    if kind == "interaction":
        return InteractionRunner(client, Interactor(function))
    if kind == "tracking":
        return TrackingRunner(client, Tracker(function))
    return RequestRunner(client, executor, function, name=name, batch_size=batch_size)


class _Abandoned(Exception):
    """The agent was told to drop the request in progress."""


@attrs.define
class AgentSummary:
    """What an agent did: request ids by outcome."""

    completed: list[str] = attrs.Factory(list)
    failed: list[str] = attrs.Factory(list)
    lost: list[str] = attrs.Factory(list)
    """Requests it dropped: lost to the server, or abandoned when it was stopped."""


def failure_message(ex: BaseException) -> str:
    """What the user who sent the request sees when it fails.

    As in cvat-cli, only known failures are described (an unexpected error may carry details
    of this machine); unlike cvat-cli, the function's own failure is described too, with the
    exception's type and message (never a traceback), as ``cvat-aa serve`` does.
    """
    if isinstance(ex, FunctionFailedError):
        return str(ex)
    if isinstance(
        ex,
        (LabelMapError, LabelMismatchError, UnservableRequestError, BadRequestError, NoDataError),
    ):
        return f"Invalid annotation request: {ex}"
    if isinstance(ex, BadFunctionError):
        return f"Underlying function returned incorrect result: {ex}"
    if isinstance(ex, ApiException):
        return f"Received HTTP status {ex.status}" if ex.status else "Failed an API call"
    if isinstance(ex, urllib3.exceptions.RequestError):
        reason = ex.reason if isinstance(ex, urllib3.exceptions.MaxRetryError) else ex
        return f"Failed to make an HTTP request to {ex.url} ({type(reason).__name__})"
    if isinstance(ex, urllib3.exceptions.HTTPError):
        return "Failed to make an HTTP request"
    return "Unknown error"


class Agent:
    """Serves the requests of native function ``function_id`` with ``runner``'s function."""

    def __init__(
        self,
        client: Client,
        function_id: int,
        runner: Runner,
        *,
        interactive_poll: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.function_id = function_id
        self.runner = runner
        self.interactive_poll = interactive_poll
        self.agent_id = secrets.token_hex(16)
        self._rng = rng or random.Random()  # jitter, not secrets
        self._stopping = threading.Event()
        self._abandoning = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._work = dict.fromkeys(CATEGORIES, True)
        self._polling_interval = POLL_WITHOUT_STREAM
        self._reconnect = Backoff(POLL_WITH_STREAM, POLL_WITH_STREAM)
        self._stream: Any = None
        self.queue = FunctionQueue(
            client, function_id, self.agent_id, sleep=self._sleep, rng=self._rng
        )
        self.summary = AgentSummary()
        try:
            remote = get_function(client, function_id)
        except ApiException as ex:
            if ex.status == 404:
                raise NotFoundError(
                    f"there is no function #{function_id} on this server that you may use:"
                    " check the id with 'cvat-aa agent list', or create one with"
                    " 'cvat-aa agent create'"
                ) from None
            raise
        check_compatible(remote, runner.spec)
        self.remote = remote
        logger.info("Agent %s serves function #%d (%s)", self.agent_id, function_id, remote["name"])

    # --- stopping -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the request in progress (and submit it), then return from :meth:`run`."""
        self._stopping.set()
        self._wake.set()

    def abandon(self) -> None:
        """Drop the request in progress at the next batch, unsubmitted, and return."""
        self._abandoning.set()
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _sleep(self, seconds: float) -> bool:
        """Wait; True (at once) when the agent is stopping."""
        return self._stopping.wait(seconds)

    # --- the loop -------------------------------------------------------------------------------

    def run(self, *, burst: bool = False) -> AgentSummary:
        """Serve requests until stopped (or, with ``burst``, until the queue is empty)."""
        watcher = threading.Thread(target=self._watch, name="cvat-aa-agent-watch", daemon=True)
        watcher.start()
        try:
            while not self.stopping:
                self._serve_all()
                if burst or self.stopping:
                    break
                self._wait_for_work()
        except ApiException as ex:
            if ex.status == 404:
                raise NotFoundError(
                    f"the queue of function #{self.function_id} is gone: the function was"
                    " deleted on the server"
                ) from None
            raise
        finally:
            self._stopping.set()
            self._close_stream()
            watcher.join(timeout=5)
        if burst:
            logger.info("No requests left in the queue")
        return self.summary

    def _serve_all(self) -> None:
        for category in CATEGORIES:
            self._serve(category)

    def _serve(self, category: str) -> None:
        with self._lock:
            if not self._work[category]:
                return
            self._work[category] = False
        while not self.stopping:
            assignment = self.queue.acquire(category)
            if assignment is None:
                return
            self._process(assignment)

    def _wait_for_work(self) -> None:
        timeout = self._polling_interval.total_seconds() * self._rng.uniform(1 - JITTER, 1 + JITTER)
        deadline = time.monotonic() + timeout
        while not self.stopping:
            with self._lock:
                if any(self._work.values()):
                    return
                self._wake.clear()
            left = deadline - time.monotonic()
            if left <= 0 or not self._wake.wait(left):
                break
        with self._lock:
            # Nothing came, or the stream missed it: ask anyway.
            self._work = dict.fromkeys(CATEGORIES, True)

    def _announce(self, category: str) -> None:
        with self._lock:
            if category not in self._work:
                logger.warning("The server announced a request of unknown category %r", category)
                return
            logger.info("The server announced a new %s request", category)
            self._work[category] = True
        self._wake.set()

    # --- one request ----------------------------------------------------------------------------

    def _process(self, assignment: Mapping[str, Any]) -> None:
        ar_id = assignment["ar_id"]
        params = assignment["ar_params"]
        logger.info(
            "Serving request %s (%s%s)",
            ar_id,
            params.get("type"),
            "".join(f" {k}={params[k]!r}" for k in ("task", "frame") if k in params),
        )
        last_update = time.monotonic()
        last_interactive_poll = time.monotonic()
        is_task = params.get("type") == "annotate_task"

        def check_in(progress: float) -> None:
            nonlocal last_update, last_interactive_poll
            if self._abandoning.is_set():
                raise _Abandoned
            now = time.monotonic()
            if now - last_update >= UPDATE_INTERVAL.total_seconds():
                self.queue.update(ar_id, progress)
                last_update = time.monotonic()
            if now - last_interactive_poll >= self.interactive_poll:
                last_interactive_poll = now
                self._announce_quietly(INTERACTIVE)
            # Interactive requests wait for a person: serve them between the task's batches.
            # Failing to reach them is no reason to fail the task request.
            try:
                self._serve(INTERACTIVE)
            except (ApiException, urllib3.exceptions.HTTPError) as ex:
                logger.warning("Could not look for single-frame requests: %s", _brief(ex))
            if self._abandoning.is_set():
                raise _Abandoned

        try:
            result = self.runner.result(params, check_in if is_task else None)
        except (RequestLostError, _Abandoned) as ex:
            why = "abandoned" if isinstance(ex, _Abandoned) else str(ex)
            logger.warning("Dropped request %s without submitting it (%s)", ar_id, why)
            self.summary.lost.append(ar_id)
            return
        except Exception as ex:
            logger.exception("Request %s failed", ar_id)
            self._fail(ar_id, ex)
            return
        try:
            self.queue.complete(ar_id, result)
        except Exception as ex:
            logger.exception("Could not submit the result of request %s", ar_id)
            self._fail(ar_id, ex)
            return
        logger.info("Completed request %s", ar_id)
        self.summary.completed.append(ar_id)

    def _announce_quietly(self, category: str) -> None:
        with self._lock:
            self._work[category] = True

    def _fail(self, ar_id: str, ex: Exception) -> None:
        message = failure_message(ex)
        logger.info("Request %s failed: %s", ar_id, message)
        try:
            self.queue.fail(ar_id, message)
        except Exception:
            logger.exception("Could not report the failure of request %s", ar_id)
        self.summary.failed.append(ar_id)

    # --- the queue's event stream ---------------------------------------------------------------

    def _close_stream(self) -> None:
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.shutdown()
            with contextlib.suppress(Exception):
                stream.close()

    def _watch(self) -> None:
        while not self.stopping:
            self._polling_interval = POLL_WITHOUT_STREAM
            try:
                self._stream = self.queue.watch()
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as ex:
                logger.info("Cannot watch the function's queue (%s); will poll", _brief(ex))
                self._wait_to_reconnect()
                continue
            if self.stopping:
                self._close_stream()
                return
            logger.info("Watching the function's queue")
            self._polling_interval = POLL_WITH_STREAM
            try:
                for message in parse_event_stream(self._stream.readline):
                    if isinstance(message, NewReconnectionDelay):
                        self._reconnect.reset(message.delay)
                    elif isinstance(message, Event) and message.type == "newrequest":
                        self._announce(json.loads(message.data)["request_category"])
                    elif isinstance(message, Event) and (message.type or message.data):
                        logger.warning("Unknown event from the queue: %r", message.type)
                # The stream ended (a deleted function, or a restart): ask the queue, which
                # answers 404 if the function is gone.
                with self._lock:
                    self._work = dict.fromkeys(CATEGORIES, True)
                self._wake.set()
            except Exception as ex:
                # Closing the stream from another thread (stopping) breaks the read anyhow.
                if self.stopping:
                    return
                logger.info("The queue's event stream broke (%s); will reconnect", _brief(ex))
                logger.debug("The event stream's error", exc_info=True)
            finally:
                self._close_stream()
            self._wait_to_reconnect()

    def _wait_to_reconnect(self) -> None:
        self._sleep(self._reconnect.next().total_seconds() * self._rng.uniform(1, 1 + JITTER))
