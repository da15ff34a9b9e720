"""Checks on request bodies, done the way CVAT does them.

Two layers, as in CVAT:

* parsing (:func:`parse_labeled_data`, :func:`parse_label_specs`) checks types and fills in
  defaults, like CVAT's DRF serializers;
* :func:`check_annotations` checks annotations against the task: labels that exist, attribute
  ids that belong to the label, frames in range, point counts that suit the shape type, and
  skeleton elements that match the label's sublabels.

Every problem becomes a :class:`ValidationError`, which the server answers with a 400 and a
body shaped like DRF's: ``{"<field>": ["<where>: <what>", ...]}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

LABEL_TYPES = (
    "any",
    "rectangle",
    "polygon",
    "polyline",
    "points",
    "ellipse",
    "cuboid",
    "mask",
    "skeleton",
    "tag",
)
SHAPE_TYPES = (
    "rectangle",
    "polygon",
    "polyline",
    "points",
    "ellipse",
    "cuboid",
    "mask",
    "skeleton",
)
INPUT_TYPES = ("checkbox", "radio", "number", "text", "select")
# What DRF's BooleanField takes as true and as false.
DRF_TRUE = {
    "t",
    "T",
    "y",
    "Y",
    "yes",
    "Yes",
    "YES",
    "true",
    "True",
    "TRUE",
    "on",
    "On",
    "ON",
    "1",
    1,
}
DRF_FALSE = {
    "f",
    "F",
    "n",
    "N",
    "no",
    "No",
    "NO",
    "false",
    "False",
    "FALSE",
    "off",
    "Off",
    "OFF",
    "0",
    0,
}

_MAX_MESSAGES = 50


class ValidationError(Exception):
    """A rejected request body; ``errors`` is the 400 response body."""

    def __init__(self, errors: dict[str, list[str]] | list[str]) -> None:
        super().__init__(errors)
        self.errors = errors


class _Errors:
    """Collects messages per field, so one response reports every problem found."""

    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}
        self.count = 0

    def add(self, field: str, where: str, message: str) -> None:
        self.count += 1
        if self.count <= _MAX_MESSAGES:
            text = f"{where}: {message}" if where else message
            self.by_field.setdefault(field, []).append(text)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise ValidationError(self.by_field)


def _is_int(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_TRUE_STRINGS = {"true", "1", "yes", "on"}
_FALSE_STRINGS = {"false", "0", "no", "off"}


def _as_bool(value: Any) -> bool | None:
    """DRF's BooleanField conversions; None when the value is not a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if value.lower() in _TRUE_STRINGS:
            return True
        if value.lower() in _FALSE_STRINGS:
            return False
    return None


# label specs (task and project creation)


def parse_label_specs(value: Any, *, field: str = "labels") -> list[dict[str, Any]]:
    """Normalizes the ``labels`` of a TaskWriteRequest or ProjectWriteRequest."""
    errors = _Errors()
    if not isinstance(value, list):
        raise ValidationError(
            {field: [f'Expected a list of items but got type "{type(value).__name__}".']}
        )
    labels = [
        _parse_label(spec, f"{field}[{i}]", errors, is_sublabel=False)
        for i, spec in enumerate(value)
    ]
    _check_unique_names(labels, field, "label", errors)
    errors.raise_if_any()
    return labels


def _check_unique_names(items: list[dict], where: str, what: str, errors: _Errors) -> None:
    seen = set()
    for item in items:
        name = item.get("name")
        if name in seen:
            errors.add("name", where, f"{what} name {name!r} is used more than once")
        seen.add(name)


def _parse_label(spec: Any, where: str, errors: _Errors, *, is_sublabel: bool) -> dict[str, Any]:
    if not isinstance(spec, dict):
        errors.add("labels", where, "expected an object")
        return {
            "name": None,
            "color": "",
            "type": "any",
            "svg": "",
            "attributes": [],
            "sublabels": [],
        }
    name = spec.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        errors.add("name", where, "a label needs a name of 1 to 64 characters")
    label_type = spec.get("type", "points" if is_sublabel else "any")
    if label_type not in LABEL_TYPES:
        errors.add(
            "type",
            where,
            f"{label_type!r} is not a valid choice, use one of {', '.join(LABEL_TYPES)}",
        )
    color = spec.get("color") or ""
    if not isinstance(color, str):
        errors.add("color", where, "expected a string such as '#ff0000'")
        color = ""
    svg = spec.get("svg") or ""
    attributes = [
        _parse_attribute_spec(attr, f"{where}.attributes[{i}]", errors)
        for i, attr in enumerate(spec.get("attributes") or [])
    ]
    _check_unique_names(attributes, f"{where}.attributes", "attribute", errors)
    raw_sublabels = spec.get("sublabels") or []
    sublabels = []
    if raw_sublabels and label_type != "skeleton":
        errors.add("sublabels", where, "only skeleton labels can have sublabels")
    elif label_type == "skeleton":
        if is_sublabel:
            errors.add("type", where, "a sublabel cannot be a skeleton")
        elif not raw_sublabels:
            errors.add("sublabels", where, "a skeleton label needs at least one sublabel")
        sublabels = [
            _parse_label(sub, f"{where}.sublabels[{i}]", errors, is_sublabel=True)
            for i, sub in enumerate(raw_sublabels)
        ]
        _check_unique_names(sublabels, f"{where}.sublabels", "sublabel", errors)
    return {
        "name": name,
        "color": color,
        "type": label_type,
        "svg": svg if isinstance(svg, str) else "",
        "attributes": attributes,
        "sublabels": sublabels,
    }


def _parse_attribute_spec(spec: Any, where: str, errors: _Errors) -> dict[str, Any]:
    if not isinstance(spec, dict):
        errors.add("attributes", where, "expected an object")
        return {"name": None}
    name = spec.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        errors.add("name", where, "an attribute needs a name of 1 to 64 characters")
    input_type = spec.get("input_type")
    if input_type not in INPUT_TYPES:
        errors.add(
            "input_type",
            where,
            f"{input_type!r} is not a valid choice, use one of {', '.join(INPUT_TYPES)}",
        )
    values = spec.get("values", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        errors.add("values", where, "expected a list of strings")
        values = []
    if input_type in ("select", "radio") and not values:
        errors.add("values", where, f"a {input_type} attribute needs at least one value")
    if input_type == "number" and len(values) != 3:
        errors.add("values", where, "a number attribute needs the values [min, max, step]")
    mutable = _as_bool(spec.get("mutable", False))
    if mutable is None:
        errors.add("mutable", where, "must be a boolean")
    default_value = spec.get("default_value")
    if default_value is None:
        if input_type == "checkbox":
            default_value = "false"
        else:
            default_value = values[0] if values else ""
    return {
        "name": name,
        "input_type": input_type,
        "mutable": bool(mutable),
        "values": values,
        "default_value": str(default_value),
    }


# annotations: parsing


def parse_labeled_data(body: Any) -> dict[str, list[dict[str, Any]]]:
    """Type-checks a (Patched)LabeledDataRequest and fills in CVAT's defaults."""
    if not isinstance(body, dict):
        raise ValidationError(
            {
                "non_field_errors": [
                    f"Invalid data. Expected a dictionary, but got {type(body).__name__}."
                ]
            }
        )
    errors = _Errors()
    # The test server stores no intervals (CVAT's annotations of time ranges): see docs/testing.md.
    data: dict[str, Any] = {"version": 0, "tags": [], "shapes": [], "tracks": [], "intervals": []}
    for kind, parse in (("tags", _parse_tag), ("shapes", _parse_shape), ("tracks", _parse_track)):
        items = body.get(kind, [])
        if not isinstance(items, list):
            errors.add(kind, kind, "expected a list")
            continue
        data[kind] = [parse(item, f"{kind}[{i}]", errors) for i, item in enumerate(items)]
    errors.raise_if_any()
    # CVAT accepts tracks without shapes and silently stores nothing of them.
    data["tracks"] = [track for track in data["tracks"] if track["shapes"]]
    for track in data["tracks"]:
        track["elements"] = [element for element in track["elements"] if element["shapes"]]
    return data


def _require_object(item: Any, where: str, field: str, errors: _Errors) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    errors.add(field, where, "expected an object")
    return {}


def _int_field(
    item: dict,
    key: str,
    where: str,
    errors: _Errors,
    *,
    required: bool,
    minimum: int | None = 0,
    nullable: bool = False,
    default: Any = None,
) -> Any:
    if key not in item:
        if required:
            errors.add(key, where, "this field is required")
        return default
    value = item[key]
    if value is None:
        if not nullable:
            errors.add(key, where, "this field may not be null")
        return None
    if not _is_int(value):
        errors.add(key, where, "a valid integer is required")
        return default
    if minimum is not None and value < minimum:
        errors.add(key, where, f"ensure this value is greater than or equal to {minimum}")
    return int(value)


def _bool_field(item: dict, key: str, where: str, errors: _Errors, default: bool = False) -> bool:
    if key not in item:
        return default
    value = _as_bool(item[key])
    if value is None:
        errors.add(key, where, "must be a valid boolean")
        return default
    return value


def _source_field(item: dict, where: str, errors: _Errors) -> str:
    source = item.get("source", "manual")
    if not isinstance(source, str) or not source:
        errors.add("source", where, "must be a non-empty string")
        return "manual"
    return source


def _attributes_field(item: dict, where: str, errors: _Errors) -> list[dict[str, Any]]:
    raw = item.get("attributes", [])
    if not isinstance(raw, list):
        errors.add("attributes", where, "expected a list")
        return []
    attributes = []
    for i, attr in enumerate(raw):
        attr_where = f"{where}.attributes[{i}]"
        attr = _require_object(attr, attr_where, "attributes", errors)
        spec_id = _int_field(attr, "spec_id", attr_where, errors, required=True, minimum=None)
        if "value" not in attr:
            errors.add("value", attr_where, "this field is required")
            continue
        value = attr["value"]
        if value is None or isinstance(value, list | dict):
            errors.add("value", attr_where, "must be a string")
            continue
        # CVAT's AttributeValSerializer stores str(value).
        value = str(value)
        if len(value) > 4096:
            errors.add("value", attr_where, "ensure this field has no more than 4096 characters")
        attributes.append({"spec_id": spec_id, "value": value})
    return attributes


def _points_field(item: dict, where: str, errors: _Errors) -> list[float]:
    points = item.get("points", [])
    if not isinstance(points, list):
        errors.add("points", where, "expected a list of numbers")
        return []
    if not all(_is_number(p) for p in points):
        errors.add("points", where, "every value must be a float or an integer")
        return []
    return [float(p) for p in points]


def _shape_fields(item: dict, where: str, errors: _Errors) -> dict[str, Any]:
    shape_type = item.get("type")
    if shape_type not in SHAPE_TYPES:
        if "type" not in item:
            errors.add("type", where, "this field is required")
        else:
            errors.add(
                "type",
                where,
                f"{shape_type!r} is not a valid choice, use one of {', '.join(SHAPE_TYPES)}",
            )
    rotation = item.get("rotation", 0.0)
    if not _is_number(rotation) or not 0 <= rotation <= 360:
        errors.add("rotation", where, "must be a number from 0 to 360")
        rotation = 0.0
    return {
        "type": shape_type,
        "occluded": _bool_field(item, "occluded", where, errors),
        "outside": _bool_field(item, "outside", where, errors),
        "z_order": _int_field(
            item, "z_order", where, errors, required=False, minimum=None, default=0
        ),
        "rotation": float(rotation),
        "points": _points_field(item, where, errors),
        "attributes": _attributes_field(item, where, errors),
    }


def _annotation_fields(item: dict, where: str, errors: _Errors) -> dict[str, Any]:
    return {
        "id": _int_field(item, "id", where, errors, required=False, nullable=True, minimum=1),
        "frame": _int_field(item, "frame", where, errors, required=True),
        "label_id": _int_field(item, "label_id", where, errors, required=True),
        # CVAT stores "no group" as 0 and answers 0 for a group sent as null or left out.
        "group": _int_field(item, "group", where, errors, required=False, nullable=True) or 0,
        "source": _source_field(item, where, errors),
    }


def _parse_tag(item: Any, where: str, errors: _Errors) -> dict[str, Any]:
    item = _require_object(item, where, "tags", errors)
    return {
        **_annotation_fields(item, where, errors),
        "attributes": _attributes_field(item, where, errors),
    }


def _parse_shape(
    item: Any, where: str, errors: _Errors, *, is_element: bool = False
) -> dict[str, Any]:
    item = _require_object(item, where, "elements" if is_element else "shapes", errors)
    shape = {**_annotation_fields(item, where, errors), **_shape_fields(item, where, errors)}
    score = item.get("score", 1.0)
    if not _is_number(score) or not 0 <= score <= 1:
        errors.add("score", where, "must be a number from 0 to 1")
    else:
        shape["score"] = float(score)
    if not is_element:
        elements = item.get("elements", [])
        if not isinstance(elements, list):
            errors.add("elements", where, "expected a list")
            elements = []
        shape["elements"] = [
            _parse_shape(element, f"{where}.elements[{i}]", errors, is_element=True)
            for i, element in enumerate(elements)
        ]
    elif item.get("elements"):
        errors.add("elements", where, "an element cannot have elements of its own")
    return shape


def _parse_track(
    item: Any, where: str, errors: _Errors, *, is_element: bool = False
) -> dict[str, Any]:
    item = _require_object(item, where, "elements" if is_element else "tracks", errors)
    track = {
        **_annotation_fields(item, where, errors),
        "attributes": _attributes_field(item, where, errors),
    }
    raw_shapes = item.get("shapes")
    if not isinstance(raw_shapes, list):
        errors.add("shapes", where, "this field is required and must be a list")
        raw_shapes = []
    shapes = []
    for i, raw in enumerate(raw_shapes):
        shape_where = f"{where}.shapes[{i}]"
        raw = _require_object(raw, shape_where, "shapes", errors)
        shapes.append(
            {
                "id": _int_field(
                    raw, "id", shape_where, errors, required=False, nullable=True, minimum=1
                ),
                "frame": _int_field(raw, "frame", shape_where, errors, required=True),
                **_shape_fields(raw, shape_where, errors),
            }
        )
    track["shapes"] = shapes
    if not is_element:
        elements = item.get("elements", [])
        if not isinstance(elements, list):
            errors.add("elements", where, "expected a list")
            elements = []
        track["elements"] = [
            _parse_track(element, f"{where}.elements[{i}]", errors, is_element=True)
            for i, element in enumerate(elements)
        ]
    return track


# annotations: checks against the task


def _check_points(shape_type: str, points: Sequence[float], where: str, errors: _Errors) -> None:
    count = len(points)
    if shape_type in ("rectangle", "ellipse"):
        if count != 4:
            errors.add("points", where, f"a {shape_type} needs 4 coordinates, got {count}")
    elif shape_type == "cuboid":
        if count != 16:
            errors.add("points", where, f"a cuboid needs 16 coordinates, got {count}")
    elif shape_type in ("polygon", "polyline", "points"):
        minimum = {"polygon": 6, "polyline": 4, "points": 2}[shape_type]
        if count < minimum or count % 2:
            errors.add(
                "points",
                where,
                f"a {shape_type} needs an even number of coordinates, at least {minimum}, got {count}",
            )
    elif shape_type == "mask":
        _check_mask(points, where, errors)


def _check_mask(points: Sequence[float], where: str, errors: _Errors) -> None:
    # cvat_sdk.masks.encode_mask: run lengths (starting with a run of zeros), then the
    # inclusive bounding box x1, y1, x2, y2.
    if len(points) < 5:
        errors.add(
            "points",
            where,
            f"a mask needs run lengths and a bounding box (at least 5 values), got {len(points)}",
        )
        return
    if not all(float(p).is_integer() and p >= 0 for p in points):
        errors.add("points", where, "a mask holds non-negative integers only")
        return
    *runs, x1, y1, x2, y2 = (int(p) for p in points)
    if x2 < x1 or y2 < y1:
        errors.add("points", where, f"the mask's bounding box ({x1}, {y1}, {x2}, {y2}) is empty")
        return
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    if sum(runs) != area:
        errors.add(
            "points",
            where,
            f"the mask's run lengths cover {sum(runs)} pixels, its bounding box {area}",
        )


def _attribute_ids(label: dict[str, Any], mutable: bool | None = None) -> set[int]:
    return {
        attr["id"] for attr in label["attributes"] if mutable is None or attr["mutable"] == mutable
    }


def check_annotations(
    data: dict[str, list[dict[str, Any]]],
    labels: list[dict[str, Any]],
    frames: range,
    *,
    scope: str = "task",
) -> None:
    """Checks parsed annotations against the labels and frame range of a task or job."""
    top_level = {label["id"]: label for label in labels}
    errors = _Errors()

    def check_frame(frame: int | None, where: str) -> None:
        if frame is not None and frame not in frames:
            if frames:
                errors.add(
                    "frame",
                    where,
                    f"frame {frame} is outside the {scope}'s frames {frames.start}-{frames.stop - 1}",
                )
            else:
                errors.add(
                    "frame", where, f"frame {frame} is outside the {scope}, which has no frames"
                )

    def top_label(label_id: int, where: str) -> dict[str, Any] | None:
        label = top_level.get(label_id)
        if label is None:
            errors.add(
                "label_id",
                where,
                f"label_id `{label_id}` is invalid: the {scope} has no such label",
            )
        return label

    def check_attributes(item: dict, label: dict, where: str, mutable: bool | None) -> None:
        allowed = _attribute_ids(label, mutable)
        for i, attr in enumerate(item["attributes"]):
            if attr["spec_id"] not in allowed:
                kind = {None: "", True: "mutable ", False: "immutable "}[mutable]
                errors.add(
                    "spec_id",
                    f"{where}.attributes[{i}]",
                    f"spec_id `{attr['spec_id']}` is invalid: label {label['name']!r} has no such {kind}attribute",
                )

    def check_elements(elements: list[dict], label: dict, where: str, element_check) -> None:
        if label["type"] != "skeleton":
            if elements:
                errors.add(
                    "elements",
                    where,
                    f"label {label['name']!r} is not a skeleton, so the object cannot have elements",
                )
            return
        expected = {sub["id"]: sub for sub in label["sublabels"]}
        seen: set[int] = set()
        for i, element in enumerate(elements):
            element_where = f"{where}.elements[{i}]"
            sublabel = expected.get(element["label_id"])
            if sublabel is None:
                errors.add(
                    "elements",
                    element_where,
                    f"label_id `{element['label_id']}` is not a sublabel of skeleton {label['name']!r}",
                )
                continue
            if element["label_id"] in seen:
                errors.add(
                    "elements",
                    element_where,
                    f"sublabel {sublabel['name']!r} appears more than once",
                )
            seen.add(element["label_id"])
            element_check(element, sublabel, element_where)
        missing = [expected[i]["name"] for i in expected if i not in seen]
        if missing:
            errors.add(
                "elements",
                where,
                f"skeleton {label['name']!r} lacks elements for sublabels {', '.join(missing)}",
            )

    def check_shape_geometry(shape: dict, label: dict, where: str, *, is_element: bool) -> None:
        shape_type = shape["type"]
        if is_element:
            if shape_type != "points":
                errors.add(
                    "type", where, f"skeleton elements must be of type 'points', not {shape_type!r}"
                )
            elif len(shape["points"]) != 2:
                errors.add(
                    "points",
                    where,
                    f"a skeleton element needs 2 coordinates, got {len(shape['points'])}",
                )
            return
        if (shape_type == "skeleton") != (label["type"] == "skeleton"):
            if shape_type == "skeleton":
                errors.add("type", where, f"label {label['name']!r} is not a skeleton label")
            else:
                errors.add(
                    "type", where, f"skeleton label {label['name']!r} takes skeleton shapes only"
                )
            return
        _check_points(shape_type, shape["points"], where, errors)

    for i, tag in enumerate(data["tags"]):
        where = f"tags[{i}]"
        check_frame(tag["frame"], where)
        label = top_label(tag["label_id"], where)
        if label:
            check_attributes(tag, label, where, None)

    def check_element_shape(element: dict, sublabel: dict, where: str) -> None:
        check_frame(element["frame"], where)
        check_shape_geometry(element, sublabel, where, is_element=True)
        check_attributes(element, sublabel, where, None)

    for i, shape in enumerate(data["shapes"]):
        where = f"shapes[{i}]"
        check_frame(shape["frame"], where)
        label = top_label(shape["label_id"], where)
        if label is None:
            continue
        check_shape_geometry(shape, label, where, is_element=False)
        check_attributes(shape, label, where, None)
        check_elements(shape["elements"], label, where, check_element_shape)

    def check_track_shapes(track: dict, label: dict, where: str, *, is_element: bool) -> None:
        check_frame(track["frame"], where)
        check_attributes(track, label, where, False)
        for j, shape in enumerate(track["shapes"]):
            shape_where = f"{where}.shapes[{j}]"
            check_frame(shape["frame"], shape_where)
            check_shape_geometry(shape, label, shape_where, is_element=is_element)
            check_attributes(shape, label, shape_where, True)

    def check_element_track(element: dict, sublabel: dict, where: str) -> None:
        check_track_shapes(element, sublabel, where, is_element=True)

    for i, track in enumerate(data["tracks"]):
        where = f"tracks[{i}]"
        label = top_label(track["label_id"], where)
        if label is None:
            continue
        check_track_shapes(track, label, where, is_element=False)
        check_elements(track["elements"], label, where, check_element_track)

    errors.raise_if_any()


def annotation_ids(data: dict[str, list[dict[str, Any]]], kind: str) -> list[int]:
    """The ids of the top-level objects of one kind, skipping those without an id."""
    return [item["id"] for item in data.get(kind, []) if item.get("id") is not None]
