"""The result stage: detections in, frame by frame; CVAT tracks out, each as soon as it ends.

Each label (and shape type: a CVAT track has one of each) has its own tracker, so objects of
different labels never take each other's tracks. Every frame given is one ``update`` of every
tracker there is, with that frame's detections of its label (none, if there are none), so that
the trackers count missed frames the same way whatever the batches.

What a track holds, as CVAT shows it:

* a keyframe on each frame its object was detected on (with ``--keyframes motion``, only on
  those that CVAT's interpolation needs; see :mod:`.geometry`), each with the detection's own
  points, rotation, z order and mutable attributes; the detection's immutable attributes go on
  the track, from its first detection;
* no keyframe on a frame the object was missed on while the tracker still looked for it:
  CVAT interpolates across;
* after its last detection, an ``outside`` keyframe (a copy of the last one) on the first
  frame given after it, once the tracker has given the object up; a track still followed when
  the frames end gets it on the frame after the last one given, unless that was the last frame
  there is (``StageRun.stop_frame``; when that is not known, the last frame given is taken
  for it).

A track whose object was detected on fewer than ``--track-min-length`` frames is left out.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from cvat_aa.labels import LabelCatalog, LabelInfo
from cvat_aa.result_stages import FrameResult, StageOutput, StageRun, StageTrack
from cvat_sdk import models

from .follow import Follower, make_tracker
from .geometry import THINNED_TYPES, TRACKED_TYPES, box_of, motion_keyframes
from .options import TrackOptions

__all__ = ["TrackStage"]

logger = logging.getLogger(__name__)


def _text(value: Any) -> str:
    """A model enum's text (``ShapeType("rectangle")`` is "rectangle")."""
    return str(getattr(value, "value", value))


def _followed_points(shape: models.LabeledShapeRequest) -> list[float]:
    """The points whose box the tracker follows. A skeleton's are those of all its elements,
    hidden ones too: functions give every keypoint a place (cvat-sdk's mapper lets no element
    be left out), and a box that shrinks whenever a keypoint is hidden would lose the object."""
    if _text(shape.type) != "skeleton":
        return list(shape.points)
    return [p for element in getattr(shape, "elements", None) or () for p in element.points]


def _mutable(label: LabelInfo | None, spec_id: int) -> bool:
    """Whether an attribute may change along a track (one the label does not know may)."""
    info = label.attribute(spec_id) if label is not None else None
    return info is None or info.mutable


def _split_attributes(
    label: LabelInfo | None, attributes: Sequence[models.AttributeValRequest]
) -> tuple[list[models.AttributeValRequest], list[models.AttributeValRequest]]:
    """(immutable, mutable), as copies: CVAT keeps a track's immutable attributes on the track
    and its mutable ones on the keyframes."""
    immutable, mutable = [], []
    for attribute in attributes:
        copy = models.AttributeValRequest(spec_id=attribute.spec_id, value=attribute.value)
        (mutable if _mutable(label, attribute.spec_id) else immutable).append(copy)
    return immutable, mutable


def _carried(label: LabelInfo | None, shape: Any) -> tuple[Any, ...]:
    """What a keyframe carries that CVAT's interpolation copies rather than interpolates."""
    attributes = getattr(shape, "attributes", None) or ()
    return (
        getattr(shape, "z_order", 0) or 0,
        sorted((a.spec_id, a.value) for a in attributes if _mutable(label, a.spec_id)),
    )


@attrs.define
class _Sighting:
    frame: int
    shape: models.LabeledShapeRequest


@attrs.define
class _FollowedObject:
    """One object's detections so far."""

    label_id: int
    shape_type: str
    number: int
    sightings: list[_Sighting] = attrs.Factory(list)
    missed_from: int | None = None
    """The first frame given after the last sighting (the object was not detected on it)."""

    @property
    def key(self) -> str:
        return f"{self.label_id}:{self.number}"


class TrackStage:
    """A :class:`~cvat_aa.result_stages.ResultStage` that makes CVAT tracks (see the module)."""

    def __init__(self, run: StageRun, options: TrackOptions) -> None:
        self._labels: LabelCatalog = run.labels
        self._stop_frame = run.stop_frame
        self._options = options
        self._followers: dict[tuple[int, str], Follower] = {}
        self._numbers: dict[int, itertools.count[int]] = {}
        self._objects: dict[tuple[int, int], _FollowedObject] = {}
        self._last_frame: int | None = None

    def add(self, frames: Sequence[FrameResult]) -> StageOutput:
        results, tracks = [], []
        for frame in frames:
            result, ended = self._add_frame(frame)
            results.append(result)
            tracks.extend(ended)
        return StageOutput(frames=results, tracks=tracks)

    def finish(self) -> Sequence[StageTrack]:
        last = self._last_frame
        # The frame after the last one given, where tracks still followed end; None when that
        # was the last frame there is (CVAT shows nothing after it anyway).
        after = None
        if last is not None and self._stop_frame is not None and last < self._stop_frame:
            after = last + 1
        tracks = []
        for key in sorted(self._objects):
            followed = self._objects[key]
            outside = followed.missed_from if followed.missed_from is not None else after
            if (track := self._track(followed, outside)) is not None:
                tracks.append(track)
        self._objects.clear()
        return tracks

    def _number(self, label_id: int) -> int:
        return next(self._numbers.setdefault(label_id, itertools.count(1)))

    def _follower(self, label_id: int, shape_type: str) -> Follower:
        key = (label_id, shape_type)
        if key not in self._followers:
            tracker = make_tracker(
                self._options.tracker,
                activation=self._options.activation,
                iou=self._options.iou,
                lost_frames=self._options.lost_frames,
            )
            self._followers[key] = Follower(tracker, lambda: self._number(label_id))
        return self._followers[key]

    def _add_frame(self, frame: FrameResult) -> tuple[FrameResult, list[StageTrack]]:
        if self._last_frame is not None and frame.frame <= self._last_frame:
            raise ValueError(
                f"frame {frame.frame} came after frame {self._last_frame}: a result stage takes"
                " each frame once, in increasing order"
            )
        self._last_frame = frame.frame

        untracked: list[models.LabeledShapeRequest] = []
        tracked: dict[tuple[int, str], list[tuple[int, tuple[float, ...], float]]] = {}
        for index, shape in enumerate(frame.shapes):
            shape_type = _text(shape.type)
            if shape_type not in TRACKED_TYPES:
                untracked.append(shape)
                continue
            box = box_of(shape_type, _followed_points(shape))
            # cvat-sdk's models have no confidence but an optional score: without one, a
            # detection counts as certain.
            score = getattr(shape, "score", None)
            confidence = 1.0 if score is None else float(score)
            tracked.setdefault((shape.label_id, shape_type), []).append((index, box, confidence))

        shown: list[tuple[int, str, models.LabeledShapeRequest]] = []
        ended: list[StageTrack] = []
        for key in sorted(self._followers.keys() | tracked.keys()):
            label_id, shape_type = key
            detections = tracked.get(key, [])
            boxes = np.array([box for _, box, _ in detections], dtype=float).reshape(-1, 4)
            confidences = np.array([confidence for _, _, confidence in detections], dtype=float)
            follower = self._follower(label_id, shape_type)
            numbers, gone = follower.update(boxes, confidences)
            seen = set()
            for (index, _, _), number in zip(detections, numbers, strict=True):
                if number is None:
                    continue
                shape = frame.shapes[index]
                followed = self._objects.setdefault(
                    (label_id, number), _FollowedObject(label_id, shape_type, number)
                )
                followed.sightings.append(_Sighting(frame.frame, shape))
                followed.missed_from = None
                seen.add(number)
                shown.append((index, f"#{number}", shape))
            for number in [*follower.alive(), *gone]:
                missed = self._objects.get((label_id, number))
                if missed is not None and number not in seen and missed.missed_from is None:
                    missed.missed_from = frame.frame
            for number in gone:
                followed = self._objects.pop((label_id, number))
                if (track := self._track(followed, followed.missed_from)) is not None:
                    ended.append(track)

        result = FrameResult(
            frame.frame,
            frame.size,
            tags=frame.tags,
            shapes=untracked,
            shown=[(caption, shape) for _, caption, shape in sorted(shown, key=_first)],
        )
        return result, ended

    def _track(self, followed: _FollowedObject, outside: int | None) -> StageTrack | None:
        """The finished track, or None if it is too short to keep."""
        sightings = followed.sightings
        if len(sightings) < self._options.min_length:
            logger.debug(
                "Left out track %s: detected on %d frames (fewer than %d)",
                followed.key,
                len(sightings),
                self._options.min_length,
            )
            return None
        label = self._labels.get(followed.label_id)
        kept = self._keyframes(followed, label)
        first = sightings[0].shape
        track_attributes, _ = _split_attributes(label, getattr(first, "attributes", None) or ())
        shapes = [_keyframe(sightings[i], label) for i in kept]
        if outside is not None:
            shapes.append(_outside_copy(shapes[-1], outside))
        track = models.LabeledTrackRequest(
            label_id=followed.label_id,
            frame=shapes[0].frame,
            shapes=shapes,
            attributes=track_attributes,
            source=getattr(first, "source", None) or "auto",
        )
        if followed.shape_type == "skeleton":
            track.elements = _element_tracks(
                [sightings[i] for i in kept], outside, label, track.source
            )
        return StageTrack(key=followed.key, track=track)

    def _keyframes(self, followed: _FollowedObject, label: LabelInfo | None) -> list[int]:
        sightings = followed.sightings
        if self._options.keyframes == "all" or followed.shape_type not in THINNED_TYPES:
            return list(range(len(sightings)))
        keys = [_carried(label, s.shape) for s in sightings]
        changed = [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]
        return motion_keyframes(
            followed.shape_type,
            [s.frame for s in sightings],
            [list(s.shape.points) for s in sightings],
            [float(getattr(s.shape, "rotation", 0) or 0) for s in sightings],
            tolerance=self._options.tolerance,
            required=changed,
        )


def _first(item: tuple[int, str, models.LabeledShapeRequest]) -> int:
    return item[0]


def _keyframe(sighting: _Sighting, label: LabelInfo | None) -> models.TrackedShapeRequest:
    shape = sighting.shape
    _, mutable = _split_attributes(label, getattr(shape, "attributes", None) or ())
    return models.TrackedShapeRequest(
        type=_text(shape.type),
        frame=sighting.frame,
        points=[] if _text(shape.type) == "skeleton" else [float(p) for p in shape.points],
        rotation=float(getattr(shape, "rotation", 0) or 0),
        z_order=getattr(shape, "z_order", 0) or 0,
        occluded=False,
        outside=False,
        attributes=mutable,
    )


def _outside_copy(shape: models.TrackedShapeRequest, frame: int) -> models.TrackedShapeRequest:
    """The keyframe that ends a track: where it was last seen, hidden from ``frame`` on."""
    return models.TrackedShapeRequest(
        type=_text(shape.type),
        frame=frame,
        points=list(shape.points),
        rotation=getattr(shape, "rotation", 0.0),
        z_order=getattr(shape, "z_order", 0),
        occluded=False,
        outside=True,
        attributes=[
            models.AttributeValRequest(spec_id=a.spec_id, value=a.value) for a in shape.attributes
        ],
    )


def _element_tracks(
    keyframes: Sequence[_Sighting],
    outside: int | None,
    label: LabelInfo | None,
    source: str,
) -> list[models.SubLabeledTrackRequest]:
    """One track per skeleton element, with a keyframe wherever the skeleton has one.

    Every skeleton has every element (cvat-sdk's mapper refuses one that lacks any). An
    element keeps its own ``outside`` and ``occluded``: a keypoint function marks hidden
    keypoints so.
    """
    by_sublabel: dict[int, list[tuple[int, Any]]] = {}
    for sighting in keyframes:
        for element in sighting.shape.elements:
            by_sublabel.setdefault(element.label_id, []).append((sighting.frame, element))
    tracks = []
    for sublabel_id, elements in by_sublabel.items():
        sublabel = label.sublabel(sublabel_id) if label is not None else None
        immutable, _ = _split_attributes(
            sublabel, getattr(elements[0][1], "attributes", None) or ()
        )
        shapes = []
        for frame, element in elements:
            _, mutable = _split_attributes(sublabel, getattr(element, "attributes", None) or ())
            shapes.append(
                models.TrackedShapeRequest(
                    type="points",
                    frame=frame,
                    points=[float(p) for p in element.points],
                    occluded=bool(getattr(element, "occluded", False)),
                    outside=bool(getattr(element, "outside", False)),
                    attributes=mutable,
                )
            )
        if outside is not None:
            shapes.append(_outside_copy(shapes[-1], outside))
        tracks.append(
            models.SubLabeledTrackRequest(
                label_id=sublabel_id,
                frame=shapes[0].frame,
                shapes=shapes,
                attributes=immutable,
                source=source,
            )
        )
    return tracks
