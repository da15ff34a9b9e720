"""A local journal of a run (SQLite), so that a killed run resumes where it stopped.

The journal records, as they happen: the annotations the target had when the run started
(the baseline), every frame's mapped results, each upload piece before it is sent and the
ids the server gave its annotations once it was. A run that finds a journal with the same
key resumes: finished frames are not recomputed, uploaded pieces are not sent again, and a
piece whose reply was lost is looked up on the server before it is re-sent.

The key covers the server, the task or job, the function and its parameters and every option
that changes the results, so a different function or parameter set never reuses a journal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cvat_sdk import models

__all__ = ["Journal", "default_journal_dir", "journal_key"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS baseline (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS frames (
    frame INTEGER PRIMARY KEY,
    status TEXT NOT NULL,           -- 'done' or 'failed'
    result TEXT,                    -- JSON {"tags": [...], "shapes": [...]} for 'done'
    error TEXT,                     -- why, for 'failed'
    piece INTEGER                   -- the upload piece holding the frame, once queued
);
CREATE TABLE IF NOT EXISTS pieces (
    piece INTEGER PRIMARY KEY,
    state TEXT NOT NULL,            -- 'sending' or 'uploaded'
    annotations INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS created (id INTEGER PRIMARY KEY, piece INTEGER NOT NULL);
"""


def default_journal_dir() -> Path:
    """``$XDG_STATE_HOME/cvat-aa/journals`` (``~/.local/state/cvat-aa/journals``)."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "cvat-aa" / "journals"


def journal_key(parts: Mapping[str, Any]) -> str:
    """A stable key for a run's identity (server, target, function, parameters, options)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _to_json(
    tags: Iterable[models.LabeledImageRequest], shapes: Iterable[models.LabeledShapeRequest]
) -> str:
    return json.dumps(
        {"tags": [t.to_dict() for t in tags], "shapes": [s.to_dict() for s in shapes]}
    )


def _from_json(
    text: str,
) -> tuple[list[models.LabeledImageRequest], list[models.LabeledShapeRequest]]:
    data = json.loads(text)
    return (
        [models.LabeledImageRequest(**t) for t in data["tags"]],
        [models.LabeledShapeRequest(**s) for s in data["shapes"]],
    )


class Journal:
    """One run's journal file. Thread-safe: the uploader thread records pieces too."""

    def __init__(self, path: Path, *, describe: Mapping[str, Any]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.resumed = path.exists()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if not self.resumed:
            with self._tx() as db:
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('run', ?)",
                    (json.dumps(dict(describe), default=str),),
                )

    @classmethod
    def open(cls, directory: Path, key: str, *, describe: Mapping[str, Any]) -> Journal:
        return cls(Path(directory) / f"{key}.sqlite3", describe=describe)

    class _Transaction:
        def __init__(self, journal: Journal) -> None:
            self.journal = journal

        def __enter__(self) -> sqlite3.Connection:
            self.journal._lock.acquire()
            self.journal._db.execute("BEGIN IMMEDIATE")
            return self.journal._db

        def __exit__(self, exc_type, exc, tb) -> None:
            try:
                self.journal._db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.journal._lock.release()

    def _tx(self) -> Journal._Transaction:
        return Journal._Transaction(self)

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # baseline

    def has_baseline(self) -> bool:
        return bool(self._query("SELECT value FROM meta WHERE name = 'baseline'"))

    def set_baseline(self, ids: Iterable[int]) -> None:
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO baseline VALUES (?)", ((i,) for i in ids))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('baseline', 'set')")

    def baseline(self) -> set[int]:
        return {row[0] for row in self._query("SELECT id FROM baseline")}

    # frames

    def finished_frames(self) -> dict[int, str]:
        """Frames already processed: frame -> 'done' or 'failed'."""
        return dict(self._query("SELECT frame, status FROM frames"))

    def record_frames(
        self,
        results: Iterable[
            tuple[int, list[models.LabeledImageRequest], list[models.LabeledShapeRequest]]
        ],
    ) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO frames (frame, status, result) VALUES (?, 'done', ?)",
                ((frame, _to_json(tags, shapes)) for frame, tags, shapes in results),
            )

    def record_failure(self, frame: int, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO frames (frame, status, error) VALUES (?, 'failed', ?)",
                (frame, error),
            )

    def failed_frames(self) -> dict[int, str]:
        return dict(self._query("SELECT frame, error FROM frames WHERE status = 'failed'"))

    def unqueued_results(
        self,
    ) -> Iterator[tuple[int, list[models.LabeledImageRequest], list[models.LabeledShapeRequest]]]:
        """Done frames that no uploaded piece holds, in frame order (for a resumed run)."""
        rows = self._query(
            "SELECT frame, result FROM frames WHERE status = 'done' AND piece IS NULL ORDER BY frame"
        )
        for frame, result in rows:
            tags, shapes = _from_json(result)
            yield frame, tags, shapes

    def label_counts(self, frames: set[int]) -> tuple[int, Counter[int]]:
        """(frames done, annotations per label id) over ``frames``, without building models."""
        counts: Counter[int] = Counter()
        done = 0
        for frame, result in self._query("SELECT frame, result FROM frames WHERE status = 'done'"):
            if frame not in frames:
                continue
            done += 1
            data = json.loads(result)
            counts.update(a["label_id"] for a in (*data["tags"], *data["shapes"]))
        return done, counts

    # pieces

    def piece_sending(self, piece: int, frames: Iterable[int], annotations: int) -> None:
        """Record, before it is sent, that ``piece`` holds ``frames``."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO pieces VALUES (?, 'sending', ?)", (piece, annotations)
            )
            db.executemany(
                "UPDATE frames SET piece = ? WHERE frame = ?", ((piece, f) for f in frames)
            )

    def piece_uploaded(self, piece: int, ids: Iterable[int]) -> None:
        with self._tx() as db:
            db.execute("UPDATE pieces SET state = 'uploaded' WHERE piece = ?", (piece,))
            db.executemany("INSERT OR IGNORE INTO created VALUES (?, ?)", ((i, piece) for i in ids))

    def piece_not_sent(self, piece: int) -> None:
        """The piece did not reach the server (or was removed again): its frames are unqueued."""
        with self._tx() as db:
            db.execute("DELETE FROM created WHERE piece = ?", (piece,))
            db.execute("DELETE FROM pieces WHERE piece = ?", (piece,))
            db.execute("UPDATE frames SET piece = NULL WHERE piece = ?", (piece,))

    def pieces_in_doubt(self) -> list[tuple[int, list[int], int]]:
        """Pieces recorded as being sent when the last run stopped: (piece, frames, count)."""
        rows = self._query(
            "SELECT piece, annotations FROM pieces WHERE state = 'sending' ORDER BY piece"
        )
        return [
            (
                piece,
                [f for (f,) in self._query("SELECT frame FROM frames WHERE piece = ?", (piece,))],
                count,
            )
            for piece, count in rows
        ]

    def next_piece(self) -> int:
        [(last,)] = self._query("SELECT COALESCE(MAX(piece), 0) FROM pieces")
        return last + 1

    def created_ids(self) -> set[int]:
        return {row[0] for row in self._query("SELECT id FROM created")}

    def forget_created(self, ids: Iterable[int]) -> None:
        """Those annotations were removed from the server (a rollback): re-queue their frames."""
        ids = set(ids)
        pieces = {p for (i, p) in self._query("SELECT id, piece FROM created") if i in ids}
        for piece in pieces:
            self.piece_not_sent(piece)

    # the end

    def close(self, *, delete: bool = False) -> None:
        with self._lock:
            self._db.close()
        if delete:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
