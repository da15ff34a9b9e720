"""Retrying transient server and network failures with capped exponential backoff.

Transient: connection errors, timeouts, and the statuses 429, 500, 502, 503 and 504 (a
``Retry-After`` header is honoured). Permanent (400, 401, 403, 404 and other client errors)
fail at once. A request that may have been applied before its connection broke is not simply
sent again: the caller says how to find out (see ``Uploader``).
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable
from typing import TypeVar

import attrs
import urllib3.exceptions
from cvat_sdk.api_client.exceptions import ApiException

__all__ = ["RetryPolicy", "is_ambiguous", "is_transient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is worth retrying."""
    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUSES
    if isinstance(error, urllib3.exceptions.MaxRetryError):
        # urllib3 gave up after its own retries; the cause tells what happened.
        return error.reason is None or is_transient(error.reason)
    return isinstance(
        error, (urllib3.exceptions.HTTPError, ConnectionError, socket.timeout, TimeoutError)
    )


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
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, eq=False, repr=False)

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
                if not is_transient(error) or attempt >= self.attempts:
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
                self.attempts - 1,
                wait,
            )
            self.sleep(wait)
            attempt += 1


def _describe(error: BaseException) -> str:
    # Never str(ApiException): it holds the response headers, session cookies included.
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return type(error).__name__
