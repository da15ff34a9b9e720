"""Labels and their attributes, of a task or of a project; skeleton points are sublabels."""

from __future__ import annotations

import json
from typing import Any

from .access import TableAccess, dumps

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER REFERENCES tasks(id) ON DELETE CASCADE,
    project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES labels(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    color TEXT NOT NULL,
    type TEXT NOT NULL,
    svg TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS attributes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    mutable INTEGER NOT NULL,
    input_type TEXT NOT NULL,
    default_value TEXT NOT NULL,
    "values" TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_by_task ON labels(task_id);
CREATE INDEX IF NOT EXISTS labels_by_project ON labels(project_id);
CREATE INDEX IF NOT EXISTS attributes_by_label ON attributes(label_id);
"""


class Labels(TableAccess):
    """Rows of ``labels`` and ``attributes``, read back as CVAT's nested label objects."""

    def create_label(
        self,
        *,
        name: str,
        color: str,
        type: str,
        svg: str = "",
        task_id: int | None = None,
        project_id: int | None = None,
        parent_id: int | None = None,
    ) -> int:
        return self._insert(
            "labels",
            {
                "name": name,
                "color": color,
                "type": type,
                "svg": svg,
                "task_id": task_id,
                "project_id": project_id,
                "parent_id": parent_id,
            },
        )

    def set_label_svg(self, label_id: int, svg: str) -> None:
        self.conn.execute("UPDATE labels SET svg = ? WHERE id = ?", (svg, label_id))

    def create_attribute(
        self,
        label_id: int,
        *,
        name: str,
        mutable: bool,
        input_type: str,
        default_value: str,
        values: list[str],
    ) -> int:
        return self._insert(
            "attributes",
            {
                "label_id": label_id,
                "name": name,
                "mutable": int(mutable),
                "input_type": input_type,
                "default_value": default_value,
                "values": dumps(values),
            },
        )

    def labels(
        self,
        *,
        task_id: int | None = None,
        project_id: int | None = None,
        parent_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Labels with their attributes and sublabels, ordered by id.

        Without ``parent_id``, only top-level labels: CVAT lists sublabels inside skeletons.
        """
        sql, params = "SELECT * FROM labels WHERE 1", []
        if task_id is not None:
            sql += " AND task_id = ?"
            params.append(task_id)
        if project_id is not None:
            sql += " AND project_id = ?"
            params.append(project_id)
        if parent_id is not None:
            sql += " AND parent_id = ?"
            params.append(parent_id)
        else:
            sql += " AND parent_id IS NULL"
        rows = self._all(sql + " ORDER BY id", params)
        return [self._complete_label(row) for row in rows]

    def label(self, label_id: int) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM labels WHERE id = ?", (label_id,))
        return self._complete_label(row) if row else None

    def _complete_label(self, row: dict[str, Any]) -> dict[str, Any]:
        row["attributes"] = [
            {**attr, "mutable": bool(attr["mutable"]), "values": json.loads(attr["values"])}
            for attr in self._all(
                "SELECT * FROM attributes WHERE label_id = ? ORDER BY id", (row["id"],)
            )
        ]
        row["sublabels"] = [
            self._complete_label(sub)
            for sub in self._all(
                "SELECT * FROM labels WHERE parent_id = ? ORDER BY id", (row["id"],)
            )
        ]
        return row

    def task_labels(self, task: dict[str, Any]) -> list[dict[str, Any]]:
        """The labels a task uses: its own, or its project's."""
        if task["project_id"] is not None:
            return self.labels(project_id=task["project_id"])
        return self.labels(task_id=task["id"])
