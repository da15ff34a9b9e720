"""The function interface: specs, contexts, helper factories and BadFunctionError.

cvat-aa speaks cvat-sdk's auto-annotation protocol, which has three kinds of function, told
apart by the type of their ``spec`` (see :func:`function_kind`):

* a **detection** function (``spec``: :class:`DetectionFunctionSpec`) has
  ``detect(context, image)`` returning ``cvat_sdk.models`` annotations; ``cvat-aa annotate``
  runs it over tasks and files;
* an **interaction** function (``spec``: :class:`InteractionFunctionSpec`) has
  ``detect(context, pp_image, prompts)`` returning :class:`InteractionResultShape` objects;
  CVAT calls it when a user clicks in its UI (see ``cvat_aa.interaction``);
* a **tracking** function (``spec``: :class:`TrackingFunctionSpec`) has
  ``init_tracking_state`` and ``track``, returning :class:`TrackableShape` objects (see
  ``cvat_aa.tracking``).

Interaction and tracking functions may also have ``preprocess_image(context, image)``.
Their classes are cvat-sdk's own, re-exported unchanged: a function written for
``cvat_sdk.auto_annotation`` is a cvat-aa function and the other way round. What those
functions return is checked here, before anything leaves the process, by
:func:`validate_interaction_shape` and :func:`validate_trackable_shape` (the same shape rules
and frame fitting as detection output).

For detection, the classes here subclass cvat-sdk's, so:

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

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import attrs
import cvat_sdk.auto_annotation as sdk_aa
import PIL.Image
from cvat_sdk import models
from cvat_sdk.api_client.exceptions import ApiTypeError, ApiValueError
from cvat_sdk.attributes import attribute_vals_from_dict, attribute_value_validator

# The spec factories are cvat-sdk's own: they build the same models with the same fixed
# fields (mutable=False, type=...), so there is nothing to gain from copies. The interaction
# and tracking classes are cvat-sdk's too, unchanged: their validators already give cvat-sdk's
# messages, and a function written against either package gets the same ones.
from cvat_sdk.auto_annotation import (
    InteractionFunction,
    InteractionFunctionContext,
    InteractionFunctionSpec,
    InteractionPrompts,
    InteractionResultAttributes,
    InteractionResultShape,
    TrackableShape,
    TrackingFunction,
    TrackingFunctionContext,
    TrackingFunctionShapeContext,
    TrackingFunctionSpec,
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
    "FunctionKind",
    "InteractionFunction",
    "InteractionFunctionContext",
    "InteractionFunctionSpec",
    "InteractionPrompts",
    "InteractionResultAttributes",
    "InteractionResultShape",
    "TrackableShape",
    "TrackingFunction",
    "TrackingFunctionContext",
    "TrackingFunctionShapeContext",
    "TrackingFunctionSpec",
    "attribute_spec",
    "check_shape_points",
    "checkbox_attribute_spec",
    "function_kind",
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
    "validate_interaction_shape",
    "validate_trackable_shape",
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


# --- the three kinds -------------------------------------------------------------------------

FunctionKind: TypeAlias = Literal["detection", "interaction", "tracking"]
"""What a function is, by the type of its spec."""

_KIND_OF_SPEC: tuple[tuple[type, FunctionKind], ...] = (
    (sdk_aa.DetectionFunctionSpec, "detection"),
    (InteractionFunctionSpec, "interaction"),
    (TrackingFunctionSpec, "tracking"),
)

SPEC_TYPES = tuple(spec_type for spec_type, _ in _KIND_OF_SPEC)
"""The spec classes of the three kinds (cvat-sdk's; cvat-aa's detection spec subclasses its)."""


def kind_of_spec_type(spec_type: Any) -> FunctionKind | None:
    """The kind whose spec ``spec_type`` is (a class), or None."""
    if isinstance(spec_type, type):
        for base, kind in _KIND_OF_SPEC:
            if issubclass(spec_type, base):
                return kind
    return None


def function_kind(spec_or_function: Any) -> FunctionKind:
    """``"detection"``, ``"interaction"`` or ``"tracking"``: the kind of a spec, or of a
    function by its ``spec``.

    Raises :class:`BadFunctionError` for anything else.
    """
    spec = spec_or_function
    if not isinstance(spec, SPEC_TYPES):
        spec = getattr(spec_or_function, "spec", None)
    kind = kind_of_spec_type(type(spec))
    if kind is None:
        raise BadFunctionError(
            f"function spec is a {type(spec).__name__}, not a DetectionFunctionSpec,"
            " InteractionFunctionSpec or TrackingFunctionSpec"
        )
    return kind


def _checked_request(what: str, shape_type: Any, points: Any) -> models.LabeledShapeRequest:
    """A ``LabeledShapeRequest`` of the shape, checked with detection's geometry rules
    (``pipeline.label_mapping.check_geometry``), so that every kind of function obeys the same
    rules with the same messages."""
    # Imported here: the pipeline imports this module.
    from .pipeline.label_mapping import check_geometry

    try:
        models.ShapeType(shape_type)
    except (ApiTypeError, ApiValueError, ValueError, TypeError):
        allowed = ", ".join(map(repr, models.ShapeType.allowed_values[("value",)].values()))
        raise BadFunctionError(
            f"function output {what} of type {shape_type!r}, which is not a shape type"
            f" (one of {allowed})"
        ) from None
    try:
        request = models.LabeledShapeRequest(type=shape_type, points=points, label_id=0, frame=0)
    except (ApiTypeError, ApiValueError, TypeError, ValueError) as ex:
        raise BadFunctionError(f"function output {what} with invalid points: {ex}") from ex
    check_geometry(request)
    return request


def check_shape_points(shape_type: Any, points: Any) -> None:
    """Raise :class:`BadFunctionError` if ``shape_type`` is not a shape type, or ``points``
    do not fit it or are not finite numbers (the rules for detection shapes)."""
    _checked_request("a shape", shape_type, _flat_points(points))


def _checked_shape(
    what: str, shape_type: Any, points: Any, width: int, height: int
) -> tuple[str, list[float]] | None:
    """The type and points of a returned shape, checked and fitted into the frame as
    detection's are (``pipeline.frame_bounds.fit_to_frame``); None to drop it."""
    from .pipeline.frame_bounds import fit_to_frame

    points = _flat_points(points)
    request = _checked_request(what, shape_type, points)
    why = fit_to_frame(request, width, height)
    if why is not None:
        return None
    fitted = [float(p) for p in request.points]
    # A shape that needed no fitting keeps the function's own numbers (a mask's whole numbers
    # stay whole), as cvat-sdk's drivers would send them.
    return shape_type, (points if fitted == points else fitted)


def _confidence(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and 0 <= number <= 1 else None


def validate_interaction_shape(
    shape: Any, width: int, height: int
) -> InteractionResultShape | None:
    """Check one shape an interaction function returned for a ``width`` x ``height`` image.

    Returns the shape with plain-number points fitted into the frame (as detection shapes
    are: see ``pipeline.frame_bounds``), or None when it lies wholly outside the frame or has
    no area. Raises :class:`BadFunctionError` when the shape is not an
    :class:`InteractionResultShape`, its type is not a shape type, its points do not fit its
    type or are not finite, an attribute is not an :class:`InteractionResultAttributes`
    member (cvat-sdk's message) or a confidence is not a real number from 0 to 1.
    """
    if not isinstance(shape, InteractionResultShape):
        raise BadFunctionError(
            f"interaction function output a {type(shape).__name__}, not an InteractionResultShape"
        )
    attributes = []
    for attribute in shape.attributes:
        spec_id = plain_number(getattr(attribute, "spec_id", None))
        if not any(spec_id == member for member in InteractionResultAttributes):
            raise BadFunctionError(f"{spec_id} is not one of InteractionResultAttributes members")
        value = getattr(attribute, "value", None)
        if spec_id == InteractionResultAttributes.CONFIDENCE and _confidence(value) is None:
            raise BadFunctionError(
                f"interaction function output a confidence of {value!r}; it must be a real"
                " number from 0 to 1"
            )
        attributes.append(attribute)
    checked = _checked_shape("a shape", shape.type, shape.points, width, height)
    if checked is None:
        return None
    shape_type, points = checked
    return InteractionResultShape(type=shape_type, points=points, attributes=attributes)


def validate_trackable_shape(
    shape: Any, width: int, height: int, *, original_type: str | None = None
) -> TrackableShape | None:
    """Check one shape a tracking function returned for a ``width`` x ``height`` image.

    Returns the shape with plain-number points fitted into the frame, or None when it lies
    wholly outside the frame (the object was lost). Raises :class:`BadFunctionError` when it
    is not a :class:`TrackableShape`, its type differs from ``original_type`` (cvat-sdk's
    message), or its points do not fit its type or are not finite.
    """
    if not isinstance(shape, TrackableShape):
        raise BadFunctionError(
            f"tracking function output a {type(shape).__name__}, not a TrackableShape"
        )
    if original_type is not None and shape.type != original_type:
        raise BadFunctionError(
            f"function output shape of type {shape.type!r}, "
            f"but original shape was of type {original_type!r}"
        )
    checked = _checked_shape("a shape", shape.type, shape.points, width, height)
    if checked is None:
        return None
    shape_type, points = checked
    return TrackableShape(type=shape_type, points=points)
