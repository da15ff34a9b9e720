"""What CVAT's lambda manager and cvat-aa say to each other, in Nuclio's words.

CVAT 2.73 (``cvat/apps/lambda_manager/views.py``) reads a function from a Nuclio dashboard as a
function config (``metadata.name`` is its id; ``metadata.annotations`` hold its display name,
``type`` (its kind) and ``spec``: its labels as JSON; ``spec.description``; ``status.httpPort``
for direct calls). It calls a detector with ``{"image": <base64 frame>, "threshold": x}``
(``threshold`` only when set) and reads back a list of items ``{"label": <name>, "type": ...,
"points": [...], "attributes": [{"name", "value"}], ...}``; it matches labels and attributes
to the task's by name itself, so results carry names, never ids.

This module turns a function's spec into that config, checks a detector payload, and turns
annotations that the driver's own rules have validated into those items. It knows nothing
about HTTP or threads (see :mod:`.gateway` and :mod:`.functions`).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
import struct
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import PIL.Image
from cvat_sdk import models

from ..errors import BadRequestError
from ..labels import LabelCatalog, LabelInfo
from ..sdk_private import fields

__all__ = [
    "BadRequestError",
    "DetectorRequest",
    "function_config",
    "labels_spec",
    "parse_detector_payload",
    "to_nuclio",
]

logger = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 200_000_000
"""Larger frames are refused: CVAT sends frames of tasks, never images of this size."""


def _attribute_spec(attribute: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": attribute.id,
        "name": attribute.name,
        "input_type": attribute.input_type,
        "values": list(attribute.values),
    }
    if attribute.default_value:
        data["default_value"] = attribute.default_value
    if attribute.mutable:
        data["mutable"] = True
    return data


def _label_spec(label: LabelInfo) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": label.id,
        "name": label.name,
        "type": label.type,
        "attributes": [_attribute_spec(a) for a in label.attributes],
    }
    if label.type == "skeleton":
        data["sublabels"] = [_label_spec(s) for s in label.sublabels]
        data["svg"] = label.svg
    return data


def labels_spec(catalog: LabelCatalog) -> list[dict[str, Any]]:
    """The function's labels as a Nuclio function's ``spec`` annotation lists them (CVAT's
    ``parse_labels``: name, type, attributes with name/input_type/values, and a skeleton's
    sublabels and svg)."""
    return [_label_spec(label) for label in catalog]


def function_config(
    *,
    function_id: str,
    display_name: str,
    kind: str,
    catalog: LabelCatalog,
    description: str,
    help_message: str = "",
    http_port: int | None = None,
    namespace: str = "nuclio",
) -> dict[str, Any]:
    """A Nuclio function config, as ``GET /api/functions`` on a Nuclio dashboard lists it."""
    annotations = {
        "name": display_name,
        "type": kind,
        "framework": "cvat-aa",
        "spec": json.dumps(labels_spec(catalog)),
    }
    if help_message:
        annotations["help_message"] = help_message
    status: dict[str, Any] = {"state": "ready"}
    if http_port is not None:
        status["httpPort"] = http_port
    return {
        "metadata": {
            "name": function_id,
            "namespace": namespace,
            "labels": {"nuclio.io/project-name": "cvat"},
            "annotations": annotations,
        },
        "spec": {"description": description, "runtime": "python", "handler": "cvat-aa"},
        "status": status,
    }


@attrs.frozen
class DetectorRequest:
    """A detector call: the frame, and the threshold CVAT passed on (None: not given)."""

    image: PIL.Image.Image
    threshold: float | None


def _decode_image(text: Any) -> PIL.Image.Image:
    if not isinstance(text, str) or not text:
        raise BadRequestError('"image" must be a non-empty base64 string')
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError('"image" is not valid base64') from None
    try:
        image = PIL.Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise BadRequestError(
                f'"image" is {image.width}x{image.height}: larger than {MAX_IMAGE_PIXELS} pixels'
            )
        image.load()
    except BadRequestError:
        raise
    # What PIL raises for a broken or hostile file, whatever its format.
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        struct.error,
        PIL.Image.DecompressionBombError,
    ) as ex:
        raise BadRequestError(f'"image" is not an image that can be read ({ex})') from None
    # Functions receive RGB images, as in every other run.
    return image if image.mode == "RGB" else image.convert("RGB")


def parse_detector_payload(body: bytes) -> DetectorRequest:
    """The frame and threshold of a detector call; :class:`BadRequestError` says what is
    wrong with a malformed one."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequestError("the request body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadRequestError("the request body must be a JSON object")
    if "image" not in payload:
        raise BadRequestError('the request has no "image" (a base64-encoded frame)')
    threshold = payload.get("threshold")
    if threshold is not None:
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not (math.isfinite(threshold) and 0 <= threshold <= 1)
        ):
            raise BadRequestError(f'"threshold" must be a number from 0 to 1, not {threshold!r}')
        threshold = float(threshold)
    return DetectorRequest(_decode_image(payload["image"]), threshold)


# --- results ------------------------------------------------------------------------------------


def _value(value: Any) -> Any:
    return getattr(value, "value", value)


def _attributes(attributes: Sequence[Any] | None, label: LabelInfo) -> list[dict[str, str]]:
    result = []
    for attribute in attributes or ():
        data = fields(attribute)
        info = label.attribute(data["spec_id"])
        if info is not None:
            result.append({"name": info.name, "value": str(data["value"])})
    return result


def mask_bitmap(points: Sequence[float]) -> list[int]:
    """cvat-sdk's mask encoding (run lengths, then the inclusive box) as Nuclio's: the box's
    pixels row by row, 0 or 1, then the box; CVAT turns that back into run lengths."""
    *runs, x1, y1, x2, y2 = (int(p) for p in points)
    values = np.zeros(len(runs), dtype=np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, np.asarray(runs, dtype=np.int64))
    return [*flat.tolist(), x1, y1, x2, y2]


def mask_polygon(points: Sequence[float]) -> list[float] | None:
    """The outline of a mask's largest part as polygon points, for CVAT's "convert masks to
    polygons" option; None where there is none (or scikit-image is not installed)."""
    try:
        from skimage import measure
    except ImportError:
        return None
    *runs, x1, y1, x2, y2 = (int(p) for p in points)
    width, height = x2 - x1 + 1, y2 - y1 + 1
    values = np.zeros(len(runs), dtype=np.uint8)
    values[1::2] = 1
    bitmap = np.repeat(values, np.asarray(runs, dtype=np.int64)).reshape(height, width)
    # A border of zeros closes outlines that touch the box's edges.
    padded = np.pad(bitmap, 1).astype(float)
    contours = measure.find_contours(padded, 0.5)
    if not contours:
        return None
    outline = max(contours, key=len)
    simplified = measure.approximate_polygon(outline, tolerance=1.0)
    if len(simplified) < 4:  # closed: the first point is repeated last
        simplified = outline
    if len(simplified) < 4:
        return None
    polygon: list[float] = []
    for y, x in simplified[:-1]:
        polygon += [float(x) - 1 + x1, float(y) - 1 + y1]
    return polygon if len(polygon) >= 6 else None


def _shape(shape: Any, label: LabelInfo, *, element: bool = False) -> dict[str, Any]:
    data = fields(shape)
    shape_type = _value(data["type"])
    item: dict[str, Any] = {"label": label.name, "type": shape_type}
    points = list(data.get("points") or [])
    if shape_type == "mask":
        item["mask"] = mask_bitmap(points)
        polygon = mask_polygon(points)
        if polygon is not None:
            item["points"] = polygon
    elif shape_type != "skeleton":
        item["points"] = points
    score = data.get("score")
    if score is not None and not element:
        item["confidence"] = str(score)
    if data.get("rotation"):
        item["rotation"] = data["rotation"]
    if data.get("group"):
        item["group_id"] = data["group"]
    if element or data.get("outside"):
        item["outside"] = bool(data.get("outside", False))
    if data.get("occluded"):
        item["occluded"] = True
    item["attributes"] = _attributes(data.get("attributes"), label)
    if shape_type == "skeleton":
        elements = []
        for sub in data.get("elements") or ():
            sublabel = label.sublabel(fields(sub)["label_id"])
            if sublabel is not None:
                elements.append(_shape(sub, sublabel, element=True))
        item["elements"] = elements
    return item


def to_nuclio(
    catalog: LabelCatalog,
    tags: Sequence[models.LabeledImageRequest],
    shapes: Sequence[models.LabeledShapeRequest],
) -> list[dict[str, Any]]:
    """A frame's validated annotations (their label ids are the spec's) as a detector's
    result items."""
    items: list[dict[str, Any]] = []
    for tag in tags:
        data = fields(tag)
        label = catalog.get(data["label_id"])
        if label is None:
            continue
        item: dict[str, Any] = {"label": label.name, "type": "tag"}
        if data.get("score") is not None:
            item["confidence"] = str(data["score"])
        item["attributes"] = _attributes(data.get("attributes"), label)
        items.append(item)
    for shape in shapes:
        label = catalog.get(fields(shape)["label_id"])
        if label is not None:
            items.append(_shape(shape, label))
    return items
