"""Boxes of shapes, for the tracker, and the keyframes CVAT needs to show a moving box.

The trackers follow axis-aligned boxes. A rectangle is followed by its own box (a rotated one by
its box before rotation: the rotation stays on its keyframes), an ellipse by the box around it,
a polygon by the box of its points and a skeleton by the box of its visible points.

``--keyframes motion`` keeps the fewest keyframes of a rectangle or ellipse track such that what
CVAT shows between them is within a tolerance of every detection. CVAT (``TrackManager`` in
``cvat/apps/dataset_manager/annotation.py``) interpolates these two shape types linearly: each
point coordinate in proportion to the frame, and the rotation along the shorter arc. The
keyframes are chosen as Ramer-Douglas-Peucker chooses the points of a line: keep the first and
last, and the detection farthest from the interpolation between them while it is farther than
the tolerance, recursively. The distance is that of the box's corners (rotated), so that a
tolerance in pixels also bounds the error that a rotation makes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

__all__ = ["THINNED_TYPES", "TRACKED_TYPES", "box_of", "motion_keyframes"]

TRACKED_TYPES = ("rectangle", "ellipse", "polygon", "skeleton")
"""The shape types this plugin makes tracks of.

Not masks: CVAT's server cannot interpolate a mask track (``TrackManager.get_interpolated_shapes``
raises ``NotImplementedError`` for one), so its export would fail. Polylines, points and
cuboids are rarely what a detector outputs for objects that move; they stay shapes.
"""

THINNED_TYPES = ("rectangle", "ellipse")
"""The types CVAT interpolates linearly, whose keyframes ``motion`` thins."""

# A box must have an area for IoU to match it to anything: a skeleton with one visible point has
# none, so boxes are widened to at least this many pixels.
_MIN_SIDE = 1.0


def box_of(shape_type: str, points: Sequence[float]) -> tuple[float, float, float, float]:
    """The axis-aligned box (x1, y1, x2, y2) the tracker follows."""
    if shape_type == "ellipse":
        cx, cy, right, top = points[:4]
        rx, ry = abs(right - cx), abs(cy - top)
        x1, y1, x2, y2 = cx - rx, cy - ry, cx + rx, cy + ry
    else:
        xs, ys = points[0::2], points[1::2]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    if x2 - x1 < _MIN_SIDE:
        middle = (x1 + x2) / 2
        x1, x2 = middle - _MIN_SIDE / 2, middle + _MIN_SIDE / 2
    if y2 - y1 < _MIN_SIDE:
        middle = (y1 + y2) / 2
        y1, y2 = middle - _MIN_SIDE / 2, middle + _MIN_SIDE / 2
    return (float(x1), float(y1), float(x2), float(y2))


def _angle_difference(right: np.ndarray, left: np.ndarray) -> np.ndarray:
    """CVAT's ``find_angle_diff``: the signed shorter arc from ``left`` to ``right``, degrees."""
    difference = ((right - left + 180) % 360) - 180
    # CVAT's rule for an exact half turn, kept so that the same keyframes are kept.
    return np.where(np.abs(difference) >= 180, 1.0, difference)


def _corners(shape_type: str, points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """The corners (n, 4, 2) of the boxes of ``n`` rectangles or ellipses, rotated as CVAT
    draws them (about the centre)."""
    if shape_type == "ellipse":
        cx, cy = points[:, 0], points[:, 1]
        rx, ry = np.abs(points[:, 2] - cx), np.abs(cy - points[:, 3])
        x1, y1, x2, y2 = cx - rx, cy - ry, cx + rx, cy + ry
    else:
        x1, y1, x2, y2 = points[:, 0], points[:, 1], points[:, 2], points[:, 3]
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    xs = np.stack([x1, x2, x2, x1], axis=1) - centre_x[:, None]
    ys = np.stack([y1, y1, y2, y2], axis=1) - centre_y[:, None]
    angle = np.radians(rotation)[:, None]
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack(
        [centre_x[:, None] + xs * cos - ys * sin, centre_y[:, None] + xs * sin + ys * cos], axis=2
    )


def _worst(
    shape_type: str,
    frames: np.ndarray,
    points: np.ndarray,
    rotations: np.ndarray,
    corners: np.ndarray,
    first: int,
    last: int,
) -> tuple[int, float]:
    """The detection between ``first`` and ``last`` (indices) that CVAT's interpolation between
    those two misses most, and by how much (pixels)."""
    inner = np.arange(first + 1, last)
    offset = (frames[inner] - frames[first]) / (frames[last] - frames[first])
    between = points[first] + (points[last] - points[first]) * offset[:, None]
    turn = _angle_difference(rotations[last], rotations[first])
    rotation = (rotations[first] + turn * offset + 360) % 360
    errors = np.abs(_corners(shape_type, between, rotation) - corners[inner]).max(axis=(1, 2))
    worst = int(np.argmax(errors))
    return int(inner[worst]), float(errors[worst])


def motion_keyframes(
    shape_type: str,
    frames: Sequence[int],
    points: Sequence[Sequence[float]],
    rotations: Sequence[float],
    *,
    tolerance: float,
    required: Sequence[int] = (),
) -> list[int]:
    """The indices of the detections to keep as keyframes of a rectangle or ellipse track.

    ``frames`` are the detections' frames, increasing. The first and last detection and those
    in ``required`` (where something interpolation cannot carry changes, an attribute, say)
    are always kept.
    """
    count = len(frames)
    if count <= 2:
        return list(range(count))
    frame_array = np.asarray(frames, dtype=float)
    point_array = np.asarray(points, dtype=float)
    rotation_array = np.asarray(rotations, dtype=float)
    corners = _corners(shape_type, point_array, rotation_array)
    kept = {0, count - 1, *required}
    anchors = sorted(kept)
    # Each stretch between two kept detections is split at its worst one until none is off.
    stack = list(itertools.pairwise(anchors))
    while stack:
        first, last = stack.pop()
        if last - first < 2:
            continue
        worst, error = _worst(
            shape_type, frame_array, point_array, rotation_array, corners, first, last
        )
        if error > tolerance:
            kept.add(worst)
            stack.extend([(first, worst), (worst, last)])
    return sorted(kept)
