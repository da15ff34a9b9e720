"""Annotations, stored the way CVAT stores them: tags, shapes, tracks and tracked shapes.

Skeleton elements are shapes with a parent, track elements are tracks with a parent, and each
kind has its own id sequence, as in CVAT, so an id names an annotation only with its kind.
Every annotation belongs to one job, as in CVAT (a task's annotations are its jobs', merged:
see :mod:`cvat_aa_testing.job_annotations`). The fields the server never queries live in a
JSON ``body`` column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .access import TableAccess, dumps

SCHEMA = """
CREATE TABLE IF NOT EXISTS tags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    job_id INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    label_id INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shapes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    job_id INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES shapes(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    label_id INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tracks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    job_id INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES tracks(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    label_id INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tracked_shapes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_by_task ON tags(task_id, frame);
CREATE INDEX IF NOT EXISTS shapes_by_task ON shapes(task_id, frame);
CREATE INDEX IF NOT EXISTS shapes_by_parent ON shapes(parent_id);
CREATE INDEX IF NOT EXISTS tracks_by_task ON tracks(task_id, frame);
CREATE INDEX IF NOT EXISTS tracks_by_parent ON tracks(parent_id);
CREATE INDEX IF NOT EXISTS tracked_shapes_by_track ON tracked_shapes(track_id);
"""

# Databases of older test servers kept annotations per task; they get the column, and their
# annotations (with no job) are no longer shown.
ADDED_COLUMNS = [
    (table, "job_id", "INTEGER REFERENCES jobs(id) ON DELETE CASCADE")
    for table in ("tags", "shapes", "tracks")
]

# Annotation kinds and the tables that hold their top-level objects.
ANNOTATION_TABLES = {"tags": "tags", "shapes": "shapes", "tracks": "tracks"}


class IdConflictError(Exception):
    """An annotation id in a request is already used outside what the request replaces."""

    def __init__(self, kind: str, annotation_id: int) -> None:
        super().__init__(f"{kind} id {annotation_id} is already in use")
        self.kind = kind
        self.annotation_id = annotation_id


class Annotations(TableAccess):
    """Rows of the four annotation tables, read and written as CVAT's LabeledData."""

    def job_annotations(self, job_id: int) -> dict[str, list[dict[str, Any]]]:
        """A job's annotations as stored (LabeledData without defaults), in CVAT's order:
        tags and shapes by frame, tracks by id."""
        tags = [
            {
                "id": row["id"],
                "frame": row["frame"],
                "label_id": row["label_id"],
                **json.loads(row["body"]),
            }
            for row in self._all(
                "SELECT * FROM tags WHERE job_id = ? ORDER BY frame, id", (job_id,)
            )
        ]
        where = "job_id = ? AND parent_id IS NULL"
        shapes = [
            self._shape(row, with_elements=True)
            for row in self._all(
                f"SELECT * FROM shapes WHERE {where} ORDER BY frame, id", (job_id,)
            )
        ]
        tracks = [
            self._track(row, with_elements=True)
            for row in self._all(f"SELECT * FROM tracks WHERE {where} ORDER BY id", (job_id,))
        ]
        return {"tags": tags, "shapes": shapes, "tracks": tracks}

    def _shape(self, row: dict[str, Any], *, with_elements: bool) -> dict[str, Any]:
        body = json.loads(row["body"])
        shape = {
            "id": row["id"],
            "type": body.pop("type"),
            "frame": row["frame"],
            "label_id": row["label_id"],
            **body,
        }
        if with_elements:
            shape["elements"] = [
                self._shape(element, with_elements=False)
                for element in self._all(
                    "SELECT * FROM shapes WHERE parent_id = ? ORDER BY id", (row["id"],)
                )
            ]
        return shape

    def _track(self, row: dict[str, Any], *, with_elements: bool) -> dict[str, Any]:
        track = {
            "id": row["id"],
            "frame": row["frame"],
            "label_id": row["label_id"],
            **json.loads(row["body"]),
        }
        track["shapes"] = [
            {"id": shape["id"], "frame": shape["frame"], **json.loads(shape["body"])}
            for shape in self._all(
                "SELECT * FROM tracked_shapes WHERE track_id = ? ORDER BY frame, id", (row["id"],)
            )
        ]
        if with_elements:
            track["elements"] = [
                self._track(element, with_elements=False)
                for element in self._all(
                    "SELECT * FROM tracks WHERE parent_id = ? ORDER BY id", (row["id"],)
                )
            ]
        return track

    def delete_job_annotations(self, job_id: int) -> None:
        """Deletes all annotations of a job."""
        for table in ANNOTATION_TABLES.values():
            self.conn.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))

    def delete_annotations_by_id(self, job_id: int, kind: str, ids: Iterable[int]) -> None:
        """Deletes a job's top-level annotations of one kind by id; other ids are ignored."""
        table = ANNOTATION_TABLES[kind]
        where = "id = ? AND job_id = ?"
        if kind != "tags":
            where += " AND parent_id IS NULL"
        self.conn.executemany(
            f"DELETE FROM {table} WHERE {where}",
            [(annotation_id, job_id) for annotation_id in ids],
        )

    def ensure_ids_unused(self, data: dict[str, list[dict[str, Any]]]) -> None:
        """Raises IdConflictError if an id given in ``data`` is already taken.

        Called after the objects that a request replaces have been deleted, so a taken id
        belongs to an annotation outside the request's scope (another task or job).
        """
        seen: set[tuple[str, int]] = set()

        def claim(table: str, annotation_id: int | None, sql: str) -> None:
            if annotation_id is None:
                return
            if (table, annotation_id) in seen or self._one(sql, (annotation_id,)) is not None:
                raise IdConflictError(table, annotation_id)
            seen.add((table, annotation_id))

        for kind, table in ANNOTATION_TABLES.items():
            sql = f"SELECT 1 FROM {table} WHERE id = ?"
            for annotation in data.get(kind, []):
                claim(table, annotation.get("id"), sql)
                for element in annotation.get("elements", []):
                    claim(table, element.get("id"), sql)
                    for shape in element.get("shapes", []):
                        claim(
                            "tracked_shapes",
                            shape.get("id"),
                            "SELECT 1 FROM tracked_shapes WHERE id = ?",
                        )
                for shape in annotation.get("shapes", []) if kind == "tracks" else []:
                    claim(
                        "tracked_shapes",
                        shape.get("id"),
                        "SELECT 1 FROM tracked_shapes WHERE id = ?",
                    )

    def insert_annotations(
        self, task_id: int, job_id: int, data: dict[str, list[dict[str, Any]]], *, keep_ids: bool
    ) -> None:
        """Inserts validated LabeledData into a job and sets the ids it got in ``data``.

        The ids in ``data`` are kept when ``keep_ids`` is set, else new ones are assigned.
        """
        for tag in data.get("tags", []):
            body = {key: tag[key] for key in ("group", "source", "attributes")}
            tag["id"] = self._insert(
                "tags",
                {
                    **self._id_column(tag, keep_ids),
                    "task_id": task_id,
                    "job_id": job_id,
                    "frame": tag["frame"],
                    "label_id": tag["label_id"],
                    "body": dumps(body),
                },
            )
        for shape in data.get("shapes", []):
            parent_id = self._insert_shape(task_id, job_id, shape, None, keep_ids)
            for element in shape.get("elements", []):
                self._insert_shape(task_id, job_id, element, parent_id, keep_ids)
        for track in data.get("tracks", []):
            parent_id = self._insert_track(task_id, job_id, track, None, keep_ids)
            for element in track.get("elements", []):
                self._insert_track(task_id, job_id, element, parent_id, keep_ids)

    @staticmethod
    def _id_column(annotation: dict[str, Any], keep_ids: bool) -> dict[str, Any]:
        if keep_ids and annotation.get("id") is not None:
            return {"id": annotation["id"]}
        return {}

    def _insert_shape(
        self,
        task_id: int,
        job_id: int,
        shape: dict[str, Any],
        parent_id: int | None,
        keep_ids: bool,
    ) -> int:
        body = {
            key: shape[key]
            for key in (
                "type",
                "group",
                "source",
                "occluded",
                "outside",
                "z_order",
                "rotation",
                "points",
                "attributes",
                "score",
            )
            if key in shape
        }
        shape["id"] = self._insert(
            "shapes",
            {
                **self._id_column(shape, keep_ids),
                "task_id": task_id,
                "job_id": job_id,
                "parent_id": parent_id,
                "frame": shape["frame"],
                "label_id": shape["label_id"],
                "body": dumps(body),
            },
        )
        return shape["id"]

    def _insert_track(
        self,
        task_id: int,
        job_id: int,
        track: dict[str, Any],
        parent_id: int | None,
        keep_ids: bool,
    ) -> int:
        body = {key: track[key] for key in ("group", "source", "attributes")}
        track["id"] = track_id = self._insert(
            "tracks",
            {
                **self._id_column(track, keep_ids),
                "task_id": task_id,
                "job_id": job_id,
                "parent_id": parent_id,
                "frame": track["frame"],
                "label_id": track["label_id"],
                "body": dumps(body),
            },
        )
        for shape in track["shapes"]:
            shape_body = {
                key: shape[key]
                for key in (
                    "type",
                    "occluded",
                    "outside",
                    "z_order",
                    "rotation",
                    "points",
                    "attributes",
                )
            }
            shape["id"] = self._insert(
                "tracked_shapes",
                {
                    **self._id_column(shape, keep_ids),
                    "track_id": track_id,
                    "frame": shape["frame"],
                    "body": dumps(shape_body),
                },
            )
        return track_id
