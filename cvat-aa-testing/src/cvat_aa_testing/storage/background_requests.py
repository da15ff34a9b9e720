"""Background requests (``/api/requests``): how clients learn that a task's data is ready.

The test server does the work while answering the request that starts it, so a request is
stored already finished or failed.
"""

from __future__ import annotations

from typing import Any

from .access import TableAccess

SCHEMA = """
-- Background requests. No foreign key: a request outlives a deleted task, as in CVAT.
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    owner_id INTEGER,
    operation_type TEXT NOT NULL,
    target TEXT NOT NULL,
    task_id INTEGER,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created_date TEXT NOT NULL,
    finished_date TEXT
);
"""

ADDED_COLUMNS = (("requests", "project_id", "INTEGER"),)


class BackgroundRequests(TableAccess):
    """Rows of ``requests``."""

    def create_request(
        self,
        request_id: str,
        *,
        owner_id: int | None,
        operation_type: str,
        target: str,
        task_id: int | None,
        project_id: int | None,
        status: str,
        message: str = "",
    ) -> None:
        now = self.now()
        self.conn.execute("DELETE FROM requests WHERE id = ?", (request_id,))
        self._insert(
            "requests",
            {
                "id": request_id,
                "owner_id": owner_id,
                "operation_type": operation_type,
                "target": target,
                "task_id": task_id,
                "project_id": project_id,
                "status": status,
                "message": message,
                "created_date": now,
                "finished_date": now if status in ("finished", "failed") else None,
            },
        )

    def request(self, request_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM requests WHERE id = ?", (request_id,))
