"""Fitting a function's shapes into the frame they were found on.

CVAT's server stores any coordinates, but its editor keeps what a user draws inside the frame,
and its exporters (like cvat-sdk's ``decode_mask``) fail on a mask that does not fit. A model
often returns boxes a little past the edge, or, when its output was not scaled back to the
image, shapes far outside it. So every shape is checked against the size of the image the
function was given, and the policy is that of CVAT's editor:

* an unrotated rectangle is clipped to the frame; polygons and polylines are clipped at the
  frame's edges (Sutherland-Hodgman, as the editor clips them);
* the points of a ``points`` shape that lie outside the frame are left out; a skeleton keeps
  every keypoint (CVAT expects all of them), so one outside the frame is moved to its edge and
  marked ``outside``;
* rotated rectangles, ellipses and cuboids are kept as they are unless they lie entirely
  outside: clipping would change their shape;
* a shape left with no area (a polyline: no length; a mask: no pixels), or one entirely outside
  the frame, is dropped, with a debug message;
* a rectangle with ``x2 < x1`` or ``y2 < y1``, an ellipse with a negative radius and a mask
  whose bounding box does not fit in the frame break the protocol: :class:`BadFunctionError`.

A shape that lies inside the frame is never changed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

from cvat_sdk import models

from ..interface import BadFunctionError
from ..sdk_private import fields

__all__ = ["fit_to_frame"]

_Point = tuple[float, float]
_OUTSIDE = "lies outside the frame"


def _inside(x: float, y: float, width: int, height: int) -> bool:
    return 0 <= x <= width and 0 <= y <= height


def _pairs(points: list[float]) -> list[_Point]:
    return list(zip(points[0::2], points[1::2], strict=True))


def _flat(pairs: list[_Point]) -> list[float]:
    return [float(c) for pair in pairs for c in pair]


def _all_inside(points: list[float], width: int, height: int) -> bool:
    xs, ys = points[0::2], points[1::2]
    return min(xs) >= 0 and min(ys) >= 0 and max(xs) <= width and max(ys) <= height


def _area(pairs: list[_Point]) -> float:
    return (
        abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pairs, pairs[1:] + pairs[:1]))) / 2
    )


def _length(pairs: list[_Point]) -> float:
    return sum(math.dist(a, b) for a, b in itertools.pairwise(pairs))


# The frame's four edges for Sutherland-Hodgman: which side is inside, and where a segment
# from a to b crosses the edge.
def _edges(width: int, height: int) -> list[tuple[Callable[[_Point], bool], Callable[..., _Point]]]:
    def at_x(x: float) -> Callable[[_Point, _Point], _Point]:
        return lambda a, b: (x, a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0]))

    def at_y(y: float) -> Callable[[_Point, _Point], _Point]:
        return lambda a, b: (a[0] + (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]), y)

    return [
        (lambda p: p[0] >= 0, at_x(0)),
        (lambda p: p[0] <= width, at_x(width)),
        (lambda p: p[1] >= 0, at_y(0)),
        (lambda p: p[1] <= height, at_y(height)),
    ]


def _clip(pairs: list[_Point], width: int, height: int, *, closed: bool) -> list[_Point]:
    """The part of a polygon (``closed``) or polyline inside the frame."""
    for inside, crossing in _edges(width, height):
        if not pairs:
            break
        clipped: list[_Point] = []
        previous = pairs[-1] if closed else None
        for point in pairs:
            if previous is not None and inside(point) != inside(previous):
                clipped.append(crossing(previous, point))
            if inside(point):
                clipped.append(point)
            previous = point
        pairs = clipped
    # Clipping leaves repeated points where a vertex lay on an edge.
    unique = [p for i, p in enumerate(pairs) if i == 0 or p != pairs[i - 1]]
    if closed and len(unique) > 1 and unique[0] == unique[-1]:
        unique.pop()
    return unique


def _rectangle(data: dict[str, Any], width: int, height: int) -> str | None:
    x1, y1, x2, y2 = data["points"]
    if x2 < x1 or y2 < y1:
        raise BadFunctionError(
            f"function output a rectangle with x2 < x1 or y2 < y1 ({x1}, {y1}, {x2}, {y2});"
            " give a rectangle's points as [x1, y1, x2, y2], its top left then its bottom right"
        )
    if x1 == x2 or y1 == y2:
        return "has no area"
    rotation = data.get("rotation") or 0
    if rotation % 360:
        return _rotated_rectangle(data["points"], rotation, width, height)
    if _all_inside(data["points"], width, height):
        return None
    clipped = [
        float(min(max(x1, 0), width)),
        float(min(max(y1, 0), height)),
        float(min(max(x2, 0), width)),
        float(min(max(y2, 0), height)),
    ]
    if clipped[0] == clipped[2] or clipped[1] == clipped[3]:
        return _OUTSIDE
    data["points"] = clipped
    return None


def _rotated_rectangle(points: list[float], rotation: float, width: int, height: int) -> str | None:
    x1, y1, x2, y2 = points
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    # CVAT turns rectangles clockwise about their centre; y grows downwards.
    cos, sin = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    corners = [
        (cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos)
        for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))
    ]
    return None if _area(_clip(corners, width, height, closed=True)) > 0 else _OUTSIDE


def _ellipse(data: dict[str, Any], width: int, height: int) -> str | None:
    cx, cy, right, top = data["points"]
    if right < cx or top > cy:
        raise BadFunctionError(
            f"function output an ellipse with a negative radius ({cx}, {cy}, {right}, {top});"
            " give an ellipse's points as [cx, cy, cx + rx, cy - ry]"
        )
    if right == cx or top == cy:
        return "has no area"
    rx, ry = right - cx, cy - top
    if cx + rx <= 0 or cy + ry <= 0 or cx - rx >= width or cy - ry >= height:
        return _OUTSIDE
    return None


def _polygon(data: dict[str, Any], width: int, height: int) -> str | None:
    points = data["points"]
    if _all_inside(points, width, height):
        return None if _area(_pairs(points)) > 0 else "has no area"
    clipped = _clip(_pairs(points), width, height, closed=True)
    if len(clipped) < 3 or _area(clipped) == 0:
        return _OUTSIDE
    data["points"] = _flat(clipped)
    return None


def _polyline(data: dict[str, Any], width: int, height: int) -> str | None:
    points = data["points"]
    if _all_inside(points, width, height):
        return None if _length(_pairs(points)) > 0 else "has no length"
    clipped = _clip(_pairs(points), width, height, closed=False)
    if len(clipped) < 2 or _length(clipped) == 0:
        return _OUTSIDE
    data["points"] = _flat(clipped)
    return None


def _points(data: dict[str, Any], width: int, height: int) -> str | None:
    points = data["points"]
    if _all_inside(points, width, height):
        return None
    kept = [(x, y) for x, y in _pairs(points) if _inside(x, y, width, height)]
    if not kept:
        return _OUTSIDE
    data["points"] = _flat(kept)
    return None


def _cuboid(data: dict[str, Any], width: int, height: int) -> str | None:
    xs, ys = data["points"][0::2], data["points"][1::2]
    if max(xs) <= 0 or max(ys) <= 0 or min(xs) >= width or min(ys) >= height:
        return _OUTSIDE
    return None


def _mask(data: dict[str, Any], width: int, height: int) -> str | None:
    *runs, x1, y1, x2, y2 = (int(p) for p in data["points"])
    # cvat_sdk.masks.decode_mask's rule: the inclusive box must lie within the frame.
    if x2 >= width or y2 >= height:
        raise BadFunctionError(
            f"function output a mask whose bounding box ({x1}, {y1}, {x2}, {y2}) does not fit"
            f" in the {width}x{height} frame; encode masks from a bitmap the size of the image"
            " with cvat_sdk.masks.encode_mask"
        )
    # Runs alternate background and foreground, starting with background.
    return None if any(runs[1::2]) else "has no pixels"


def _skeleton(data: dict[str, Any], width: int, height: int) -> str | None:
    elements = [fields(e) for e in data.get("elements") or []]
    outside = [
        not any(_inside(x, y, width, height) for x, y in _pairs(e["points"])) for e in elements
    ]
    if elements and all(outside):
        return _OUTSIDE
    for element, is_outside in zip(elements, outside, strict=True):
        if is_outside:
            element["points"] = [
                float(min(max(c, 0), width if i % 2 == 0 else height))
                for i, c in enumerate(element["points"])
            ]
            element["outside"] = True
    return None


_FITTERS: dict[str, Callable[[dict[str, Any], int, int], str | None]] = {
    "rectangle": _rectangle,
    "ellipse": _ellipse,
    "polygon": _polygon,
    "polyline": _polyline,
    "points": _points,
    "cuboid": _cuboid,
    "mask": _mask,
    "skeleton": _skeleton,
}


def fit_to_frame(shape: models.LabeledShapeRequest, width: int, height: int) -> str | None:
    """Clip ``shape`` (in place) to a ``width`` x ``height`` frame; why to drop it, or None.

    The shape's geometry must have been checked (point counts, finite coordinates, mask
    encoding) before. Raises :class:`BadFunctionError` for inverted rectangles, ellipses with
    a negative radius and masks that do not fit in the frame.
    """
    data = fields(shape)
    fitter = _FITTERS.get(data["type"].value)
    return fitter(data, width, height) if fitter is not None else None
