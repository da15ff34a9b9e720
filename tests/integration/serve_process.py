"""``cvat-aa serve`` run as a user runs it, where the CVAT under test expects its Nuclio dashboard.

The serve scenarios start one ``cvat-aa serve`` (a subprocess, with the suite's plugins
installed) serving :data:`SERVED`: the ``it_frame_code`` function as it is, one that raises on
a frame and one that breaks the protocol on a frame; and, from ``it_every_shape``'s factory,
an interactor that answers masks, one that answers polygons, and a tracker. CVAT's port for its dashboard is fixed by
its settings, so when that port is taken (someone else's ``cvat-aa serve`` on a shared CVAT)
the start is tried again until :data:`PORT_WAIT` has passed. The command is ready when it
prints its banner, which it does once every port is open; it is stopped with SIGTERM, which
must end it with exit status 0.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import attrs
from target import Nuclio

FRAME_CODE_PLUGIN = "it_frame_code"
EVERY_SHAPE_PLUGIN = "it_every_shape"
PORT_WAIT = 180.0
"""Seconds to wait for the dashboard's port when another process holds it."""
START_TIMEOUT = 120.0


@attrs.frozen
class Served:
    """One ``--function`` of the command: its id in CVAT and its options."""

    id: str
    params: dict[str, str] = attrs.field(factory=dict)
    display_name: str | None = None
    description: str | None = None
    plugin: str = FRAME_CODE_PLUGIN
    kind: str = "detector"
    """What CVAT lists it as."""

    def arguments(self) -> list[str]:
        args = ["--function", self.plugin, "--id", self.id]
        for name, value in self.params.items():
            args += ["-p", f"{name}=str:{value}"]
        if self.display_name is not None:
            args += ["--display-name", self.display_name]
        if self.description is not None:
            args += ["--description", self.description]
        return args


FRAME_CODE = Served(
    "cvat-aa-it-frame-code",
    display_name="cvat-aa integration: every shape",
    description="Every annotation type, from the frame number painted into the frame",
)
FAILS_ON_2 = Served("cvat-aa-it-frame-code-fails", {"fail_on": "2"})
INVALID_ON_1 = Served("cvat-aa-it-frame-code-invalid", {"invalid_on": "1"})
INTERACTOR = Served(
    "cvat-aa-it-interactor",
    {"kind": "interaction"},
    description="The box around the points, as a mask",
    plugin=EVERY_SHAPE_PLUGIN,
    kind="interactor",
)
POLYGON_INTERACTOR = Served(
    "cvat-aa-it-interactor-polygon",
    {"kind": "interaction", "result": "polygon"},
    description="The box around the points, as a polygon",
    plugin=EVERY_SHAPE_PLUGIN,
    kind="interactor",
)
TRACKER = Served(
    "cvat-aa-it-tracker",
    {"kind": "tracking"},
    display_name="cvat-aa integration: tracker",
    description="Moves shapes right, 3 pixels a frame",
    plugin=EVERY_SHAPE_PLUGIN,
    kind="tracker",
)
SERVED = [FRAME_CODE, FAILS_ON_2, INVALID_ON_1, INTERACTOR, POLYGON_INTERACTOR, TRACKER]


class ServeProcess:
    """``cvat-aa serve`` of :data:`SERVED` on ``nuclio``'s port (and, for its ``direct``
    method, on a port per function after it), its output in ``log``."""

    def __init__(self, nuclio: Nuclio, environment: dict[str, str], log: Path) -> None:
        self.nuclio = nuclio
        self.environment = environment
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        command = [sys.executable, "-m", "cvat_aa", "serve", "--host", self.nuclio.host]
        command += ["--port", str(self.nuclio.port)]
        if self.nuclio.method == "dashboard":
            command.append("--no-direct")
        for served in SERVED:
            command += served.arguments()
        return command

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self) -> Self:
        deadline = time.monotonic() + PORT_WAIT
        while True:
            status = self._start_once()
            if status is None:
                return self
            busy = "in use" in self.output()
            if not busy or time.monotonic() > deadline:
                raise RuntimeError(
                    f"cvat-aa serve exited with status {status} before serving"
                    + (f" (its port stayed taken for {PORT_WAIT:.0f} s)" if busy else "")
                    + f":\n{self.output()}"
                )
            time.sleep(5)

    def _start_once(self) -> int | None:
        """None once the command serves; its exit status if it ended first."""
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.environment,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if "cvat-aa serve: serving on" in self.output():
                return None
            status = self.process.poll()
            if status is not None:
                return status
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"cvat-aa serve did not start in {START_TIMEOUT:.0f} s:\n{self.output()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, then the exit status (SIGKILL after 30 s: None)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
