"""Jobs: the frame ranges (segments) a task is split into."""

from __future__ import annotations

from typing import Any

from .access import TableAccess

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    start_frame INTEGER NOT NULL,
    stop_frame INTEGER NOT NULL,
    created_date TEXT NOT NULL,
    updated_date TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_task ON jobs(task_id);
"""


class Jobs(TableAccess):
    """Rows of ``jobs``."""

    def create_job(self, task_id: int, start_frame: int, stop_frame: int) -> int:
        now = self.now()
        return self._insert(
            "jobs",
            {
                "task_id": task_id,
                "start_frame": start_frame,
                "stop_frame": stop_frame,
                "created_date": now,
                "updated_date": now,
            },
        )

    def job(self, job_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    def jobs(self, task_id: int | None = None) -> list[dict[str, Any]]:
        if task_id is None:
            return self._all("SELECT * FROM jobs ORDER BY id")
        return self._all("SELECT * FROM jobs WHERE task_id = ? ORDER BY id", (task_id,))

    def touch_jobs(self, task_id: int, first_frame: int, last_frame: int) -> None:
        """Marks the task's jobs that overlap frames ``first_frame``..``last_frame`` as changed."""
        self.conn.execute(
            "UPDATE jobs SET updated_date = ? WHERE task_id = ? "
            "AND stop_frame >= ? AND start_frame <= ?",
            (self.now(), task_id, first_frame, last_frame),
        )

    def touch_job(self, job_id: int) -> None:
        """Marks one job as changed now."""
        self.conn.execute("UPDATE jobs SET updated_date = ? WHERE id = ?", (self.now(), job_id))
