"""What a detector returns, made into annotations: CVAT 2.73's ``DetectionResultConverter``.

A detector answers with a list of objects ``{"label", "type", "points", "mask", "attributes",
"elements", "outside", "rotation", "group_id"}`` whose labels are already the task's (the
caller mapped and filtered them). CVAT turns each into a tag or a shape of frame ``frame``,
``source: "auto"``, and validates the lot with its ``LabeledDataSerializer``:

* ``type: "tag"`` (any case) is a tag; anything else a shape of that type.
* A mask's ``mask`` is a flat 0/1 bitmap of its bounding box, row by row, followed by the box
  ``xtl, ytl, xbr, ybr``; CVAT stores it as run lengths (starting with a run of zeros, as
  datumaro's ``mask_to_rle`` encodes a column vector) followed by the box. With
  ``conv_mask_to_poly``, a mask that also has ``points`` becomes a polygon of those points.
* A skeleton gets one element per sublabel of the task's label, in the label's order: the
  function's element for it (the first one, if several), or one placed at the centre of the
  given elements and ``outside``. A skeleton whose elements are all outside is dropped.
* Attributes the label lacks are dropped; values become strings. ``confidence`` is ignored:
  every shape has ``score: 1`` (the serializer's default) whatever the function said.
* Rectangles and ellipses get ``rotation`` (0 unless given); ``occluded`` is false and
  ``z_order`` 0.

The result is LabeledData as the serializer's ``validated_data`` holds it: ``id: null``,
``group: 0`` for no group, ``score: 1`` and the points as the function sent them.
"""

from __future__ import annotations

import math
from typing import Any

from .lambda_errors import RefusedError
from .validation import DRF_FALSE, DRF_TRUE, SHAPE_TYPES


def mask_to_rle(bitmap: list[Any]) -> list[int]:
    """Run lengths of a flat bitmap, the first one of zeros: datumaro's ``mask_to_rle`` of it
    as a column vector (its encoder takes each value as a uint8, so 255 and -1 are set)."""
    counts = []
    value, run = False, 0
    for item in bitmap:
        bit = (int(item) & 0xFF) != 0
        if bit == value:
            run += 1
        else:
            counts.append(run)
            value, run = bit, 1
    counts.append(run)
    return counts


def _convert_labels(labels: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    converted = {}
    for label in labels:
        converted[label["name"]] = {
            "id": label["id"],
            "type": label["type"],
            "attributes": {attr["name"]: attr["id"] for attr in label["attributes"]},
        }
        if label["type"] == "skeleton":
            converted[label["name"]]["sublabels"] = _convert_labels(label["sublabels"])
    return converted


class DetectionResultConverter:
    """Converts one frame's results of a detector into LabeledData of a task's labels."""

    def __init__(self, labels: list[dict[str, Any]]) -> None:
        self._labels = _convert_labels(labels)

    def convert(
        self, *, conv_mask_to_poly: bool, frame: int, annotations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        tags, shapes = [], []
        for anno in annotations:
            parsed = self._parse(self._labels, conv_mask_to_poly, frame, anno)
            if parsed is not None:
                (tags if anno["type"].lower() == "tag" else shapes).append(parsed)
        return _validated({"tags": tags, "shapes": shapes})

    def _parse(
        self, labels: dict[str, Any], conv_mask_to_poly: bool, frame: int, anno: dict[str, Any]
    ) -> dict[str, Any] | None:
        label = labels.get(anno["label"])
        if label is None:
            return None
        attributes = [
            {"spec_id": label["attributes"][attr["name"]], "value": attr["value"]}
            for attr in anno.get("attributes", [])
            if attr["name"] in label["attributes"]
        ]
        if anno["type"].lower() == "tag":
            return {
                "frame": frame,
                "label_id": label["id"],
                "source": "auto",
                "attributes": attributes,
                "group": None,
            }
        shape = {
            "frame": frame,
            "label_id": label["id"],
            "source": "auto",
            "attributes": attributes,
            "group": anno.get("group_id"),
            "type": anno["type"],
            "occluded": False,
            "outside": anno.get("outside", False),
            "points": anno.get("mask", []) if anno["type"] == "mask" else anno.get("points", []),
            "z_order": 0,
        }
        if shape["type"] in ("rectangle", "ellipse"):
            shape["rotation"] = anno.get("rotation", 0)
        if anno["type"] == "mask" and "points" in anno and conv_mask_to_poly:
            shape["type"] = "polygon"
            shape["points"] = anno["points"]
        elif anno["type"] == "mask":
            *bitmap, xtl, ytl, xbr, ybr = shape["points"]
            shape["points"] = [*mask_to_rle(bitmap), xtl, ytl, xbr, ybr]
        if shape["type"] == "skeleton":
            elements = [
                self._parse(label["sublabels"], conv_mask_to_poly, frame, element)
                for element in anno["elements"]
            ]
            center = [0, 0]
            for element in elements:
                center[0] += element["points"][0]
                center[1] += element["points"][1]
            center[0] /= len(elements) or 1
            center[1] /= len(elements) or 1
            shape["elements"] = [
                next(
                    (e for e in elements if e["label_id"] == sublabel["id"]),
                    {
                        "frame": frame,
                        "label_id": sublabel["id"],
                        "source": "auto",
                        "attributes": [],
                        "group": None,
                        "type": sublabel["type"],
                        "occluded": False,
                        "points": center,
                        "outside": True,
                        "z_order": 0,
                    },
                )
                for sublabel in label["sublabels"].values()
            ]
            if all(element["outside"] for element in shape["elements"]):
                return None
        return shape


# LabeledDataSerializer: the fields it fills in and the checks it makes, with DRF's messages.


def _validated(data: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    errors: dict[str, Any] = {}
    tags = [_validated_annotation(tag, is_tag=True) for tag in data["tags"]]
    shapes = [_validated_annotation(shape, is_tag=False) for shape in data["shapes"]]
    for kind, items in (("tags", tags), ("shapes", shapes)):
        if any(item_errors for _, item_errors in items):
            errors[kind] = [item_errors for _, item_errors in items]
    if errors:
        raise RefusedError(errors)
    return {
        "version": 0,
        "tags": [tag for tag, _ in tags],
        "shapes": [shape for shape, _ in shapes],
        "tracks": [],
        "intervals": [],
    }


def _validated_annotation(
    item: dict[str, Any], *, is_tag: bool, is_element: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The item as the serializer validates it, and its errors by field."""
    errors: dict[str, Any] = {}
    result: dict[str, Any] = {
        "id": None,
        "label_id": item["label_id"],
        # validate_group: "no group" is 0.
        "group": item["group"] or 0,
        "source": item["source"],
        "frame": int(item["frame"]),  # IntegerField: cvat-sdk sends 3.0
        "attributes": [{**attr, "value": str(attr["value"])} for attr in item["attributes"]],
    }
    if not _is_number(result["group"]) or not float(result["group"]).is_integer():
        errors["group"] = ["A valid integer is required."]
    elif result["group"] < 0:
        errors["group"] = ["Ensure this value is greater than or equal to 0."]
    else:
        result["group"] = int(result["group"])
    if is_tag:
        return result, errors
    shape_type = item["type"]
    if shape_type not in SHAPE_TYPES:
        errors["type"] = [f'"{shape_type}" is not a valid choice.']
    result.update({"type": shape_type, "occluded": False, "z_order": 0})
    outside = item.get("outside", False)
    if isinstance(outside, bool | int | float | str) and outside in DRF_TRUE:
        result["outside"] = True
    elif isinstance(outside, bool | int | float | str) and outside in DRF_FALSE:
        result["outside"] = False
    else:
        errors["outside"] = ["Must be a valid boolean."]
    rotation = item.get("rotation")
    if rotation is None:
        result["rotation"] = 0
    elif not _is_number(rotation):
        errors["rotation"] = ["A valid number is required."]
    elif not 0 <= float(rotation) <= 360:
        limit = "greater than or equal to 0" if float(rotation) < 0 else "less than or equal to 360"
        errors["rotation"] = [f"Ensure this value is {limit}."]
    else:
        result["rotation"] = float(rotation)
    points = item["points"]
    bad_points = {
        str(index): ["Value must be a float or an integer"]
        for index, value in enumerate(points)
        if type(value) not in (int, float)
    }
    if bad_points:
        errors["points"] = bad_points
    elif shape_type in SHAPE_TYPES and not _points_fit(shape_type, len(points)):
        errors["points"] = [f"invalid length for shape type '{shape_type}'"]
    result["points"] = points
    result["score"] = 1
    if not is_element:
        elements = [
            _validated_annotation(element, is_tag=False, is_element=True)
            for element in item.get("elements", [])
        ]
        if any(element_errors for _, element_errors in elements):
            errors["elements"] = [element_errors for _, element_errors in elements]
        elif shape_type == "skeleton" and not elements:
            errors["elements"] = ["at least one required for skeleton shape"]
        elif shape_type != "skeleton" and elements:
            errors["elements"] = ["not allowed for non-skeleton shape"]
        if "elements" in item:
            result["elements"] = [element for element, _ in elements]
    return result, errors


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _points_fit(shape_type: str, count: int) -> bool:
    if shape_type in ("rectangle", "ellipse"):
        return count == 4
    if shape_type == "polygon":
        return count >= 6 and count % 2 == 0
    if shape_type == "polyline":
        return count >= 4 and count % 2 == 0
    if shape_type == "points":
        return count >= 2 and count % 2 == 0
    if shape_type == "cuboid":
        return count == 16
    if shape_type == "mask":
        return count >= 5
    return count == 0  # skeleton
