"""What the server has done: requests, errors, latency, batch sizes and, for interactors, how
often a frame's preprocessed image was reused, per function.

Exposed as JSON (``GET /api/metrics``) and in Prometheus' text format (``GET /metrics``), so a
user can watch the server with a browser, ``curl`` or the monitoring they already have.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

__all__ = ["Metrics"]

LATENCY_WINDOW = 1000
"""Latency percentiles are over the last this-many requests of a function."""


class _FunctionMetrics:
    def __init__(self) -> None:
        self.requests = 0
        self.errors: Counter[str] = Counter()
        self.latency_sum = 0.0
        self.recent: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.batches = 0
        self.batch_sizes: Counter[int] = Counter()
        self.cache_hits = 0
        self.cache_misses = 0

    def as_dict(self) -> dict[str, Any]:
        recent = sorted(self.recent)

        def quantile(q: float) -> float | None:
            if not recent:
                return None
            return round(recent[min(len(recent) - 1, int(q * len(recent)))], 4)

        frames = sum(size * count for size, count in self.batch_sizes.items())
        return {
            "requests": self.requests,
            "errors": dict(self.errors),
            "latency_s": {
                "mean": round(self.latency_sum / self.requests, 4) if self.requests else None,
                "p50": quantile(0.5),
                "p95": quantile(0.95),
                "max": round(recent[-1], 4) if recent else None,
            },
            "batches": self.batches,
            "mean_batch_size": round(frames / self.batches, 3) if self.batches else None,
            "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
            "image_cache": {"hits": self.cache_hits, "misses": self.cache_misses},
        }


class Metrics:
    """Counters for every function; safe to update from any thread."""

    def __init__(self, function_ids: list[str]) -> None:
        self._lock = threading.Lock()
        self._functions = {name: _FunctionMetrics() for name in function_ids}

    def request(self, function_id: str, seconds: float, error: str | None = None) -> None:
        """One invocation answered after ``seconds``; ``error`` names its kind of failure."""
        with self._lock:
            m = self._functions[function_id]
            m.requests += 1
            m.latency_sum += seconds
            m.recent.append(seconds)
            if error:
                m.errors[error] += 1

    def batch(self, function_id: str, size: int) -> None:
        """One batch of ``size`` frames went to the function."""
        with self._lock:
            m = self._functions[function_id]
            m.batches += 1
            m.batch_sizes[size] += 1

    def image_cache(self, function_id: str, *, hit: bool) -> None:
        """An interactor call reused its frame's preprocessed image (``hit``) or made it."""
        with self._lock:
            m = self._functions[function_id]
            if hit:
                m.cache_hits += 1
            else:
                m.cache_misses += 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {name: m.as_dict() for name, m in self._functions.items()}

    def prometheus(self) -> str:
        """The metrics in Prometheus' text exposition format."""
        with self._lock:
            functions = {
                name: (
                    m.requests,
                    dict(m.errors),
                    m.latency_sum,
                    m.batches,
                    sum(size * count for size, count in m.batch_sizes.items()),
                    m.cache_hits,
                    m.cache_misses,
                )
                for name, m in self._functions.items()
            }
        lines = [
            "# HELP cvat_aa_requests_total Invocations answered, per function.",
            "# TYPE cvat_aa_requests_total counter",
        ]
        lines += [f'cvat_aa_requests_total{{function="{n}"}} {v[0]}' for n, v in functions.items()]
        lines += [
            "# HELP cvat_aa_request_errors_total Invocations that failed, per function and kind.",
            "# TYPE cvat_aa_request_errors_total counter",
        ]
        for name, values in functions.items():
            for kind, count in sorted(values[1].items()):
                lines.append(
                    f'cvat_aa_request_errors_total{{function="{name}",kind="{kind}"}} {count}'
                )
        lines += [
            "# HELP cvat_aa_request_seconds_sum Time spent answering invocations.",
            "# TYPE cvat_aa_request_seconds_sum counter",
        ]
        lines += [
            f'cvat_aa_request_seconds_sum{{function="{n}"}} {v[2]:.6f}'
            for n, v in functions.items()
        ]
        lines += [
            "# HELP cvat_aa_batches_total Batches run by the function.",
            "# TYPE cvat_aa_batches_total counter",
        ]
        lines += [f'cvat_aa_batches_total{{function="{n}"}} {v[3]}' for n, v in functions.items()]
        lines += [
            "# HELP cvat_aa_batched_frames_total Frames in those batches.",
            "# TYPE cvat_aa_batched_frames_total counter",
        ]
        lines += [
            f'cvat_aa_batched_frames_total{{function="{n}"}} {v[4]}' for n, v in functions.items()
        ]
        lines += [
            "# HELP cvat_aa_image_cache_total Interactor calls that reused or made a frame's image.",
            "# TYPE cvat_aa_image_cache_total counter",
        ]
        for name, values in functions.items():
            lines.append(f'cvat_aa_image_cache_total{{function="{name}",result="hit"}} {values[5]}')
            lines.append(
                f'cvat_aa_image_cache_total{{function="{name}",result="miss"}} {values[6]}'
            )
        return "\n".join(lines) + "\n"
