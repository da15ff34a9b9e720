"""Where the function runs: the executor protocol, and the executor that runs it here.

The pipeline hands an executor the function (as the caller gave it: an object, or a name,
module or path to load), asks it for the function's spec, then hands it batches of frames and
gets back, in order, each batch's annotations or the error the function raised on it. An
executor may load the function somewhere else entirely: :class:`~.ray_executor.RayExecutor`
loads it only in its actors and answers the spec from there, so the caller never builds the
model. Whatever the executor, the pipeline alone maps labels, validates and hands results to
its sinks.

Executors run detection functions only. Their ``spec`` refuses an interaction or a tracking
function with a message that says how such a function is used instead, before any frame is
read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from cvat_sdk.auto_annotation import DetectionFunctionSpec

from ..frames import Frame
from ..interface import BadFunctionError, FrameContext, function_kind
from ..plugins import hooks, load_function
from .detection import FunctionFailedError, run_batch

__all__ = [
    "Contexts",
    "Executor",
    "LocalExecutor",
    "Outcome",
    "detection_spec",
    "function_name",
]

Contexts = Callable[[list[Frame]], list[FrameContext]]
"""What the function is told about each frame of a batch."""

Outcome = list[Any] | BaseException
"""A batch's annotations (one list per frame), or the error the function raised on it."""


def function_name(function: Any) -> str:
    """How messages, hooks and summaries name a function: what the caller gave (a name, a
    path), or the object's name."""
    if isinstance(function, str):
        return function
    if isinstance(function, os.PathLike):
        return os.fspath(function)
    return getattr(function, "__name__", None) or type(function).__name__


_USED_INSTEAD = {
    "interaction": (
        "an interaction function: CVAT calls it when a user clicks in the UI; serve it with"
        " 'cvat-aa serve -f {name}' or 'cvat-aa agent run'"
    ),
    "tracking": (
        "a tracking function: CVAT calls it to follow shapes from frame to frame; run it over"
        " frames with 'cvat-aa track', or serve it with 'cvat-aa serve -f {name}' or"
        " 'cvat-aa agent run'"
    ),
}


def detection_spec(spec: Any, name: str) -> DetectionFunctionSpec:
    """``spec`` if it is a detection function's; else ``BadFunctionError`` saying how the
    function ``name`` is used instead (it annotates nothing by itself)."""
    kind = function_kind(spec)
    if kind != "detection":
        raise BadFunctionError(f"function {name!r} is {_USED_INSTEAD[kind].format(name=name)}")
    return spec


class Executor(Protocol):
    """Where the function runs."""

    def load(self, function: Any, plugin_options: Mapping[str, Any] | None = None) -> Any:
        """Get ready to run ``function`` (an object, or the name of an installed function, a
        module name or a ``.py`` path); return what :meth:`spec` and :meth:`detect` take.

        With ``plugin_options`` (even empty), the function runs as the hook plugins wrap it for
        a run with those options (``Hooks.wrap_function``), wherever it is loaded; without,
        as it is (a run over several tasks loads it once, then each task's run wraps it).
        Called once per run, after every
        check that needs no function. An executor that runs the function elsewhere need not
        load it here.
        """
        ...

    def spec(self, function: Any, name: str | None = None) -> DetectionFunctionSpec:
        """The function's spec, validated (through the ``cvat_aa_spec`` hook); a function of
        another kind is refused with :func:`detection_spec`'s ``BadFunctionError``, which
        calls it ``name`` (by default, :func:`function_name`)."""
        ...

    def detect(
        self, function: Any, batches: Iterable[list[Frame]], contexts: Contexts
    ) -> Iterator[tuple[list[Frame], Outcome]]:
        """Yield each batch with its annotations (one list per frame) or the error it raised.

        Batches come back in the order they were given. ``BadFunctionError`` and
        ``FunctionFailedError`` are yielded, not raised: the pipeline decides what they mean.
        """
        ...


class LocalExecutor:
    """Runs the function in this process, one batch after another."""

    def load(self, function: Any, plugin_options: Mapping[str, Any] | None = None) -> Any:
        if isinstance(function, (str, os.PathLike)):
            function = load_function(function)
        if plugin_options is None:
            return function
        return hooks().wrap_function(function, plugin_options)

    def spec(self, function: Any, name: str | None = None) -> DetectionFunctionSpec:
        return detection_spec(hooks().spec(function), name or function_name(function))

    def detect(
        self, function: Any, batches: Iterable[list[Frame]], contexts: Contexts
    ) -> Iterator[tuple[list[Frame], Outcome]]:
        for batch in batches:
            try:
                outcome: Outcome = run_batch(
                    function,
                    contexts(batch),
                    [f.image for f in batch],
                    [(f.index, f.name) for f in batch],
                )
            except (BadFunctionError, FunctionFailedError) as error:
                outcome = error
            yield batch, outcome
            # Not kept while the next batch is read (see Pipeline._process).
            del batch, outcome
