"""Running the function on one batch of frames, and what its failures become.

:func:`run_batch` is what every executor calls where the function lives (this process, a Ray
actor): it goes through the ``cvat_aa_detect`` hook and turns whatever the function raises
into a :class:`FunctionFailedError` or a ``BadFunctionError``, so that messages and error
handling are the same wherever the function runs.

Inside the pipeline, an exception the function raised travels as a
:class:`FunctionFailedError` (it says which frames, it pickles, and on_error="skip" can tell
it from the driver's own errors). The public entry points raise the function's own exception
again (see :func:`raising_as_the_function_did`), as cvat-sdk's ``annotate_task`` does, so
that a caller's ``except ValueError:`` works unchanged.

Plugin code never decides how cvat-aa ends: whatever it raises, ``SystemExit`` and
``GeneratorExit`` included, is a failure of the function on those frames. Only
``KeyboardInterrupt`` passes through, as the user's request to stop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from cvat_sdk.api_client.exceptions import ApiTypeError, ApiValueError

from ..errors import FunctionFailedError
from ..interface import BadFunctionError, FrameContext
from ..plugins import describe_exception, hooks

__all__ = [
    "UNNUMBERED",
    "FunctionFailedError",
    "failure_of",
    "raising_as_the_function_did",
    "run_batch",
    "where",
]

T = TypeVar("T")

FAILURE_ATTRIBUTE = "cvat_aa_failure"
"""Set on a function's own exception raised from the public API: its FunctionFailedError."""


def failure_of(error: BaseException) -> FunctionFailedError | None:
    """The failure behind ``error``: itself, or the one that a function's own exception, raised
    from the public API, carries. None when the function did not raise it."""
    if isinstance(error, FunctionFailedError):
        return error
    failure = getattr(error, FAILURE_ATTRIBUTE, None)
    return failure if isinstance(failure, FunctionFailedError) else None


def raising_as_the_function_did(action: Callable[[], T]) -> T:
    """Run ``action``; if it fails with a FunctionFailedError, raise the function's own
    exception instead, with a note naming the frame.

    What the function raised that is not an ``Exception`` (``SystemExit``, ``GeneratorExit``)
    stays a FunctionFailedError: a caller would not expect an API call to end its program.
    """
    try:
        return action()
    except FunctionFailedError as failure:
        original = failure.original
        if not isinstance(original, Exception):
            raise
        with contextlib.suppress(AttributeError, TypeError):
            original.add_note(f"cvat-aa: {failure.where}")
            # What the pipeline recorded on its way out (what a stopped run undid, say).
            for name, value in vars(failure).items():
                if name.startswith("cvat_aa_"):
                    setattr(original, name, value)
            setattr(
                original,
                FAILURE_ATTRIBUTE,
                FunctionFailedError(str(failure), failure.frames, failure.reason),
            )
    # Raised outside the except clause: the function's exception keeps its own context.
    raise original


UNNUMBERED = -1
"""The index of a frame that has no number, only a name (``cvat-aa serve``: CVAT does not
say which frame it sends)."""


def where(frames: Sequence[tuple[int, str]]) -> str:
    """``frame 3 (a.jpg)`` or ``frames 3 (a.jpg), 4 (b.jpg)``, for messages; a frame without
    a number (:data:`UNNUMBERED`) is named by its name alone."""
    listed = ", ".join(
        name if index == UNNUMBERED else f"{index} ({name})" for index, name in frames
    )
    if all(index == UNNUMBERED for index, _ in frames):
        return listed
    return f"frame{'s' if len(frames) > 1 else ''} {listed}"


def run_batch(
    function: Any,
    contexts: Sequence[FrameContext],
    images: Sequence[Any],
    frames: Sequence[tuple[int, str]],
) -> list[Any]:
    """Run ``function`` on one batch through the ``cvat_aa_detect`` hook.

    ``frames`` are the (task frame number, name) pairs of the batch, for messages. Raises
    ``BadFunctionError`` when the function breaks the protocol and ``FunctionFailedError``
    when it (or a hook wrapping it) raises anything but ``KeyboardInterrupt``.
    """
    try:
        results = hooks().detect(function, contexts, images)
    except BadFunctionError:
        raise
    except (ApiTypeError, ApiValueError) as ex:
        # cvat-sdk's models refused a value the function gave them.
        raise BadFunctionError(
            f"the function built an invalid annotation on {where(frames)}: {ex}"
        ) from ex
    except KeyboardInterrupt:
        raise
    except BaseException as ex:  # SystemExit too: the function does not decide how we end
        reason = describe_exception(ex)
        raise FunctionFailedError(
            f"the function failed on {where(frames)}: {reason}",
            [i for i, _ in frames],
            reason,
            ex,
        ) from ex
    if results is None or len(results) != len(frames):
        raise BadFunctionError(
            f"detection returned {'nothing' if results is None else len(results)}"
            f" results for a batch of {len(frames)} frames"
        )
    return list(results)
