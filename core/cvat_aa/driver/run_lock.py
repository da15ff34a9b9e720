"""One run at a time per task: a lock that a live run holds and a dead one cannot.

Two runs writing into the same task at once would both upload (and, with ``clear_existing``,
each would keep its own results and delete the other's baseline). Each run that uploads holds
an exclusive ``flock`` on a file named after the server and the task, so a second run fails at
once with a message naming the first (process id, host, start time). The kernel releases the
lock when its process ends, however it ends, so a killed run never leaves a lock that blocks.

The lock is per task, not per job: a run on a job and a run on its task overlap. It is seen by
runs of the same user on the same machine (the lock lives in the user's state directory); runs
on other machines cannot see it.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path
from typing import Any

from .journal import JournalError, default_state_dir, journal_key, private_directory
from ..errors import RunInProgressError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

__all__ = ["RunInProgressError", "RunLock", "default_lock_dir"]


def default_lock_dir() -> Path:
    """``$XDG_STATE_HOME/cvat-aa/locks`` (``~/.local/state/cvat-aa/locks``)."""
    return default_state_dir() / "locks"


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _describe_holder(holder: dict[str, Any]) -> str:
    who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}"
    started = holder.get("started")
    if started:
        who += f", started {started}"
    function = holder.get("function")
    return f"a run of {function} ({who})" if function else f"a run ({who})"


class RunLock:
    """The lock a run holds on a task while it may upload to it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(
        cls,
        server: str,
        task_id: int,
        *,
        what: str,
        function: str,
        directory: Path | None = None,
    ) -> RunLock:
        """Take the lock of ``task_id`` on ``server`` (a normalised URL), or raise
        :class:`RunInProgressError` naming the run that holds it. ``what`` names the target."""
        directory = private_directory(directory or default_lock_dir(), role="lock")
        path = directory / f"{journal_key({'server': server, 'task': task_id})}.lock"
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as ex:
                raise JournalError(
                    f"cannot create the run lock {path}: {ex.strerror or ex}; make its directory"
                    " writable or set XDG_STATE_HOME to a writable directory"
                ) from None
            if not _try_lock(fd):
                holder = cls._read(fd)
                os.close(fd)
                raise RunInProgressError(
                    f"{_describe_holder(holder)} is already annotating task {task_id}"
                    f"{'' if what == f'task {task_id}' else f' ({what} is part of it)'}; wait for"
                    " it to finish or stop it, then run again",
                    holder,
                )
            # The file may have been removed by its last holder between our open and lock.
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "function": function,
            "target": what,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        return cls(path, fd)

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            data = os.pread(fd, 65536, 0)
            holder = json.loads(data or b"{}")
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def release(self) -> None:
        if self._fd is None:
            return
        # Removed while still held, so that no other run can lock this file after we let go.
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # Windows does not remove open files; the lock still goes with close
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
