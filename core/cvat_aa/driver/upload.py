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
holds either. CVAT stores a track that crosses a job boundary as one track per job, so a track
may come back as several, each with an id of its own: all of them are the run's, and a
rollback removes all of them.

A piece in doubt (its reply was lost, or the run was killed between sending it and recording
the reply) is looked for on the server by its content, never by counting what is new there:
by the time a killed run is resumed or rolled back, other runs may have annotated the same
frames, even with the same function and so the same annotations. Among the annotations that
are in neither the run's baseline nor what it recorded, a piece of frames is the tags (frame,
label, source) and shapes (the same, type and points; a skeleton's by its elements) that its
frames' journaled results hold; a piece of tracks is, for each of its tracks, a track with its
label that begins on its first keyframe and agrees with its keyframes, and one such part on
each job boundary it crosses. Either the whole piece is found (it was applied), or none of it
(it is sent again, or there is nothing to remove); part of it is a change the run cannot
judge (someone removed some of it, or another run made some like it), and the run stops and
says what to check, touching nothing. Where several annotations fit, the ones with the
smallest ids are the piece's: runs on a task are serialised by the run lock, so a piece a run
sent was created before any annotation of a later run, and CVAT's ids only grow. What content
cannot tell apart is a piece that never arrived from a later run's identical annotations on
the same frames: those are taken for the piece (as a count would take them).
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import math
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
from cvat_sdk import models
from cvat_sdk.core import Client

from ..errors import TargetChangedError
from .journal import AnnotationKey, Journal
from .retry import RetryPolicy

__all__ = ["AnnotationTarget", "RollbackReport", "Uploader", "refuse_overlapping_jobs"]

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

    def get_raw(self) -> dict[str, Any]:
        """The annotations as the server sends them (JSON), for reading many quickly: the SDK's
        models take several times the request's own time to build (a second for 5,000
        shapes)."""
        _, response = self._api.retrieve_annotations(self.id, _parse_response=False)
        return json.loads(response.data or b"{}")

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

    def job_ranges(self) -> list[tuple[int, int]]:
        """The (first, last) frames of the jobs CVAT cuts a track sent to the target into, in
        frame order: a task's annotation jobs; none for a job (its tracks are not cut)."""
        if self.kind == "job":
            return []
        jobs = self.client.tasks.retrieve(self.id).get_jobs()
        return sorted(
            (job.start_frame, job.stop_frame)
            for job in jobs
            if str(getattr(job.type, "value", job.type)) == "annotation"
        )

    def delete(
        self, keys: Iterable[AnnotationKey], current: Mapping[str, Any] | None = None
    ) -> set[AnnotationKey]:
        """Delete these tags, shapes and tracks, each given as (kind, id); return those that
        were there. A tag and a shape with the same id are different annotations.

        ``current``: the annotations as :meth:`get_raw` gave them a moment ago, if the caller
        read them already (while it did something else); otherwise they are read here. Only
        the annotations of ``keys`` are taken from them, and CVAT deletes by id, so they may
        be older than the deletion: one that was removed meanwhile is passed over."""
        wanted = set(keys)
        if not wanted:
            return set()
        # Sent back as they came, without the SDK's models (see get_raw): CVAT deletes by id,
        # and validates each annotation as it does on creation.
        if current is None:
            current = self.get_raw()
        request = {
            field: [a for a in current.get(field) or () if (kind, a["id"]) in wanted]
            for kind, field in (("tag", "tags"), ("shape", "shapes"), ("track", "tracks"))
        }
        found = {
            (kind, a["id"])
            for kind, field in (("tag", "tags"), ("shape", "shapes"), ("track", "tracks"))
            for a in request[field]
        }
        if found:
            self.client.api_client.call_api(
                f"/api/{self.kind}s/{{id}}/annotations/",
                "PATCH",
                path_params={"id": self.id},
                query_params=[("action", "delete")],
                header_params={"Content-Type": "application/json"},
                body=request,
                _parse_response=False,
            )
        return found


def refuse_overlapping_jobs(
    target: AnnotationTarget, retry: RetryPolicy, *, advice: str = "--job (annotate_job)"
) -> None:
    """Refuse to send tracks to a task whose jobs share frames (CVAT's ``overlap``).

    CVAT stores what is sent to such a task on a shared frame once per job, and the task's
    answers show only one of the copies: the uploader records that one, so a failed run,
    a rollback or a lost reply would leave the other copies of its tracks in the task. A job
    run writes only to its job, where every copy is seen.
    """
    ranges = retry.call(target.job_ranges, what=f"reading the jobs of {target.describe()}")
    shared = [(a, b) for a, b in itertools.pairwise(ranges) if b[0] <= a[1]]
    if shared:
        (_, first_stop), (second_start, _) = shared[0]
        raise ValueError(
            f"{target.describe()} has jobs that share frames (frames {second_start}-{first_stop}"
            " are in two jobs, and CVAT keeps a track there once per job), so cvat-aa could not"
            f" remove every part of the tracks of a run that fails; make them job by job with"
            f" {advice}, or make the task without overlap"
        )


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

_ABS_TOLERANCE = 1e-3
_REL_TOLERANCE = 1e-6
"""How far a coordinate the server holds may be from the one sent and still be that one:
CVAT keeps the numbers it is sent, so this only absorbs a server that stores them with less
precision."""


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=_REL_TOLERANCE, abs_tol=_ABS_TOLERANCE)
        for x, y in zip(a, b, strict=True)
    )


def _type(shape: Any) -> str:
    return str(getattr(shape.type, "value", shape.type))


def _source(annotation: Any) -> str:
    # CVAT's default for an annotation sent without one.
    return str(getattr(annotation, "source", None) or "manual")


_Identity = tuple[tuple[Any, ...], tuple[float, ...]]


def _identity(kind: str, annotation: Any) -> _Identity:
    """What tells a tag or shape (sent, or on the server) from others on its frame: what must
    be equal (kind, frame, label, source; a shape's type, and a skeleton's elements' labels
    and types), and the points, which must be close (a skeleton's: its elements')."""
    if kind == "tag":
        return (kind, annotation.frame, annotation.label_id, _source(annotation)), ()
    elements = sorted(getattr(annotation, "elements", None) or (), key=lambda e: e.label_id)
    points = (
        [p for e in elements for p in (e.points or ())]
        if elements
        else (getattr(annotation, "points", None) or ())
    )
    exact = (
        kind,
        annotation.frame,
        annotation.label_id,
        _source(annotation),
        _type(annotation),
        tuple((e.label_id, _type(e)) for e in elements),
    )
    return exact, tuple(float(p) for p in points)


def _match(
    expected: Sequence[_Identity], candidates: Sequence[tuple[AnnotationKey, _Identity]]
) -> list[AnnotationKey]:
    """The candidates that are the expected annotations, each taken once: for each expected
    one, the candidate with the smallest id among those that fit it."""
    pool: dict[tuple[Any, ...], list[tuple[AnnotationKey, tuple[float, ...]]]] = {}
    for key, (exact, points) in sorted(candidates, key=lambda c: c[0][1]):
        pool.setdefault(exact, []).append((key, points))
    found = []
    for exact, points in expected:
        group = pool.get(exact, [])
        for place, (key, candidate_points) in enumerate(group):
            if _close(points, candidate_points):
                found.append(key)
                del group[place]
                break
    return found


def _start(track: Any) -> int | None:
    """The frame a track on the server is first seen on (None: never)."""
    return min((s.frame for s in track.shapes if not s.outside), default=None)


_Keyframe = tuple[int, bool, tuple[float, ...]]


@attrs.frozen
class _SentTrack:
    """A track as it was sent: what tells it, and its parts, on the server."""

    label_id: int
    type: str
    source: str
    keyframes: tuple[_Keyframe, ...]
    """(frame, outside, points), in frame order."""
    _frames: list[int] = attrs.field(init=False, eq=False, repr=False)
    _points: dict[int, tuple[float, ...]] = attrs.field(init=False, eq=False, repr=False)

    @_frames.default
    def _list_frames(self) -> list[int]:
        return [frame for frame, _, _ in self.keyframes]

    @_points.default
    def _points_by_frame(self) -> dict[int, tuple[float, ...]]:
        return {frame: points for frame, _, points in self.keyframes}

    @classmethod
    def of(cls, track: models.LabeledTrackRequest) -> _SentTrack:
        shapes = sorted(track.shapes, key=lambda s: s.frame)
        return cls(
            track.label_id,
            _type(shapes[0]),
            _source(track),
            tuple(
                (s.frame, bool(getattr(s, "outside", False)), tuple(float(p) for p in s.points))
                for s in shapes
            ),
        )

    def to_journal(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "source": self.source,
            "keyframes": [
                [frame, outside, list(points)] for frame, outside, points in self.keyframes
            ],
        }

    @classmethod
    def from_journal(cls, label_id: int, data: Mapping[str, Any]) -> _SentTrack:
        return cls(
            label_id,
            data["type"],
            data["source"],
            tuple(
                (frame, bool(outside), tuple(points))
                for frame, outside, points in data["keyframes"]
            ),
        )

    @property
    def first(self) -> int:
        return self._frames[0]

    def visible_at(self, frame: int) -> bool:
        """Whether the object is seen on ``frame`` (its last keyframe up to there is not
        outside)."""
        place = bisect.bisect_right(self._frames, frame)
        return place > 0 and not self.keyframes[place - 1][1]

    def agrees(self, part: Any, closings: frozenset[int]) -> bool:
        """Whether ``part``, a track on the server, can be this track or a part of it: its
        label, source and type; seen where this track is seen, on its keyframes' points;
        outside where this track is outside, or on a frame where CVAT closes a part at a job's
        end (``closings``); and a shape on every keyframe's frame within its frames."""
        if part.label_id != self.label_id or _source(part) != self.source or not part.shapes:
            return False
        shapes = {s.frame: s for s in part.shapes}
        for frame, shape in shapes.items():
            if _type(shape) != self.type:
                return False
            if shape.outside:
                if self.visible_at(frame) and frame not in closings:
                    return False
                continue
            if not self.visible_at(frame):
                return False
            points = self._points.get(frame)
            if points is not None and not _close(points, shape.points):
                return False
        start, last = _start(part), max(shapes)
        return start is not None and all(
            frame in shapes for frame in self._frames if start <= frame <= last
        )


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

    def _new(self) -> tuple[set[AnnotationKey], models.LabeledData]:
        """What the run knows (its baseline and what it created) and what the server holds."""
        return self.journal.baseline() | self.journal.created(), self.target.get()

    def _find_applied(
        self,
        frames: Sequence[int],
        tags: Sequence[models.LabeledImageRequest],
        shapes: Sequence[models.LabeledShapeRequest],
    ) -> list[AnnotationKey] | None:
        """The (kind, id) of a piece's tags and shapes if the server has them, None if it has
        none of them (see the module's docstring)."""
        wanted = set(frames)
        known, current = self._new()
        candidates = [
            ((kind, a.id), _identity(kind, a))
            for kind, annotations in (("tag", current.tags), ("shape", current.shapes))
            for a in annotations
            if a.frame in wanted and (kind, a.id) not in known
        ]
        expected = [
            *(_identity("tag", t) for t in tags),
            *(_identity("shape", s) for s in shapes),
        ]
        found = _match(expected, candidates)
        if len(found) == len(expected):
            return found
        if not found:
            return None
        where = f"frames {min(wanted)}-{max(wanted)}"
        raise TargetChangedError(
            f"{self.target.describe()} changed while cvat-aa was uploading to it: {where} hold"
            f" {len(found)} of the {len(expected)} annotations this run was sending there, where"
            " all or none were expected (an upload arrives whole). Someone changed or removed"
            f" annotations there meanwhile. Check {where}: remove what is left of this upload"
            " and run again, or keep it and drop this run's journal with 'cvat-aa runs forget'."
        )

    def _find_applied_tracks(self, tracks: Sequence[_SentTrack]) -> list[AnnotationKey] | None:
        """The (kind, id) of a piece's tracks, every part of each, if the server has them,
        None if it has none of them (see the module's docstring)."""
        known, current = self._new()
        new = sorted(
            (
                (t.id, _start(t), t)
                for t in current.tracks
                if ("track", t.id) not in known and _start(t) is not None
            ),
            key=lambda item: item[0],
        )
        ranges = self.target.job_ranges() if new else []
        closings = frozenset(stop + 1 for _, stop in ranges[:-1])
        claimed: dict[int, None] = {}

        def claim(track: _SentTrack, start: int) -> bool:
            for track_id, candidate_start, candidate in new:
                if (
                    candidate_start == start
                    and track_id not in claimed
                    and track.agrees(candidate, closings)
                ):
                    claimed[track_id] = None
                    return True
            return False

        if not sum(claim(track, track.first) for track in tracks):
            return None
        # The other parts begin on the first frame of each job the track is seen on. Where
        # jobs overlap, CVAT shows the parts that meet in the overlap as one track.
        overlapping = any(b[0] <= a[1] for a, b in itertools.pairwise(ranges))
        cuts = [] if overlapping else [start for start, _ in ranges[1:]]
        parts = [
            (track, cut)
            for track in tracks
            for cut in cuts
            if cut > track.first and track.visible_at(cut)
        ]
        for track, cut in parts:
            claim(track, cut)
        expected = len(tracks) + len(parts)
        if len(claimed) == expected:
            return [("track", i) for i in claimed]
        raise TargetChangedError(
            f"{self.target.describe()} changed while cvat-aa was uploading tracks to it:"
            f" {len(claimed)} of the {expected} tracks this run was sending (CVAT keeps a track"
            " as one a job) are there, where all or none were expected (an upload arrives"
            " whole). Someone changed or removed tracks meanwhile. Check the tracks cvat-aa made"
            f" in {self.target.describe()} (source 'auto'): remove what is left of this upload"
            " and run again, or keep them and drop this run's journal with 'cvat-aa runs"
            " forget'."
        )

    def _lookup(self, piece: _Piece) -> list[AnnotationKey] | None:
        if piece.tracks:
            return self._find_applied_tracks([_SentTrack.of(t) for t in piece.tracks])
        return self._find_applied(piece.frames, piece.tags, piece.shapes)

    def _send(self, piece: _Piece) -> None:
        if piece.tracks:
            self.journal.tracks_sending(
                piece.number,
                [
                    (*start, _SentTrack.of(track).to_journal())
                    for start, track in zip(piece.starts, piece.tracks, strict=True)
                ],
                piece.size,
            )
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
        for number, frames, _ in self.journal.pieces_in_doubt():
            tracks = [
                _SentTrack.from_journal(label, keyframes)
                for label, keyframes in self.journal.sent_tracks(number)
            ]
            if tracks:
                found = self.retry.call(
                    lambda t=tracks: self._find_applied_tracks(t) or [],
                    what="checking an interrupted upload",
                )
                what = f"{len(tracks)} tracks"
            elif frames:
                tags, shapes = self.journal.piece_results(number)
                found = self.retry.call(
                    lambda f=frames, t=tags, s=shapes: self._find_applied(f, t, s) or [],
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
