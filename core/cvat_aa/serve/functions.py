"""One served function: its model loaded once, its requests queued to it, its results validated.

CVAT's task-wide automatic annotation sends one frame per request, and several users (or
tasks) send theirs at the same time. Each :class:`ServedFunction` keeps a queue and worker
threads that take whatever has arrived.

A detection function gets its frames in batches (up to the batch size, waiting at most
``batch_wait`` for more), run through the function via the same ``cvat_aa_detect`` hook and
:func:`~cvat_aa.pipeline.detection.run_batch` as every run, so hook plugins and error handling
are those of ``cvat-aa annotate``. What it returns is validated and fitted to the frame by the
driver's own :class:`~cvat_aa.pipeline.label_mapping.LabelMapper`, against the function's spec
taken as a task's labels, as a run over files does: what CVAT receives is what ``cvat-aa
annotate`` would have uploaded.

Interaction and tracking functions answer one annotator's clicks and frame steps: each call
is latency-bound and stands alone, so it runs at once, unbatched, on the function's single
worker thread, through the core's :class:`~cvat_aa.interaction.Interactor` (which caches the
preprocessed frame, a SAM image embedding, between clicks on one frame) or
:class:`~cvat_aa.tracking.Tracker` (which keeps tracking states, bounded and expiring, behind
opaque ids), which check prompts and validate results with cvat-sdk's rules and messages.

The HTTP threads only wait on their own call's future, so the server answers listings while a
model works. Where the function runs is a *runner*: here (one worker, which loads the function
too: the model is not shared between threads, and runs best in the thread that built it) or,
for detection functions only, on Ray actors (one worker per actor slot;
:meth:`RayExecutor.run_one` spreads the batches and runs a dead actor's batch again on another).
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
import cvat_sdk.auto_annotation as sdk_aa

from ..errors import (
    BadFunctionError,
    BadRequestError,
    CvatAaError,
    FunctionFailedError,
    ServerBusyError,
)
from ..frames import Frame
from ..interaction import Interactor, Prompts, result_json
from ..interface import FrameContext, function_kind
from ..labels import LabelCatalog
from ..pipeline.detection import UNNUMBERED, run_batch
from ..pipeline.executors import Outcome, function_name
from ..pipeline.label_mapping import LabelMapper, spec_as_task_labels
from ..pipeline.ray_executor import RayExecutor
from ..plugins import (
    check_parameters,
    discover_functions,
    hooks,
    instantiate,
    kind_before_building,
    resolve_function_source,
)
from ..tracking import Tracker
from .metrics import Metrics
from .nuclio import (
    DetectorRequest,
    InteractorRequest,
    TrackerRequest,
    function_config,
    interactor_annotations,
    interactor_help,
    to_nuclio,
    tracker_annotations,
    tracking_result,
)

__all__ = [
    "FunctionChoice",
    "ServedFunction",
    "ServerBusyError",
    "function_id_of",
    "kind_before_loading",
]

logger = logging.getLogger(__name__)

CVAT_KINDS = {"detection": "detector", "interaction": "interactor", "tracking": "tracker"}
"""CVAT's name (a Nuclio function's ``type``) for each kind of function."""

TRACKER_STATE_MAX_AGE = 8 * 3600.0
"""Seconds a tracking state is kept unused: as long as CVAT's signature on it is valid."""

FUNCTION_ID = re.compile(r"^[a-zA-Z0-9_.-]+$")
"""The ids CVAT accepts in its URLs (``FunctionViewSet.lookup_value_regex``)."""


def function_id_of(source: Any) -> str:
    """The default id of a function served from ``source`` (a name, module or path)."""
    text = os.fspath(source) if isinstance(source, (str, os.PathLike)) else function_name(source)
    if text.endswith(".py") or os.sep in text:
        text = os.path.splitext(os.path.basename(text))[0]
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text) or "function"


def kind_before_loading(source: Any) -> str | None:
    """The kind (``detection``, ``interaction``, ``tracking``) of the function ``source``
    names, as far as it says without being built (its spec, or its factory's return
    annotation: what ``functions list`` shows, read by the plugin module's own helpers);
    None when it does not say, or names no function."""
    try:
        obj, _ = resolve_function_source(source)
    except CvatAaError:
        return None
    return kind_before_building(obj)


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
    help_message: str | None = None
    """For an interactor: what CVAT's AI Tools panel shows about its prompts; by default
    what its spec asks for."""
    plugin_options: Mapping[str, Any] = attrs.field(factory=dict)
    """Values of hook plugins' run options (declared with ``serve=True``) that change the
    function served: a detection function is served as the hook plugins wrap it for them."""

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
        self.function: Any = None

    def load(self) -> None:
        self.function = self._make()

    def spec(self) -> Any:
        return hooks().spec(self.function)

    def run(self, batch: list[Frame], contexts: list[FrameContext]) -> Outcome:
        try:
            return run_batch(
                self.function,
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


@attrs.define
class _Call:
    """An interactive call, run alone on the worker thread."""

    run: Callable[[], Any]
    future: Future[Any] = attrs.Factory(Future)


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
    ``choice.source``, which must then be a name or path, and ``choice.params``); only a
    detection function can run there (the executor refuses the others: see
    :func:`kind_before_loading`). ``batch_size`` and ``batch_wait`` apply to detection
    functions; ``max_queue`` to every kind. ``state_max_age`` is how long a tracker keeps a
    state that is not used.
    """

    def __init__(
        self,
        choice: FunctionChoice,
        *,
        executor: RayExecutor | None = None,
        batch_size: int = 8,
        batch_wait: float = 0.0,
        max_queue: int = 256,
        state_max_age: float = TRACKER_STATE_MAX_AGE,
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
                lambda: hooks().wrap_function(
                    instantiate(obj, dict(choice.params), name=self.source_name),
                    choice.plugin_options,
                )
            )
        else:
            # Only the actors build the model; here the parameters are checked against the
            # factory, so that a typo fails now rather than in every actor.
            check_parameters(obj, dict(choice.params), name=self.source_name)
            executor.use_plugin_options(choice.plugin_options)
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
            self.function_kind = function_kind(spec)
        except BaseException:
            self._queue.put(_STOP)  # for the workers that wait for batches
            self._runner.close()
            raise
        self.spec = spec
        self.kind = CVAT_KINDS[self.function_kind]
        """CVAT's word for it: ``detector``, ``interactor`` or ``tracker``."""
        self.catalog = LabelCatalog.from_spec(
            spec.labels if self.function_kind == "detection" else []
        )
        self._interactor: Interactor | None = None
        self._tracker: Tracker | None = None
        # A Ray executor's spec() refuses any function but a detection function: the others
        # are loaded here.
        function = self._runner.function if isinstance(self._runner, _LocalRunner) else None
        if self.function_kind == "interaction":
            self._interactor = Interactor(function)
        elif self.function_kind == "tracking":
            self._tracker = Tracker(function, state_max_age_s=state_max_age)
        else:
            self._mapper = LabelMapper(
                spec.labels,
                spec_as_task_labels(spec.labels, [info.type for info in self.catalog]),
                allow_unmatched_labels=False,
                conv_mask_to_poly=False,
            )

    def config(self, *, http_port: int | None, namespace: str = "nuclio") -> dict[str, Any]:
        """This function's Nuclio function config."""
        extra: dict[str, str] = {}
        help_message = ""
        if self.function_kind == "interaction":
            extra = interactor_annotations(self.spec)
            help_message = (
                self.choice.help_message
                if self.choice.help_message is not None
                else interactor_help(self.spec)
            )
        elif self.function_kind == "tracking":
            extra = tracker_annotations(self.spec)
        return function_config(
            function_id=self.id,
            display_name=self.display_name,
            kind=self.kind,
            catalog=self.catalog if self.function_kind == "detection" else None,
            description=self.description,
            help_message=help_message,
            extra_annotations=extra,
            http_port=http_port,
            namespace=namespace,
        )

    @property
    def queued(self) -> int:
        """Frames (or interactive calls) waiting for the function (not those it is working
        on)."""
        return self._queue.qsize()

    # --- requests -------------------------------------------------------------------------------

    def _enqueue(self, item: Any) -> None:
        if self._closed:
            raise ServerBusyError("the server is stopping")
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise ServerBusyError(
                f"{self._queue.maxsize} calls are already waiting for function {self.id!r}"
            ) from None

    def _wrong_kind(self, wanted: str) -> BadRequestError:
        return BadRequestError(
            f"function {self.id!r} is a {self.kind}, not a {wanted}: call it as CVAT calls"
            f" a {self.kind}"
        )

    def detect(self, request: DetectorRequest, *, timeout: float | None = None) -> list[Any]:
        """Run the function on one frame (in a batch with whatever else arrives) and return
        its result items, validated.

        Raises :class:`ServerBusyError` when too many frames are queued,
        ``FunctionFailedError`` when the function raised, ``BadFunctionError`` when it broke
        the protocol, and ``TimeoutError`` after ``timeout`` seconds.
        """
        if self.function_kind != "detection":
            raise self._wrong_kind("detector")
        number = next(self._numbers)
        # CVAT sends no frame number or name: messages name the frame as the call's.
        pending = _Pending(
            Frame(UNNUMBERED, "the frame of this call", request.image),
            FrameContext(frame_name=f"request-{number}", conf_threshold=request.threshold),
        )
        self._enqueue(pending)
        annotations = pending.future.result(timeout)
        tags, shapes = self._mapper.map_frame(annotations, 0, frame_size=request.image.size)
        return to_nuclio(self.catalog, tags, shapes)

    def _call(self, run: Callable[[], Any], timeout: float | None) -> Any:
        call = _Call(run)
        self._enqueue(call)
        return call.future.result(timeout)

    def interact(
        self, request: InteractorRequest, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The interactor's answer to one call: ``{"shapes": [...]}``, validated.

        The frame's preprocessed image is reused from an earlier call on the same frame
        (``request.digest``) while it is cached; ``request.decoded`` stays None then. Raises
        :class:`BadRequestError` for prompts the function does not take (cvat-cli's
        messages) or a frame that cannot be read, and as :meth:`detect` otherwise.
        """
        interactor = self._interactor
        if interactor is None:
            raise self._wrong_kind("interactor")
        prompts = Prompts.from_request(request.pos_points, request.neg_points, request.obj_bbox)

        def run() -> Any:
            return interactor.interact(request.image, prompts, cache_key=request.digest)

        return result_json(self._call(run, timeout))

    def track(self, request: TrackerRequest, *, timeout: float | None = None) -> dict[str, Any]:
        """The tracker's answer to one call: ``{"shapes": [...], "states": [...]}``.

        Objects without a state start being tracked on this frame (their shape is answered
        as given, with a new state); the others are tracked from their state to this frame
        (a null shape where the function lost the object). Raises
        :class:`BadRequestError` for a shape type the function does not track or a state
        that is unknown, expired or from a frame of another size, and as :meth:`detect`
        otherwise.
        """
        tracker = self._tracker
        if tracker is None:
            raise self._wrong_kind("tracker")
        image = request.image
        starting = [
            (index, shape)
            for index, (shape, state) in enumerate(zip(request.shapes, request.states, strict=True))
            if state is None and shape is not None
        ]
        going_on = [
            (index, state) for index, state in enumerate(request.states) if state is not None
        ]

        def run() -> tuple[list[str], list[Any]]:
            tracked = tracker.track(image, [state for _, state in going_on]) if going_on else []
            started = tracker.init_tracking(image, [s for _, s in starting]) if starting else []
            return started, tracked

        started, tracked = self._call(run, timeout)
        shapes: list[Any] = [None] * len(request.states)
        states: list[str] = [""] * len(request.states)
        for (index, shape), state in zip(starting, started, strict=True):
            shapes[index], states[index] = shape, state
        for (index, state), shape in zip(going_on, tracked, strict=True):
            shapes[index], states[index] = shape, state
        return tracking_result(shapes, states)

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

    def _run_call(self, call: _Call) -> None:
        try:
            result = call.run()
        except (BadRequestError, BadFunctionError, FunctionFailedError, ServerBusyError) as ex:
            call.future.set_exception(ex)
        except sdk_aa.BadFunctionError as ex:  # raised by cvat-sdk's own result classes
            call.future.set_exception(BadFunctionError(str(ex)))
        except Exception as ex:
            logger.debug("Function %r raised", self.id, exc_info=True)
            reason = f"{type(ex).__name__}: {ex}"
            call.future.set_exception(
                FunctionFailedError(f"the function failed: {reason}", [], reason, ex)
            )
        else:
            call.future.set_result(result)

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
            if isinstance(first, _Call):
                try:
                    self._run_call(first)
                except BaseException as ex:
                    if not first.future.done():
                        first.future.set_exception(ex)
                    if isinstance(ex, KeyboardInterrupt):
                        raise
                continue
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
