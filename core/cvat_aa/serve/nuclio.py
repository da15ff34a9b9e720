"""What CVAT's lambda manager and cvat-aa say to each other, in Nuclio's words.

CVAT 2.73 (``cvat/apps/lambda_manager/views.py``) reads a function from a Nuclio dashboard as a
function config (``metadata.name`` is its id; ``metadata.annotations`` hold its display name,
``type`` (its kind) and ``spec``: its labels as JSON; ``spec.description``; ``status.httpPort``
for direct calls). What it sends and reads back depends on the kind:

* a detector gets ``{"image": <base64 frame>, "threshold": x}`` (``threshold`` only when set)
  and answers a list of items ``{"label": <name>, "type": ..., "points": [...], "attributes":
  [{"name", "value"}], ...}``; CVAT matches labels and attributes to the task's by name
  itself, so results carry names, never ids;
* an interactor (its config adds ``min_pos_points``, ``min_neg_points``, ``startswith_box``
  or ``startswith_box_optional`` and ``help_message``) gets ``{"image", "pos_points": [[x,
  y]...], "neg_points": [...], "obj_bbox": [[x1, y1], [x2, y2]] or null}`` and answers
  ``{"shapes": [{"type", "points", "attributes": [{"spec_id", "value"}]}]}``, the shapes of
  cvat-sdk's ``InteractionResultShape`` as cvat-cli's agent sends them;
* a tracker (its config adds ``supported_shape_types``) gets ``{"image", "shapes", "states"}``:
  shapes to start tracking and no states, or as many nulls as states to go on; it answers
  ``{"shapes": [shape or null...], "states": [...]}``. CVAT signs each state it is given back
  (JSON, with a timestamp, valid 8 hours) and unsigns it on the next call, so a state can be
  any JSON value: here it is the id of a state that stays in this process.

This module turns a function's spec into that config, checks payloads, and turns results that
the core's rules have validated into those answers. It knows nothing about HTTP or threads
(see :mod:`.gateway` and :mod:`.functions`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import PIL.Image
from cvat_sdk import models

from ..errors import BadRequestError
from ..interface import InteractionFunctionSpec, TrackableShape, TrackingFunctionSpec
from ..labels import LabelCatalog, LabelInfo
from ..sdk_private import fields
from ..tracking import shape_json

__all__ = [
    "BadRequestError",
    "DetectorRequest",
    "InteractorRequest",
    "TrackerRequest",
    "function_config",
    "interactor_annotations",
    "interactor_help",
    "labels_spec",
    "parse_detector_payload",
    "parse_interactor_payload",
    "parse_tracker_payload",
    "to_nuclio",
    "tracker_annotations",
    "tracking_result",
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


def interactor_annotations(spec: InteractionFunctionSpec) -> dict[str, str]:
    """What an interactor's config says about the prompts it takes, as cvat-cli's agent
    declares them (``get_remote_function_fields``) in Nuclio's words.

    Nuclio annotations are strings, and CVAT reads ``startswith_box*`` with ``bool()``: any
    value given is true, so a false one is left out.
    """
    annotations = {
        "min_pos_points": str(spec.min_pos_points),
        # CVAT's -1: negative points are not allowed.
        "min_neg_points": str(-1 if spec.min_neg_points is None else spec.min_neg_points),
    }
    if spec.min_bounding_boxes == 1:
        annotations["startswith_box"] = "true"
    elif spec.min_bounding_boxes == 0:
        annotations["startswith_box_optional"] = "true"
    return annotations


def interactor_help(spec: InteractionFunctionSpec) -> str:
    """A help message for CVAT's interactor panel, from what the spec asks of the prompts."""
    positive = spec.min_pos_points
    parts = [
        f"at least {positive} positive point{'s' if positive != 1 else ''}"
        if positive
        else "positive points (optional)"
    ]
    if spec.min_neg_points is None:
        parts.append("no negative points")
    elif spec.min_neg_points:
        parts.append(
            f"at least {spec.min_neg_points} negative point{'s' if spec.min_neg_points != 1 else ''}"
        )
    else:
        parts.append("negative points (optional)")
    if spec.min_bounding_boxes == 1:
        parts.insert(0, "a box around the object first")
    elif spec.min_bounding_boxes == 0:
        parts.append("a box around the object (optional)")
    return "Takes " + ", ".join(parts) + "."


def tracker_annotations(spec: TrackingFunctionSpec) -> dict[str, str]:
    """A tracker's config: the shape types it tracks, comma-separated and sorted. Declaring
    them is also what makes CVAT send shapes as objects rather than bare rectangle points."""
    return {"supported_shape_types": ",".join(sorted(spec.supported_shape_types))}


def function_config(
    *,
    function_id: str,
    display_name: str,
    kind: str,
    catalog: LabelCatalog | None,
    description: str,
    help_message: str = "",
    extra_annotations: Mapping[str, str] | None = None,
    http_port: int | None = None,
    namespace: str = "nuclio",
) -> dict[str, Any]:
    """A Nuclio function config, as ``GET /api/functions`` on a Nuclio dashboard lists it.

    ``catalog`` is None for interactors and trackers: they have no labels (CVAT shows none).
    """
    annotations = {
        "name": display_name,
        "type": kind,
        "framework": "cvat-aa",
        "spec": json.dumps(labels_spec(catalog) if catalog is not None else []),
        **(extra_annotations or {}),
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


def _payload(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequestError("the request body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadRequestError("the request body must be a JSON object")
    if "image" not in payload:
        raise BadRequestError('the request has no "image" (a base64-encoded frame)')
    return payload


def parse_detector_payload(body: bytes) -> DetectorRequest:
    """The frame and threshold of a detector call; :class:`BadRequestError` says what is
    wrong with a malformed one."""
    payload = _payload(body)
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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _point_list(payload: dict[str, Any], key: str) -> list[list[float]]:
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(map(_is_number, p)) for p in value
    ):
        raise BadRequestError(f'"{key}" must be a list of [x, y] points')
    return value


@attrs.define
class InteractorRequest:
    """An interactor call: its prompts, and its frame, decoded by :meth:`image` only when
    called for (a frame whose preprocessed image is cached is not decoded again)."""

    digest: str
    """The frame's identity: a digest of the payload's image, which CVAT encodes the same way
    on every click on one frame (it sends no task or frame number)."""
    pos_points: list[list[float]]
    neg_points: list[list[float]]
    obj_bbox: list[list[float]] | None
    _text: str = attrs.field(repr=False, alias="text")
    decoded: PIL.Image.Image | None = attrs.field(default=None, init=False, repr=False)
    """The frame, once :meth:`image` has decoded it."""

    def image(self) -> PIL.Image.Image:
        """The frame; :class:`BadRequestError` if it cannot be read."""
        if self.decoded is None:
            self.decoded = _decode_image(self._text)
        return self.decoded


def parse_interactor_payload(body: bytes) -> InteractorRequest:
    """An interactor call's prompts and frame; :class:`BadRequestError` says what is wrong
    with a malformed one (the frame itself is checked when it is decoded)."""
    payload = _payload(body)
    text = payload["image"]
    if not isinstance(text, str) or not text:
        raise BadRequestError('"image" must be a non-empty base64 string')
    obj_bbox = _point_list(payload, "obj_bbox") or None
    if obj_bbox is not None and len(obj_bbox) != 2:
        raise BadRequestError('"obj_bbox" must be two points: [[x1, y1], [x2, y2]]')
    return InteractorRequest(
        digest=hashlib.sha256(text.encode()).hexdigest(),
        pos_points=_point_list(payload, "pos_points"),
        neg_points=_point_list(payload, "neg_points"),
        obj_bbox=obj_bbox,
        text=text,
    )


@attrs.frozen
class TrackerRequest:
    """A tracker call: the frame, then per object either a shape to start tracking (and no
    state) or the state of its tracking (and no shape)."""

    image: PIL.Image.Image
    shapes: list[TrackableShape | None]
    states: list[str | None]


def _trackable(item: Any) -> TrackableShape | None:
    if item is None:
        return None
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("type"), str)
        or not isinstance(item.get("points"), list)
    ):
        raise BadRequestError('each of "shapes" must be null or an object with "type" and "points"')
    if not all(map(_is_number, item["points"])):
        raise BadRequestError(f"a {item['type']} to track has points that are not all numbers")
    return TrackableShape(type=item["type"], points=item["points"])


def parse_tracker_payload(body: bytes) -> TrackerRequest:
    """A tracker call's frame, shapes and states; :class:`BadRequestError` says what is wrong
    with a malformed one."""
    payload = _payload(body)
    states = payload.get("states") or []
    if not isinstance(states, list) or not all(s is None or isinstance(s, str) for s in states):
        raise BadRequestError('"states" must be a list of the states this server gave out')
    shapes = payload.get("shapes")
    if shapes is None:
        shapes = [None] * len(states)
    if not isinstance(shapes, list):
        raise BadRequestError('"shapes" must be a list')
    trackable = [_trackable(item) for item in shapes]
    if states and len(states) != len(shapes):
        raise BadRequestError(
            f'{len(shapes)} "shapes" but {len(states)} "states": there must be one per object'
        )
    states = states or [None] * len(shapes)
    for shape, state in zip(trackable, states, strict=True):
        if shape is None and state is None:
            raise BadRequestError("an object has neither a shape to track nor a tracking state")
    return TrackerRequest(_decode_image(payload["image"]), trackable, states)


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


def tracking_result(
    shapes: Sequence[TrackableShape | None], states: Sequence[str]
) -> dict[str, Any]:
    """A tracker's answer: a shape (or null where the object was lost) and a state per object."""
    return {"shapes": [shape_json(s) for s in shapes], "states": list(states)}
