"""The function interface: specs, contexts, helper factories and BadFunctionError.

cvat-aa speaks cvat-sdk's auto-annotation protocol. A function is an object with a ``spec``
attribute (a :class:`DetectionFunctionSpec`) and a ``detect(context, image)`` method returning
``cvat_sdk.models`` objects. The classes here subclass cvat-sdk's, so:

* a function written for ``cvat_sdk.auto_annotation`` works unchanged with cvat-aa, and
* a cvat-aa function is accepted by ``cvat_sdk.auto_annotation.annotate_task``.

A function may also offer ``detect_batch(contexts, images)``, returning one sequence of
annotations per image; the driver uses it to run models on batches (see ``hookspecs``).

Spec errors carry cvat-sdk's exact messages, so code that matches them with a regular
expression works with either. The annotation factories are cvat-sdk's, except that they also
take numpy and torch numbers (``np.float32``, 0-d arrays, scalar tensors) and arrays: cvat-sdk's
models accept only Python numbers, and a model's output is almost never made of those. torch is
never imported here: anything with ``tolist()`` and ``ndim`` is an array.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

import attrs
import cvat_sdk.auto_annotation as sdk_aa
import PIL.Image
from cvat_sdk import models
from cvat_sdk.attributes import attribute_vals_from_dict, attribute_value_validator

# The spec factories are cvat-sdk's own: they build the same models with the same fixed
# fields (mutable=False, type=...), so there is nothing to gain from copies.
from cvat_sdk.auto_annotation import (
    attribute_spec,
    checkbox_attribute_spec,
    keypoint_spec,
    label_spec,
    number_attribute_spec,
    radio_attribute_spec,
    select_attribute_spec,
    skeleton_label_spec,
    text_attribute_spec,
)
from .errors import BadFunctionError

__all__ = [
    "BadFunctionError",
    "BatchDetectionFunction",
    "DetectionAnnotation",
    "DetectionFunction",
    "DetectionFunctionContext",
    "DetectionFunctionSpec",
    "FrameContext",
    "attribute_spec",
    "checkbox_attribute_spec",
    "keypoint",
    "keypoint_spec",
    "label_spec",
    "mask",
    "number_attribute_spec",
    "polygon",
    "radio_attribute_spec",
    "rectangle",
    "select_attribute_spec",
    "shape",
    "skeleton",
    "skeleton_label_spec",
    "tag",
    "text_attribute_spec",
]


DetectionAnnotation: TypeAlias = models.LabeledImageRequest | models.LabeledShapeRequest
DetectionFunctionContext = sdk_aa.DetectionFunctionContext


def plain_number(value: Any) -> Any:
    """A numpy or torch number (or 0-d array) as the Python number it holds; else ``value``.

    An array becomes a (nested) list of Python numbers.
    """
    if type(value) in (float, int, bool, str) or value is None:
        return value
    if hasattr(value, "tolist") and hasattr(value, "ndim"):
        return value.tolist()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _flat_points(points: Any) -> Any:
    """Coordinates as a flat list of Python numbers: pairs and (N, 2) arrays are flattened."""
    points = plain_number(points)
    if not isinstance(points, (list, tuple)):
        return points
    flat: list[Any] = []
    for value in points:
        value = plain_number(value)
        if isinstance(value, (list, tuple)):
            flat.extend(_flat_points(value))
        else:
            flat.append(value)
    return flat


def _attribute_text(value: Any) -> Any:
    """An attribute value as CVAT writes it: ``true``/``false``, whole numbers without ``.0``."""
    value = plain_number(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float):
        return repr(value)
    return value


def _plain_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    converted = {name: plain_number(value) for name, value in kwargs.items()}
    if "points" in converted:
        converted["points"] = _flat_points(kwargs["points"])
    attributes = converted.get("attributes")
    if isinstance(attributes, Mapping):
        converted["attributes"] = attribute_vals_from_dict(
            {plain_number(k): _attribute_text(v) for k, v in attributes.items()}
        )
    return converted


def tag(label_id: int, **kwargs: Any) -> models.LabeledImageRequest:
    """cvat-sdk's ``tag``, also taking numpy and torch numbers.

    ``attributes`` may also be a mapping of attribute ids to values (strings, whole numbers,
    booleans), as for ``cvat_sdk.attributes.attribute_vals_from_dict``.
    """
    return sdk_aa.tag(plain_number(label_id), **_plain_kwargs(kwargs))


def shape(label_id: int, **kwargs: Any) -> models.LabeledShapeRequest:
    """cvat-sdk's ``shape``, also taking numpy and torch numbers and arrays.

    ``points`` may be an array or a sequence of (x, y) pairs; it is flattened. ``attributes``
    may be a mapping of attribute ids to values, as for :func:`tag`.
    """
    return sdk_aa.shape(plain_number(label_id), **_plain_kwargs(kwargs))


def rectangle(label_id: int, points: Sequence[float], **kwargs: Any) -> models.LabeledShapeRequest:
    """cvat-sdk's ``rectangle`` (``points`` is ``[x1, y1, x2, y2]``); takes what :func:`shape` takes."""
    return shape(label_id, type="rectangle", points=points, **kwargs)


def polygon(label_id: int, points: Sequence[float], **kwargs: Any) -> models.LabeledShapeRequest:
    """cvat-sdk's ``polygon``; ``points`` may also be an (N, 2) array such as a contour."""
    return shape(label_id, type="polygon", points=points, **kwargs)


def mask(label_id: int, points: Sequence[float], **kwargs: Any) -> models.LabeledShapeRequest:
    """cvat-sdk's ``mask``: build ``points`` with ``cvat_sdk.masks.encode_mask``."""
    return shape(label_id, type="mask", points=points, **kwargs)


def skeleton(
    label_id: int, elements: Sequence[models.SubLabeledShapeRequest], **kwargs: Any
) -> models.LabeledShapeRequest:
    """cvat-sdk's ``skeleton``: ``elements`` are :func:`keypoint` objects."""
    return shape(label_id, type="skeleton", elements=list(elements), **kwargs)


def keypoint(
    label_id: int, points: Sequence[float], **kwargs: Any
) -> models.SubLabeledShapeRequest:
    """cvat-sdk's ``keypoint``, also taking numpy and torch numbers and arrays."""
    return sdk_aa.keypoint(plain_number(label_id), _flat_points(points), **_plain_kwargs(kwargs))


def _validate_attributes(attributes: Sequence[models.AttributeRequest], owner: str) -> None:
    seen_ids: set[int] = set()
    for attr in attributes:
        desc = f"attribute {attr.name!r} of {owner}"
        if not hasattr(attr, "id"):
            raise BadFunctionError(f"{desc} has no ID")
        if attr.id in seen_ids:
            raise BadFunctionError(f"{desc} has same ID as another attribute ({attr.id})")
        seen_ids.add(attr.id)
        try:
            attribute_value_validator(attr)
        except ValueError as ex:
            raise BadFunctionError(f"{desc} has invalid values: {ex}") from ex


def _validate_label(label: models.PatchedLabelRequest) -> None:
    desc = f"label {label.name!r}"
    _validate_attributes(getattr(label, "attributes", []), desc)

    sublabels = getattr(label, "sublabels", [])
    if not sublabels:
        return
    label_type = getattr(label, "type", "any")
    if label_type != "skeleton":
        raise BadFunctionError(
            f"{desc} with sublabels has type {label_type!r} (should be 'skeleton')"
        )
    seen_ids: set[int] = set()
    for sublabel in sublabels:
        sl_desc = f"sublabel {sublabel.name!r} of {desc}"
        if not hasattr(sublabel, "id"):
            raise BadFunctionError(f"{sl_desc} has no ID")
        if sublabel.id in seen_ids:
            raise BadFunctionError(f"{sl_desc} has same ID as another sublabel ({sublabel.id})")
        seen_ids.add(sublabel.id)
        sl_type = getattr(sublabel, "type", "any")
        if sl_type != "points":
            raise BadFunctionError(f"{sl_desc} has type {sl_type!r} (should be 'points')")
        _validate_attributes(getattr(sublabel, "attributes", []), sl_desc)


def validate_labels(labels: Sequence[models.PatchedLabelRequest]) -> None:
    """Check labels as cvat-sdk 2.80 does, with its messages, raising our BadFunctionError."""
    seen_ids: set[int] = set()
    for label in labels:
        if not isinstance(label, models.PatchedLabelRequest):
            raise BadFunctionError(
                f"spec label {label!r} is a {type(label).__name__}, not a PatchedLabelRequest;"
                " build labels with label_spec() or skeleton_label_spec()"
            )
        if not hasattr(label, "id"):
            raise BadFunctionError(f"label {label.name!r} has no ID")
        if label.id in seen_ids:
            # cvat-sdk leaves this one name unquoted; matching its wording matters more.
            raise BadFunctionError(f"label {label.name} has same ID as another label ({label.id})")
        seen_ids.add(label.id)
        _validate_label(label)


@attrs.frozen(kw_only=True)
class DetectionFunctionSpec(sdk_aa.DetectionFunctionSpec):
    """Static information about a detection function: the labels it can output.

    Validated on construction exactly as cvat-sdk validates it (distinct label ids, distinct
    sublabel ids within a label, sublabels only on skeleton labels and only of type points,
    distinct attribute ids with values valid for their input type). A violation raises
    :class:`BadFunctionError` naming the label, sublabel or attribute.

    It is a subclass of cvat-sdk's spec, so cvat-sdk's driver accepts it.
    """

    labels: Sequence[models.PatchedLabelRequest] = attrs.field(converter=tuple)

    @labels.validator
    def _check_labels(self, _attribute, value: Sequence[models.PatchedLabelRequest]) -> None:
        validate_labels(value)


@attrs.frozen(kw_only=True)
class FrameContext(DetectionFunctionContext):
    """The context the driver passes to ``detect`` for one frame."""

    frame_name: str
    conf_threshold: float | None = None
    conv_mask_to_poly: bool = False


@runtime_checkable
class DetectionFunction(Protocol):
    """What the driver runs: cvat-sdk's detection function protocol."""

    @property
    def spec(self) -> sdk_aa.DetectionFunctionSpec: ...

    def detect(
        self, context: DetectionFunctionContext, image: PIL.Image.Image
    ) -> Sequence[DetectionAnnotation]: ...


@runtime_checkable
class BatchDetectionFunction(DetectionFunction, Protocol):
    """A detection function that can also process several frames in one call.

    ``detect_batch`` must return, for each (context, image) pair, exactly what ``detect``
    would return for it.
    """

    def detect_batch(
        self,
        contexts: Sequence[DetectionFunctionContext],
        images: Sequence[PIL.Image.Image],
    ) -> Sequence[Sequence[DetectionAnnotation]]: ...
