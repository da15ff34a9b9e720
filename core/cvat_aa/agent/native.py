"""What a native function is on the server, for each kind of function, and whether an
agent's function fits one.

A native function is a record: a name, a kind, and what CVAT's UI needs to know to call it:
a detector's labels (``labels_v2``), an interactor's rules for prompts (how many positive and
negative points, whether a box starts the interaction), a tracker's shape types. cvat-cli
writes these from the function's spec (``get_remote_function_fields`` of its agent drivers);
so do we, field for field, so that a native function made by either is served by agents of
both. Before serving, an agent checks that the native function asks nothing of its function
that the function cannot do, with cvat-cli's rules and messages
(``validate_function_compatibility``): a UI that lets users send prompts or shapes the
function refuses would see every call fail.
"""

from __future__ import annotations

from typing import Any

from ..errors import IncompatibleFunctionError
from ..interface import FunctionKind, function_kind

__all__ = [
    "NATIVE_KINDS",
    "IncompatibleFunctionError",
    "check_compatible",
    "labels_v2",
    "native_fields",
]

NATIVE_KINDS: dict[FunctionKind, str] = {
    "detection": "detector",
    "interaction": "interactor",
    "tracking": "tracker",
}
"""A function's kind, and the ``kind`` of its native function on the server."""


def _plain(value: Any) -> Any:
    """An enum-like model value (cvat-sdk's ``AttributeType``) as its plain value."""
    return getattr(value, "value", value)


def _dump_label(label: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": label.name,
        "attributes": [
            {"name": a.name, "input_type": _plain(a.input_type), "values": list(a.values)}
            for a in getattr(label, "attributes", None) or []
        ],
    }
    label_type = _plain(getattr(label, "type", "any"))
    if label_type != "any":
        # As cvat-cli: only when the function says, for older servers.
        result["type"] = label_type
    return result


def labels_v2(spec: Any) -> list[dict[str, Any]]:
    """A detector spec's labels as a native function's ``labels_v2``."""
    labels = []
    for label in spec.labels:
        labels.append(_dump_label(label))
        if sublabels := getattr(label, "sublabels", None):
            labels[-1]["sublabels"] = [_dump_label(s) for s in sublabels]
    return labels


def native_fields(spec: Any) -> dict[str, Any]:
    """The fields of a native function for ``spec``: its ``kind`` and what that kind needs."""
    kind = function_kind(spec)
    fields: dict[str, Any] = {"kind": NATIVE_KINDS[kind]}
    if kind == "detection":
        fields["labels_v2"] = labels_v2(spec)
    elif kind == "interaction":
        fields["min_pos_points"] = spec.min_pos_points
        if spec.min_neg_points is not None:
            fields["min_neg_points"] = spec.min_neg_points
        if spec.min_bounding_boxes == 0:
            fields["startswith_box_optional"] = True
        elif spec.min_bounding_boxes == 1:
            fields["startswith_box"] = True
    else:
        fields["supported_shape_types"] = sorted(spec.supported_shape_types)
    return fields


def check_compatible(remote: dict[str, Any], spec: Any) -> None:
    """Raise :class:`IncompatibleFunctionError` unless an agent running a function with
    ``spec`` can serve the native function ``remote`` (its record on the server)."""
    function_id = remote.get("id")
    if remote.get("provider") != "native":
        raise IncompatibleFunctionError(
            f"function #{function_id} has provider {remote.get('provider')!r}; agents serve"
            " only native functions (create one with 'cvat-aa agent create')"
        )
    kind = function_kind(spec)
    try:
        if remote.get("kind") != NATIVE_KINDS[kind]:
            raise IncompatibleFunctionError(
                f"kind is {remote.get('kind')!r} (expected {NATIVE_KINDS[kind]!r})."
            )
        if kind == "detection":
            _check_detector(remote, spec)
        elif kind == "interaction":
            _check_interactor(remote, spec)
        else:
            _check_tracker(remote, spec)
    except IncompatibleFunctionError as ex:
        reason = str(ex) if str(ex).endswith(".") else f"{ex}."
        raise IncompatibleFunctionError(
            f"the native function #{function_id} ({remote.get('name')!r}) does not fit the"
            f" function this agent runs: {reason} Run the agent with the function it was"
            " created from (and the same -p parameters), or create another native function"
            " for it."
        ) from None


# --- detectors --------------------------------------------------------------------------------


def _check_part(remote: dict[str, Any], local: Any, what: str) -> None:
    if local is None:
        raise IncompatibleFunctionError(f"{what} is not supported.")
    local_type = _plain(getattr(local, "type", "any"))
    if remote.get("type", "any") not in {"any", "unknown"} and remote["type"] != local_type:
        raise IncompatibleFunctionError(
            f"{what} has type {remote['type']!r}, but the function declares type {local_type!r}."
        )
    attributes = {a.name: a for a in getattr(local, "attributes", None) or []}
    for remote_attr in remote.get("attributes") or []:
        attr_what = f"attribute {remote_attr['name']!r} of {what}"
        attr = attributes.get(remote_attr["name"])
        if attr is None:
            raise IncompatibleFunctionError(f"{attr_what} is not supported.")
        if remote_attr["input_type"] != _plain(attr.input_type):
            raise IncompatibleFunctionError(
                f"{attr_what} has input type {remote_attr['input_type']!r}, but the function"
                f" declares input type {_plain(attr.input_type)!r}."
            )
        if list(remote_attr["values"]) != list(attr.values):
            raise IncompatibleFunctionError(
                f"{attr_what} has values {remote_attr['values']!r}, but the function"
                f" declares values {list(attr.values)!r}."
            )


def _check_detector(remote: dict[str, Any], spec: Any) -> None:
    labels = {label.name: label for label in spec.labels}
    for remote_label in remote.get("labels_v2") or []:
        what = f"label {remote_label['name']!r}"
        label = labels.get(remote_label["name"])
        _check_part(remote_label, label, what)
        sublabels = {s.name: s for s in getattr(label, "sublabels", None) or []}
        for remote_sub in remote_label.get("sublabels") or []:
            _check_part(
                remote_sub,
                sublabels.get(remote_sub["name"]),
                f"sublabel {remote_sub['name']!r} of {what}",
            )


# --- interactors and trackers: cvat-cli's rules, word for word ----------------------------------


def _check_interactor(remote: dict[str, Any], spec: Any) -> None:
    remote_min_pos_points = remote.get("min_pos_points", 0)
    if remote_min_pos_points < spec.min_pos_points:
        raise IncompatibleFunctionError(
            f"the remote function allows prompts with {remote_min_pos_points} positive"
            f" point(s), but the function object requires at least {spec.min_pos_points}"
        )
    remote_min_neg_points = remote.get("min_neg_points", -1)
    if remote_min_neg_points >= 0:
        if spec.min_neg_points is None:
            raise IncompatibleFunctionError(
                "the remote function allows prompts with negative points, but the function"
                " object does not"
            )
        if remote_min_neg_points < spec.min_neg_points:
            raise IncompatibleFunctionError(
                f"the remote function allows prompts with {remote_min_neg_points} negative"
                f" point(s), but the function object requires at least {spec.min_neg_points}"
            )
    elif spec.min_neg_points not in {None, 0}:
        raise IncompatibleFunctionError(
            "the remote function does not allow prompts with negative points, but the"
            f" function object requires at least {spec.min_neg_points}"
        )
    if spec.min_bounding_boxes is None:
        if remote.get("startswith_box") or remote.get("startswith_box_optional"):
            raise IncompatibleFunctionError(
                "the remote function allows prompts with bounding boxes, but the function"
                " object does not"
            )
    elif spec.min_bounding_boxes == 1 and not remote.get("startswith_box"):
        raise IncompatibleFunctionError(
            "the remote function does not require bounding boxes in prompts, but the"
            " function object does"
        )


def _check_tracker(remote: dict[str, Any], spec: Any) -> None:
    unsupported = frozenset(remote.get("supported_shape_types") or []) - frozenset(
        spec.supported_shape_types
    )
    if unsupported:
        raise IncompatibleFunctionError(
            "the function object does not support the following shape types: "
            + ", ".join(map(repr, sorted(unsupported)))
        )
