"""The frames of a task: name, size, where the file is, and whether the frame is deleted."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .access import TableAccess

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    name TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    -- relative to the task's media directory
    path TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, frame)
);
"""


class Frames(TableAccess):
    """Rows of ``frames``."""

    def add_frames(self, task_id: int, frames: Iterable[dict[str, Any]]) -> None:
        self.conn.executemany(
            "INSERT INTO frames (task_id, frame, name, width, height, path) VALUES (?, ?, ?, ?, ?, ?)",
            [(task_id, f["frame"], f["name"], f["width"], f["height"], f["path"]) for f in frames],
        )

    def frames(self, task_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM frames WHERE task_id = ? ORDER BY frame", (task_id,))

    def frame(self, task_id: int, frame: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM frames WHERE task_id = ? AND frame = ?", (task_id, frame))

    def set_deleted_frames(self, task_id: int, deleted: Iterable[int]) -> None:
        self.conn.execute("UPDATE frames SET deleted = 0 WHERE task_id = ?", (task_id,))
        self.conn.executemany(
            "UPDATE frames SET deleted = 1 WHERE task_id = ? AND frame = ?",
            [(task_id, frame) for frame in deleted],
        )
