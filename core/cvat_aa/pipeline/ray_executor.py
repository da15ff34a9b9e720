"""Running the function on Ray actors, on this machine or a cluster.

Each actor loads the function once and runs batches through :func:`~.detection.run_batch`,
so hooks, error conversion and messages are those of a local run. The function's spec comes
from an actor too, so the process that drives the run never builds the model: with a large
model, that is one copy fewer in memory (and on a GPU). The pipeline keeps everything else
(label mapping, validation, uploads or files): an actor only ever returns a batch's raw
annotations, and the executor hands each batch on exactly once, so a batch redone after an
actor died cannot be uploaded twice.

Ray is an optional dependency: ``pip install 'cvat-aa[ray]'``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import types
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Self

import attrs
from cvat_sdk.auto_annotation import DetectionFunctionSpec

from ..frames import Frame
from ..interface import BadFunctionError, FrameContext
from .detection import FunctionFailedError, run_batch, where
from .executors import Contexts, Outcome, detection_spec, function_name

__all__ = ["RayExecutor", "import_ray"]

logger = logging.getLogger(__name__)

ATTEMPTS_PER_BATCH = 3


def import_ray() -> Any:
    """The ``ray`` module, or an error that says how to install it."""
    try:
        import ray
    except ImportError as ex:
        raise ImportError(
            "the Ray executor needs Ray: install it with pip install 'cvat-aa[ray]'"
        ) from ex
    return ray


class _FunctionActor:
    """Holds one loaded function and runs batches on it (the body of the Ray actor)."""

    def __init__(self) -> None:
        self._function: Any = None

    def load(
        self, source: Any, params: Mapping[str, Any], plugin_options: Mapping[str, Any] | None
    ) -> int:
        from ..plugins import hooks, load_function

        self._function = load_function(source, **params)
        if plugin_options is not None:
            self._function = hooks().wrap_function(self._function, plugin_options)
        return os.getpid()

    def spec(self) -> DetectionFunctionSpec:
        from ..plugins import hooks

        return hooks().spec(self._function)

    def detect(
        self, contexts: list[FrameContext], images: list[Any], frames: list[tuple[int, str]]
    ) -> list[Any]:
        return run_batch(self._function, contexts, images, frames)


def _portable(function: Any) -> Any:
    """What to send an actor for ``function``: modules go by name or path, objects as they are."""
    if isinstance(function, types.ModuleType):
        # A module from a file is registered under a made-up name that other processes
        # cannot import; its path loads it there.
        path = getattr(function, "__file__", None)
        if function.__name__.startswith("__cvat_aa_function_") and path:
            return os.path.abspath(path)
        return function.__name__
    if isinstance(function, os.PathLike) or (
        isinstance(function, str) and (function.endswith(".py") or os.sep in function)
    ):
        return os.path.abspath(os.fspath(function))
    return function


def _same(loaded: Any, function: Any) -> bool:
    """Whether actors that loaded ``loaded`` run ``function``: the same object, or the same
    name or path."""
    if loaded is function:
        return True
    return (
        isinstance(function, (str, os.PathLike))
        and isinstance(loaded, (str, os.PathLike))
        and (os.fspath(loaded) == os.fspath(function))
    )


@attrs.define
class _Slot:
    """One actor of the pool and what is queued on it."""

    actor: Any
    pid: int = 0
    queued: int = 0


@attrs.define
class _InFlight:
    batch: list[Frame]
    contexts: list[FrameContext]
    slot: _Slot
    ref: Any
    attempts: int = 1


class RayExecutor:
    """Runs the function on a pool of Ray actors, each of which loads it once.

    ``function_source`` is what each actor loads, with ``params`` for its factory: an
    installed function's name, a module name, a ``.py`` path (the strings ``cvat-aa annotate``
    takes), or a function object (sent to the actors with cloudpickle). Without it, actors
    load the function the run is given (a name or path is loaded there, not here). The spec
    comes from an actor: the process that drives the run never needs to load the function,
    so ``annotate_task(client, task_id, "NAME", executor=RayExecutor("NAME", params))``
    builds the model only in the actors.

    ``actors`` actors are started, each reserving ``cpus_per_actor`` CPUs and
    ``gpus_per_actor`` GPUs (fractions share a GPU). Up to ``max_in_flight`` batches
    (default twice the actors) are queued on them at a time.

    With ``address`` it connects to that Ray cluster (``"auto"`` finds a local one);
    otherwise it uses the Ray instance this process has already started, or starts a
    local one sized for the actors. :meth:`close` (or leaving a ``with`` block) stops the
    actors and what the executor started. Actors outlive single runs: one executor can
    serve many tasks, loading the function once.

    An actor that dies is replaced and its queued batches are run again elsewhere; a batch
    that has lost its actor :data:`ATTEMPTS_PER_BATCH` times is reported as a
    ``FunctionFailedError`` on its frames.
    """

    def __init__(
        self,
        function_source: Any = None,
        params: Mapping[str, Any] | None = None,
        *,
        actors: int = 2,
        gpus_per_actor: float = 0,
        cpus_per_actor: float = 1,
        address: str | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        if actors < 1:
            raise ValueError("actors must be at least 1")
        if gpus_per_actor < 0 or cpus_per_actor < 0:
            raise ValueError("gpus_per_actor and cpus_per_actor cannot be negative")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if params and function_source is None:
            raise ValueError("params need a function_source to go with")
        self._ray = import_ray()
        self._source = None if function_source is None else _portable(function_source)
        self._params = dict(params or {})
        self._plugin_options: dict[str, Any] | None = None
        self.actors = actors
        self.gpus_per_actor = gpus_per_actor
        self.cpus_per_actor = cpus_per_actor
        self.address = address
        self.max_in_flight = max_in_flight or 2 * actors
        self._started_ray = False
        # run_one is called from several threads (cvat-aa serve): it guards the pool.
        self._lock = threading.RLock()
        self._slots: list[_Slot] = []
        self._loaded_for: Any = None
        self._actor_class: Any = None
        self.replaced = 0
        """How many actors died and were replaced."""

    # --- lifecycle ----------------------------------------------------------------------------

    def _connect(self) -> None:
        ray = self._ray
        if ray.is_initialized():
            return
        if self.address is not None:
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        else:
            # Logical CPUs: sleep- or I/O-bound actors may outnumber the cores.
            ray.init(
                num_cpus=max(1, int(self.actors * self.cpus_per_actor + 0.999)),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        self._started_ray = True
        logger.info("Ray: %s", ray.get_runtime_context().gcs_address)

    def _new_actor(self) -> Any:
        if self._actor_class is None:
            self._actor_class = self._ray.remote(_FunctionActor)
        return self._actor_class.options(
            num_cpus=self.cpus_per_actor, num_gpus=self.gpus_per_actor, max_restarts=0
        ).remote()

    def _start(self, function: Any) -> None:
        if self._slots and (self._source is not None or _same(self._loaded_for, function)):
            return
        self._connect()
        self._stop_actors()
        source = self._source if self._source is not None else _portable(function)
        actors = [self._new_actor() for _ in range(self.actors)]
        loads = [actor.load.remote(source, self._params, self._plugin_options) for actor in actors]
        try:
            pids = [self._get(ref) for ref in loads]
        except BaseException:
            for actor in actors:
                self._ray.kill(actor)
            raise
        self._slots = [_Slot(actor, pid) for actor, pid in zip(actors, pids, strict=True)]
        self._loaded_for = function
        logger.info("Started %d Ray actors (pids %s)", len(pids), pids)

    def _stop_actors(self) -> None:
        for slot in self._slots:
            self._ray.kill(slot.actor)
        self._slots = []
        self._loaded_for = None

    def close(self) -> None:
        """Stop the actors, and the Ray instance if this executor started it."""
        if self._ray.is_initialized():
            self._stop_actors()
            if self._started_ray:
                self._ray.shutdown()
        self._slots = []
        self._started_ray = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        """The process ids of the running actors."""
        return [slot.pid for slot in self._slots]

    # --- running ------------------------------------------------------------------------------

    def load(self, function: Any, plugin_options: Mapping[str, Any] | None = None) -> Any:
        """Start the actors, each loading the function (as hook plugins wrap it for
        ``plugin_options``); ``function`` is returned as it is."""
        self.use_plugin_options(plugin_options)
        self._start(function)
        return function

    def use_plugin_options(self, plugin_options: Mapping[str, Any] | None) -> None:
        """From now on, actors load the function as hook plugins wrap it for
        ``plugin_options`` (None: as it is); actors that loaded it otherwise are stopped."""
        wanted = None if plugin_options is None else dict(plugin_options)
        if wanted != self._plugin_options:
            self._stop_actors()
            self._plugin_options = wanted

    def spec(self, function: Any, name: str | None = None) -> DetectionFunctionSpec:
        """The function's spec, as an actor's copy of the function declares it."""
        self._start(function)
        return detection_spec(
            self._get(self._slots[0].actor.spec.remote()), name or function_name(function)
        )

    def _get(self, ref: Any) -> Any:
        """``ray.get``, raising what the actor raised rather than Ray's wrapper."""
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayTaskError as ex:
            cause = getattr(ex, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise

    def _submit(
        self, batch: list[Frame], contexts: list[FrameContext], attempts: int = 1
    ) -> _InFlight:
        slot = min(self._slots, key=lambda s: s.queued)
        slot.queued += 1
        ref = slot.actor.detect.remote(
            contexts, [f.image for f in batch], [(f.index, f.name) for f in batch]
        )
        return _InFlight(batch, contexts, slot, ref, attempts)

    def _replace(self, dead: _Slot) -> None:
        if dead not in self._slots:
            return  # replaced already, for another batch it was running
        self.replaced += 1
        logger.warning("A Ray actor (pid %d) died; starting a new one", dead.pid)
        self._ray.kill(dead.actor)
        source = self._source if self._source is not None else _portable(self._loaded_for)
        actor = self._new_actor()
        self._slots[self._slots.index(dead)] = _Slot(
            actor, self._get(actor.load.remote(source, self._params, self._plugin_options))
        )

    def run_one(self, function: Any, batch: list[Frame], contexts: list[FrameContext]) -> Outcome:
        """Run one batch on the least busy actor and wait for it: its annotations, or the
        error the function raised.

        Safe to call from several threads at once (``cvat-aa serve`` does, one thread per
        request in progress), which spreads batches over the actors. A batch whose actor dies
        runs again on another, up to :data:`ATTEMPTS_PER_BATCH` times in all.
        """
        with self._lock:
            self._start(function)
        attempts = 1
        while True:
            with self._lock:
                flight = self._submit(batch, contexts, attempts)
            try:
                return self._get(flight.ref)
            except (BadFunctionError, FunctionFailedError) as error:
                return error
            except self._ray.exceptions.RayActorError as error:
                with self._lock:
                    self._replace(flight.slot)
                frames = [(f.index, f.name) for f in batch]
                if attempts >= ATTEMPTS_PER_BATCH:
                    reason = (
                        f"the Ray actor running it died {attempts} times ({type(error).__name__})"
                    )
                    return FunctionFailedError(
                        f"the function failed on {where(frames)}: {reason}",
                        [i for i, _ in frames],
                        reason,
                    )
                logger.warning("Running %s again on another actor", where(frames))
                attempts += 1
            finally:
                with self._lock:
                    flight.slot.queued -= 1

    def detect(
        self, function: Any, batches: Iterable[list[Frame]], contexts: Contexts
    ) -> Iterator[tuple[list[Frame], Outcome]]:
        """Yield each batch with its annotations or its error, in the order given."""
        self._start(function)
        ray = self._ray
        queue: deque[_InFlight] = deque()
        todo = iter(batches)
        more = True
        try:
            while True:
                while more and len(queue) < self.max_in_flight:
                    batch = next(todo, None)
                    if batch is None:
                        more = False
                    else:
                        queue.append(self._submit(batch, contexts(batch)))
                if not queue:
                    return
                head = queue.popleft()
                head.slot.queued -= 1
                try:
                    outcome: Outcome = self._get(head.ref)
                except (BadFunctionError, FunctionFailedError) as error:
                    outcome = error
                except ray.exceptions.RayActorError as error:
                    self._replace(head.slot)
                    frames = [(f.index, f.name) for f in head.batch]
                    if head.attempts < ATTEMPTS_PER_BATCH:
                        logger.warning("Running %s again on another actor", where(frames))
                        queue.appendleft(self._submit(head.batch, head.contexts, head.attempts + 1))
                        continue
                    reason = f"the Ray actor running it died {head.attempts} times ({type(error).__name__})"
                    outcome = FunctionFailedError(
                        f"the function failed on {where(frames)}: {reason}",
                        [i for i, _ in frames],
                        reason,
                    )
                yield head.batch, outcome
        finally:
            for pending in queue:
                pending.slot.queued -= 1
                with contextlib.suppress(Exception):
                    ray.cancel(pending.ref)
