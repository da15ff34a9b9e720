"""The function interface: spec validation, contexts, factories and the error type."""

from __future__ import annotations

import cvat_aa
import cvat_sdk.auto_annotation as sdk_aa
import pytest
from cvat_sdk import models


def test_bad_function_error_is_caught_as_cvat_sdks():
    with pytest.raises(sdk_aa.BadFunctionError):
        raise cvat_aa.BadFunctionError("broken")


def test_spec_is_a_cvat_sdk_spec():
    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0)])
    assert isinstance(spec, sdk_aa.DetectionFunctionSpec)


def test_spec_accepts_every_kind_of_label_and_attribute():
    spec = cvat_aa.DetectionFunctionSpec(
        labels=[
            cvat_aa.label_spec(
                "car",
                0,
                type="rectangle",
                attributes=[
                    cvat_aa.checkbox_attribute_spec("parked", 0),
                    cvat_aa.number_attribute_spec("doors", 1, ["2", "5", "1"]),
                    cvat_aa.radio_attribute_spec("colour", 2, ["red", "blue"]),
                    cvat_aa.select_attribute_spec("make", 3, ["a", "b"]),
                    cvat_aa.text_attribute_spec("plate", 4),
                ],
            ),
            cvat_aa.skeleton_label_spec(
                "person",
                1,
                [cvat_aa.keypoint_spec("nose", 0), cvat_aa.keypoint_spec("eye", 1)],
            ),
            cvat_aa.label_spec("scene", 2, type="tag"),
        ]
    )
    assert [label.name for label in spec.labels] == ["car", "person", "scene"]


def test_spec_rejects_duplicate_label_ids_naming_the_label():
    with pytest.raises(cvat_aa.BadFunctionError, match="label 'dog'.*same id"):
        cvat_aa.DetectionFunctionSpec(
            labels=[cvat_aa.label_spec("cat", 0), cvat_aa.label_spec("dog", 0)]
        )


def test_spec_rejects_a_label_without_id():
    with pytest.raises(cvat_aa.BadFunctionError, match="label 'cat' has no id"):
        cvat_aa.DetectionFunctionSpec(labels=[models.PatchedLabelRequest(name="cat")])


def test_spec_rejects_duplicate_sublabel_ids_naming_the_sublabel():
    with pytest.raises(cvat_aa.BadFunctionError, match="sublabel 'b' of label 'p'.*same id"):
        cvat_aa.DetectionFunctionSpec(
            labels=[
                cvat_aa.skeleton_label_spec(
                    "p", 0, [cvat_aa.keypoint_spec("a", 0), cvat_aa.keypoint_spec("b", 0)]
                )
            ]
        )


def test_spec_rejects_sublabels_on_a_non_skeleton_label():
    with pytest.raises(
        cvat_aa.BadFunctionError, match="label 'p' has sublabels but type 'rectangle'"
    ):
        cvat_aa.DetectionFunctionSpec(
            labels=[
                cvat_aa.label_spec(
                    "p", 0, type="rectangle", sublabels=[cvat_aa.keypoint_spec("a", 0)]
                )
            ]
        )


def test_spec_rejects_a_sublabel_that_is_not_points():
    with pytest.raises(
        cvat_aa.BadFunctionError, match="sublabel 'a' of label 'p' has type 'rectangle'"
    ):
        cvat_aa.DetectionFunctionSpec(
            labels=[
                cvat_aa.skeleton_label_spec(
                    "p", 0, [models.SublabelRequest(name="a", id=0, type="rectangle")]
                )
            ]
        )


def test_spec_rejects_duplicate_attribute_ids_naming_the_attribute():
    with pytest.raises(cvat_aa.BadFunctionError, match="attribute 'b' of label 'car'.*same id"):
        cvat_aa.DetectionFunctionSpec(
            labels=[
                cvat_aa.label_spec(
                    "car",
                    0,
                    attributes=[
                        cvat_aa.text_attribute_spec("a", 0),
                        cvat_aa.text_attribute_spec("b", 0),
                    ],
                )
            ]
        )


def test_spec_rejects_attribute_values_invalid_for_their_input_type():
    with pytest.raises(
        cvat_aa.BadFunctionError, match="attribute 'doors' of label 'car' has invalid values"
    ):
        cvat_aa.DetectionFunctionSpec(
            labels=[
                cvat_aa.label_spec(
                    "car", 0, attributes=[cvat_aa.number_attribute_spec("doors", 0, ["x"])]
                )
            ]
        )


def test_spec_rejects_attributes_of_sublabels_with_duplicate_ids():
    with pytest.raises(
        cvat_aa.BadFunctionError, match="attribute 'v2' of sublabel 'a' of label 'p'"
    ):
        cvat_aa.DetectionFunctionSpec(
            labels=[
                cvat_aa.skeleton_label_spec(
                    "p",
                    0,
                    [
                        cvat_aa.keypoint_spec(
                            "a",
                            0,
                            attributes=[
                                cvat_aa.text_attribute_spec("v1", 0),
                                cvat_aa.text_attribute_spec("v2", 0),
                            ],
                        )
                    ],
                )
            ]
        )


def test_spec_rejects_labels_that_are_not_label_models():
    with pytest.raises(cvat_aa.BadFunctionError, match="not a PatchedLabelRequest"):
        cvat_aa.DetectionFunctionSpec(labels=[{"name": "car", "id": 0}])


def test_context_carries_frame_name_threshold_and_mask_conversion():
    context = cvat_aa.FrameContext(frame_name="a.jpg", conf_threshold=0.5, conv_mask_to_poly=True)
    assert isinstance(context, sdk_aa.DetectionFunctionContext)
    assert (context.frame_name, context.conf_threshold, context.conv_mask_to_poly) == (
        "a.jpg",
        0.5,
        True,
    )


def test_shape_factories_build_frame_zero_models_of_their_type():
    box = cvat_aa.rectangle(3, [1, 2, 3, 4])
    person = cvat_aa.skeleton(1, [cvat_aa.keypoint(0, [5, 6])])
    assert isinstance(box, models.LabeledShapeRequest)
    assert (box.frame, box.type.value, box.label_id) == (0, "rectangle", 3)
    assert person.type.value == "skeleton" and person.elements[0].type.value == "points"
    assert cvat_aa.polygon(0, [0, 0, 1, 0, 1, 1]).type.value == "polygon"
    assert cvat_aa.mask(0, [1, 0, 0, 0, 0]).type.value == "mask"
    assert cvat_aa.shape(0, type="points", points=[1, 1]).frame == 0
    assert isinstance(cvat_aa.tag(2), models.LabeledImageRequest)


def test_attribute_factories_build_immutable_attributes():
    attribute = cvat_aa.select_attribute_spec("make", 0, ["a", "b"])
    assert attribute.mutable is False and attribute.input_type.value == "select"
    assert cvat_aa.attribute_spec("n", 1, "number", ["0", "10", "1"]).input_type.value == "number"
