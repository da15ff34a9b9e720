"""The sandbox behind ``cvat-aa sandbox``: a test server with tasks to try functions on.

It always holds the demo task: the photos in ``demo_images/`` (public domain and CC0, see
NOTICE.md there) and labels that common models know, ``person`` and ``face`` among them. A
plugin author adds tasks of their own (:class:`SandboxTask`): their images or a video, with
their labels, written out or taken from a function's spec (:func:`labels_from_spec`).

With a data directory the sandbox is the same one after a restart: the database and media
stay, the password is kept in ``sandbox.json`` there (readable by its owner only), and a task
asked for again with the same name, labels and files is not created twice.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import sys
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import attrs

from .representations import SERVER_VERSION
from .server import TestServer
from .validation import ValidationError, parse_label_specs

__all__ = [
    "DEMO_LABELS",
    "DEMO_TASK_NAME",
    "SandboxTask",
    "check_labels",
    "demo_images",
    "labels_from_spec",
    "seed_demo",
    "serve_sandbox",
    "task_labels",
]

DEMO_TASK_NAME = "cvat-aa demo"
DEMO_LABELS = (
    {"name": "person", "type": "rectangle"},
    {"name": "face", "type": "rectangle"},
    {"name": "cat", "type": "rectangle"},
    {"name": "dog", "type": "rectangle"},
    {"name": "car", "type": "rectangle"},
    {"name": "cup", "type": "rectangle"},
)

_STATE_FILE = "sandbox.json"
_LABEL_ID = re.compile(r'data-label-id="(-?\d+)"')


def demo_images() -> list[Path]:
    """The demo photos, in name order."""
    folder = resources.files("cvat_aa_testing") / "demo_images"
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".jpg"))


def seed_demo(server: TestServer, *, name: str = DEMO_TASK_NAME) -> int:
    """Creates the demo task on ``server`` and returns its id."""
    return server.create_task(name, images=demo_images(), labels=list(DEMO_LABELS))


@attrs.frozen
class SandboxTask:
    """A task for the sandbox to hold: images (or one video) and labels.

    ``images`` are ``(frame name, file)`` pairs, in frame order; the frame name may keep
    folders (``2024/cat.jpg``), as CVAT keeps them. ``labels`` take CVAT's form, as
    :meth:`TestServer.create_task` does.
    """

    name: str
    labels: tuple[dict[str, Any], ...] = attrs.field(converter=tuple)
    images: tuple[tuple[str, Path], ...] = attrs.field(default=(), converter=tuple)
    video: Path | None = None

    def __attrs_post_init__(self) -> None:
        if bool(self.images) == (self.video is not None):
            raise ValueError("a sandbox task holds either images or one video")

    @property
    def fingerprint(self) -> str:
        """What identifies the same request after a restart: name, labels and files."""
        files = [(name, path) for name, path in self.images] or [(self.video.name, self.video)]
        data = {
            "name": self.name,
            "labels": list(self.labels),
            "files": [
                [name, str(Path(path).resolve()), Path(path).stat().st_size] for name, path in files
            ],
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def create(self, server: TestServer) -> int:
        if self.video is not None:
            return server.create_video_task(self.name, video=self.video, labels=list(self.labels))
        return server.create_task(self.name, images=self.images, labels=list(self.labels))


def labels_from_spec(spec: Any) -> list[dict[str, Any]]:
    """A task's labels made from a function's spec, so that every label of it matches.

    The function's ids are left out (the task numbers its labels itself); a skeleton's svg
    names its points by sublabel name instead of by those ids.
    """
    return task_labels([label.to_dict() for label in spec.labels])


def task_labels(labels: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Labels in CVAT's form for a new task: ids left out, skeleton points named in the svg.

    Takes a function's labels (``label.to_dict()``) as well as a task's labels from CVAT, whose
    ids refer to another task.
    """
    return [_task_label(label) for label in labels]


def _task_label(label: dict[str, Any]) -> dict[str, Any]:
    sublabels = label.get("sublabels") or []
    names = {str(sub.get("id")): sub["name"] for sub in sublabels if "name" in sub}
    result = {k: v for k, v in label.items() if k not in {"id", "sublabels", "attributes"}}
    result.setdefault("type", "any")
    if label.get("attributes"):
        result["attributes"] = [
            {k: v for k, v in attribute.items() if k != "id"} for attribute in label["attributes"]
        ]
    if sublabels:
        result["sublabels"] = [_task_label(sub) for sub in sublabels]
    if result.get("svg"):
        result["svg"] = _LABEL_ID.sub(
            lambda m: (
                f'data-label-name="{html.escape(names[m.group(1)])}"'
                if m.group(1) in names
                else m.group(0)
            ),
            result["svg"],
        )
    return result


def check_labels(labels: Sequence[dict[str, Any]]) -> None:
    """Raises ``ValueError`` naming what is wrong when CVAT would refuse these labels."""
    if not labels:
        raise ValueError("a task needs at least one label")
    try:
        parse_label_specs(list(labels))
    except ValidationError as ex:
        problems = ex.errors.values() if isinstance(ex.errors, dict) else [ex.errors]
        raise ValueError("; ".join(m for messages in problems for m in messages)) from None


class _State:
    """``sandbox.json`` in the data directory: the password, and the tasks created on request."""

    def __init__(self, data_dir: Path | None) -> None:
        self.path = None if data_dir is None else Path(data_dir) / _STATE_FILE
        self.data: dict[str, Any] = {}
        if self.path is not None and self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except (OSError, ValueError) as ex:
                raise ValueError(
                    f"cannot read {self.path} ({ex}); remove it to start the sandbox with a new"
                    " password"
                ) from None

    @property
    def tasks(self) -> dict[str, int]:
        return self.data.setdefault("tasks", {})

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.unlink(missing_ok=True)
        # Created owner-only from the start: the file holds the password.
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(self.data, f, indent=2)
        temporary.replace(self.path)


def _find_task(server: TestServer, name: str) -> int | None:
    return next((i for i in server.task_ids() if server.task(i)["name"] == name), None)


def _add_tasks(server: TestServer, tasks: Sequence[SandboxTask], state: _State) -> list[int]:
    """Creates the requested tasks that this data directory does not hold yet; their ids."""
    ids = []
    existing = set(server.task_ids())
    for task in tasks:
        key = task.fingerprint
        task_id = state.tasks.get(key)
        if task_id not in existing:
            task_id = task.create(server)
            state.tasks[key] = task_id
            existing.add(task_id)
        ids.append(task_id)
    state.save()
    return ids


def _describe(server: TestServer, task_id: int) -> str:
    task = server.task(task_id)
    labels = ", ".join(label["name"] for label in server.labels(task_id)) or "(none)"
    media = "video frame" if task.get("data_original_chunk_type") == "video" else "image"
    count = f"{task['size']} {media}{'' if task['size'] == 1 else 's'}"
    return f"  {task_id:>3}  {task['name']}  ({count}; labels: {labels})"


def serve_sandbox(
    host: str = "127.0.0.1",
    port: int = 8080,
    data_dir: str | Path | None = None,
    *,
    username: str = "admin",
    password: str | None = None,
    version: str = SERVER_VERSION,
    tasks: Sequence[SandboxTask] = (),
    function_options: str = "--function NAME",
    out: TextIO | None = None,
    stop: threading.Event | None = None,
    nuclio_url: str | None = None,
    nuclio_invoke_method: str = "dashboard",
) -> None:
    """Runs a test server with the demo task and ``tasks`` until Ctrl-C (or ``stop`` is set).

    ``data_dir`` keeps the database, the media and the password between runs; each task is
    created once. Without it everything lives in a temporary directory removed at exit.
    ``port=0`` picks a free port. ``version`` is the CVAT version the server claims.
    ``nuclio_url`` and ``nuclio_invoke_method`` are the Nuclio dashboard the server's lambda
    manager uses and how it invokes functions (see :class:`TestServer`). The URL, the
    credentials, the tasks and the commands that annotate them (with ``function_options``
    naming the function) go to ``out`` (stdout).
    """
    out = out or sys.stdout
    stop = stop or threading.Event()
    state = _State(None if data_dir is None else Path(data_dir))
    if password is None:
        password = state.data.get("password")
    with TestServer(
        host=host,
        port=port,
        data_dir=data_dir,
        username=username,
        password=password,
        version=version,
        nuclio_url=nuclio_url,
        nuclio_invoke_method=nuclio_invoke_method,
    ) as server:
        state.data["password"] = server.password
        demo_id = _find_task(server, DEMO_TASK_NAME)
        if demo_id is None:
            demo_id = seed_demo(server)
        requested = _add_tasks(server, tasks, state)
        example = requested[0] if requested else demo_id
        auth = f"--auth {server.username}:{server.password}"
        connection = f"--server-host {server.host} --server-port {server.port} {auth}"
        kept = (
            "temporary, removed at exit"
            if data_dir is None
            else f"{server.data_dir} (tasks and password are kept across restarts)"
        )
        nuclio = ""
        if nuclio_url:
            how = "through it" if nuclio_invoke_method == "dashboard" else "on their ports"
            nuclio = f"  nuclio:    {nuclio_url} (CVAT's /api/lambda/ calls its functions {how})\n"
        out.write(
            "cvat-aa sandbox: a CVAT-compatible test server\n"
            f"  URL:       {server.url}\n"
            f"  version:   CVAT {server.version}\n"
            f"  user:      {server.username}\n"
            f"  password:  {server.password}\n"
            f"  demo task: {demo_id}\n"
            f"  data:      {kept}\n"
            + nuclio
            + "Tasks:\n"
            + "".join(f"{_describe(server, task_id)}\n" for task_id in server.task_ids())
            + "Annotate a task with a function (see 'cvat-aa functions list'):\n"
            f"  cvat-aa annotate {example} {function_options} {connection}\n"
            "Or use cvat-cli:\n"
            f"  cvat-cli {connection} task ls\n"
            "Press Ctrl-C to stop.\n"
        )
        out.flush()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
