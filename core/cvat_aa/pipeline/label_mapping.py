"""Matching a function's labels to a task's by name, and validating what the function returns.

The name matching is cvat-sdk's own (its driver's mapper builds the tables) and the protocol
checks are cvat-sdk's, with its messages, so a function behaves here exactly as under
``cvat_sdk.auto_annotation.annotate_task``. On top of
them we check what CVAT itself would reject later (point counts, non-finite coordinates,
scores and rotations out of range), so a bad function fails before anything is uploaded rather
than with a 400 from the server, and fit every shape into its frame (see ``frame_bounds``).

A :class:`LabelMap` puts a function's labels (and their sublabels and attributes) on task
labels of other names, as CVAT's own dialog for running a model does; it becomes the name
mapping that cvat-sdk's mapper takes, so matching stays cvat-sdk's. This module is the one
place that uses cvat-sdk's private mapper classes (``tests/test_label_mapping.py`` fails
loudly when an upgrade changes them).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import cvat_sdk.auto_annotation as sdk_aa
from cvat_sdk import models

from ..errors import LabelMapError, LabelMismatchError
from ..interface import BadFunctionError, DetectionAnnotation, plain_number
from ..labels import rename_skeleton_nodes
from ..sdk_private import (
    AnnotationMapper,
    AttributeNameMapping,
    LabelNameMapping,
    SpecNameMapping,
    SublabelNameMapping,
    fields,
)
from .frame_bounds import fit_to_frame

__all__ = [
    "LabelMap",
    "LabelMapError",
    "LabelMapper",
    "LabelMismatchError",
    "check_geometry",
    "spec_as_task_labels",
]

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
    if any(type(value) not in (int, float) for value in points):
        # numpy or torch numbers put into the list after the model checked it.
        points = data["points"] = [plain_number(value) for value in points]
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
    data = fields(shape)
    _check_one(data, "shape")
    for element in data.get("elements") or []:
        _check_one(fields(element), "skeleton element")


def _names(things: Sequence[Any]) -> str:
    return ", ".join(repr(thing.name) for thing in things) or "none"


def _has(what: str, things: Sequence[Any]) -> str:
    return f"has {what} {_names(things)}" if things else f"has no {what}"


def _entry_name(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise LabelMapError(
        f"label map: {what} must map to a name (a string) or to None, not {value!r}"
    )


def _attribute_map(value: Any, owner: str) -> dict[str, str | None]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise LabelMapError(
            f"label map: the attributes of {owner} must be a mapping of names to names,"
            f' e.g. {{"colour": "color"}}'
        )
    return {str(k): _entry_name(v, f"attribute {k!r} of {owner}") for k, v in value.items()}


@attrs.frozen
class LabelMapEntry:
    """Where one function label or sublabel goes: the task's name for it and for its parts."""

    name: str
    attributes: Mapping[str, str | None] = attrs.field(factory=dict)
    """Function attribute name -> task attribute name (None: leave the attribute out)."""
    sublabels: Mapping[str, LabelMapEntry | None] = attrs.field(factory=dict)
    """Function sublabel (skeleton point) name -> where it goes (None: leave it out)."""

    @classmethod
    def parse(cls, source: str, value: Any, *, what: str, nested: bool) -> LabelMapEntry | None:
        if value is None or isinstance(value, str):
            return None if value is None else cls(value)
        if not isinstance(value, Mapping):
            raise LabelMapError(
                f"label map: {what} {source!r} must map to a name, to None or to a mapping"
                f" with 'name'{', sublabels' if nested else ''} and 'attributes', not {value!r}"
            )
        allowed = {"name", "attributes", *(("sublabels",) if nested else ())}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise LabelMapError(
                f"label map: the entry for {what} {source!r} has unknown keys"
                f" {', '.join(map(repr, unknown))}; use {', '.join(sorted(allowed))}"
            )
        name = _entry_name(value.get("name", source), f"{what} {source!r}")
        if name is None:
            return None
        sublabels = value.get("sublabels") or {}
        if not isinstance(sublabels, Mapping):
            raise LabelMapError(
                f"label map: the sublabels of {what} {source!r} must be a mapping of names"
            )
        return cls(
            name,
            attributes=_attribute_map(value.get("attributes"), f"{what} {source!r}"),
            sublabels={
                str(k): cls.parse(str(k), v, what=f"sublabel of {source!r}", nested=False)
                for k, v in sublabels.items()
            },
        )

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"name": self.name}
        if self.attributes:
            result["attributes"] = dict(sorted(self.attributes.items()))
        if self.sublabels:
            result["sublabels"] = {
                k: None if v is None else v.to_dict() for k, v in sorted(self.sublabels.items())
            }
        return result

    def attribute(self, name: str) -> str | None:
        return self.attributes.get(name, name)

    def sublabel(self, name: str) -> LabelMapEntry | None:
        return self.sublabels.get(name, LabelMapEntry(name))


@attrs.frozen
class LabelMap:
    """Function label names -> task label names, with their sublabels and attributes.

    Built with :meth:`parse` from what users write::

        {"person": "pedestrian"}                      # a label under another name
        {"car": None}                                 # leave a label's output out
        {"person": {"name": "pedestrian",             # and its skeleton points and attributes
                    "sublabels": {"nose": "head", "left_ear": None},
                    "attributes": {"pose": "posture"}}}

    A label, sublabel or attribute the map does not name keeps matching by its own name.
    Several function labels may go to one task label.
    """

    labels: Mapping[str, LabelMapEntry | None]

    @classmethod
    def parse(cls, value: LabelMap | Mapping[str, Any]) -> LabelMap:
        """Read a label map; :class:`LabelMapError` (a ``ValueError``) says what is wrong."""
        if isinstance(value, LabelMap):
            return value
        if not isinstance(value, Mapping):
            raise LabelMapError(
                "a label map must map the function's label names to the task's,"
                f' e.g. {{"person": "pedestrian"}}, not a {type(value).__name__}'
            )
        return cls(
            {
                str(k): LabelMapEntry.parse(str(k), v, what="label", nested=True)
                for k, v in value.items()
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """The map in a canonical form: plain data, sorted, for journal keys."""
        return {k: None if v is None else v.to_dict() for k, v in sorted(self.labels.items())}

    def label(self, name: str) -> LabelMapEntry | None:
        return self.labels.get(name, LabelMapEntry(name))

    def check(self, function_labels: Sequence[Any], task_labels: Sequence[Any]) -> None:
        """Refuse names that are not the function's, and targets that are not the task's."""
        functions = {label.name: label for label in function_labels}
        tasks = {label.name: label for label in task_labels}
        for source, entry in self.labels.items():
            function_label = functions.get(source)
            if function_label is None:
                raise LabelMapError(
                    f"the label map names {source!r}, which is not a label of the function"
                    f" (its labels: {_names(function_labels)})"
                )
            if entry is None:
                continue
            task_label = tasks.get(entry.name)
            if task_label is None:
                raise LabelMapError(
                    f"the label map puts {source!r} on {entry.name!r}, which is not a label of"
                    f" the task (its labels: {_names(task_labels)})"
                )
            self._check_parts(entry, function_label, task_label, f"label {source!r}")
            function_sublabels = {
                s.name: s for s in getattr(function_label, "sublabels", None) or []
            }
            task_sublabels = {s.name: s for s in getattr(task_label, "sublabels", None) or []}
            for sub_source, sub_entry in entry.sublabels.items():
                function_sublabel = function_sublabels.get(sub_source)
                if function_sublabel is None:
                    raise LabelMapError(
                        f"the label map names sublabel {sub_source!r} of {source!r}, which the"
                        f" function's label {source!r} does not have (its sublabels:"
                        f" {_names(function_sublabels.values())})"
                    )
                if sub_entry is None:
                    continue
                task_sublabel = task_sublabels.get(sub_entry.name)
                if task_sublabel is None:
                    raise LabelMapError(
                        f"the label map puts sublabel {sub_source!r} of {source!r} on"
                        f" {sub_entry.name!r}, which the task's label {entry.name!r} does not"
                        f" have (its sublabels: {_names(task_sublabels.values())})"
                    )
                self._check_parts(
                    sub_entry,
                    function_sublabel,
                    task_sublabel,
                    f"sublabel {sub_source!r} of label {source!r}",
                )

    @staticmethod
    def _check_parts(entry: LabelMapEntry, function_label: Any, task_label: Any, what: str) -> None:
        function_attributes = getattr(function_label, "attributes", None) or []
        task_attributes = getattr(task_label, "attributes", None) or []
        function_names = {a.name for a in function_attributes}
        task_names = {a.name for a in task_attributes}
        for source, target in entry.attributes.items():
            if source not in function_names:
                raise LabelMapError(
                    f"the label map names attribute {source!r} of {what}, which the function"
                    f" does not have (its attributes: {_names(function_attributes)})"
                )
            if target is not None and target not in task_names:
                raise LabelMapError(
                    f"the label map puts attribute {source!r} of {what} on {target!r}, which"
                    f" the task's label {task_label.name!r} does not have (its attributes:"
                    f" {_names(task_attributes)})"
                )

    def name_mapping(self, function_labels: Sequence[Any]) -> SpecNameMapping:
        """The map in the form cvat-sdk's mapper takes: every label, sublabel and attribute."""

        def attributes(owner: Any, entry: LabelMapEntry) -> dict[str, AttributeNameMapping]:
            return {
                a.name: AttributeNameMapping(target)
                for a in getattr(owner, "attributes", None) or []
                if (target := entry.attribute(a.name)) is not None
            }

        labels = {}
        for label in function_labels:
            entry = self.label(label.name)
            if entry is None:
                continue
            sublabels = {}
            for sublabel in getattr(label, "sublabels", None) or []:
                sub_entry = entry.sublabel(sublabel.name)
                if sub_entry is not None:
                    sublabels[sublabel.name] = SublabelNameMapping(
                        sub_entry.name, attributes=attributes(sublabel, sub_entry)
                    )
            labels[label.name] = LabelNameMapping(
                entry.name, attributes=attributes(label, entry), sublabels=sublabels
            )
        return SpecNameMapping(labels=labels)

    def rename(self, function_labels: Sequence[Any]) -> list[models.PatchedLabelRequest]:
        """The function's labels under their mapped names, for a run with no task.

        Labels, sublabels and attributes mapped to None are left out; of several labels mapped
        to one name, the first gives the label. Ids stay the function's.
        """
        renamed: dict[str, models.PatchedLabelRequest] = {}
        for label in function_labels:
            entry = self.label(label.name)
            if entry is None or entry.name in renamed:
                continue
            copied = copy.deepcopy(label)
            copied.name = entry.name
            if getattr(label, "attributes", None):
                copied.attributes = _renamed_attributes(label.attributes, entry)
            sublabels = getattr(label, "sublabels", None) or []
            if sublabels:
                kept = []
                for sublabel in sublabels:
                    sub_entry = entry.sublabel(sublabel.name)
                    if sub_entry is None:
                        continue
                    copied_sublabel = copy.deepcopy(sublabel)
                    copied_sublabel.name = sub_entry.name
                    if getattr(sublabel, "attributes", None):
                        copied_sublabel.attributes = _renamed_attributes(
                            sublabel.attributes, sub_entry
                        )
                    kept.append(copied_sublabel)
                copied.sublabels = kept
                if getattr(label, "svg", None):
                    copied.svg = rename_skeleton_nodes(
                        label.svg,
                        [(s.id, s.name) for s in sublabels],
                        {
                            s.name: (e.name if (e := entry.sublabel(s.name)) else None)
                            for s in sublabels
                        },
                    )
            renamed[entry.name] = copied
        return list(renamed.values())


def _renamed_attributes(attributes: Sequence[Any], entry: LabelMapEntry) -> list[Any]:
    kept = []
    for attribute in attributes:
        target = entry.attribute(attribute.name)
        if target is not None:
            copied = copy.deepcopy(attribute)
            copied.name = target
            kept.append(copied)
    return kept


def _mismatch(
    function_labels: Sequence[Any], task_labels: Sequence[Any], label_map: LabelMap
) -> tuple[str, str] | None:
    """What the task lacks (label, sublabel or attribute) and both sides' names for it.

    cvat-sdk's mapper stops at the first thing the task lacks; this walks in its order (labels
    in spec order, each label's attributes, then its sublabels and theirs) to find it again.
    """
    tasks = {label.name: label for label in task_labels}

    def attributes(owner: Any, target: Any, entry: LabelMapEntry, what: str) -> str | None:
        task_attributes = getattr(target, "attributes", None) or []
        task_names = {a.name for a in task_attributes}
        owner_attributes = getattr(owner, "attributes", None) or []
        for attribute in owner_attributes:
            name = entry.attribute(attribute.name)
            if name is not None and name not in task_names:
                return (
                    f"the task's {what} {target.name!r} {_has('attributes', task_attributes)},"
                    f" the function's {what} {owner.name!r} has {_names(owner_attributes)}"
                )
        return None

    for label in function_labels:
        entry = label_map.label(label.name)
        if entry is None:
            continue
        target = tasks.get(entry.name)
        if target is None:
            return "label", (
                f"the task's labels are {_names(task_labels)},"
                f" the function's are {_names(function_labels)}"
            )
        if found := attributes(label, target, entry, "label"):
            return "attribute", found
        task_sublabels = {s.name: s for s in getattr(target, "sublabels", None) or []}
        function_sublabels = getattr(label, "sublabels", None) or []
        for sublabel in function_sublabels:
            sub_entry = entry.sublabel(sublabel.name)
            if sub_entry is None:
                continue
            task_sublabel = task_sublabels.get(sub_entry.name)
            if task_sublabel is None:
                return "sublabel", (
                    f"the task's label {target.name!r}"
                    f" {_has('sublabels', list(task_sublabels.values()))},"
                    f" the function's label {label.name!r} has {_names(function_sublabels)}"
                )
            if found := attributes(sublabel, task_sublabel, sub_entry, "sublabel"):
                return "attribute", found
    return None


class LabelMapper:
    """Maps a function's annotations onto a task: label ids, frame numbers and source.

    With a ``label_map`` (see :class:`LabelMap`) the function's labels go where it says; a
    name in it that the function or the task lacks is a :class:`LabelMapError`. A function
    label the task lacks is a :class:`LabelMismatchError` unless ``allow_unmatched_labels``.
    """

    def __init__(
        self,
        function_labels: Sequence[models.PatchedLabelRequest],
        task_labels: Sequence[models.Label],
        *,
        allow_unmatched_labels: bool,
        conv_mask_to_poly: bool,
        label_map: LabelMap | Mapping[str, Any] | None = None,
    ) -> None:
        name_mapping: dict[str, Any] = {}
        parsed = LabelMap.parse(label_map) if label_map is not None else LabelMap({})
        if label_map is not None:
            parsed.check(function_labels, task_labels)
            name_mapping["spec_nm"] = parsed.name_mapping(function_labels)
        try:
            self._mapper = AnnotationMapper(
                logger,
                function_labels,
                task_labels,
                allow_unmatched_labels=allow_unmatched_labels,
                conv_mask_to_poly=conv_mask_to_poly,
                **name_mapping,
            )
        except sdk_aa.BadFunctionError as ex:
            found = None
            if str(ex).endswith(" is not in dataset"):
                found = _mismatch(function_labels, task_labels, parsed)
            if found is not None:
                raise LabelMismatchError(str(ex), *found) from None
            raise _ours(ex) from None
        self._task_label_names = {label.id: label.name for label in task_labels}
        # Shapes left out so far because they lay outside their frame or had no area.
        self.dropped = 0

    def label_name(self, task_label_id: int) -> str:
        return self._task_label_names.get(task_label_id, str(task_label_id))

    def map_frame(
        self,
        annotations: Sequence[DetectionAnnotation],
        frame: int,
        *,
        frame_size: tuple[int, int],
    ) -> tuple[list[models.LabeledImageRequest], list[models.LabeledShapeRequest]]:
        """Validate one frame's annotations and rewrite them for task frame ``frame``.

        ``frame_size`` is the (width, height) of the image the function was given: shapes are
        clipped to it, and those left with nothing inside it are dropped (see
        ``frame_bounds``).
        """
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
        width, height = frame_size
        kept = []
        for shape in shapes:
            check_geometry(shape)
            why = fit_to_frame(shape, width, height)
            if why is None:
                kept.append(shape)
                continue
            if not self.dropped:
                logger.info(
                    "Leaving out shapes that lie outside their frame or have no area"
                    " (each is logged at debug level)"
                )
            self.dropped += 1
            logger.debug(
                "Left out a %s of label %r on frame %d: it %s (the frame is %dx%d)",
                shape.type.value,
                self.label_name(shape.label_id),
                frame,
                why,
                width,
                height,
            )
        return tags, kept

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
        data = fields(annotation)
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
        data = fields(element)
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
            values = fields(attribute)
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


@attrs.frozen
class _SpecLabelAsTaskLabel:
    """A spec label in the shape cvat-sdk's mapper expects of a task label."""

    id: int
    name: str
    type: str
    attributes: Sequence[models.AttributeRequest]
    sublabels: Sequence[_SpecLabelAsTaskLabel]


def spec_as_task_labels(spec_labels: Sequence[Any], types: Sequence[str]) -> list[Any]:
    """A spec's labels as the labels of a task made for them (same names, ids, sublabels and
    attributes; ``types`` are the labels' types as a task would have them).

    A run with no task (over files) maps the function's output onto these, so that what
    passes there passes on a task with those labels.
    """

    def convert(label: Any, label_type: str) -> _SpecLabelAsTaskLabel:
        return _SpecLabelAsTaskLabel(
            id=label.id,
            name=label.name,
            type=label_type,
            attributes=list(getattr(label, "attributes", None) or []),
            sublabels=[convert(s, "points") for s in getattr(label, "sublabels", None) or []],
        )

    return [convert(label, t) for label, t in zip(spec_labels, types, strict=True)]
