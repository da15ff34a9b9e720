"""Turning exceptions into one clear message and an exit code."""

from __future__ import annotations

import enum
import logging
import ssl
import sys
import traceback

import cvat_sdk.auto_annotation as sdk_aa
import urllib3.exceptions
from cvat_sdk.api_client import exceptions as api_exceptions
from cvat_sdk.core.exceptions import AuthStoreError, InvalidHostException

from ..driver import NoDataError
from ..driver.retry import is_refused
from ..driver.run_lock import RunInProgressError
from ..errors import NotFoundError, PermissionDeniedError, TargetChangedError, UsageError
from ..parameters import FunctionParameterError
from ..pipeline.detection import failure_of
from ..plugins import UnknownFunctionError
from .login import MissingCredentialsError

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


def classify(ex: BaseException) -> tuple[ExitCode, str]:
    """The exit code and the message for an exception."""
    # First: what the function raised may be of any type, a ValueError say.
    failure = failure_of(ex)
    if failure is not None:
        return ExitCode.FUNCTION_FAILED, f"{failure}. Nothing was uploaded or written."
    if isinstance(ex, (UsageError, FunctionParameterError, UnknownFunctionError)):
        return ExitCode.USAGE, str(ex)
    if isinstance(ex, sdk_aa.BadFunctionError):
        return ExitCode.BAD_FUNCTION, f"bad function: {ex}"
    if isinstance(ex, RunInProgressError):
        return ExitCode.BUSY, str(ex)
    if isinstance(ex, TargetChangedError):
        return ExitCode.ERROR, str(ex)
    if isinstance(ex, (NotFoundError, NoDataError)):
        return ExitCode.NOT_FOUND, str(ex)
    if isinstance(ex, (AuthStoreError, MissingCredentialsError, PermissionDeniedError)):
        return ExitCode.AUTH, str(ex)
    if isinstance(ex, (InvalidHostException, urllib3.exceptions.LocationValueError)):
        # Not str(ex): urllib3 quotes the whole URL, credentials included.
        detail = str(ex) if isinstance(ex, InvalidHostException) else "it does not parse"
        return ExitCode.USAGE, (
            f"the server address is not valid ({detail}): check --server-host and"
            " --server-port (a port is a number from 1 to 65535)"
        )
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
        where = _address(ex)
        return ExitCode.ERROR, f"cannot reach the CVAT server{where}: {_why_unreachable(ex)}"
    if isinstance(ex, ValueError):
        return ExitCode.USAGE, str(ex)
    return ExitCode.ERROR, f"unexpected error: {type(ex).__name__}: {ex}"


# OpenSSL's reasons for a handshake with something that does not speak TLS.
_NOT_TLS = {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"}


def _address(ex: urllib3.exceptions.HTTPError) -> str:
    pool = getattr(ex, "pool", None) if isinstance(ex, urllib3.exceptions.MaxRetryError) else None
    if pool is None:
        return ""
    return f" at {pool.scheme}://{pool.host}:{pool.port}"


def _why_unreachable(ex: urllib3.exceptions.HTTPError) -> str:
    """What went wrong, and what to do about it (never the URL: it may hold a password)."""
    reason = ex.reason if isinstance(ex, urllib3.exceptions.MaxRetryError) else ex
    if isinstance(reason, urllib3.exceptions.SSLError):
        inner = reason.args[0] if reason.args else None
        if isinstance(inner, ssl.SSLCertVerificationError):
            return (
                f"its TLS certificate cannot be verified ({inner.verify_message}); pass"
                " --insecure if you trust this server"
            )
        if isinstance(inner, ssl.SSLError) and inner.reason in _NOT_TLS:
            return (
                "it does not speak HTTPS there; if the server serves plain HTTP, give"
                " --server-host with http:// (a host without a scheme means https://)"
            )
        return f"the TLS handshake failed ({type(inner).__name__}); check the address"
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "its host name cannot be resolved; check --server-host"
    if is_refused(reason):
        return (
            "nothing accepts connections there; check --server-host and --server-port, and"
            " that the server is running"
        )
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return f"cannot connect ({reason.__cause__ or 'no reason given'}); check the address"
    if isinstance(reason, (urllib3.exceptions.TimeoutError, TimeoutError)):
        return "it did not answer in time; check the address, or try again later"
    return f"{type(reason).__name__}; check the address, or try again later"


def _as_bytes(body: object) -> bytes:
    return body if isinstance(body, bytes) else str(body).encode()


def stopped_run_lines(ex: BaseException) -> list[str]:
    """What a stopped run undid, and what running the command again does."""
    stopped = getattr(ex, "cvat_aa_stopped", None)
    if stopped is None:
        return []
    lines = []
    if stopped.clearing:
        lines.append(
            f"every new annotation is uploaded to {stopped.target} and kept, but removing the"
            " old ones (--clear-existing) did not finish"
        )
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
    elif stopped.clearing:
        lines.append(
            "run the same command again to finish: it replaces what this run uploaded and"
            " removes the old annotations"
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
