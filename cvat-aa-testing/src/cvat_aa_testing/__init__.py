"""Test support for cvat-aa and its plugins: a CVAT-compatible HTTP server and pytest fixtures.

:class:`TestServer` speaks the part of CVAT's REST API that cvat-sdk and cvat-cli 2.80 use
(login and access tokens, tasks and projects with every label type, the upload protocol,
frames and chunks of image and video tasks, annotations, jobs) and CVAT's lambda manager in
front of a Nuclio dashboard (:mod:`.nuclio`), keeps its state in SQLite
with media files on disk, and starts in milliseconds on loopback. Faults (latency, a bandwidth
cap, failed requests, dropped connections) can be injected while it runs, and it logs every
request it handles.

The pytest fixtures (``cvat_server``, ``cvat_client``, ``cvat_cli``, ``cvat_cache_dir``,
``cvat_demo_task``) are documented in :mod:`cvat_aa_testing.pytest_plugin`;
``cvat-aa sandbox`` (:mod:`cvat_aa_testing.sandbox_command`) runs :func:`serve_sandbox`.

Where things are: :mod:`.server` runs the HTTP server and has the Python API,
:mod:`.app` is the WSGI application, :mod:`.endpoints` holds CVAT's endpoints by resource,
:mod:`.storage` the database by table; :mod:`.auth`, :mod:`.validation`, :mod:`.media`,
:mod:`.task_data` and :mod:`.representations` are what the endpoints share. The lambda
manager is :mod:`.nuclio` (the gateway), :mod:`.function_calls` (one call, with
:mod:`.detection_results` and :mod:`.roi`) and :mod:`.lambda_requests` (requests).

The names below are imported on first use: ``cvat-aa`` loads this package at every start to
register ``sandbox``, and only that command needs the server (werkzeug, SQLite, Pillow).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import FaultInjector, RequestLog, RequestLogEntry
    from .media import MediaError
    from .sandbox import (
        DEMO_LABELS,
        SandboxTask,
        demo_images,
        labels_from_spec,
        seed_demo,
        serve_sandbox,
    )
    from .server import TestServer
    from .validation import ValidationError

_EXPORTS = {
    "DEMO_LABELS": ".sandbox",
    "FaultInjector": ".faults",
    "MediaError": ".media",
    "RequestLog": ".faults",
    "RequestLogEntry": ".faults",
    "SandboxTask": ".sandbox",
    "TestServer": ".server",
    "ValidationError": ".validation",
    "demo_images": ".sandbox",
    "labels_from_spec": ".sandbox",
    "seed_demo": ".sandbox",
    "serve_sandbox": ".sandbox",
}

__all__ = [
    "DEMO_LABELS",
    "FaultInjector",
    "MediaError",
    "RequestLog",
    "RequestLogEntry",
    "SandboxTask",
    "TestServer",
    "ValidationError",
    "demo_images",
    "labels_from_spec",
    "seed_demo",
    "serve_sandbox",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
