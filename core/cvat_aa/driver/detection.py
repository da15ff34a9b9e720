"""Running the function on batches of frames, and the executors that decide where it runs.

The driver hands an executor batches of frames and gets back, in order, each batch's
annotations or the error the function raised on it. :class:`LocalExecutor` runs the function
in this process; other executors (a cluster of workers, say) implement the same protocol and
call :func:`detect_batch` where the function lives. Whatever the executor, the driver alone
maps labels, validates, journals and uploads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from cvat_sdk.api_client.exceptions import ApiTypeError, ApiValueError

from ..interface import BadFunctionError, FrameContext
from ..plugins import hooks
from .frames import Frame

__all__ = ["Executor", "FunctionFailedError", "LocalExecutor", "detect_batch"]


class FunctionFailedError(RuntimeError):
    """The function raised an exception on a frame (or, with ``on_error="skip"``, on some)."""

    def __init__(self, message: str, frames: Sequence[int], reason: str = "") -> None:
        super().__init__(message)
        self.frames = list(frames)
        self.reason = reason or message

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable, so that executors running the function elsewhere can send it back.
        return (type(self), (str(self), self.frames, self.reason))


def where(frames: Sequence[tuple[int, str]]) -> str:
    """``frame 3 (a.jpg)`` or ``frames 3 (a.jpg), 4 (b.jpg)``, for messages."""
    listed = ", ".join(f"{index} ({name})" for index, name in frames)
    return f"frame{'s' if len(frames) > 1 else ''} {listed}"


def detect_batch(
    function: Any,
    contexts: Sequence[FrameContext],
    images: Sequence[Any],
    frames: Sequence[tuple[int, str]],
) -> list[Any]:
    """Run ``function`` on one batch through the ``cvat_aa_detect`` hook.

    ``frames`` are the (task frame number, name) pairs of the batch, for messages. Raises
    ``BadFunctionError`` when the function breaks the protocol and ``FunctionFailedError``
    when it raises.
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
    except Exception as ex:
        reason = f"{type(ex).__name__}: {ex}"
        raise FunctionFailedError(
            f"the function failed on {where(frames)}: {reason}", [i for i, _ in frames], reason
        ) from ex
    if results is None or len(results) != len(frames):
        raise BadFunctionError(
            f"detection returned {'nothing' if results is None else len(results)}"
            f" results for a batch of {len(frames)} frames"
        )
    return list(results)


class Executor(Protocol):
    """Where the function runs."""

    def detect(
        self,
        function: Any,
        batches: Iterable[list[Frame]],
        contexts: Callable[[list[Frame]], list[FrameContext]],
    ) -> Iterator[tuple[list[Frame], list[Any] | BaseException]]:
        """Yield each batch with its annotations (one list per frame) or the error it raised.

        Batches come back in the order they were given. ``BadFunctionError`` and
        ``FunctionFailedError`` are yielded, not raised: the driver decides what they mean.
        """
        ...


class LocalExecutor:
    """Runs the function in this process, one batch after another."""

    def detect(
        self,
        function: Any,
        batches: Iterable[list[Frame]],
        contexts: Callable[[list[Frame]], list[FrameContext]],
    ) -> Iterator[tuple[list[Frame], list[Any] | BaseException]]:
        for batch in batches:
            try:
                outcome: list[Any] | BaseException = detect_batch(
                    function,
                    contexts(batch),
                    [f.image for f in batch],
                    [(f.index, f.name) for f in batch],
                )
            except (BadFunctionError, FunctionFailedError) as error:
                outcome = error
            yield batch, outcome
