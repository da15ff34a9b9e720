"""Fault injection and the request log, both set per server while it runs.

A test reaches them as ``server.faults`` and ``server.request_log``::

    server.faults.latency = 0.05                     # seconds added to every request
    server.faults.bandwidth = 1_000_000              # bytes per second, one link for all
    server.faults.fail_next(2, status=503, method="GET", path=r"/data/$")
    server.faults.close_connection_next(1, when="after", method="PATCH")
    server.faults.fail_randomly(0.1, seed=1)         # 10% of requests: 5xx or dropped
    server.faults.injected                           # Counter of what was injected
    ...
    assert [e.status for e in server.request_log.entries(method="PATCH")] == [None, 200]

Faults act in front of the API, like a misbehaving proxy: a failed request is never applied;
a connection closed "before" drops the request unapplied, one closed "after" drops the reply
of a request that was applied. The request log records what the server saw, never a header,
cookie, password or token.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import attrs


@attrs.frozen
class RequestLogEntry:
    """One request as the server saw it."""

    method: str
    path: str
    #: the raw query string, without the leading "?"
    query: str
    #: the status sent, or None when the connection was closed without a reply
    status: int | None
    #: the request body's size in bytes
    bytes_in: int
    #: the response body's size in bytes
    bytes_out: int
    #: seconds from receiving the request to handing back the response
    duration: float
    #: the injected fault: "fail", "close-before" or "close-after", else None
    fault: str | None = None


class RequestLog:
    """The requests a server has handled, oldest first. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[RequestLogEntry] = []

    def append(self, entry: RequestLogEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(
        self, *, method: str | None = None, path: str | None = None
    ) -> list[RequestLogEntry]:
        """A snapshot, optionally only one method and paths where the regex ``path`` matches."""
        pattern = re.compile(path) if path is not None else None
        with self._lock:
            snapshot = list(self._entries)
        return [
            entry
            for entry in snapshot
            if (method is None or entry.method == method.upper())
            and (pattern is None or pattern.search(entry.path))
        ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[RequestLogEntry]:
        return iter(self.entries())


@attrs.define
class _RandomFaults:
    rate: float
    kinds: list[tuple[str, Any]]
    method: str | None
    path: re.Pattern[str] | None
    rng: random.Random

    def draw(self, method: str, path: str) -> Fault | None:
        if (self.method is not None and self.method != method) or (
            self.path is not None and self.path.search(path) is None
        ):
            return None
        if self.rng.random() >= self.rate:
            return None
        kind, value = self.rng.choice(self.kinds)
        if kind == "fail":
            return Fault("fail", 1, status=value)
        return Fault("close", 1, when=value)


@attrs.define
class Fault:
    """A pending fault; ``remaining`` counts the requests it still applies to."""

    kind: Literal["fail", "close"]
    remaining: int
    status: int = 503
    when: Literal["before", "after"] = "before"
    method: str | None = None
    path: re.Pattern[str] | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path.search(path) is not None
        )

    @property
    def label(self) -> str:
        return "fail" if self.kind == "fail" else f"close-{self.when}"


def _method(method: str | None) -> str | None:
    return method.upper() if method is not None else None


def _regex(path: str | None) -> re.Pattern[str] | None:
    return re.compile(path) if path is not None else None


class FaultInjector:
    """The faults of one server. Every setting may change while the server runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latency = 0.0
        self._bandwidth: float | None = None
        self._faults: list[Fault] = []
        self._random: _RandomFaults | None = None
        self._link_free_at = 0.0
        self.injected: Counter[str] = Counter()
        """How many faults of each kind ("fail-503", "close-after"...) were injected."""

    @property
    def latency(self) -> float:
        """Seconds added to every request before it is handled (0 for none)."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must be 0 or more seconds")
        self._latency = float(seconds)

    @property
    def bandwidth(self) -> float | None:
        """A cap in bytes per second on request and response bodies (None for no cap)."""
        return self._bandwidth

    @bandwidth.setter
    def bandwidth(self, bytes_per_second: float | None) -> None:
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError("bandwidth must be a positive number of bytes per second, or None")
        self._bandwidth = None if bytes_per_second is None else float(bytes_per_second)

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answers the next ``count`` matching requests with ``status``, unapplied.

        ``method`` matches the HTTP method exactly, ``path`` is a regular expression searched
        in the URL path. The SDK retries 502/503/504 on GET, PUT, DELETE and HEAD (3 times);
        POST and PATCH fail at once.
        """
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self._add(Fault("fail", count, status=status, method=_method(method), path=_regex(path)))

    def close_connection_next(
        self,
        count: int = 1,
        *,
        when: Literal["before", "after"] = "before",
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Closes the connection instead of replying to the next ``count`` matching requests.

        With ``when="before"`` the request is not applied; with ``when="after"`` it is applied
        and committed, and only the reply is lost.
        """
        if when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        self._add(Fault("close", count, when=when, method=_method(method), path=_regex(path)))

    def fail_randomly(
        self,
        rate: float,
        *,
        statuses: Sequence[int] = (500, 502, 503, 504),
        closes: Sequence[Literal["before", "after"]] = ("before", "after"),
        method: str | None = None,
        path: str | None = None,
        seed: int | None = None,
    ) -> None:
        """Fail each matching request with probability ``rate`` (0 turns it off).

        A failure is drawn evenly from the ``statuses`` (answered, unapplied) and the
        connection ``closes`` (before or after the request is applied). ``seed`` makes the
        sequence repeatable.
        """
        if not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        kinds = [("fail", s) for s in statuses] + [("close", w) for w in closes]
        if rate and not kinds:
            raise ValueError("give at least one status or close")
        with self._lock:
            self._random = (
                _RandomFaults(rate, kinds, _method(method), _regex(path), random.Random(seed))
                if rate
                else None
            )

    def _add(self, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append(fault)

    def pending(self) -> int:
        """How many injected failures and closes are still to happen."""
        with self._lock:
            return sum(fault.remaining for fault in self._faults)

    def clear(self) -> None:
        """Removes every fault and setting."""
        with self._lock:
            self._faults.clear()
            self._latency = 0.0
            self._bandwidth = None
            self._random = None

    def take(self, method: str, path: str) -> Fault | None:
        """Consumes the first pending fault that matches a request, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    self.injected[
                        fault.label if fault.kind == "close" else f"fail-{fault.status}"
                    ] += 1
                    return fault
            drawn = self._random.draw(method, path) if self._random else None
            if drawn is not None:
                self.injected[drawn.label if drawn.kind == "close" else f"fail-{drawn.status}"] += 1
            return drawn

    def transfer_delay(self, size: int) -> float:
        """Seconds that ``size`` bytes take at the bandwidth cap."""
        bandwidth = self._bandwidth
        return size / bandwidth if bandwidth else 0.0

    def reserve_link(self, size: int) -> float:
        """Book ``size`` bytes on the shared link; the seconds to wait until they are through.

        The cap is one link shared by every connection, as a real network link is: bytes of
        concurrent transfers queue behind each other.
        """
        delay = self.transfer_delay(size)
        if not delay:
            return 0.0
        with self._lock:
            now = time.monotonic()
            self._link_free_at = max(self._link_free_at, now) + delay
            return self._link_free_at - now

    def throttled(self, body: bytes, piece: int = 64 * 1024) -> Iterator[bytes]:
        """Yields ``body`` in pieces, each once the shared link has carried it."""
        for start in range(0, len(body), piece):
            chunk = body[start : start + piece]
            wait = self.reserve_link(len(chunk))
            if wait:
                time.sleep(wait)
            yield chunk
