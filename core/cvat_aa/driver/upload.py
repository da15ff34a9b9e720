"""Uploading annotations in bounded pieces while detection goes on, and undoing them.

A piece holds whole frames only, so a frame's annotations are never half-uploaded. Pieces are
sent by one background thread, in order; the producer blocks when ``max_pending`` pieces are
waiting, which bounds memory. Every piece is journaled before it is sent and after the server
accepted it, with the ids the server gave its annotations, so that:

* a piece whose reply was lost (the connection broke after the server applied it) is found on
  the server instead of being sent twice;
* a failed run can remove what it uploaded and leave the task as it found it;
* a killed run resumes without sending a piece again.

Annotations are identified by ``(kind, id)`` throughout (see ``journal``): CVAT's tags, shapes
and tracks have separate id sequences.

A tracking run uploads whole tracks instead of frames (:meth:`Uploader.add_tracks`); a piece
holds either. A piece of tracks whose reply was lost is known on the server by new tracks
that begin on the frames, with the labels, of the piece's tracks. CVAT stores a track that
crosses a job boundary as one track per job, so a track may come back as several, each with
an id of its own: all of them are the run's, and a rollback removes all of them.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from cvat_sdk import models
from cvat_sdk.core import Client

from .journal import AnnotationKey, Journal
from .retry import RetryPolicy

__all__ = ["AnnotationTarget", "RollbackReport", "Uploader"]

logger = logging.getLogger(__name__)


@attrs.frozen
class AnnotationTarget:
    """The task or job whose annotations a run writes."""

    client: Client
    kind: str
    """``"task"`` or ``"job"``."""
    id: int

    @property
    def _api(self) -> Any:
        return self.client.tasks.api if self.kind == "task" else self.client.jobs.api

    def describe(self) -> str:
        return f"{self.kind} {self.id}"

    def get(self) -> models.LabeledData:
        data, _ = self._api.retrieve_annotations(self.id)
        return data

    def create(
        self,
        tags: Sequence[models.LabeledImageRequest],
        shapes: Sequence[models.LabeledShapeRequest],
        tracks: Sequence[models.LabeledTrackRequest] = (),
    ) -> list[AnnotationKey]:
        """PATCH action=create; return the (kind, id) the server gave the new tags, shapes and
        tracks (a track cut at job boundaries has several)."""
        _, response = self._api.partial_update_annotations(
            "create",
            self.id,
            patched_labeled_data_request=models.PatchedLabeledDataRequest(
                tags=tags, shapes=shapes, tracks=tracks
            ),
            _parse_response=False,
        )
        body = json.loads(response.data or b"{}")
        return [
            (kind, a["id"])
            for kind, field in (("tag", "tags"), ("shape", "shapes"), ("track", "tracks"))
            for a in body.get(field, [])
            if "id" in a
        ]

    def delete(self, keys: Iterable[AnnotationKey]) -> set[AnnotationKey]:
        """Delete these tags, shapes and tracks, each given as (kind, id); return those that
        were there. A tag and a shape with the same id are different annotations."""
        wanted = set(keys)
        if not wanted:
            return set()
        current = self.get()
        request = models.PatchedLabeledDataRequest(
            tags=[
                models.LabeledImageRequest(**a.to_dict())
                for a in current.tags
                if ("tag", a.id) in wanted
            ],
            shapes=[
                models.LabeledShapeRequest(**a.to_dict())
                for a in current.shapes
                if ("shape", a.id) in wanted
            ],
            tracks=[
                models.LabeledTrackRequest(**a.to_dict())
                for a in current.tracks
                if ("track", a.id) in wanted
            ],
        )
        found = {
            *(("tag", a.id) for a in request.tags),
            *(("shape", a.id) for a in request.shapes),
            *(("track", a.id) for a in request.tracks),
        }
        if found:
            self._api.partial_update_annotations(
                "delete", self.id, patched_labeled_data_request=request, _parse_response=False
            )
        return found


@attrs.frozen
class RollbackReport:
    """What undoing a run's uploads did."""

    target: str
    removed: int
    """Annotations the run had uploaded and that were removed again."""
    left: int
    """Annotations the run had uploaded that could not be removed (the server failed)."""


@attrs.define
class _Piece:
    number: int
    frames: list[int] = attrs.Factory(list)
    tags: list[models.LabeledImageRequest] = attrs.Factory(list)
    shapes: list[models.LabeledShapeRequest] = attrs.Factory(list)
    tracks: list[models.LabeledTrackRequest] = attrs.Factory(list)
    starts: list[tuple[str, int, int]] = attrs.Factory(list)
    """(start key, first frame, label id) of each track, as the journal keeps them."""

    @property
    def size(self) -> int:
        """Annotations in the piece (a track counts once)."""
        return len(self.tags) + len(self.shapes) + len(self.tracks)

    @property
    def weight(self) -> int:
        """What bounds the request's size: tags, shapes and the tracks' shapes."""
        return len(self.tags) + len(self.shapes) + sum(len(t.shapes) for t in self.tracks)


_STOP = object()


class Uploader:
    """Sends frames' annotations to a target in journaled pieces, from a background thread."""

    def __init__(
        self,
        target: AnnotationTarget,
        journal: Journal,
        *,
        retry: RetryPolicy | None = None,
        piece_annotations: int = 2000,
        piece_frames: int = 200,
        piece_tracks: int = 50,
        max_pending: int = 2,
    ) -> None:
        self.target = target
        self.journal = journal
        self.retry = retry or RetryPolicy()
        self.piece_annotations = piece_annotations
        self.piece_frames = piece_frames
        self.piece_tracks = piece_tracks
        self.requests = 0
        self._piece = _Piece(journal.next_piece())
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, max_pending))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="cvat-aa-upload", daemon=True)
        self._thread.start()

    # the server side of a piece

    def _find_applied(self, frames: Sequence[int], count: int) -> list[AnnotationKey] | None:
        """The (kind, id) of a piece's annotations if the server has them, None if it has none."""
        wanted = set(frames)
        known = self.journal.baseline() | self.journal.created()
        current = self.target.get()
        new = [
            key
            for key, frame in (
                *((("tag", a.id), a.frame) for a in current.tags),
                *((("shape", a.id), a.frame) for a in current.shapes),
            )
            if frame in wanted and key not in known
        ]
        if len(new) == count:
            return new
        if not new:
            return None
        raise RuntimeError(
            f"{self.target.describe()} changed while cvat-aa was uploading to it: frames"
            f" {min(wanted)}-{max(wanted)} hold {len(new)} new annotations where {count} or none"
            " were expected. Check the task, then run again."
        )

    def _find_applied_tracks(self, starts: Sequence[tuple[int, int]]) -> list[AnnotationKey] | None:
        """The (kind, id) of a piece of tracks if the server has them, None if it has none.

        ``starts`` are the (first frame, label id) of the piece's tracks. Every new track on
        the server must be one of them, or a later part of one (a track cut at a job
        boundary): with a label of the piece, beginning no earlier than its first track.
        """
        known = self.journal.baseline() | self.journal.created()
        current = self.target.get()
        new = [
            (("track", t.id), t.frame, t.label_id)
            for t in current.tracks
            if ("track", t.id) not in known
        ]
        if not new:
            return None
        found = Counter((frame, label) for _, frame, label in new)
        first = min(frame for frame, _ in starts)
        labels = {label for _, label in starts}
        if all(found[start] >= n for start, n in Counter(starts).items()) and all(
            label in labels and frame >= first for _, frame, label in new
        ):
            return [key for key, _, _ in new]
        raise RuntimeError(
            f"{self.target.describe()} changed while cvat-aa was uploading tracks to it: it holds"
            f" {len(new)} new tracks where the {len(starts)} being uploaded, or none, were"
            " expected. Check the task, then run again."
        )

    def _lookup(self, piece: _Piece) -> list[AnnotationKey] | None:
        if piece.tracks:
            return self._find_applied_tracks([(frame, label) for _, frame, label in piece.starts])
        return self._find_applied(piece.frames, piece.size)

    def _send(self, piece: _Piece) -> None:
        if piece.tracks:
            self.journal.tracks_sending(piece.number, piece.starts, piece.size)
            what = f"uploading {len(piece.tracks)} tracks to {self.target.describe()}"
        else:
            self.journal.piece_sending(piece.number, piece.frames, piece.size)
            what = (
                f"uploading frames {piece.frames[0]}-{piece.frames[-1]} to {self.target.describe()}"
            )
        ids = self.retry.call(
            lambda: self.target.create(piece.tags, piece.shapes, piece.tracks),
            what=what,
            on_ambiguous=lambda: self._lookup(piece),
        )
        self.requests += 1
        self.journal.piece_uploaded(piece.number, ids)

    def resolve_in_doubt(self) -> None:
        """Settle the pieces a killed run was sending: uploaded, or to be sent again."""
        for number, frames, count in self.journal.pieces_in_doubt():
            starts = self.journal.track_starts(number)
            if starts:
                found = self.retry.call(
                    lambda s=starts: self._find_applied_tracks(s) or [],
                    what="checking an interrupted upload",
                )
                what = f"{len(starts)} tracks"
            elif frames:
                found = self.retry.call(
                    lambda f=frames, c=count: self._find_applied(f, c) or [],
                    what="checking an interrupted upload",
                )
                what = f"frames {frames[0]}-{frames[-1]}"
            else:
                found = []
            if found:
                logger.info("%s had been uploaded before the run stopped", what.capitalize())
                self.journal.piece_uploaded(number, found)
            else:
                self.journal.piece_not_sent(number)

    # the producer side

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # drain: a failed upload ends the run; later pieces are not sent
            try:
                self._send(item)
            except BaseException as ex:  # handed to the producer thread
                self._error = ex

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def add(
        self,
        frame: int,
        tags: Sequence[models.LabeledImageRequest],
        shapes: Sequence[models.LabeledShapeRequest],
    ) -> None:
        """Add one frame's annotations; a full piece is queued (blocking while the queue is full)."""
        self._check()
        if self._piece.tracks:
            self._flush()
        piece = self._piece
        piece.frames.append(frame)
        piece.tags.extend(tags)
        piece.shapes.extend(shapes)
        if piece.size >= self.piece_annotations or len(piece.frames) >= self.piece_frames:
            self._flush()

    def add_tracks(
        self, tracks: Sequence[tuple[tuple[str, int, int], models.LabeledTrackRequest]]
    ) -> None:
        """Add whole tracks, each with its (start key, first frame, label id) for the journal;
        a full piece is queued (blocking while the queue is full). A piece holds frames or
        tracks, never both."""
        self._check()
        if self._piece.frames:
            self._flush()
        for start, track in tracks:
            piece = self._piece
            piece.starts.append(start)
            piece.tracks.append(track)
            if piece.weight >= self.piece_annotations or len(piece.tracks) >= self.piece_tracks:
                self._flush()

    def _flush(self) -> None:
        piece = self._piece
        if piece.size:
            self._queue.put(piece)
            self._piece = _Piece(piece.number + 1)
        else:
            piece.frames.clear()

    def close(self) -> None:
        """Send what is left and wait for every piece; raise the first upload error."""
        if self._thread.is_alive():
            self._flush()
            self._queue.put(_STOP)
            self._thread.join()
        self._check()

    def abort(self) -> None:
        """Stop without sending what is left (the run failed)."""
        if self._error is None:
            self._error = RuntimeError("upload aborted")
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def rollback(self) -> RollbackReport:
        """Remove everything this run uploaded (best effort: a failure is reported, not raised)."""
        created = self.journal.created()
        if not created:
            return RollbackReport(self.target.describe(), removed=0, left=0)
        try:
            removed = self.retry.call(
                lambda: self.target.delete(created), what="removing this run's annotations"
            )
        except Exception as ex:
            logger.error(
                "Could not remove the %d annotations this run uploaded to %s (%s)",
                len(created),
                self.target.describe(),
                type(ex).__name__,
            )
            return RollbackReport(self.target.describe(), removed=0, left=len(created))
        self.journal.forget_created(created)
        logger.info("Removed the %d annotations this run had uploaded", len(removed))
        return RollbackReport(self.target.describe(), removed=len(removed), left=0)
