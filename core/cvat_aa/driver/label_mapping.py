"""Matching a function's labels to a task's by name, and validating what the function returns.

The name matching is cvat-sdk's own (its driver's mapper builds the tables) and the protocol
checks are cvat-sdk's, with its messages, so a function behaves here exactly as under
``cvat_sdk.auto_annotation.annotate_task``. On top of
them we check what CVAT itself would reject later (point counts, non-finite coordinates,
scores and rotations out of range), so a bad function fails before anything is uploaded rather
than with a 400 from the server.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

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


def _check_one(data: dict[str, Any], what: str) -> None:
    shape_type = data["type"].value
    points = data.get("points") or []
    for value in points:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadFunctionError(
                f"function output {what} with a non-finite coordinate ({value!r})"
            )
    problem = _points_rule(shape_type, len(points))
    if problem:
        raise BadFunctionError(
            f"function output {shape_type} {what} with {len(points)} coordinates; a {shape_type} {problem}"
        )
    if shape_type == "mask" and (problem := _mask_problem(points)):
        raise BadFunctionError(
            f"function output a mask that {problem}; build masks with cvat_sdk.masks.encode_mask"
        )
    rotation = data.get("rotation")
    if rotation is not None and not (math.isfinite(rotation) and 0 <= rotation <= 360):
        raise BadFunctionError(
            f"function output {what} with rotation {rotation!r} (must be 0..360)"
        )
    score = data.get("score")
    if score is not None and not (math.isfinite(score) and 0 <= score <= 1):
        raise BadFunctionError(f"function output {what} with score {score!r} (must be 0..1)")


def check_geometry(shape: models.LabeledShapeRequest) -> None:
    """Raise BadFunctionError if CVAT would reject the shape's geometry."""
    data = shape._data_store
    _check_one(data, "shape")
    for element in data.get("elements") or []:
        _check_one(element._data_store, "skeleton element")


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
            tags, shapes = self._validate_and_remap(annotations, frame)
        except (AttributeError, TypeError, ValueError, KeyError) as ex:
            # A malformed model object (e.g. a shape without a type) breaks the mapper itself.
            raise BadFunctionError(f"function output a malformed annotation: {ex}") from ex
        for shape in shapes:
            check_geometry(shape)
        return tags, shapes

    # The checks and messages below are those of cvat-sdk's mapper (validate_and_remap), applied
    # to the models' data directly: setting attributes on cvat-sdk's generated models
    # validates every value and costs about 30 us a shape, which a detector returning hundreds
    # of boxes a frame pays on every frame. The mapping tables are cvat-sdk's own.

    def _validate_and_remap(
        self, annotations: Sequence[DetectionAnnotation], frame: int
    ) -> tuple[list[models.LabeledImageRequest], list[models.LabeledShapeRequest]]:
        tags, shapes = [], []
        for annotation in annotations:
            if isinstance(annotation, models.LabeledImageRequest):
                if self._remap(annotation, frame, "tag"):
                    tags.append(annotation)
            elif isinstance(annotation, models.LabeledShapeRequest):
                if self._remap(annotation, frame, "shape"):
                    shapes.append(annotation)
            else:
                raise BadFunctionError(
                    f"function output an object of type {type(annotation).__name__!r} "
                    f"(expected {models.LabeledImageRequest.__name__!r} "
                    f"or {models.LabeledShapeRequest.__name__!r})"
                )
        return tags, shapes

    @staticmethod
    def _compatible(source_type: str, destination_type: str) -> bool:
        return destination_type == "any" or destination_type == source_type

    def _remap(self, annotation: DetectionAnnotation, frame: int, object_type: str) -> bool:
        data = annotation._data_store
        if "id" in data:
            raise BadFunctionError(f"function output {object_type} with preset id")
        if "source" in data:
            raise BadFunctionError(f"function output {object_type} with preset source")
        data["source"] = "auto"
        if data["frame"] != 0:
            raise BadFunctionError(
                f"function output {object_type} with unexpected frame number ({data['frame']})"
            )
        data["frame"] = frame
        try:
            mapping = self._mapper._spec_id_mapping[data["label_id"]]
        except KeyError:
            raise BadFunctionError(
                f"function output {object_type} with unknown label ID ({data['label_id']})"
            ) from None
        if not mapping:
            return False
        data["label_id"] = mapping.id
        self._remap_attributes(data, mapping)
        if object_type == "tag":
            if not self._compatible("tag", mapping.expected_type):
                raise BadFunctionError(
                    f"function output tag (expected shape of type {mapping.expected_type!r})"
                )
            return True
        shape_type = data["type"].value
        if not self._compatible(shape_type, mapping.expected_type):
            raise BadFunctionError(
                f"function output shape of type {shape_type!r} (expected {mapping.expected_type!r})"
            )
        if shape_type == "mask" and self._mapper._conv_mask_to_poly:
            raise BadFunctionError("function output mask shape despite conv_mask_to_poly=True")
        if shape_type == "skeleton":
            elements = data.get("elements", [])
            seen: set[int] = set()
            elements[:] = [e for e in elements if self._remap_element(e, frame, mapping, seen)]
            if len(elements) != mapping.expected_num_elements:
                raise BadFunctionError(
                    "function output skeleton with fewer elements than expected"
                    f" ({len(elements)} vs {mapping.expected_num_elements})"
                )
        elif data.get("elements"):
            raise BadFunctionError("function output non-skeleton shape with elements")
        return True

    def _remap_element(
        self, element: models.SubLabeledShapeRequest, frame: int, mapping: Any, seen: set[int]
    ) -> bool:
        data = element._data_store
        if "id" in data:
            raise BadFunctionError("function output shape element with preset id")
        if "source" in data:
            raise BadFunctionError("function output shape element with preset source")
        data["source"] = "auto"
        if data["frame"] != 0:
            raise BadFunctionError(
                f"function output shape element with unexpected frame number ({data['frame']})"
            )
        data["frame"] = frame
        if data["type"].value != "points":
            raise BadFunctionError(
                "function output skeleton with element type other than 'points'"
                f" ({data['type'].value})"
            )
        try:
            sublabel = mapping.sublabels[data["label_id"]]
        except KeyError:
            raise BadFunctionError(
                f"function output shape with unknown sublabel ID ({data['label_id']})"
            ) from None
        if not sublabel:
            return False
        if sublabel.id in seen:
            raise BadFunctionError(
                "function output skeleton with multiple elements with same sublabel"
            )
        data["label_id"] = sublabel.id
        seen.add(sublabel.id)
        self._remap_attributes(data, sublabel)
        return True

    @staticmethod
    def _remap_attributes(data: dict[str, Any], mapping: Any) -> None:
        attributes = data.get("attributes")
        if not attributes:
            return
        seen: set[int] = set()
        kept = []
        for attribute in attributes:
            values = attribute._data_store
            try:
                target = mapping.attributes[values["spec_id"]]
            except KeyError:
                raise BadFunctionError(
                    f"function output attribute with unknown ID ({values['spec_id']})"
                ) from None
            if not target:
                continue
            if target.id in seen:
                raise BadFunctionError(
                    "function output shape with multiple attributes with same ID"
                )
            if not target.value_validator(values["value"]):
                raise BadFunctionError(
                    f"function output attribute value ({values['value']!r})"
                    f" that is unsuitable for its attribute ({values['spec_id']})"
                )
            values["spec_id"] = target.id
            seen.add(target.id)
            kept.append(attribute)
        attributes[:] = kept


def _ours(ex: sdk_aa.BadFunctionError) -> BadFunctionError:
    return ex if isinstance(ex, BadFunctionError) else BadFunctionError(str(ex))
