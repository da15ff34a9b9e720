"""Calling a function on a task's frame: CVAT 2.73's ``LambdaFunction.invoke``, step by step.

Both the online call (``POST /api/lambda/functions/{id}``) and every frame of a request
(``POST /api/lambda/requests``) go through :func:`invoke`, which does what CVAT does, in
CVAT's order:

1. Arguments that are null are dropped; ``threshold`` goes to the function only when truthy.
2. The label mapping (model label -> task label, with ``attributes`` and, for skeletons,
   ``sublabels``): without one, each model label maps to the task's label of the same name if
   their types are compatible (equal; either ``any``, but never with a skeleton; mask with
   polygon), attributes by equal names. A given mapping is checked, with CVAT's messages
   (``Invalid mapping. Unknown model label "x"``...).
3. In a job, ``frame`` (and ``frame0``/``frame1``) must be the job's.
4. The payload: the frame is the base64 of what ``GET .../data?type=frame&quality=original``
   serves (CVAT's ``TaskFrameProvider.get_frame`` defaults to the original quality), cropped
   to the ``roi`` if one is given. Detectors get ``image`` (and ``threshold``); interactors
   ``image``, ``pos_points``, ``neg_points``, ``obj_bbox`` (moved into the ROI) and
   ``text_prompts`` when given; trackers ``image``, ``shapes`` (bare point lists for a function
   that declares no ``supported_shape_types``) and ``states`` unsigned; reid functions
   ``image0``, ``image1``, ``boxes0``, ``boxes1`` and ``max_distance`` when truthy.
5. The answer: a detector's objects whose label is mapped are renamed to the task's labels,
   their attributes kept where the mapping names them and CVAT's value checks pass, then
   converted (:mod:`.detection_results`) and moved back out of the ROI; a tracker's states are
   signed (Django's ``TimestampSigner`` format, salted with the function's id, valid 8 hours)
   and its bare point lists made rectangles; an interactor's answer is moved back out of the ROI.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import attrs

from . import roi as roi_helper
from .detection_results import DetectionResultConverter
from .lambda_errors import CallError, RefusedError
from .nuclio import Gateway, LambdaFunction

FRAME_PARAMETERS = (("frame", "frame"), ("frame0", "start frame"), ("frame1", "end frame"))
TRACKER_STATE_MAX_AGE = 8 * 3600


@attrs.frozen
class CallTarget:
    """The task (and job) a call is about, as the call reads them."""

    task: dict[str, Any]
    #: The task's labels, with attributes and sublabels (``Transaction.task_labels``).
    labels: list[dict[str, Any]]
    #: The bytes CVAT's frame provider gives for a frame (original quality).
    read_frame: Callable[[int], bytes]
    job: dict[str, Any] | None = None


def invoke(
    gateway: Gateway,
    function: LambdaFunction,
    target: CallTarget,
    data: dict[str, Any],
    *,
    secret_key: bytes,
    converter: DetectionResultConverter | None = None,
) -> Any:
    """The function's answer for ``data`` (the call's arguments), as CVAT returns it."""
    payload: dict[str, Any] = {}
    data = {key: value for key, value in data.items() if value is not None}

    def mandatory(name: str) -> Any:
        try:
            return data[name]
        except KeyError:
            raise CallError(
                f"`{function.id}` lambda function was called without mandatory argument: {name}"
            ) from None

    if data.get("threshold"):
        payload["threshold"] = data["threshold"]
    mapping = data.get("mapping", {})
    if not mapping:
        mapping = _default_mapping(function.labels, target.labels)
    else:
        _check_mapping(mapping, function.labels, target.labels)
    mapping = _resolved_mapping(mapping, function.labels, target.labels)

    if target.job is not None:
        for key, description in FRAME_PARAMETERS:
            if key in data and not (
                target.job["start_frame"] <= data[key] <= target.job["stop_frame"]
            ):
                raise CallError(f"The {description} is outside the job range")

    requested_roi = data.get("roi")
    region = None
    if requested_roi is not None and function.kind not in ("detector", "interactor"):
        raise CallError(f"ROI is not supported for {function.kind} functions")
    if function.kind in ("detector", "interactor"):
        frame = mandatory("frame")
        if requested_roi is not None:
            cropped, region = roi_helper.crop(_frame_bytes(target, frame), requested_roi)
            image = base64.b64encode(cropped).decode()
        else:
            image = _image(target, frame)

    signer = _TrackerStateSigner(secret_key, function.id)
    if function.kind == "detector":
        payload["image"] = image
    elif function.kind == "interactor":
        dx, dy = (-region["xtl"], -region["ytl"]) if region else (0, 0)
        payload.update(
            {
                "image": image,
                "pos_points": roi_helper.translate_prompt_points(mandatory("pos_points"), dx, dy),
                "neg_points": roi_helper.translate_prompt_points(mandatory("neg_points"), dx, dy),
                "obj_bbox": roi_helper.translate_prompt_points(data.get("obj_bbox"), dx, dy),
            }
        )
        if data.get("text_prompts"):
            payload["text_prompts"] = data["text_prompts"]
    elif function.kind == "reid":
        payload.update(
            {
                "image0": _image(target, mandatory("frame0")),
                "image1": _image(target, mandatory("frame1")),
                "boxes0": mandatory("boxes0"),
                "boxes1": mandatory("boxes1"),
            }
        )
        if data.get("max_distance"):
            payload["max_distance"] = data["max_distance"]
    elif function.kind == "tracker":
        payload.update(_tracker_payload(function, target, data, signer, mandatory))

    response = gateway.invoke(function, payload)

    if function.kind == "detector":
        converter = converter or DetectionResultConverter(target.labels)
        response = converter.convert(
            conv_mask_to_poly=data.get("conv_mask_to_poly", False),
            frame=mandatory("frame"),
            annotations=_mapped_results(response, mapping),
        )
        if region:
            roi_helper.translate_shapes(response["shapes"], region["xtl"], region["ytl"])
    elif function.kind == "tracker":
        if "shapes" in response and not function.supported_shape_types:
            response["shapes"] = [
                None if points is None else {"type": "rectangle", "points": points}
                for points in response["shapes"]
            ]
        # Signed as compact JSON, as CVAT signs it (not sign_object, which adds base64).
        response["states"] = [
            signer.sign(json.dumps(state, separators=(",", ":"))) for state in response["states"]
        ]
    elif function.kind == "interactor" and region:
        response = roi_helper.translate_interactor_response(response, region)
    return response


def _frame_bytes(target: CallTarget, frame: Any) -> bytes:
    size = target.task["size"]
    # CVAT checks `frame not in range(0, size)`, which a whole float (cvat-sdk sends 3.0) or a
    # bool passes.
    if not isinstance(frame, (int, float)) or frame not in range(size):
        raise RefusedError(
            [f"Invalid frame '{frame}'. The frame number should be in the [0, {size}] range"]
        )
    return target.read_frame(int(frame))


def _image(target: CallTarget, frame: Any) -> str:
    return base64.b64encode(_frame_bytes(target, frame)).decode()


def _tracker_payload(
    function: LambdaFunction,
    target: CallTarget,
    data: dict[str, Any],
    signer: _TrackerStateSigner,
    mandatory: Callable[[str], Any],
) -> dict[str, Any]:
    def prepare_shape(shape: dict[str, Any] | None) -> Any:
        if shape is None:
            return None
        if shape["type"] not in (function.supported_shape_types or ["rectangle"]):
            raise CallError(f"This function does not support shapes of type {shape['type']!r}")
        # Without supported_shape_types, a function takes bare point lists (rectangles).
        return shape if function.supported_shape_types else shape["points"]

    if "states" not in data:
        shapes, states = mandatory("shapes"), []
    elif "shapes" not in data:
        # The UI no longer sends the shapes when tracking goes on: old functions that count
        # them get as many nulls as there are states.
        states = mandatory("states")
        shapes = [None] * len(states)
    else:
        states, shapes = data["states"], data["shapes"]
    try:
        unsigned = [None if state is None else json.loads(signer.unsign(state)) for state in states]
    except _BadSignatureError as e:
        raise CallError("Invalid or expired tracker state") from e
    return {
        "image": _image(target, mandatory("frame")),
        "shapes": [prepare_shape(shape) for shape in shapes],
        "states": unsigned,
    }


# The label mapping


def _compatible(model_label: dict[str, Any], task_label: dict[str, Any]) -> bool:
    model_type, task_type = model_label["type"], task_label["type"]
    return (
        model_type == task_type
        or (task_type == "any" and model_type != "skeleton")
        or (model_type == "any" and task_type != "skeleton")
        or {model_type, task_type} <= {"mask", "polygon"}
    )


def _default_mapping(
    model_labels: list[dict[str, Any]], task_labels: list[dict[str, Any]]
) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for model_label in model_labels:
        for task_label in task_labels:
            if task_label["name"] != model_label["name"] or not _compatible(
                model_label, task_label
            ):
                continue
            attributes = {
                model_attr["name"]: task_attr["name"]
                for model_attr in model_label.get("attributes", [])
                for task_attr in task_label["attributes"]
                if task_attr["name"] == model_attr["name"]
            }
            mapping[model_label["name"]] = {"name": task_label["name"], "attributes": attributes}
            if model_label["type"] == "skeleton" and task_label["type"] == "skeleton":
                mapping[model_label["name"]]["sublabels"] = _default_mapping(
                    model_label["sublabels"], task_label["sublabels"]
                )
    return mapping


def _check_mapping(
    mapping: dict[str, Any], model_labels: list[dict[str, Any]], task_labels: list[dict[str, Any]]
) -> None:
    for model_name, item in mapping.items():
        task_name = item["name"]
        model_label = next((m for m in model_labels if m["name"] == model_name), None)
        if model_label is None:
            raise CallError(f'Invalid mapping. Unknown model label "{model_name}"')
        task_label = next((t for t in task_labels if t["name"] == task_name), None)
        if task_label is None:
            raise CallError(f'Invalid mapping. Unknown db label "{task_name}"')
        if not _compatible(model_label, task_label):
            raise CallError(
                f'Invalid mapping. Model label "{model_name}" and'
                f' database label "{task_name}" are not compatible'
            )
        model_attribute_names = [attr["name"] for attr in model_label["attributes"]]
        task_attribute_names = [attr["name"] for attr in task_label["attributes"]]
        for model_attr, task_attr in item.get("attributes", {}).items():
            if model_attr not in model_attribute_names:
                raise CallError(f'Invalid mapping. Unknown model attribute "{model_attr}"')
            if task_attr not in task_attribute_names:
                raise CallError(f'Invalid mapping. Unknown db attribute "{task_attr}"')
        if model_label["type"] == "skeleton" and task_label["type"] == "skeleton":
            if "sublabels" not in item:
                raise CallError(
                    f'Mapping for elements was not specified in skeleton "{model_name}" '
                )
            _check_mapping(item["sublabels"], model_label["sublabels"], task_label["sublabels"])


def _resolved_mapping(
    mapping: dict[str, Any], model_labels: list[dict[str, Any]], task_labels: list[dict[str, Any]]
) -> dict[str, Any]:
    """The mapping with each item's model and task label (and its sublabels' mapping)."""
    resolved = copy.deepcopy(mapping)
    for model_name, item in resolved.items():
        model_label = next(m for m in model_labels if m["name"] == model_name)
        task_label = next(t for t in task_labels if t["name"] == item["name"])
        item.setdefault("attributes", {})
        item["md_label"] = model_label
        item["db_label"] = task_label
        if model_label["type"] == "skeleton" and task_label["type"] == "skeleton":
            item["sublabels"] = _resolved_mapping(
                item["sublabels"], model_label["sublabels"], task_label["sublabels"]
            )
    return resolved


def _mapped_results(results: list[dict[str, Any]], mapping: dict[str, Any]) -> list[dict]:
    """A detector's objects of mapped labels, renamed to the task's labels and attributes."""
    kept = []
    for item in results:
        if item["label"] not in mapping:
            continue
        entry = mapping[item["label"]]
        item["label"] = entry["db_label"]["name"]
        item["attributes"] = _mapped_attributes(
            item.get("attributes", {}), entry["attributes"], entry["db_label"]["attributes"]
        )
        if "elements" in item:
            sublabels = entry["sublabels"]
            item["elements"] = [e for e in item["elements"] if e["label"] in sublabels]
            for element in item["elements"]:
                sub_entry = sublabels[element["label"]]
                element["label"] = sub_entry["db_label"]["name"]
                element["attributes"] = _mapped_attributes(
                    element.get("attributes", {}),
                    sub_entry["attributes"],
                    sub_entry["db_label"]["attributes"],
                )
        kept.append(item)
    return kept


def _mapped_attributes(
    attributes: Any, attribute_mapping: dict[str, str], task_attributes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    kept = []
    for attr in attributes:
        if attr["name"] not in attribute_mapping:
            continue
        task_name = attribute_mapping[attr["name"]]
        task_attr = next((a for a in task_attributes if a["name"] == task_name), None)
        if task_attr is not None and _value_fits(attr["value"], task_attr):
            kept.append({"name": task_attr["name"], "value": attr["value"]})
    return kept


def _value_fits(value: Any, attribute: dict[str, Any]) -> bool:
    """CVAT's ``check_attr_value``, on the attribute's values as CVAT stores them: one string,
    joined by newlines, so a select's value passes if it is any part of that string."""
    values = "\n".join(attribute["values"])
    input_type = attribute["input_type"]
    if input_type == "number":
        minimum, maximum, step = map(int, values.split("\n"))
        try:
            number = int(value)
        except ValueError:
            return False
        return minimum <= number <= maximum and (number - minimum) % step == 0
    if input_type == "checkbox":
        return value in ["true", "false"]
    if input_type == "text":
        return True
    if input_type in ("select", "radio"):
        return value in values
    return False


# Tracker states: django.core.signing.TimestampSigner, as CVAT signs them.

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class _BadSignatureError(Exception):
    pass


def _b62_encode(number: int) -> str:
    encoded = ""
    while number > 0 or not encoded:
        number, remainder = divmod(number, 62)
        encoded = _BASE62[remainder] + encoded
    return encoded


def _b62_decode(text: str) -> int:
    number = 0
    for char in text:
        number = number * 62 + _BASE62.index(char)
    return number


class _TrackerStateSigner:
    """``TimestampSigner(salt="cvat-tracker-state:<function id>")`` with the server's secret:
    ``value:timestamp:signature``, HMAC-SHA256 in URL-safe base64 without padding."""

    def __init__(self, secret_key: bytes, function_id: str) -> None:
        key_salt = f"cvat-tracker-state:{function_id}signer".encode()
        self._key = hashlib.sha256(key_salt + secret_key).digest()

    def _signature(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, value: str) -> str:
        stamped = f"{value}:{_b62_encode(int(time.time()))}"
        return f"{stamped}:{self._signature(stamped)}"

    def unsign(self, signed: Any) -> str:
        if not isinstance(signed, str) or signed.count(":") < 2:
            raise _BadSignatureError("No ':' found in value")
        stamped, signature = signed.rsplit(":", 1)
        if not hmac.compare_digest(signature, self._signature(stamped)):
            raise _BadSignatureError(f'Signature "{signature}" does not match')
        value, timestamp = stamped.rsplit(":", 1)
        try:
            age = time.time() - _b62_decode(timestamp)
        except ValueError as e:
            raise _BadSignatureError("Bad timestamp") from e
        if age > TRACKER_STATE_MAX_AGE:
            raise _BadSignatureError(f"Signature age {age} > {TRACKER_STATE_MAX_AGE} seconds")
        return value
