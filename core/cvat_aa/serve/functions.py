"""One served function: its model loaded once, its requests batched, its results validated.

CVAT's task-wide automatic annotation sends one frame per request, and several users (or
tasks) send theirs at the same time. Each :class:`ServedFunction` keeps a queue of frames and
worker threads that take whatever has arrived (up to the batch size, waiting at most
``batch_wait`` for more) and run it through the function in one batch, via the same
``cvat_aa_detect`` hook and :func:`~cvat_aa.pipeline.detection.run_batch` as every run, so
hook plugins and error handling are those of ``cvat-aa annotate``. The HTTP threads only wait
on their own frame's future, so the server answers listings while a model works.

Where the function runs is a *runner*: here (one worker, which loads the function too: the
model is not shared between threads, and runs best in the thread that built it) or on Ray
actors (one worker per actor slot; :meth:`RayExecutor.run_one` spreads the batches and runs a
dead actor's batch again on another).

What the function returns is validated and fitted to the frame by the driver's own
:class:`~cvat_aa.pipeline.label_mapping.LabelMapper`, against the function's spec taken as
a task's labels, as a run over files does: what CVAT receives is what ``cvat-aa annotate``
would have uploaded.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, Protocol

import attrs

from ..errors import BadFunctionError, FunctionFailedError, ServerBusyError
from ..frames import Frame
from ..interface import FrameContext
from ..labels import LabelCatalog
from ..pipeline.detection import UNNUMBERED, run_batch
from ..pipeline.executors import Outcome
from ..pipeline.label_mapping import LabelMapper, spec_as_task_labels
from ..pipeline.ray_executor import RayExecutor
from ..plugins import (
    check_parameters,
    discover_functions,
    hooks,
    instantiate,
    resolve_function_source,
)
from .metrics import Metrics
from .nuclio import DetectorRequest, function_config, to_nuclio

__all__ = ["FunctionChoice", "ServedFunction", "ServerBusyError", "function_id_of"]

logger = logging.getLogger(__name__)

FUNCTION_ID = re.compile(r"^[a-zA-Z0-9_.-]+$")
"""The ids CVAT accepts in its URLs (``FunctionViewSet.lookup_value_regex``)."""


def function_id_of(source: Any) -> str:
    """The default id of a function served from ``source`` (a name, module or path)."""
    text = os.fspath(source) if isinstance(source, (str, os.PathLike)) else function_name(source)
    if text.endswith(".py") or os.sep in text:
        text = os.path.splitext(os.path.basename(text))[0]
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text) or "function"


def function_name(function: Any) -> str:
    return getattr(function, "__name__", None) or type(function).__name__


@attrs.frozen(kw_only=True)
class FunctionChoice:
    """A function to serve, as the user chose it."""

    source: Any
    """An installed function's name, a module name, a ``.py`` path, or a function object."""
    params: Mapping[str, Any] = attrs.field(factory=dict)
    """Parameters for its factory (``-p``)."""
    id: str | None = None
    """Its id in CVAT (Nuclio's function name); by default from ``source``."""
    display_name: str | None = None
    """The name CVAT shows; by default the id."""
    description: str | None = None
    """What CVAT shows under the name; by default the plugin's summary."""

    @property
    def function_id(self) -> str:
        return self.id if self.id is not None else function_id_of(self.source)


class _Runner(Protocol):
    workers: int

    def load(self) -> None:
        """Called by the first worker thread before it takes any batch."""

    def spec(self) -> Any: ...

    def run(self, batch: list[Frame], contexts: list[FrameContext]) -> Outcome: ...

    def close(self) -> None: ...


class _LocalRunner:
    """The function, loaded in this process by the thread that runs it; one batch at a time.

    Loaded there, not by the caller: PyTorch (2.14, CPU) ran a model built in another thread
    on one core where it used both, SSDlite taking 129 to 171 ms a frame instead of 68 to 91
    (docs/performance.md). A function object given ready-made cannot be helped.
    """

    workers = 1

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._function: Any = None

    def load(self) -> None:
        self._function = self._make()

    def spec(self) -> Any:
        return hooks().spec(self._function)

    def run(self, batch: list[Frame], contexts: list[FrameContext]) -> Outcome:
        try:
            return run_batch(
                self._function,
                contexts,
                [f.image for f in batch],
                [(f.index, f.name) for f in batch],
            )
        except (BadFunctionError, FunctionFailedError) as error:
            return error

    def close(self) -> None:
        pass


class _RayRunner:
    """The function, loaded on Ray actors only; batches spread over them."""

    def __init__(self, executor: RayExecutor, source: Any) -> None:
        self._executor = executor
        self._source = source
        # Two batches per actor: one running, one waiting, so no actor idles between them.
        self.workers = 2 * executor.actors

    def load(self) -> None:
        pass  # the actors load it

    def spec(self) -> Any:
        return self._executor.spec(self._source)

    def run(self, batch: list[Frame], contexts: list[FrameContext]) -> Outcome:
        return self._executor.run_one(self._source, batch, contexts)

    def close(self) -> None:
        self._executor.close()


@attrs.define
class _Pending:
    frame: Frame
    context: FrameContext
    future: Future[list[Any]] = attrs.Factory(Future)


_STOP = object()


def _summary(source: Any, obj: Any) -> str:
    if isinstance(source, str):
        for entry in discover_functions([source]):
            if entry.summary:
                return entry.summary
    doc = getattr(obj, "__doc__", None)
    if doc and doc.strip():
        return doc.strip().splitlines()[0].strip()
    return f"cvat-aa function {function_id_of(source)}"


class ServedFunction:
    """A function served to CVAT: loaded once, called by many requests at a time.

    ``executor`` is None to run the function in this process, or a
    :class:`~cvat_aa.pipeline.ray_executor.RayExecutor` whose actors alone load it (from
    ``choice.source``, which must then be a name or path, and ``choice.params``).
    """

    kind = "detector"

    def __init__(
        self,
        choice: FunctionChoice,
        *,
        executor: RayExecutor | None = None,
        batch_size: int = 8,
        batch_wait: float = 0.0,
        max_queue: int = 256,
        metrics: Metrics | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.choice = choice
        self.id = choice.function_id
        if not FUNCTION_ID.match(self.id):
            raise ValueError(
                f"function id {self.id!r}: CVAT accepts only letters, digits, '_', '.' and '-'"
            )
        self.display_name = choice.display_name or self.id
        obj, self.source_name = resolve_function_source(choice.source)
        self.description = choice.description or _summary(choice.source, obj)
        if executor is None:
            self._runner: _Runner = _LocalRunner(
                lambda: instantiate(obj, dict(choice.params), name=self.source_name)
            )
        else:
            # Only the actors build the model; here the parameters are checked against the
            # factory, so that a typo fails now rather than in every actor.
            check_parameters(obj, dict(choice.params), name=self.source_name)
            self._runner = _RayRunner(executor, choice.source)
        self.batch_size = batch_size
        self.batch_wait = batch_wait
        self.metrics = metrics or Metrics([self.id])
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._numbers = itertools.count()
        self._closed = False
        self._loaded: Future[None] = Future()
        self._workers = [
            threading.Thread(
                target=self._work, args=(i == 0,), name=f"cvat-aa-serve-{self.id}-{i}", daemon=True
            )
            for i in range(self._runner.workers)
        ]
        for worker in self._workers:
            worker.start()
        try:
            self._loaded.result()
            spec = self._runner.spec()
        except BaseException:
            self._queue.put(_STOP)  # for the workers that wait for batches
            self._runner.close()
            raise
        self.spec = spec
        self.catalog = LabelCatalog.from_spec(spec.labels)
        self._mapper = LabelMapper(
            spec.labels,
            spec_as_task_labels(spec.labels, [info.type for info in self.catalog]),
            allow_unmatched_labels=False,
            conv_mask_to_poly=False,
        )

    def config(self, *, http_port: int | None, namespace: str = "nuclio") -> dict[str, Any]:
        """This function's Nuclio function config."""
        return function_config(
            function_id=self.id,
            display_name=self.display_name,
            kind=self.kind,
            catalog=self.catalog,
            description=self.description,
            http_port=http_port,
            namespace=namespace,
        )

    @property
    def queued(self) -> int:
        """Frames waiting for the function (not those it is working on)."""
        return self._queue.qsize()

    # --- requests -------------------------------------------------------------------------------

    def detect(self, request: DetectorRequest, *, timeout: float | None = None) -> list[Any]:
        """Run the function on one frame (in a batch with whatever else arrives) and return
        its result items, validated.

        Raises :class:`ServerBusyError` when too many frames are queued,
        ``FunctionFailedError`` when the function raised, ``BadFunctionError`` when it broke
        the protocol, and ``TimeoutError`` after ``timeout`` seconds.
        """
        if self._closed:
            raise ServerBusyError("the server is stopping")
        number = next(self._numbers)
        # CVAT sends no frame number or name: messages name the frame as the call's.
        pending = _Pending(
            Frame(UNNUMBERED, "the frame of this call", request.image),
            FrameContext(frame_name=f"request-{number}", conf_threshold=request.threshold),
        )
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise ServerBusyError(
                f"{self._queue.maxsize} frames are already waiting for function {self.id!r}"
            ) from None
        annotations = pending.future.result(timeout)
        tags, shapes = self._mapper.map_frame(annotations, 0, frame_size=request.image.size)
        return to_nuclio(self.catalog, tags, shapes)

    def _take_batch(self, first: _Pending) -> list[_Pending]:
        batch = [first]
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.batch_size:
            left = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # for the next worker
                break
            batch.append(item)
        return batch

    def _run(self, batch: list[_Pending]) -> None:
        self.metrics.batch(self.id, len(batch))
        outcome = self._runner.run([p.frame for p in batch], [p.context for p in batch])
        if not isinstance(outcome, BaseException):
            for pending, annotations in zip(batch, outcome, strict=True):
                pending.future.set_result(annotations)
            return
        if len(batch) > 1 and (
            isinstance(outcome, BadFunctionError) or getattr(outcome, "original", None) is not None
        ):
            # Each frame alone, so that one bad frame fails its own request only.
            for pending in batch:
                self._run([pending])
            return
        for pending in batch:
            pending.future.set_exception(outcome)

    def _work(self, loads: bool) -> None:
        if loads:
            try:
                self._runner.load()
            except BaseException as ex:  # __init__ raises it
                self._loaded.set_exception(ex)
                if not isinstance(ex, Exception):
                    raise
                return
            self._loaded.set_result(None)
        elif self._loaded.exception() is not None:
            return
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._queue.put(_STOP)
                return
            batch = self._take_batch(first)
            try:
                self._run(batch)
            except BaseException as ex:  # the worker must live on: the request gets the error
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(ex)
                if isinstance(ex, KeyboardInterrupt):
                    raise

    def close(self) -> None:
        """Stop taking requests, fail those still queued, and release the model."""
        self._closed = True
        leftover = []
        while True:
            try:
                leftover.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for pending in leftover:
            if pending is not _STOP:
                pending.future.set_exception(ServerBusyError("the server is stopping"))
        self._queue.put(_STOP)
        for worker in self._workers:
            worker.join(timeout=30)
        self._runner.close()
