"""Projects: a name, an owner, and the labels their tasks share (in :mod:`.labels`)."""

from __future__ import annotations

from typing import Any

from .access import TableAccess

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    bug_tracker TEXT NOT NULL DEFAULT '',
    created_date TEXT NOT NULL,
    updated_date TEXT NOT NULL
);
"""


class Projects(TableAccess):
    """Rows of ``projects``."""

    def create_project(
        self,
        name: str,
        owner_id: int | None,
        bug_tracker: str = "",
        *,
        organization_id: int | None = None,
    ) -> int:
        now = self.now()
        return self._insert(
            "projects",
            {
                "name": name,
                "owner_id": owner_id,
                "organization_id": organization_id,
                "bug_tracker": bug_tracker,
                "created_date": now,
                "updated_date": now,
            },
        )

    def project(self, project_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM projects WHERE id = ?", (project_id,))

    def projects(self) -> list[dict[str, Any]]:
        """All projects, newest first, as CVAT lists them."""
        return self._all("SELECT * FROM projects ORDER BY id DESC")

    def delete_project(self, project_id: int) -> None:
        self.conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))

    def project_has_data(self, project_id: int) -> bool:
        """Whether a task of the project has its data."""
        return (
            self.conn.execute(
                "SELECT 1 FROM tasks WHERE project_id = ? AND media_type IS NOT NULL LIMIT 1",
                (project_id,),
            ).fetchone()
            is not None
        )

    def count_tasks_in_project(self, project_id: int) -> int:
        return self.conn.execute(
            "SELECT COUNT(*) FROM tasks WHERE project_id = ?", (project_id,)
        ).fetchone()[0]
