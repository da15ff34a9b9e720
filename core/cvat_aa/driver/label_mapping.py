"""Matching a function's labels to a task's by name, and validating what the function returns.

The name matching and the protocol checks are cvat-sdk's own (its driver's mapper), so a
function behaves here exactly as under ``cvat_sdk.auto_annotation.annotate_task``. On top of
them we check what CVAT itself would reject later (point counts, non-finite coordinates,
scores and rotations out of range), so a bad function fails before anything is uploaded rather
than with a 400 from the server.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import cvat_sdk.auto_annotation as sdk_aa
from cvat_sdk import models
from cvat_sdk.auto_annotation.driver import _AnnotationMapper

from ..interface import BadFunctionError, DetectionAnnotation

__all__ = ["LabelMapper", "check_geometry"]

logger = logging.getLogger(__name__)


def _points_rule(shape_type: str, count: int) -> str | None:
    """Why ``count`` points are wrong for ``shape_type``, or None if they are right."""
    even = count % 2 == 0
    if shape_type in ("rectangle", "ellipse"):
        return None if count == 4 else "needs exactly 4 coordinates"
    if shape_type == "polygon":
        return None if count >= 6 and even else "needs an even number (at least 6) of coordinates"
    if shape_type == "polyline":
        return None if count >= 4 and even else "needs an even number (at least 4) of coordinates"
    if shape_type == "points":
        return None if count >= 2 and even else "needs an even number (at least 2) of coordinates"
    if shape_type == "cuboid":
        return None if count == 16 else "needs exactly 16 coordinates"
    if shape_type == "mask":
        return None if count >= 5 else "needs RLE runs followed by 4 bounding-box coordinates"
    if shape_type == "skeleton":
        return None if count == 0 else "has its points in its elements, not in 'points'"
    return None


def _mask_problem(points: list[float]) -> str | None:
    """Why mask points are not what cvat_sdk.masks.encode_mask makes, or None."""
    if not all(float(p).is_integer() and p >= 0 for p in points):
        return "holds values that are not non-negative whole numbers"
    *runs, x1, y1, x2, y2 = (int(p) for p in points)
    if x2 < x1 or y2 < y1:
        return f"has an empty bounding box ({x1}, {y1}, {x2}, {y2})"
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    if sum(runs) != area:
        return f"has run lengths covering {sum(runs)} pixels in a {area}-pixel bounding box"
    return None


def _check_one(shape: models.LabeledShapeRequest | models.SubLabeledShapeRequest, what: str) -> None:
    shape_type = shape.type.value
    points = list(getattr(shape, "points", []) or [])
    for value in points:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadFunctionError(f"function output {what} with a non-finite coordinate ({value!r})")
    problem = _points_rule(shape_type, len(points))
    if problem:
        raise BadFunctionError(
            f"function output {shape_type} {what} with {len(points)} coordinates; a {shape_type} {problem}"
        )
    if shape_type == "mask" and (problem := _mask_problem(points)):
        raise BadFunctionError(
            f"function output a mask that {problem}; build masks with cvat_sdk.masks.encode_mask"
        )
    rotation = getattr(shape, "rotation", None)
    if rotation is not None and not (math.isfinite(rotation) and 0 <= rotation <= 360):
        raise BadFunctionError(f"function output {what} with rotation {rotation!r} (must be 0..360)")
    score = getattr(shape, "score", None)
    if score is not None and not (math.isfinite(score) and 0 <= score <= 1):
        raise BadFunctionError(f"function output {what} with score {score!r} (must be 0..1)")


def check_geometry(shape: models.LabeledShapeRequest) -> None:
    """Raise BadFunctionError if CVAT would reject the shape's geometry."""
    _check_one(shape, "shape")
    for element in getattr(shape, "elements", None) or []:
        _check_one(element, "skeleton element")


class LabelMapper:
    """Maps a function's annotations onto a task: label ids, frame numbers and source."""

    def __init__(
        self,
        function_labels: Sequence[models.PatchedLabelRequest],
        task_labels: Sequence[models.Label],
        *,
        allow_unmatched_labels: bool,
        conv_mask_to_poly: bool,
    ) -> None:
        try:
            self._mapper = _AnnotationMapper(
                logger,
                function_labels,
                task_labels,
                allow_unmatched_labels=allow_unmatched_labels,
                conv_mask_to_poly=conv_mask_to_poly,
            )
        except sdk_aa.BadFunctionError as ex:
            raise _ours(ex) from None
        self._task_label_names = {label.id: label.name for label in task_labels}

    def label_name(self, task_label_id: int) -> str:
        return self._task_label_names.get(task_label_id, str(task_label_id))

    def map_frame(
        self, annotations: Sequence[DetectionAnnotation], frame: int
    ) -> tuple[list[models.LabeledImageRequest], list[models.LabeledShapeRequest]]:
        """Validate one frame's annotations and rewrite them for task frame ``frame``."""
        if isinstance(annotations, (str, bytes)) or not isinstance(annotations, Sequence):
            raise BadFunctionError(
                f"function returned a {type(annotations).__name__} for a frame;"
                " detect must return a list of tags and shapes"
            )
        try:
            tags, shapes = self._mapper.validate_and_remap(list(annotations), frame)
        except sdk_aa.BadFunctionError as ex:
            raise _ours(ex) from None
        except (AttributeError, TypeError, ValueError) as ex:
            # A malformed model object (e.g. a shape without a type) breaks the mapper itself.
            raise BadFunctionError(f"function output a malformed annotation: {ex}") from ex
        for shape in shapes:
            check_geometry(shape)
        return tags, shapes


def _ours(ex: sdk_aa.BadFunctionError) -> BadFunctionError:
    return ex if isinstance(ex, BadFunctionError) else BadFunctionError(str(ex))
