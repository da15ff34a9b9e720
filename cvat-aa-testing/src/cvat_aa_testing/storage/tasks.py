"""Tasks: their settings and, once data is attached, the layout of their media.

A task's ``updated_date`` is what cvat-sdk's cache compares, so the endpoints that change a
task, its labels, its deleted frames or its annotations call :meth:`Tasks.touch_task`.
"""

from __future__ import annotations

from typing import Any

from .access import TableAccess

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
    owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    bug_tracker TEXT NOT NULL DEFAULT '',
    subset TEXT NOT NULL DEFAULT '',
    segment_size INTEGER NOT NULL DEFAULT 0,
    overlap INTEGER,
    created_date TEXT NOT NULL,
    updated_date TEXT NOT NULL,
    -- 'image' or 'video' once data is attached, NULL before
    media_type TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    chunk_size INTEGER,
    image_quality INTEGER NOT NULL DEFAULT 70,
    original_chunk_type TEXT,
    compressed_chunk_type TEXT,
    start_frame INTEGER NOT NULL DEFAULT 0,
    stop_frame INTEGER NOT NULL DEFAULT 0,
    frame_filter TEXT NOT NULL DEFAULT '',
    sorting_method TEXT NOT NULL DEFAULT 'lexicographical',
    chunks_updated_date TEXT,
    -- set by Upload-Start, cleared when the upload is finished
    upload_open INTEGER NOT NULL DEFAULT 0,
    -- where CVAT would read the media from: 'local' (its own copy) or 'share'
    storage TEXT NOT NULL DEFAULT 'local'
);
"""

#: Columns that a database made by an older test server lacks, as ``(table, column, declaration)``.
ADDED_COLUMNS = (("tasks", "storage", "TEXT NOT NULL DEFAULT 'local'"),)


class Tasks(TableAccess):
    """Rows of ``tasks``."""

    def create_task(self, values: dict[str, Any]) -> int:
        now = self.now()
        return self._insert("tasks", {**values, "created_date": now, "updated_date": now})

    def task(self, task_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM tasks WHERE id = ?", (task_id,))

    def tasks(self, *, project_id: int | None = None, name: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM tasks WHERE 1", []
        if project_id is not None:
            sql += " AND project_id = ?"
            params.append(project_id)
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        return self._all(sql + " ORDER BY id DESC", params)

    def update_task(self, task_id: int, values: dict[str, Any]) -> None:
        assignments = ", ".join(f'"{name}" = ?' for name in values)
        self.conn.execute(
            f"UPDATE tasks SET {assignments} WHERE id = ?", [*values.values(), task_id]
        )

    def touch_task(self, task_id: int) -> None:
        """Marks a task (and its project) as changed now."""
        now = self.now()
        self.conn.execute("UPDATE tasks SET updated_date = ? WHERE id = ?", (now, task_id))
        self.conn.execute(
            "UPDATE projects SET updated_date = ? WHERE id = "
            "(SELECT project_id FROM tasks WHERE id = ?)",
            (now, task_id),
        )

    def delete_task(self, task_id: int) -> None:
        self.conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))
