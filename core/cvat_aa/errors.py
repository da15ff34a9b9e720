"""Every error cvat-aa raises on purpose, in one place, under one base class.

``except cvat_aa.CvatAaError`` catches all of them. Each also keeps the built-in base a caller
would expect (a bad argument is a ``ValueError``, a missing thing a ``LookupError``), and
:class:`BadFunctionError` is cvat-sdk's too, so code written for cvat-sdk catches what it
caught there. The modules that raise them re-export them under the names they always had.

What the command line makes of each (its message and exit code) is ``cli.errors``'s business.
This module imports nothing of cvat-aa, so every module can import it.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import cvat_sdk.auto_annotation as sdk_aa

__all__ = [
    "BadFunctionError",
    "BadRequestError",
    "CvatAaError",
    "EmptySelectionError",
    "FunctionFailedError",
    "FunctionParameterError",
    "ImageInputError",
    "IncompatibleFunctionError",
    "JournalError",
    "LabelMapError",
    "LabelMismatchError",
    "MissingCredentialsError",
    "NoDataError",
    "NotFoundError",
    "PermissionDeniedError",
    "RequestLostError",
    "RunInProgressError",
    "ServerBusyError",
    "TargetChangedError",
    "UnknownFunctionError",
    "UnservableRequestError",
    "UsageError",
]


class CvatAaError(Exception):
    """The base of every error cvat-aa raises on purpose."""


# --- the function -----------------------------------------------------------------------------


class BadFunctionError(CvatAaError, sdk_aa.BadFunctionError):
    """A function broke its contract: a bad spec, bad output, or it could not be loaded.

    It subclasses cvat-sdk's ``BadFunctionError``, so ``except
    cvat_sdk.auto_annotation.BadFunctionError`` catches it too.
    """


class FunctionFailedError(CvatAaError, RuntimeError):
    """The function raised an exception on a frame (or, with ``on_error="skip"``, on some).

    ``frames`` are the task frame numbers, ``reason`` is ``"ValueError: ..."``, and
    ``original`` is the exception the function raised (None if it could not be sent back
    from where the function ran).
    """

    def __init__(
        self,
        message: str,
        frames: Sequence[int],
        reason: str = "",
        original: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.frames = list(frames)
        self.reason = reason or message
        self.original = original

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable, so that executors running the function elsewhere can send it back; an
        # original exception that does not pickle stays behind (its reason still says it all).
        return (type(self), (str(self), self.frames, self.reason, _picklable(self.original)))

    @property
    def where(self) -> str:
        """``the function failed on frame 3 (a.jpg)``, without the reason."""
        return str(self).removesuffix(f": {self.reason}")


def _picklable(error: BaseException | None) -> BaseException | None:
    if error is None:
        return None
    try:
        pickle.dumps(error)
    except Exception:
        return None
    return error


class UnknownFunctionError(CvatAaError, LookupError):
    """No installed plugin, module or file matches the requested function."""


class FunctionParameterError(CvatAaError, ValueError):
    """A function parameter is malformed, unknown, missing or of the wrong type."""


# --- labels -----------------------------------------------------------------------------------


class LabelMapError(CvatAaError, ValueError):
    """A label map that does not fit the function or the task (a mistake of the caller)."""


class LabelMismatchError(BadFunctionError):
    """A function label, sublabel or attribute that the task lacks.

    The message starts with cvat-sdk's ("label 'x' is not in dataset"), then lists both sides'
    names and what to do. :meth:`for_command_line` words the advice for the CLI's options.
    """

    def __init__(
        self, sdk_message: str, kind: str, context: str, *, command_line: bool = False
    ) -> None:
        self.sdk_message = sdk_message
        self.kind = kind
        """``label``, ``sublabel`` or ``attribute``: what the task lacks."""
        self.context = context
        self.command_line = command_line
        if command_line and kind == "label":
            how = "--label-map FUNCTION_LABEL=TASK_LABEL"
        elif command_line:
            how = "--label-map-file (see the user guide)"
        else:
            how = "label_map"
        drop = "--allow-unmatched-labels" if command_line else "allow_unmatched_labels=True"
        super().__init__(
            f"{sdk_message} ({context}); map it to one of the task's {kind}s with {how},"
            f" or leave it out with {drop}"
        )

    def for_command_line(self) -> LabelMismatchError:
        return LabelMismatchError(self.sdk_message, self.kind, self.context, command_line=True)


# --- what to run on ---------------------------------------------------------------------------


class NoDataError(CvatAaError, ValueError):
    """The task has no data (no frames to annotate)."""


class EmptySelectionError(CvatAaError, ValueError):
    """A frame selection matches none of the frames there are: the run would do nothing."""


class ImageInputError(CvatAaError, ValueError):
    """The images or videos to annotate cannot be found or read."""


class NotFoundError(CvatAaError, LookupError):
    """A task or job does not exist."""


class PermissionDeniedError(CvatAaError, PermissionError):
    """The user may read the task or job but not change its annotations (found before the run
    does any work)."""


# --- runs -------------------------------------------------------------------------------------


class JournalError(CvatAaError, ValueError):
    """The journal (or its directory) cannot be used."""


class RunInProgressError(CvatAaError, RuntimeError):
    """Another live run is working on the same task."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.holder))


class TargetChangedError(CvatAaError, RuntimeError):
    """An upload whose reply was lost is only partly on the task: someone changed the task
    meanwhile, and cvat-aa cannot tell what is its own there (the message says what to do)."""


# --- cvat-aa serve ----------------------------------------------------------------------------


class BadRequestError(CvatAaError, ValueError):
    """A call to ``cvat-aa serve`` that its caller got wrong (answered 400 with the message)."""


class ServerBusyError(CvatAaError, RuntimeError):
    """A served function's queue is full, or the server is stopping (answered 503, so that the
    caller tries again later)."""


# --- cvat-aa agent ----------------------------------------------------------------------------


class UnservableRequestError(CvatAaError, ValueError):
    """A queued request the agent cannot serve (an unknown type, a frame the task lacks): it is
    failed with this message."""


class RequestLostError(CvatAaError):
    """The server says a request is no longer this agent's: cancelled, or reassigned."""


# --- the command line -------------------------------------------------------------------------


class UsageError(CvatAaError):
    """A mistake in the command line that argparse cannot see."""


class MissingCredentialsError(CvatAaError):
    """A password is needed, and there is no terminal to ask for it on."""


class IncompatibleFunctionError(UsageError):
    """The native function on the server does not fit the function the agent runs."""
