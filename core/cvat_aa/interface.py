"""The function interface: specs, contexts, helper factories and BadFunctionError.

cvat-aa speaks cvat-sdk's auto-annotation protocol. A function is an object with a ``spec``
attribute (a :class:`DetectionFunctionSpec`) and a ``detect(context, image)`` method returning
``cvat_sdk.models`` objects. The classes here subclass cvat-sdk's, so:

* a function written for ``cvat_sdk.auto_annotation`` works unchanged with cvat-aa, and
* a cvat-aa function is accepted by ``cvat_sdk.auto_annotation.annotate_task``.

A function may also offer ``detect_batch(contexts, images)``, returning one sequence of
annotations per image; the driver uses it to run models on batches (see ``hookspecs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeAlias, runtime_checkable

import attrs
import cvat_sdk.auto_annotation as sdk_aa
import PIL.Image
from cvat_sdk import models
from cvat_sdk.attributes import attribute_value_validator

# The helper factories are cvat-sdk's own: they build the same models with the same fixed
# fields (frame=0, mutable=False, type=...), so there is nothing to gain from copies.
from cvat_sdk.auto_annotation import (
    attribute_spec,
    checkbox_attribute_spec,
    keypoint,
    keypoint_spec,
    label_spec,
    mask,
    number_attribute_spec,
    polygon,
    radio_attribute_spec,
    rectangle,
    select_attribute_spec,
    shape,
    skeleton,
    skeleton_label_spec,
    tag,
    text_attribute_spec,
)

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


class BadFunctionError(sdk_aa.BadFunctionError):
    """A function broke its contract: a bad spec, bad output, or it could not be loaded.

    It subclasses cvat-sdk's ``BadFunctionError``, so ``except
    cvat_sdk.auto_annotation.BadFunctionError`` catches it too.
    """


DetectionAnnotation: TypeAlias = models.LabeledImageRequest | models.LabeledShapeRequest
DetectionFunctionContext = sdk_aa.DetectionFunctionContext


def _validate_attributes(attributes: Sequence[models.AttributeRequest], owner: str) -> None:
    seen_ids: set[int] = set()
    for attr in attributes:
        desc = f"attribute {attr.name!r} of {owner}"
        if not hasattr(attr, "id"):
            raise BadFunctionError(f"{desc} has no id")
        if attr.id in seen_ids:
            raise BadFunctionError(f"{desc} has the same id as another attribute ({attr.id})")
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
            f"{desc} has sublabels but type {label_type!r}; only 'skeleton' labels have sublabels"
        )
    seen_ids: set[int] = set()
    for sublabel in sublabels:
        sl_desc = f"sublabel {sublabel.name!r} of {desc}"
        if not hasattr(sublabel, "id"):
            raise BadFunctionError(f"{sl_desc} has no id")
        if sublabel.id in seen_ids:
            raise BadFunctionError(f"{sl_desc} has the same id as another sublabel ({sublabel.id})")
        seen_ids.add(sublabel.id)
        sl_type = getattr(sublabel, "type", "any")
        if sl_type != "points":
            raise BadFunctionError(f"{sl_desc} has type {sl_type!r} (should be 'points')")
        _validate_attributes(getattr(sublabel, "attributes", []), sl_desc)


def validate_labels(labels: Sequence[models.PatchedLabelRequest]) -> None:
    """Check labels as cvat-sdk 2.80 does, raising our BadFunctionError on the first violation."""
    seen_ids: set[int] = set()
    for label in labels:
        if not isinstance(label, models.PatchedLabelRequest):
            raise BadFunctionError(
                f"spec label {label!r} is a {type(label).__name__}, not a PatchedLabelRequest;"
                " build labels with label_spec() or skeleton_label_spec()"
            )
        if not hasattr(label, "id"):
            raise BadFunctionError(f"label {label.name!r} has no id")
        if label.id in seen_ids:
            raise BadFunctionError(
                f"label {label.name!r} has the same id as another label ({label.id})"
            )
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
