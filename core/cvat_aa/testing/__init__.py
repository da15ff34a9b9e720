"""Test support: a CVAT-compatible HTTP server and pytest fixtures.

:class:`TestServer` speaks the part of CVAT's REST API that cvat-sdk and cvat-cli 2.80 use
(login and access tokens, tasks and projects with every label type, the upload protocol,
frames and chunks of image and video tasks, annotations, jobs), keeps its state in SQLite
with media files on disk, and starts in milliseconds on loopback. Faults (latency, a bandwidth
cap, failed requests, dropped connections) can be injected while it runs, and it logs every
request it handles.

The pytest fixtures (``cvat_server``, ``cvat_client``, ``cvat_cli``, ``cvat_cache_dir``,
``cvat_demo_task``) are documented in :mod:`cvat_aa.testing.pytest_plugin`;
``cvat-aa sandbox`` runs :func:`serve_sandbox`.
"""

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
