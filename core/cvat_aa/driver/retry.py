"""Retrying transient server and network failures with capped exponential backoff.

Transient: dropped connections, timeouts, a refused connection, a DNS server that is
temporarily unavailable, and the statuses 429, 500, 502, 503 and 504 (a ``Retry-After``
header is honoured). Permanent, and failing at once, is whatever cannot succeed by waiting:
the statuses 400, 401, 403, 404 and other client errors, a URL that does not parse (a port
such as 99999), a host name that does not exist, and TLS failures (a certificate that cannot
be verified, or an ``https://`` URL for a server that speaks plain HTTP) other than a
connection dropped during the handshake.

A refused connection is the one ambiguous case: during a server restart nothing listens for a
few seconds, but a wrong port refuses too. ``refused_attempts`` lets a caller give it fewer
tries: the CLI's login, the first contact with the server, tries once (cvat-sdk's HTTP client
itself tries three times over about three seconds, for every connection error), so a wrong
address fails within seconds; once the server has answered, a refusal means a restart and
gets the full retry.

A request that may have been applied before its connection broke is not simply sent again:
the caller says how to find out (see ``Uploader``).
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import time
from collections.abc import Callable
from typing import TypeVar

import attrs
import urllib3.exceptions
from cvat_sdk.api_client.exceptions import ApiException

__all__ = ["RetryPolicy", "is_ambiguous", "is_refused", "is_transient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


# TLS errors that mean the connection broke during the handshake, not that it cannot succeed.
_DROPPED_HANDSHAKE = (
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
    ssl.SSLSyscallError,
    ConnectionError,
    TimeoutError,
)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is worth retrying."""
    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUSES
    if isinstance(error, urllib3.exceptions.MaxRetryError):
        # urllib3 gave up after its own retries; the cause tells what happened.
        return error.reason is None or is_transient(error.reason)
    if isinstance(error, urllib3.exceptions.LocationValueError):
        return False  # the URL does not parse (a port out of range, say)
    if isinstance(error, urllib3.exceptions.NameResolutionError):
        cause = error.__cause__
        return isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_AGAIN
    if isinstance(error, urllib3.exceptions.SSLError):
        inner = error.args[0] if error.args else None
        return isinstance(inner, _DROPPED_HANDSHAKE)
    return isinstance(
        error, (urllib3.exceptions.HTTPError, ConnectionError, socket.timeout, TimeoutError)
    )


def is_refused(error: BaseException) -> bool:
    """Whether ``error`` is a refused connection: nothing listens at the address (yet)."""
    if isinstance(error, urllib3.exceptions.MaxRetryError):
        return error.reason is not None and is_refused(error.reason)
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        return isinstance(error.__cause__, ConnectionRefusedError)
    return isinstance(error, ConnectionRefusedError)


def is_ambiguous(error: BaseException) -> bool:
    """Whether a request that failed with ``error`` may still have been applied.

    A server that answered with an error status did not apply the request (CVAT applies each
    request in one transaction); a connection that broke after the request was sent may have.
    """
    return is_transient(error) and not isinstance(error, ApiException)


def _retry_after(error: BaseException) -> float | None:
    headers = getattr(error, "headers", None)
    if not headers:
        return None
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@attrs.frozen
class RetryPolicy:
    """How often and how long to retry."""

    attempts: int = 8
    """Tries in all, the first included."""
    base_delay: float = 0.5
    max_delay: float = 30.0
    refused_attempts: int | None = None
    """Tries in all when the connection is refused; None: as many as ``attempts``."""
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, eq=False, repr=False)

    def _attempts_for(self, error: BaseException) -> int:
        if self.refused_attempts is not None and is_refused(error):
            return self.refused_attempts
        return self.attempts

    def delay(self, attempt: int, error: BaseException) -> float:
        """Seconds to wait before try ``attempt + 1``: Retry-After, or backoff with full jitter."""
        suggested = _retry_after(error)
        if suggested is not None:
            return min(suggested, self.max_delay)
        cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)

    def call(
        self,
        action: Callable[[], T],
        *,
        what: str,
        on_ambiguous: Callable[[], T | None] | None = None,
    ) -> T:
        """Run ``action``, retrying transient failures.

        ``on_ambiguous`` is called after a failure that may have been applied; it returns the
        result if the request turns out to have been applied, or None to send it again.
        """
        attempt = 1
        while True:
            try:
                return action()
            except Exception as error:
                if not is_transient(error) or attempt >= self._attempts_for(error):
                    raise
                failure = error
            if on_ambiguous is not None and is_ambiguous(failure):
                applied = self.call(on_ambiguous, what=f"checking whether {what} was applied")
                if applied is not None:
                    logger.info("%s was applied although its reply was lost", what)
                    return applied
            wait = self.delay(attempt, failure)
            logger.warning(
                "%s failed (%s); retry %d of %d in %.1f s",
                what,
                _describe(failure),
                attempt,
                self._attempts_for(failure) - 1,
                wait,
            )
            self.sleep(wait)
            attempt += 1


def _describe(error: BaseException) -> str:
    # Never str(ApiException): it holds the response headers, session cookies included.
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return type(error).__name__
