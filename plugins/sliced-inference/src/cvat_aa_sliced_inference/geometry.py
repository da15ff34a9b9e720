"""Shapes found on a tile, put back in the frame; and the box around any shape, for merging.

Every shape type's points are (x, y) pairs but two: a skeleton keeps its points in its
elements, and a mask's points are run lengths over its bounding box followed by that box
(``x1, y1, x2, y2``, inclusive, see ``cvat_sdk.masks``). So a mask from a cut tile keeps its
runs and only its box moves; one from the shrunk whole frame is decoded, scaled up pixel by
pixel (nearest neighbour: a mask has no grey) and encoded again. A rectangle's and an
ellipse's points map like any others, and a rotation stays what it was: the whole frame is
shrunk by almost the same factor across and down, so angles are kept.

Nothing is checked here beyond what mapping needs: cvat-aa validates the frame's results as
it validates any function's.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import PIL.Image
from cvat_aa.interface import BadFunctionError
from cvat_sdk import masks, models

from .tiles import Tile

__all__ = ["Box", "bounding_box", "shape_to_frame"]

Box = tuple[float, float, float, float]
"""``x1, y1, x2, y2`` in frame pixels."""


def _points_to_frame(points: Sequence[float], tile: Tile) -> list[float]:
    # Coordinate by coordinate, not pair by pair: an odd count stays odd, for cvat-aa's
    # validation to report as the function's.
    scale_x, scale_y = tile.scale
    return [
        tile.y + value * scale_y if i % 2 else tile.x + value * scale_x
        for i, value in enumerate(points)
    ]


def _mask_to_frame(points: Sequence[float], tile: Tile) -> list[float]:
    if len(points) < 5:
        return list(points)  # not a mask: cvat-aa's validation says so
    if not tile.shrunk:
        # The runs cover the mask's box, wherever the box is: only the box moves.
        *runs, x1, y1, x2, y2 = points
        return [*runs, x1 + tile.x, y1 + tile.y, x2 + tile.x, y2 + tile.y]
    try:
        bitmap = masks.decode_mask(points, image_width=tile.size[0], image_height=tile.size[1])
    except ValueError as ex:
        raise BadFunctionError(
            f"function output a mask that cvat_sdk.masks.decode_mask cannot read ({ex});"
            " build masks with cvat_sdk.masks.encode_mask"
        ) from ex
    *_, x1, y1, x2, y2 = (int(p) for p in points)
    scale_x, scale_y = tile.scale
    left, top = math.floor(x1 * scale_x), math.floor(y1 * scale_y)
    right = min(tile.width, math.ceil((x2 + 1) * scale_x))
    bottom = min(tile.height, math.ceil((y2 + 1) * scale_y))
    crop = PIL.Image.fromarray(bitmap[y1 : y2 + 1, x1 : x2 + 1])
    scaled = np.asarray(crop.resize((right - left, bottom - top), PIL.Image.Resampling.NEAREST))
    *runs, sx1, sy1, sx2, sy2 = masks.encode_mask(scaled.astype(bool))
    return [*runs, sx1 + left, sy1 + top, sx2 + left, sy2 + top]


def shape_to_frame(shape: models.LabeledShapeRequest, tile: Tile) -> models.LabeledShapeRequest:
    """A copy of ``shape`` (found on ``tile``) in the frame's coordinates; all else as it was."""
    # A copy: a function may hand out the same objects again (a cache, a constant result).
    mapped = copy.deepcopy(shape)
    if shape.type.value == "mask":
        mapped.points = _mask_to_frame(shape.points, tile)
    elif shape.type.value == "skeleton":
        for element in getattr(mapped, "elements", None) or ():
            element.points = _points_to_frame(element.points, tile)
    else:
        mapped.points = _points_to_frame(shape.points, tile)
    return mapped


def _rotated_corners(points: Sequence[float], rotation: float) -> list[float]:
    x1, y1, x2, y2 = points
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    # CVAT turns rectangles clockwise about their centre; y grows downwards.
    cos, sin = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    corners: list[float] = []
    for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2)):
        corners.extend((cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos))
    return corners


def bounding_box(shape: models.LabeledShapeRequest) -> Box:
    """The box around ``shape`` (in its own coordinates): what shapes are merged by."""
    shape_type = shape.type.value
    points = list(getattr(shape, "points", None) or ())
    if shape_type == "mask" and len(points) >= 5:
        x1, y1, x2, y2 = points[-4:]
        # The mask's box is inclusive: its last column and row are inside it.
        return x1, y1, x2 + 1, y2 + 1
    if shape_type == "ellipse" and len(points) == 4:
        cx, cy, right, top = points
        rx, ry = right - cx, cy - top
        return cx - rx, cy - ry, cx + rx, cy + ry
    if (
        shape_type == "rectangle"
        and len(points) == 4
        and (getattr(shape, "rotation", None) or 0) % 360
    ):
        points = _rotated_corners(points, shape.rotation)
    elif shape_type == "skeleton":
        # Every keypoint, hidden ones too: the object's extent does not change when one is.
        points = [p for e in getattr(shape, "elements", None) or () for p in e.points]
    xs, ys = points[0::2], points[1::2]
    if not xs or not ys:
        return 0.0, 0.0, 0.0, 0.0  # matches nothing; cvat-aa's validation judges the shape
    return min(xs), min(ys), max(xs), max(ys)
