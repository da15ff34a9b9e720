"""A track's shapes on the frames where CVAT shows it, computed as CVAT computes them.

CVAT keeps a track as keyframes and computes the frames between them when it shows or
exports the track (``TrackManager.get_interpolated_shapes`` in
``cvat/apps/dataset_manager/annotation.py``). Formats without tracks (COCO) get a shape on
every frame where the track is visible, so a file must hold those computed shapes, the way
CVAT's own exporters write them. The rules followed here are CVAT's:

* A track is visible from a keyframe that is not ``outside`` up to its next keyframe (not
  included); after its last keyframe, if that one is not ``outside``, on every later frame.
  A keyframe that is ``outside`` is not shown.
* Between two keyframes, a frame's shape is the first keyframe's (occluded, z_order, its
  attributes) with the geometry interpolated towards the second, which may be ``outside``:
  rectangles, ellipses and cuboids linearly, their rotation along the shorter arc; a single
  point linearly. After the last keyframe, the shape is the last keyframe's, unchanged.
* A keyframe keeps the attribute values of the keyframes before it that it does not set
  itself, and every shape carries the track's attributes too.
* A skeleton's points are tracks of their own, interpolated as points; the skeleton is shown
  where one of its points is not ``outside``.

Where CVAT does something this module does not: CVAT moves the points of polygons and
polylines by resampling them along their outline; here they move point by point when both
keyframes have as many points, and otherwise stay as the first keyframe (which is also what
CVAT does for ``points`` shapes of several points). CVAT has no interpolation for masks (it
cannot export mask tracks); here a mask stays as its keyframe until the next one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs
from cvat_sdk import models

__all__ = ["FrameShape", "track_shapes"]

_LINEAR = {"rectangle", "ellipse", "cuboid", "skeleton"}


@attrs.frozen
class FrameShape:
    """A track's shape on one frame."""

    shape: models.LabeledShapeRequest
    """With the track's label, group, source and attributes, on the frame."""
    keyframe: bool
    """Whether the track has a keyframe on this frame (else the shape was computed)."""


def _type(shape: Any) -> str:
    return str(getattr(shape.type, "value", shape.type))


def _angle_between(start: float, end: float) -> float:
    """The turn from ``start`` to ``end`` degrees along the shorter arc, in [-180, 180)."""
    return (end - start + 180) % 360 - 180


def _points(start: Any, end: Any, offset: float) -> list[float]:
    before = [float(p) for p in start.points]
    after = [float(p) for p in end.points]
    shape_type = _type(start)
    moves = shape_type in _LINEAR or (
        shape_type in ("polygon", "polyline", "points")
        and len(before) == len(after)
        and (shape_type != "points" or len(before) == 2)
    )
    if not moves or _type(end) != shape_type:
        return before
    return [a + (b - a) * offset for a, b in zip(before, after, strict=True)]


def _attributes(keyframes: Sequence[Any]) -> list[list[models.AttributeValRequest]]:
    """Each keyframe's attribute values, with those of earlier keyframes it does not set."""
    values: dict[int, models.AttributeValRequest] = {}
    result = []
    for keyframe in keyframes:
        values.update({v.spec_id: v for v in getattr(keyframe, "attributes", None) or []})
        result.append(list(values.values()))
    return result


@attrs.frozen
class _Keyed:
    """A track (or a skeleton point's track) ready to be read frame by frame."""

    keyframes: Sequence[Any]
    attributes: Sequence[Sequence[models.AttributeValRequest]]

    @classmethod
    def of(cls, track: Any) -> _Keyed:
        keyframes = sorted(track.shapes, key=lambda s: s.frame)
        return cls(keyframes, _attributes(keyframes))

    def at(self, frame: int, start: int = 0) -> tuple[int, dict[str, Any] | None]:
        """The index of the last keyframe at or before ``frame`` (searching from ``start``),
        and the shape's fields on ``frame`` (None where the track is not visible)."""
        keys = self.keyframes
        index = start
        while index + 1 < len(keys) and keys[index + 1].frame <= frame:
            index += 1
        if not keys or keys[index].frame > frame:
            return index, None
        key = keys[index]
        fields: dict[str, Any] = {
            "type": _type(key),
            "frame": frame,
            "points": [float(p) for p in key.points],
            "rotation": float(getattr(key, "rotation", None) or 0),
            "occluded": bool(getattr(key, "occluded", False)),
            "outside": bool(getattr(key, "outside", False)),
            "z_order": int(getattr(key, "z_order", None) or 0),
            "attributes": list(self.attributes[index]),
            "keyframe": key.frame == frame,
        }
        if frame != key.frame and index + 1 < len(keys) and not fields["outside"]:
            following = keys[index + 1]
            offset = (frame - key.frame) / (following.frame - key.frame)
            fields["points"] = _points(key, following, offset)
            turn = _angle_between(fields["rotation"], float(getattr(following, "rotation", 0) or 0))
            fields["rotation"] = (fields["rotation"] + turn * offset + 360) % 360
        return index, fields


def track_shapes(track: models.LabeledTrackRequest, frames: Iterable[int]) -> Iterator[FrameShape]:
    """The shapes of ``track`` on those of ``frames`` (increasing frame numbers) where CVAT
    shows it (see the module's docstring)."""
    keyed = _Keyed.of(track)
    elements = [
        (element.label_id, list(getattr(element, "attributes", None) or []), _Keyed.of(element))
        for element in getattr(track, "elements", None) or ()
    ]
    common = {
        "group": int(getattr(track, "group", None) or 0),
        "source": str(getattr(track, "source", None) or "auto"),
    }
    track_attributes = list(getattr(track, "attributes", None) or [])
    index = 0
    element_indexes = [0] * len(elements)
    last = keyed.keyframes[-1]
    for frame in frames:
        if frame > last.frame and getattr(last, "outside", False):
            break
        index, fields = keyed.at(frame, index)
        if fields is None or fields["outside"]:
            continue
        keyframe = fields.pop("keyframe")
        if elements:
            # As CVAT exports a skeleton: a keyframe where one of its points has one.
            points, keyframe = [], False
            for number, (label_id, attributes, element) in enumerate(elements):
                element_indexes[number], point = element.at(frame, element_indexes[number])
                if point is not None:
                    keyframe = point.pop("keyframe") or keyframe
                    point["attributes"] += attributes
                    points.append(
                        models.SubLabeledShapeRequest(**common, **point, label_id=label_id)
                    )
            if all(p.outside for p in points):
                continue
            fields["elements"] = points
        fields["attributes"] += track_attributes
        yield FrameShape(
            models.LabeledShapeRequest(**common, **fields, label_id=track.label_id), keyframe
        )
