"""Turning exceptions into one clear message and an exit code."""

from __future__ import annotations

import enum
import logging
import sys
import traceback

import cvat_sdk.auto_annotation as sdk_aa
import urllib3.exceptions
from cvat_sdk.api_client import exceptions as api_exceptions
from cvat_sdk.core.exceptions import AuthStoreError

from ..driver import FunctionFailedError, NoDataError
from ..driver.run_lock import RunInProgressError
from ..parameters import FunctionParameterError
from ..plugins import UnknownFunctionError

logger = logging.getLogger(__name__)


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    AUTH = 3
    NOT_FOUND = 4
    BAD_FUNCTION = 5
    FUNCTION_FAILED = 6
    BUSY = 7
    INTERRUPTED = 130


class UsageError(Exception):
    """A mistake in the command line that argparse cannot see."""


class NotFoundError(LookupError):
    """A task or job does not exist."""


def classify(ex: BaseException) -> tuple[ExitCode, str]:
    """The exit code and the message for an exception."""
    if isinstance(ex, (UsageError, FunctionParameterError, UnknownFunctionError)):
        return ExitCode.USAGE, str(ex)
    if isinstance(ex, sdk_aa.BadFunctionError):
        return ExitCode.BAD_FUNCTION, f"bad function: {ex}"
    if isinstance(ex, FunctionFailedError):
        return ExitCode.FUNCTION_FAILED, f"{ex}. Nothing was uploaded or written."
    if isinstance(ex, RunInProgressError):
        return ExitCode.BUSY, str(ex)
    if isinstance(ex, (NotFoundError, NoDataError)):
        return ExitCode.NOT_FOUND, str(ex)
    if isinstance(ex, AuthStoreError):
        return ExitCode.AUTH, str(ex)
    if isinstance(ex, (api_exceptions.UnauthorizedException, api_exceptions.ForbiddenException)):
        return ExitCode.AUTH, (
            f"the server refused the request ({ex.status} {ex.reason}): check --auth, the"
            " CVAT_ACCESS_TOKEN variable or your profile, and your permissions"
        )
    if isinstance(ex, api_exceptions.NotFoundException):
        return ExitCode.NOT_FOUND, "the server answered 404 Not Found"
    if isinstance(ex, api_exceptions.ApiException):
        if ex.status == 400 and ex.body and b"non_field_errors" in _as_bytes(ex.body):
            return ExitCode.AUTH, "login failed: wrong user name or password"
        return ExitCode.ERROR, f"the server answered {ex.status} {ex.reason}"
    if isinstance(ex, urllib3.exceptions.HTTPError):
        return ExitCode.ERROR, f"cannot reach the CVAT server: {type(ex).__name__}"
    if isinstance(ex, ValueError):
        return ExitCode.USAGE, str(ex)
    return ExitCode.ERROR, f"unexpected error: {type(ex).__name__}: {ex}"


def _as_bytes(body: object) -> bytes:
    return body if isinstance(body, bytes) else str(body).encode()


def stopped_run_lines(ex: BaseException) -> list[str]:
    """What a stopped run undid, and what running the command again does."""
    stopped = getattr(ex, "cvat_aa_stopped", None)
    if stopped is None:
        return []
    lines = []
    if stopped.removed:
        lines.append(
            f"removed the {stopped.removed} annotations this run had uploaded to"
            f" {stopped.target}; it is as it was before the run"
        )
    if stopped.left:
        lines.append(
            f"could not remove the {stopped.left} annotations this run had uploaded to"
            f" {stopped.target}; run the same command again to finish the run, or"
            " 'cvat-aa runs rollback' to remove them"
        )
    if stopped.journal is not None:
        lines.append(
            f"run the same command again to resume: {stopped.frames_done} finished frames are"
            " kept and will not be computed again ('cvat-aa runs list' shows unfinished runs)"
        )
    else:
        lines.append("nothing was kept: running the command again starts over")
    return lines


def report_error(ex: BaseException, *, debug: bool) -> int:
    code, message = classify(ex)
    if debug:
        # The frames only: exception texts from the API client carry response headers,
        # which include session cookies.
        print("Traceback (most recent call last):", file=sys.stderr)
        print("".join(traceback.format_tb(ex.__traceback__)).rstrip(), file=sys.stderr)
        print(f"{type(ex).__module__}.{type(ex).__qualname__}", file=sys.stderr)
    print(f"cvat-aa: error: {message}", file=sys.stderr)
    for line in stopped_run_lines(ex):
        print(f"cvat-aa: {line}", file=sys.stderr)
    if not debug and code == ExitCode.ERROR:
        print("cvat-aa: run with --debug for details", file=sys.stderr)
    return int(code)
