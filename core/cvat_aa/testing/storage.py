"""SQLite persistence for the test server: the schema, transactions and data access.

Each server keeps one database file in its data directory. Every HTTP request that changes
state runs in one ``BEGIN IMMEDIATE`` transaction (:meth:`Storage.write`), so a request either
stores everything or, when it is rejected or fails, nothing. WAL mode lets readers run while a
writer holds the lock, and ``synchronous=FULL`` makes a committed request survive a crash.

Annotations are stored the way CVAT stores them: tags, shapes (skeleton elements are shapes
with a parent), tracks (track elements are tracks with a parent) and tracked shapes each have
their own id sequence. The fields the server never queries live in a JSON ``body`` column.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    is_superuser INTEGER NOT NULL DEFAULT 0,
    date_joined TEXT NOT NULL
);
-- Sessions, login tokens and personal access tokens. Only a digest of each secret is kept.
CREATE TABLE IF NOT EXISTS credentials (
    digest TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('session', 'token', 'pat')),
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL DEFAULT '',
    csrf_token TEXT,
    created_date TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    bug_tracker TEXT NOT NULL DEFAULT '',
    created_date TEXT NOT NULL,
    updated_date TEXT NOT NULL
);
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
    upload_open INTEGER NOT NULL DEFAULT 0
);
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
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    start_frame INTEGER NOT NULL,
    stop_frame INTEGER NOT NULL,
    created_date TEXT NOT NULL,
    updated_date TEXT NOT NULL
);
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
CREATE TABLE IF NOT EXISTS tags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    label_id INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shapes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    parent_id INTEGER REFERENCES shapes(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    label_id INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tracks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
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
CREATE INDEX IF NOT EXISTS labels_by_task ON labels(task_id);
CREATE INDEX IF NOT EXISTS labels_by_project ON labels(project_id);
CREATE INDEX IF NOT EXISTS attributes_by_label ON attributes(label_id);
CREATE INDEX IF NOT EXISTS jobs_by_task ON jobs(task_id);
CREATE INDEX IF NOT EXISTS tags_by_task ON tags(task_id, frame);
CREATE INDEX IF NOT EXISTS shapes_by_task ON shapes(task_id, frame);
CREATE INDEX IF NOT EXISTS shapes_by_parent ON shapes(parent_id);
CREATE INDEX IF NOT EXISTS tracks_by_task ON tracks(task_id, frame);
CREATE INDEX IF NOT EXISTS tracks_by_parent ON tracks(parent_id);
CREATE INDEX IF NOT EXISTS tracked_shapes_by_track ON tracked_shapes(track_id);
"""

# Annotation kinds and the tables that hold their top-level objects.
ANNOTATION_TABLES = {"tags": "tags", "shapes": "shapes", "tracks": "tracks"}


class IdConflictError(Exception):
    """An annotation id in a request is already used outside what the request replaces."""

    def __init__(self, kind: str, annotation_id: int) -> None:
        super().__init__(f"{kind} id {annotation_id} is already in use")
        self.kind = kind
        self.annotation_id = annotation_id


def format_datetime(value: datetime.datetime) -> str:
    return value.isoformat(timespec="microseconds")


class Storage:
    """One server's database. Thread-safe: every transaction opens its own connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._clock_lock = threading.Lock()
        self._last_timestamp: datetime.datetime | None = None
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(SCHEMA)
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def now(self) -> str:
        """The current UTC time, strictly later than any earlier value from this storage.

        The SDK's cache keeps a task's cached data unless the server's ``updated_date`` is
        strictly newer, so two changes within one clock tick must still get distinct times.
        """
        with self._clock_lock:
            current = datetime.datetime.now(datetime.UTC)
            if self._last_timestamp is not None and current <= self._last_timestamp:
                current = self._last_timestamp + datetime.timedelta(microseconds=1)
            self._last_timestamp = current
            return format_datetime(current)

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self, conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A read transaction: one consistent snapshot of the database."""
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            try:
                yield Transaction(self, conn)
            finally:
                conn.execute("ROLLBACK")
        finally:
            conn.close()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Transaction:
    """Data access within one transaction. Rows come back as plain dicts."""

    def __init__(self, storage: Storage, conn: sqlite3.Connection) -> None:
        self.storage = storage
        self.conn = conn

    def now(self) -> str:
        return self.storage.now()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        row = self.conn.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(sql, params)]

    def _insert(self, table: str, values: dict[str, Any]) -> int:
        columns = ", ".join(f'"{name}"' for name in values)
        marks = ", ".join("?" for _ in values)
        cursor = self.conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values())
        )
        return cursor.lastrowid

    # users and credentials

    def create_user(
        self, username: str, password_hash: str, *, is_superuser: bool, email: str = ""
    ) -> int:
        return self._insert(
            "users",
            {
                "username": username,
                "password_hash": password_hash,
                "is_superuser": int(is_superuser),
                "email": email,
                "date_joined": self.now(),
            },
        )

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        self.conn.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
        )

    def user(self, user_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM users WHERE id = ?", (user_id,))

    def user_by_name(self, username: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM users WHERE username = ?", (username,))

    def add_credential(
        self, digest: str, kind: str, user_id: int, *, name: str = "", csrf_token: str | None = None
    ) -> None:
        self._insert(
            "credentials",
            {
                "digest": digest,
                "kind": kind,
                "user_id": user_id,
                "name": name,
                "csrf_token": csrf_token,
                "created_date": self.now(),
            },
        )

    def credential(self, digest: str, kind: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM credentials WHERE digest = ? AND kind = ?", (digest, kind))

    def delete_credential(self, digest: str) -> None:
        self.conn.execute("DELETE FROM credentials WHERE digest = ?", (digest,))

    # projects

    def create_project(self, name: str, owner_id: int | None, bug_tracker: str = "") -> int:
        now = self.now()
        return self._insert(
            "projects",
            {
                "name": name,
                "owner_id": owner_id,
                "bug_tracker": bug_tracker,
                "created_date": now,
                "updated_date": now,
            },
        )

    def project(self, project_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM projects WHERE id = ?", (project_id,))

    def projects(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM projects ORDER BY id")

    def delete_project(self, project_id: int) -> None:
        self.conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))

    def count_tasks_in_project(self, project_id: int) -> int:
        return self.conn.execute(
            "SELECT COUNT(*) FROM tasks WHERE project_id = ?", (project_id,)
        ).fetchone()[0]

    # tasks

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

    def touch_jobs(self, task_id: int, first_frame: int, last_frame: int) -> None:
        self.conn.execute(
            "UPDATE jobs SET updated_date = ? WHERE task_id = ? "
            "AND stop_frame >= ? AND start_frame <= ?",
            (self.now(), task_id, first_frame, last_frame),
        )

    def delete_task(self, task_id: int) -> None:
        self.conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))

    # labels and attributes

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
                "values": _dumps(values),
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

    # frames

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

    # jobs

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

    # uploads

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

    # background requests

    def create_request(
        self,
        request_id: str,
        *,
        owner_id: int | None,
        operation_type: str,
        target: str,
        task_id: int | None,
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
                "status": status,
                "message": message,
                "created_date": now,
                "finished_date": now if status in ("finished", "failed") else None,
            },
        )

    def request(self, request_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM requests WHERE id = ?", (request_id,))

    # annotations

    def annotations(
        self, task_id: int, first_frame: int | None = None, last_frame: int | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """A task's annotations as LabeledData, optionally those of one job's frame range."""
        frames, params = "", [task_id]
        if first_frame is not None:
            frames = " AND frame BETWEEN ? AND ?"
            params += [first_frame, last_frame]
        tags = [
            {
                "id": row["id"],
                "frame": row["frame"],
                "label_id": row["label_id"],
                **json.loads(row["body"]),
            }
            for row in self._all(
                f"SELECT * FROM tags WHERE task_id = ?{frames} ORDER BY id", params
            )
        ]
        where = f"task_id = ? AND parent_id IS NULL{frames}"
        shapes = [
            self._shape(row, with_elements=True)
            for row in self._all(f"SELECT * FROM shapes WHERE {where} ORDER BY id", params)
        ]
        tracks = [
            self._track(row, with_elements=True)
            for row in self._all(f"SELECT * FROM tracks WHERE {where} ORDER BY id", params)
        ]
        return {"version": 0, "tags": tags, "shapes": shapes, "tracks": tracks}

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

    def delete_annotations(
        self, task_id: int, first_frame: int | None = None, last_frame: int | None = None
    ) -> None:
        """Deletes all annotations of a task, or those in one job's frame range."""
        for table in ANNOTATION_TABLES.values():
            if first_frame is None:
                self.conn.execute(f"DELETE FROM {table} WHERE task_id = ?", (task_id,))
            else:
                self.conn.execute(
                    f"DELETE FROM {table} WHERE task_id = ? AND frame BETWEEN ? AND ?",
                    (task_id, first_frame, last_frame),
                )

    def delete_annotations_by_id(
        self,
        task_id: int,
        kind: str,
        ids: Iterable[int],
        first_frame: int | None = None,
        last_frame: int | None = None,
    ) -> None:
        """Deletes top-level annotations of one kind by id; unknown ids are ignored."""
        table = ANNOTATION_TABLES[kind]
        where = "id = ? AND task_id = ?"
        extra: list[Any] = []
        if kind != "tags":
            where += " AND parent_id IS NULL"
        if first_frame is not None:
            where += " AND frame BETWEEN ? AND ?"
            extra = [first_frame, last_frame]
        self.conn.executemany(
            f"DELETE FROM {table} WHERE {where}",
            [(annotation_id, task_id, *extra) for annotation_id in ids],
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
        self, task_id: int, data: dict[str, list[dict[str, Any]]], *, keep_ids: bool
    ) -> None:
        """Inserts validated LabeledData and sets the ids it got in ``data``.

        The ids in ``data`` are kept when ``keep_ids`` is set, else new ones are assigned.
        """
        for tag in data.get("tags", []):
            body = {key: tag[key] for key in ("group", "source", "attributes")}
            tag["id"] = self._insert(
                "tags",
                {
                    **self._id_column(tag, keep_ids),
                    "task_id": task_id,
                    "frame": tag["frame"],
                    "label_id": tag["label_id"],
                    "body": _dumps(body),
                },
            )
        for shape in data.get("shapes", []):
            parent_id = self._insert_shape(task_id, shape, None, keep_ids)
            for element in shape.get("elements", []):
                self._insert_shape(task_id, element, parent_id, keep_ids)
        for track in data.get("tracks", []):
            parent_id = self._insert_track(task_id, track, None, keep_ids)
            for element in track.get("elements", []):
                self._insert_track(task_id, element, parent_id, keep_ids)

    @staticmethod
    def _id_column(annotation: dict[str, Any], keep_ids: bool) -> dict[str, Any]:
        if keep_ids and annotation.get("id") is not None:
            return {"id": annotation["id"]}
        return {}

    def _insert_shape(
        self, task_id: int, shape: dict[str, Any], parent_id: int | None, keep_ids: bool
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
                "parent_id": parent_id,
                "frame": shape["frame"],
                "label_id": shape["label_id"],
                "body": _dumps(body),
            },
        )
        return shape["id"]

    def _insert_track(
        self, task_id: int, track: dict[str, Any], parent_id: int | None, keep_ids: bool
    ) -> int:
        body = {key: track[key] for key in ("group", "source", "attributes")}
        track["id"] = track_id = self._insert(
            "tracks",
            {
                **self._id_column(track, keep_ids),
                "task_id": task_id,
                "parent_id": parent_id,
                "frame": track["frame"],
                "label_id": track["label_id"],
                "body": _dumps(body),
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
                    "body": _dumps(shape_body),
                },
            )
        return track_id
