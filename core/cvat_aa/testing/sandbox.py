"""The sandbox behind ``cvat-aa sandbox``: a test server with a demo task, serving until stopped.

The demo task holds the photos in ``demo_images/`` (public domain and CC0, see NOTICE.md there)
and labels that common models know: ``person`` and ``face`` among them.
"""

from __future__ import annotations

import sys
import threading
from importlib import resources
from pathlib import Path
from typing import TextIO

from .server import TestServer

DEMO_TASK_NAME = "cvat-aa demo"
DEMO_LABELS = (
    {"name": "person", "type": "rectangle"},
    {"name": "face", "type": "rectangle"},
    {"name": "cat", "type": "rectangle"},
    {"name": "dog", "type": "rectangle"},
    {"name": "car", "type": "rectangle"},
    {"name": "cup", "type": "rectangle"},
)


def demo_images() -> list[Path]:
    """The demo photos, in name order."""
    folder = resources.files("cvat_aa.testing") / "demo_images"
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".jpg"))


def seed_demo(server: TestServer, *, name: str = DEMO_TASK_NAME) -> int:
    """Creates the demo task on ``server`` and returns its id."""
    return server.create_task(name, images=demo_images(), labels=list(DEMO_LABELS))


def _find_demo_task(server: TestServer) -> int | None:
    for task_id in server.task_ids():
        if server.task(task_id)["name"] == DEMO_TASK_NAME:
            return task_id
    return None


def serve_sandbox(
    host: str = "127.0.0.1",
    port: int = 8080,
    data_dir: str | Path | None = None,
    *,
    username: str = "admin",
    password: str | None = None,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Runs a test server with the demo task until Ctrl-C (or until ``stop`` is set).

    ``data_dir`` keeps the database and media between runs (the demo task is created once);
    without it everything lives in a temporary directory removed at exit. ``port=0`` picks a
    free port. The URL, the credentials and a cvat-cli example go to ``out`` (stdout).
    """
    out = out or sys.stdout
    stop = stop or threading.Event()
    with TestServer(
        host=host, port=port, data_dir=data_dir, username=username, password=password
    ) as server:
        task_id = _find_demo_task(server)
        if task_id is None:
            task_id = seed_demo(server)
        task = server.task(task_id)
        labels = ", ".join(label["name"] for label in server.labels(task_id))
        out.write(
            "cvat-aa sandbox: a CVAT-compatible test server\n"
            f"  URL:       {server.url}\n"
            f"  user:      {server.username}\n"
            f"  password:  {server.password}\n"
            f"  demo task: {task_id} ({task['size']} images; labels: {labels})\n"
            f"  data:      {'temporary, removed at exit' if data_dir is None else server.data_dir}\n"
            f"Try: cvat-cli --server-host {server.host} --server-port {server.port} "
            f"--auth {server.username}:{server.password} task ls\n"
            "Press Ctrl-C to stop.\n"
        )
        out.flush()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
