"""Requests to annotate a task or a job with a function: CVAT 2.73's ``LambdaQueue``/``LambdaJob``.

CVAT runs each request as an rq job of its "annotation" queue; the test server runs each in a
thread of its own, and clients see the same life cycle:

* The id is ``action=autoannotate&target=task&target_id=<task id>`` (CVAT's ``RequestId``),
  for a job's request too, so a task has one request at a time: another one is refused with
  409 while it is queued or started, and replaces it once it has finished or failed.
* ``status`` goes ``queued``, ``started``, then ``finished`` or ``failed`` (with rq's
  ``exc_info``: the traceback, whose last line is the exception, e.g. ``requests.exceptions.
  HTTPError: 500 Server Error: <reason> for url: <url>``). ``progress`` is null until the first
  frame is done, then ``int((frame + 1) / task size * 100)`` after each frame, a job's too.
* The work (``LambdaJob.__call__``): the task's or job's annotations are deleted first if
  ``cleanup``; a detector is then invoked once per frame, in frame order (the job's frames for
  a job), skipping deleted frames; its results are collected and saved as a PATCH
  ``?action=create`` of the task (or job) would save them, each time a frame number that is a
  nonzero multiple of 100 is done and at the end. A failure loses what was collected since the
  last save; mapping errors surface only then, as the first frame fails (CVAT does not check
  the mapping when the request is made). Interactors and trackers do nothing in a request.
* DELETE removes the request (404 from then on). One that is running stops at its next
  progress update, after the frame in hand (whose results are dropped), saves what it had
  collected, and then shows again as finished: rq saves a job back when it ends.
* A finished request is kept 30 minutes, a failed one 3 hours (CVAT's TTLs); lists leave out
  failed ones (CVAT lists the queue's other registries).
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from typing import Any

import attrs

from .detection_results import DetectionResultConverter
from .function_calls import CallTarget, invoke
from .job_annotations import change_job_annotations, change_task_annotations
from .lambda_errors import CallError, RefusedError, exc_info_text
from .nuclio import Gateway, LambdaFunction
from .storage import Storage
from .validation import ValidationError, check_annotations, parse_labeled_data

logger = logging.getLogger(__name__)

RESULT_TTL = datetime.timedelta(minutes=30)
FAILED_TTL = datetime.timedelta(hours=3)
#: Results are saved each time a frame number that is a nonzero multiple of this is done.
SUBMIT_EVERY = 100
_JOIN_SECONDS = 5.0

ProgressCallback = Callable[[float], bool]


def request_id(task_id: int) -> str:
    """CVAT's ``RequestId(action="autoannotate", target="task", target_id=...).render()``."""
    return f"action=autoannotate&target=task&target_id={task_id}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _drf_datetime(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


@attrs.define
class LambdaRequest:
    """One request, with what ``POST /api/lambda/requests`` gave it and where it stands."""

    function: LambdaFunction
    task_id: int
    job_id: int | None
    owner_id: int
    threshold: float | None = None
    mapping: dict[str, Any] | None = None
    cleanup: bool = False
    conv_mask_to_poly: bool = False
    max_distance: int | None = None
    roi: list[int] | None = None
    status: str = "queued"
    progress: int | None = None
    enqueued: datetime.datetime = attrs.field(factory=_now)
    started: datetime.datetime | None = None
    ended: datetime.datetime | None = None
    exc_info: str | None = None
    #: Deleted by the API while running: hidden until it ends.
    deleted: bool = False

    @property
    def id(self) -> str:
        return request_id(self.task_id)

    def to_dict(self) -> dict[str, Any]:
        """CVAT's FunctionCallSerializer of it."""
        function: dict[str, Any] = {
            "id": self.function.id,
            "threshold": None if self.threshold is None else float(self.threshold),
            "task": self.task_id,
        }
        if self.job_id:
            function["job"] = self.job_id
        return {
            "id": self.id,
            "function": function,
            "status": self.status,
            "progress": self.progress,
            "enqueued": _drf_datetime(self.enqueued),
            "started": _drf_datetime(self.started),
            "ended": _drf_datetime(self.ended),
            "exc_info": self.exc_info,
        }

    def expired(self, now: datetime.datetime) -> bool:
        if self.ended is None or self.status not in ("finished", "failed"):
            return False
        return now > self.ended + (RESULT_TTL if self.status == "finished" else FAILED_TTL)


Work = Callable[[LambdaRequest, ProgressCallback], None]


class LambdaQueue:
    """The requests of one server, each run in a thread of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, LambdaRequest] = {}
        self._threads: set[threading.Thread] = set()
        self._closed = False

    def _visible(self, rq_id: str) -> LambdaRequest | None:
        request = self._requests.get(rq_id)
        if request is not None and request.expired(_now()):
            del self._requests[rq_id]
            return None
        return request

    def enqueue(self, request: LambdaRequest, work: Work) -> dict[str, Any]:
        """Starts ``work`` for the request; what CVAT answers, or 409 if one is running."""
        with self._lock:
            existing = self._visible(request.id)
            if existing is not None and existing.status not in ("finished", "failed"):
                raise CallError(
                    f"Only one running request is allowed for the same task #{request.task_id}",
                    status=409,
                )
            self._requests[request.id] = request
            answer = request.to_dict()
            thread = threading.Thread(
                target=self._run,
                args=(request, work),
                name=f"cvat-aa lambda request {request.id}",
                daemon=True,
            )
            self._threads.add(thread)
        thread.start()
        return answer

    def fetch(self, rq_id: str) -> LambdaRequest | None:
        with self._lock:
            return self._visible(rq_id)

    def snapshot(self, rq_id: str) -> dict[str, Any] | None:
        with self._lock:
            request = self._visible(rq_id)
            return None if request is None else request.to_dict()

    def listed(self) -> list[tuple[int, dict[str, Any]]]:
        """``(task id, FunctionCall)`` of every request CVAT lists: all but failed ones."""
        with self._lock:
            requests = [self._visible(rq_id) for rq_id in list(self._requests)]
            return [(r.task_id, r.to_dict()) for r in requests if r and r.status != "failed"]

    def delete(self, rq_id: str) -> None:
        with self._lock:
            request = self._requests.pop(rq_id, None)
            if request is not None:
                request.deleted = True

    def shutdown(self) -> None:
        """Stops every request at its next progress update and waits a little for them."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for thread in threads:
            thread.join(_JOIN_SECONDS)
            if thread.is_alive():
                logger.warning("%s is still running as the server stops", thread.name)

    def _run(self, request: LambdaRequest, work: Work) -> None:
        try:
            with self._lock:
                # Deleted while queued: rq takes it off the queue, so it never runs.
                if request.deleted or self._closed:
                    return
                request.status = "started"
                request.started = _now()
            try:
                work(request, lambda progress: self._progress(request, progress))
            except Exception as e:
                logger.debug("lambda request %s failed", request.id, exc_info=True)
                self._end(request, "failed", exc_info_text(e))
            else:
                self._end(request, "finished")
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _progress(self, request: LambdaRequest, progress: float) -> bool:
        """CVAT's ``_update_progress``: False once the request is deleted."""
        with self._lock:
            request.progress = int(progress * 100)
            return not (request.deleted or self._closed)

    def _end(self, request: LambdaRequest, status: str, exc_info: str | None = None) -> None:
        with self._lock:
            request.status = status
            request.ended = _now()
            request.exc_info = exc_info
            if request.deleted and request.id not in self._requests and not self._closed:
                request.deleted = False
                self._requests[request.id] = request


# The work of a request


@attrs.frozen
class Annotator:
    """What a request's work needs of the server: its database, frames, gateway and secret."""

    storage: Storage
    gateway: Gateway
    secret_key: bytes
    #: ``read_frame(task, frame)``: the frame's bytes as the lambda manager reads them.
    read_frame: Callable[[dict[str, Any], int], bytes]

    def __call__(self, request: LambdaRequest, update_progress: ProgressCallback) -> None:
        with self.storage.read() as tx:
            task = tx.task(request.task_id)
            if task is None:
                raise LookupError("Task matching query does not exist.")
            job = tx.job(request.job_id) if request.job_id else None
            labels = tx.task_labels(task)
            deleted = {frame["frame"] for frame in tx.frames(task["id"]) if frame["deleted"]}
        if request.cleanup:
            with self.storage.write() as tx:
                if job is not None:
                    change_job_annotations(tx, job, "clear", None)
                else:
                    change_task_annotations(tx, task, "clear", None)
        if request.function.kind == "detector":
            self._call_detector(request, task, job, labels, deleted, update_progress)
        elif request.function.kind == "reid":
            raise NotImplementedError(
                "The test server does not run reid functions in requests (CVAT merges their"
                " matches into tracks); call them online instead."
            )

    def _call_detector(
        self,
        request: LambdaRequest,
        task: dict[str, Any],
        job: dict[str, Any] | None,
        labels: list[dict[str, Any]],
        deleted: set[int],
        update_progress: ProgressCallback,
    ) -> None:
        collector = _Collector(self.storage, task, job, labels)
        converter = DetectionResultConverter(labels)
        target = CallTarget(task, labels, lambda frame: self.read_frame(task, frame), job)
        frames = range(job["start_frame"], job["stop_frame"] + 1) if job else range(task["size"])
        for frame in frames:
            if frame in deleted:
                continue
            annotations = invoke(
                self.gateway,
                request.function,
                target,
                {
                    "frame": frame,
                    "mapping": request.mapping,
                    "threshold": request.threshold,
                    "conv_mask_to_poly": request.conv_mask_to_poly,
                    "roi": request.roi,
                },
                secret_key=self.secret_key,
                converter=converter,
            )
            if not update_progress((frame + 1) / task["size"]):
                break
            collector.add(annotations)
            if frame and frame % SUBMIT_EVERY == 0:
                collector.submit()
        collector.submit()


class _Collector:
    """CVAT's ``DetectionResultCollector``: results kept until they are submitted."""

    def __init__(
        self,
        storage: Storage,
        task: dict[str, Any],
        job: dict[str, Any] | None,
        labels: list[dict[str, Any]],
    ) -> None:
        self.storage = storage
        self.task = task
        self.job = job
        self.labels = labels
        self.data: dict[str, list[dict[str, Any]]] = {"tags": [], "shapes": []}

    def add(self, data: dict[str, Any]) -> None:
        self.data["tags"] += data["tags"]
        self.data["shapes"] += data["shapes"]

    def submit(self) -> None:
        if not (self.data["tags"] or self.data["shapes"]):
            return
        try:
            parsed = parse_labeled_data(self.data)
            with self.storage.write() as tx:
                if self.job is not None:
                    first, last, scope = self.job["start_frame"], self.job["stop_frame"], "job"
                else:
                    first, last, scope = 0, self.task["size"] - 1, "task"
                check_annotations(parsed, self.labels, range(first, last + 1), scope=scope)
                if self.job is not None:
                    change_job_annotations(tx, self.job, "create", parsed)
                else:
                    change_task_annotations(tx, self.task, "create", parsed)
        except ValidationError as e:
            raise RefusedError(e.errors) from e
        self.data = {"tags": [], "shapes": []}
