"""A local journal of a run (SQLite), so that a killed run resumes where it stopped.

The journal records, as they happen: the annotations the target had when the run started
(the baseline), every frame's mapped results, each upload piece before it is sent and the
annotations the server created for it once it was. A run that finds a journal with the same
key resumes: finished frames are not recomputed, uploaded pieces are not sent again, and a
piece whose reply was lost is looked up on the server before it is re-sent. A journal that
outlives its run (the run was killed, or failed) can be listed, rolled back or forgotten
(``cvat-aa runs``).

A tracking run (``driver.track_run``) records no frames: its pieces hold whole tracks, each
journaled by the start shape it began from, with its label and keyframes (by which a piece
whose reply was lost is found on the server, as a piece of frames is by its frames' results).
A resumed tracking run tracks again only the objects whose tracks were not uploaded.

A detection run with result stages (video tracks from detections, say) records, beside what
it uploads for each frame, what the function found there: a resumed run gives that to the
stages again, frame by frame, so that they hold what they held when the run was killed; the
tracks they finish are journaled by their keys, as a tracking run's are by start shapes.

Annotations are keyed by ``(kind, id)``: CVAT numbers tags, shapes and tracks in separate
sequences, so tag 7 and shape 7 are different annotations and must never be confused, neither
when clearing nor when rolling back.

The key covers the server, the task or job, the function and its parameters and every option
that changes the results, so a different function or parameter set never reuses a journal.
Journals are private to the user (directory 0700, files 0600) and hold no credentials and no
parameter values: those are only hashed into the key.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import socket
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
from cvat_sdk import models

from ..errors import JournalError
from ..result_stages import FrameResult

__all__ = [
    "ANNOTATION_KINDS",
    "AnnotationKey",
    "Journal",
    "JournalError",
    "JournalInfo",
    "default_journal_dir",
    "default_state_dir",
    "journal_key",
    "list_journals",
    "private_directory",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2

ANNOTATION_KINDS = ("tag", "shape", "track")
AnnotationKey = tuple[str, int]
"""``(kind, id)``: ``kind`` is ``"tag"``, ``"shape"`` or ``"track"``."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS baseline (
    kind TEXT NOT NULL,
    id INTEGER NOT NULL,
    first_frame INTEGER,            -- the frames the annotation covers: a tag's or shape's own
    last_frame INTEGER,             -- frame; a track's first and last (NULL: to the end)
    PRIMARY KEY (kind, id)
);
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
CREATE TABLE IF NOT EXISTS tracks (
    start TEXT PRIMARY KEY,         -- a tracking run's start shape, e.g. 'shape:17'
    frame INTEGER NOT NULL,         -- the frame and label the track begins with
    label_id INTEGER NOT NULL,
    piece INTEGER NOT NULL,         -- the upload piece holding its track
    keyframes TEXT NOT NULL         -- JSON: its type, source and [frame, outside, points]s
);
CREATE TABLE IF NOT EXISTS created (
    kind TEXT NOT NULL,
    id INTEGER NOT NULL,
    piece INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
"""


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/cvat-aa`` (``~/.local/state/cvat-aa``)."""
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "cvat-aa"


def default_journal_dir() -> Path:
    """``$XDG_STATE_HOME/cvat-aa/journals`` (``~/.local/state/cvat-aa/journals``)."""
    return default_state_dir() / "journals"


def private_directory(path: Path, *, role: str = "journal") -> Path:
    """``path`` as a directory this user can write, created 0700 if it was not there.

    Raises :class:`JournalError` with what to do when it cannot be used.
    """
    path = Path(path).expanduser()
    hint = (
        "pass --journal-dir DIR to keep journals elsewhere, or --no-journal"
        if role == "journal"
        else "set XDG_STATE_HOME to a writable directory"
    )
    if path.exists() and not path.is_dir():
        raise JournalError(f"the {role} directory {path} is a file, not a directory; {hint}")
    try:
        if not path.is_dir():
            path.mkdir(parents=True, mode=0o700)
            path.chmod(0o700)  # mkdir's mode is masked by the umask
    except OSError as ex:
        raise JournalError(
            f"cannot create the {role} directory {path}: {ex.strerror or ex}; {hint}"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise JournalError(f"the {role} directory {path} is not writable; {hint}")
    return path


def journal_key(parts: Mapping[str, Any]) -> str:
    """A stable key for a run's identity (server, target, function, parameters, options)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _to_json(
    tags: Iterable[models.LabeledImageRequest],
    shapes: Iterable[models.LabeledShapeRequest],
    detected: FrameResult | None = None,
) -> str:
    data: dict[str, Any] = {
        "tags": [t.to_dict() for t in tags],
        "shapes": [s.to_dict() for s in shapes],
    }
    if detected is not None:
        data["detected"] = {
            "size": list(detected.size),
            "tags": [t.to_dict() for t in detected.tags],
            "shapes": [s.to_dict() for s in detected.shapes],
        }
    return json.dumps(data)


def _from_json(
    text: str,
) -> tuple[list[models.LabeledImageRequest], list[models.LabeledShapeRequest]]:
    data = json.loads(text)
    return (
        [models.LabeledImageRequest(**t) for t in data["tags"]],
        [models.LabeledShapeRequest(**s) for s in data["shapes"]],
    )


def _track_extent(track: Mapping[str, Any]) -> tuple[int, int | None]:
    """The frames a track (as the server sends it, JSON) covers: from its first shape to the
    last frame it is shown on, the one before its closing ``outside`` keyframe (None: it is
    not closed, and runs to the end).

    The closing keyframe's frame is not covered: the object is not there. So a run over frames
    0-7 that made a track closed on frame 8 (what a range that ends before the task does)
    replaces it when it is run again with ``clear_existing``.
    """
    shapes = [*(track.get("shapes") or ())]
    for element in track.get("elements") or ():
        shapes.extend(element.get("shapes") or ())
    if not shapes:
        return track["frame"], track["frame"]
    first = min(track["frame"], *(s["frame"] for s in shapes))
    last = max(s["frame"] for s in shapes)
    closed = all(s.get("outside") for s in shapes if s["frame"] == last)
    return first, (max(first, last - 1) if closed else None)


def annotation_extents(
    data: Mapping[str, Any],
) -> Iterator[tuple[AnnotationKey, int, int | None]]:
    """Every annotation of ``data`` (a task's or job's annotations as the server sends them,
    JSON: see ``AnnotationTarget.get_raw``) with the first and last frame it covers."""
    for tag in data.get("tags") or ():
        yield ("tag", tag["id"]), tag["frame"], tag["frame"]
    for shape in data.get("shapes") or ():
        yield ("shape", shape["id"]), shape["frame"], shape["frame"]
    for track in data.get("tracks") or ():
        first, last = _track_extent(track)
        yield ("track", track["id"]), first, last


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _create_private_file(path: Path) -> bool:
    """Create ``path`` 0600 if it is not there (SQLite gives its -wal and -shm files the same
    mode); return whether it existed."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return True
    except OSError as ex:
        raise JournalError(
            f"cannot create the journal {path}: {ex.strerror or ex}; pass --journal-dir DIR to"
            " keep journals elsewhere, or --no-journal"
        ) from None
    os.close(fd)
    return False


class Journal:
    """One run's journal file. Thread-safe: the uploader thread records pieces too."""

    def __init__(self, path: Path, *, describe: Mapping[str, Any]) -> None:
        self.path = path
        private_directory(path.parent)
        existed = _create_private_file(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.DatabaseError as ex:
            raise JournalError(
                f"cannot use the journal {path}: {ex}; remove it (the run it belongs to cannot"
                " resume then), or pass --no-journal"
            ) from None
        # A file without a run record is one that a killed run had only just created.
        self.resumed = existed and "run" in meta
        if self.resumed and meta.get("schema") != str(SCHEMA_VERSION):
            self._db.close()
            raise JournalError(
                f"the journal {path} was written by another version of cvat-aa; see"
                " 'cvat-aa runs list'"
            )
        with self._tx() as db:
            if not self.resumed:
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('run', ?)",
                    (json.dumps(dict(describe), default=str),),
                )
                db.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (_now(),))
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('process', ?)",
                (
                    json.dumps(
                        {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
                    ),
                ),
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

    def describe(self) -> dict[str, Any]:
        [(text,)] = self._query("SELECT value FROM meta WHERE name = 'run'")
        return json.loads(text)

    # baseline

    def has_baseline(self) -> bool:
        return bool(self._query("SELECT value FROM meta WHERE name = 'baseline'"))

    def set_baseline(self, annotations: Iterable[tuple[AnnotationKey, int, int | None]]) -> None:
        """Record what the target held before the run: ((kind, id), first frame, last frame)."""
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO baseline VALUES (?, ?, ?, ?)",
                ((kind, i, first, last) for (kind, i), first, last in annotations),
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('baseline', 'set')")

    def baseline(self) -> set[AnnotationKey]:
        return {(kind, i) for kind, i in self._query("SELECT kind, id FROM baseline")}

    def baseline_extents(self) -> list[tuple[AnnotationKey, int | None, int | None]]:
        return [
            ((kind, i), first, last)
            for kind, i, first, last in self._query(
                "SELECT kind, id, first_frame, last_frame FROM baseline"
            )
        ]

    # frames

    def finished_frames(self) -> dict[int, str]:
        """Frames already processed: frame -> 'done' or 'failed'."""
        return dict(self._query("SELECT frame, status FROM frames"))

    def record_frames(
        self,
        results: Iterable[
            tuple[
                int,
                list[models.LabeledImageRequest],
                list[models.LabeledShapeRequest],
                FrameResult | None,
            ]
        ],
    ) -> None:
        """Record frames as done: (frame, the tags and shapes to upload, and, in a run with
        result stages, what the function found, which a resumed run gives the stages again)."""
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO frames (frame, status, result) VALUES (?, 'done', ?)",
                (
                    (frame, _to_json(tags, shapes, detected))
                    for frame, tags, shapes, detected in results
                ),
            )

    def detected_results(self) -> Iterator[FrameResult]:
        """What the function found on every done frame of a run with result stages, in frame
        order (a frame recorded without it, by a run without stages, comes as it was sent)."""
        last = -1
        while True:
            # A page at a time: a long video's results need not all be in memory at once.
            rows = self._query(
                "SELECT frame, result FROM frames WHERE status = 'done' AND frame > ?"
                " ORDER BY frame LIMIT 500",
                (last,),
            )
            if not rows:
                return
            for frame, result in rows:
                data = json.loads(result)
                detected = data.get("detected", {"size": (0, 0), **data})
                yield FrameResult(
                    frame,
                    tuple(detected["size"]),
                    [models.LabeledImageRequest(**t) for t in detected["tags"]],
                    [models.LabeledShapeRequest(**s) for s in detected["shapes"]],
                )
            last = rows[-1][0]

    def unqueued_frames(self) -> set[int]:
        """Done frames that no piece holds (yet)."""
        return {
            f
            for (f,) in self._query(
                "SELECT frame FROM frames WHERE status = 'done' AND piece IS NULL"
            )
        }

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

    def piece_results(
        self, piece: int
    ) -> tuple[list[models.LabeledImageRequest], list[models.LabeledShapeRequest]]:
        """The tags and shapes of the frames ``piece`` holds, as they were sent."""
        tags: list[models.LabeledImageRequest] = []
        shapes: list[models.LabeledShapeRequest] = []
        for (result,) in self._query(
            "SELECT result FROM frames WHERE piece = ? AND status = 'done' ORDER BY frame",
            (piece,),
        ):
            frame_tags, frame_shapes = _from_json(result)
            tags.extend(frame_tags)
            shapes.extend(frame_shapes)
        return tags, shapes

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

    def piece_uploaded(self, piece: int, keys: Iterable[AnnotationKey]) -> None:
        with self._tx() as db:
            db.execute("UPDATE pieces SET state = 'uploaded' WHERE piece = ?", (piece,))
            db.executemany(
                "INSERT OR IGNORE INTO created VALUES (?, ?, ?)",
                ((kind, i, piece) for kind, i in keys),
            )

    def piece_not_sent(self, piece: int) -> None:
        """The piece did not reach the server (or was removed again): its frames are unqueued."""
        with self._tx() as db:
            db.execute("DELETE FROM created WHERE piece = ?", (piece,))
            db.execute("DELETE FROM pieces WHERE piece = ?", (piece,))
            db.execute("UPDATE frames SET piece = NULL WHERE piece = ?", (piece,))
            db.execute("DELETE FROM tracks WHERE piece = ?", (piece,))

    # the tracks of a tracking run

    def tracks_sending(
        self,
        piece: int,
        tracks: Iterable[tuple[str, int, int, Mapping[str, Any]]],
        annotations: int,
    ) -> None:
        """Record, before it is sent, that ``piece`` holds these tracks: (start key, first
        frame, label id, keyframes), the keyframes being what tells the track on the server
        (JSON-able: the uploader's ``{"type", "source", "keyframes": [[frame, outside,
        points], ...]}``)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO pieces VALUES (?, 'sending', ?)", (piece, annotations)
            )
            db.executemany(
                "INSERT OR REPLACE INTO tracks (start, frame, label_id, piece, keyframes)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    (start, frame, label, piece, json.dumps(keyframes))
                    for start, frame, label, keyframes in tracks
                ),
            )

    def sent_tracks(self, piece: int) -> list[tuple[int, dict[str, Any]]]:
        """(label id, keyframes) of each track ``piece`` holds, as :meth:`tracks_sending`
        took them; empty for a piece of frames."""
        return [
            (label, json.loads(keyframes))
            for label, keyframes in self._query(
                "SELECT label_id, keyframes FROM tracks WHERE piece = ? ORDER BY start", (piece,)
            )
        ]

    def uploaded_starts(self) -> set[str]:
        """The start shapes whose tracks are uploaded."""
        return {
            start
            for (start,) in self._query(
                "SELECT start FROM tracks JOIN pieces USING (piece) WHERE state = 'uploaded'"
            )
        }

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

    def created(self) -> set[AnnotationKey]:
        """The annotations this run has uploaded, as (kind, id)."""
        return {(kind, i) for kind, i in self._query("SELECT kind, id FROM created")}

    def forget_created(self, keys: Iterable[AnnotationKey]) -> None:
        """Those annotations were removed from the server (a rollback): re-queue their frames."""
        keys = set(keys)
        pieces = {
            p
            for kind, i, p in self._query("SELECT kind, id, piece FROM created")
            if (kind, i) in keys
        }
        for piece in pieces:
            self.piece_not_sent(piece)

    # the end

    def close(self, *, delete: bool = False) -> None:
        with self._lock:
            self._db.close()
        if delete:
            remove_journal_files(self.path)


def remove_journal_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@attrs.frozen(kw_only=True)
class JournalInfo:
    """What a journal left behind by a run that did not finish says about that run."""

    path: Path
    key: str
    compatible: bool
    """False for a journal another version of cvat-aa wrote: it can only be forgotten."""
    run: dict[str, Any] = attrs.field(factory=dict)
    """server, target, task_id, function_name, ... as the run recorded them."""
    process: dict[str, Any] = attrs.field(factory=dict)
    """pid, host and start time of the last process that worked on it."""
    created_at: str | None = None
    frames_done: int = 0
    frames_failed: int = 0
    uploaded: dict[str, int] = attrs.field(factory=dict)
    """Annotations the run created that are still on the server, per kind."""
    pieces_in_doubt: int = 0
    """Uploads the run was sending when it stopped (they may or may not have arrived)."""

    @property
    def id(self) -> str:
        """The short id users type (the key's first 12 characters)."""
        return self.key[:12]

    @property
    def server(self) -> str | None:
        return self.run.get("server")

    @property
    def task_id(self) -> int | None:
        return self.run.get("task_id")

    @property
    def target(self) -> str:
        target = self.run.get("target")
        return f"{target[0]} {target[1]}" if isinstance(target, list) else "?"

    @property
    def may_have_uploads(self) -> bool:
        return bool(sum(self.uploaded.values()) or self.pieces_in_doubt)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "compatible": self.compatible,
            "server": self.server,
            "target": self.target,
            "task_id": self.task_id,
            "function": self.run.get("function_name"),
            "created_at": self.created_at,
            "last_process": self.process,
            "frames_done": self.frames_done,
            "frames_failed": self.frames_failed,
            "uploaded": self.uploaded,
            "pieces_in_doubt": self.pieces_in_doubt,
        }

    @classmethod
    def read(cls, path: Path) -> JournalInfo:
        key = path.name.removesuffix(".sqlite3")
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error:
            return cls(path=path, key=key, compatible=False)
        try:
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            if meta.get("schema") != str(SCHEMA_VERSION):
                return cls(path=path, key=key, compatible=False)
            statuses = Counter(s for (s,) in db.execute("SELECT status FROM frames"))
            return cls(
                path=path,
                key=key,
                compatible=True,
                run=json.loads(meta.get("run", "{}")),
                process=json.loads(meta.get("process", "{}")),
                created_at=meta.get("created"),
                frames_done=statuses["done"],
                frames_failed=statuses["failed"],
                uploaded=dict(db.execute("SELECT kind, COUNT(*) FROM created GROUP BY kind")),
                pieces_in_doubt=db.execute(
                    "SELECT COUNT(*) FROM pieces WHERE state = 'sending'"
                ).fetchone()[0],
            )
        except sqlite3.Error:
            return cls(path=path, key=key, compatible=False)
        finally:
            db.close()


def list_journals(directory: Path) -> list[JournalInfo]:
    """The journals in ``directory``: runs that were killed or failed, oldest first."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        return []
    infos = [JournalInfo.read(p) for p in directory.glob("*.sqlite3")]
    return sorted(infos, key=lambda info: (info.created_at or "", info.key))
