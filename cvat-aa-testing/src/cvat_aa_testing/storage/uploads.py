"""Files received between Upload-Start and Upload-Finish: bulk parts and TUS uploads.

A TUS upload's row keeps its offset, so an upload resumes where the client's last chunk
ended, as in CVAT.
"""

from __future__ import annotations

from typing import Any

from .access import TableAccess

SCHEMA = """
-- Files received between Upload-Start and Upload-Finish (bulk parts and TUS uploads).
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    length INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    tus_id TEXT UNIQUE
);
"""


class Uploads(TableAccess):
    """Rows of ``uploads``."""

    def add_upload(
        self, task_id: int, name: str, path: str, length: int, *, tus_id: str | None = None
    ) -> int:
        return self._insert(
            "uploads",
            {
                "task_id": task_id,
                "name": name,
                "path": path,
                "length": length,
                "offset": 0 if tus_id else length,
                "tus_id": tus_id,
            },
        )

    def uploads(self, task_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM uploads WHERE task_id = ? ORDER BY id", (task_id,))

    def tus_upload(self, task_id: int, tus_id: str) -> dict[str, Any] | None:
        return self._one(
            "SELECT * FROM uploads WHERE task_id = ? AND tus_id = ?", (task_id, tus_id)
        )

    def set_upload_offset(self, upload_id: int, offset: int) -> None:
        self.conn.execute('UPDATE uploads SET "offset" = ? WHERE id = ?', (offset, upload_id))

    def clear_uploads(self, task_id: int) -> None:
        self.conn.execute("DELETE FROM uploads WHERE task_id = ?", (task_id,))
