"""The function interface: spec validation, contexts, factories and the error type."""

from __future__ import annotations

import cvat_aa
import cvat_sdk.auto_annotation as sdk_aa
import numpy as np
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


BAD_SPECS = {
    "duplicate label ids": lambda: [cvat_aa.label_spec("cat", 0), cvat_aa.label_spec("dog", 0)],
    "label without id": lambda: [models.PatchedLabelRequest(name="cat")],
    "duplicate sublabel ids": lambda: [
        cvat_aa.skeleton_label_spec(
            "p", 0, [cvat_aa.keypoint_spec("a", 0), cvat_aa.keypoint_spec("b", 0)]
        )
    ],
    "sublabel without id": lambda: [
        cvat_aa.skeleton_label_spec("p", 0, [models.SublabelRequest(name="a", type="points")])
    ],
    "sublabels on a non-skeleton label": lambda: [
        cvat_aa.label_spec("p", 0, type="rectangle", sublabels=[cvat_aa.keypoint_spec("a", 0)])
    ],
    "a sublabel that is not points": lambda: [
        cvat_aa.skeleton_label_spec(
            "p", 0, [models.SublabelRequest(name="a", id=0, type="rectangle")]
        )
    ],
    "duplicate attribute ids": lambda: [
        cvat_aa.label_spec(
            "car",
            0,
            attributes=[cvat_aa.text_attribute_spec("a", 0), cvat_aa.text_attribute_spec("b", 0)],
        )
    ],
    "attribute without id": lambda: [
        cvat_aa.label_spec(
            "car",
            0,
            attributes=[
                models.AttributeRequest(name="a", input_type="text", mutable=False, values=[])
            ],
        )
    ],
    "attribute values invalid for the input type": lambda: [
        cvat_aa.label_spec("car", 0, attributes=[cvat_aa.number_attribute_spec("doors", 0, ["x"])])
    ],
    "duplicate attribute ids of a sublabel": lambda: [
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
    ],
}


@pytest.mark.parametrize("labels", BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_spec_errors_are_cvat_sdks_word_for_word(labels):
    with pytest.raises(sdk_aa.BadFunctionError) as theirs:
        sdk_aa.DetectionFunctionSpec(labels=labels())
    with pytest.raises(cvat_aa.BadFunctionError) as ours:
        cvat_aa.DetectionFunctionSpec(labels=labels())
    assert str(ours.value) == str(theirs.value)


def test_a_regular_expression_written_for_cvat_sdk_matches_our_spec_error():
    with pytest.raises(cvat_aa.BadFunctionError, match=r"has same ID as another label \(0\)$"):
        cvat_aa.DetectionFunctionSpec(
            labels=[cvat_aa.label_spec("cat", 0), cvat_aa.label_spec("dog", 0)]
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


def test_shape_factories_take_numpy_numbers_and_arrays():
    box = cvat_aa.rectangle(
        np.int64(1),
        np.array([1, 2, 3, 4], dtype=np.float32),
        rotation=np.float32(10),
        score=np.float64(0.5),
        z_order=np.int32(2),
        occluded=np.bool_(True),
    )
    assert box.points == [1.0, 2.0, 3.0, 4.0] and all(type(p) is float for p in box.points)
    assert (box.label_id, box.rotation, box.score, box.z_order, box.occluded) == (
        1,
        10.0,
        0.5,
        2,
        True,
    )
    assert cvat_aa.keypoint(0, [np.float32(1.5), np.array(2.5)]).points == [1.5, 2.5]
    assert cvat_aa.tag(np.int64(3)).label_id == 3


def test_polygon_points_may_be_pairs_or_a_contour_array():
    contour = np.array([[[0, 0]], [[4, 0]], [[4, 3]]])  # as cv2.findContours returns it
    assert cvat_aa.polygon(0, contour).points == [0, 0, 4, 0, 4, 3]
    assert cvat_aa.polygon(0, [(0, 0), (4, 0), (4, 3)]).points == [0, 0, 4, 0, 4, 3]


def test_attribute_values_may_be_given_as_a_mapping_of_numpy_values():
    box = cvat_aa.rectangle(
        0, [1, 2, 3, 4], attributes={np.int64(0): np.bool_(True), 1: np.float32(3), 2: "red"}
    )
    assert [(a.spec_id, a.value) for a in box.attributes] == [(0, "true"), (1, "3"), (2, "red")]


def test_shape_factories_take_torch_scalars_and_tensors():
    torch = pytest.importorskip("torch")
    box = cvat_aa.rectangle(
        torch.tensor(0), torch.tensor([1.0, 2.0, 3.0, 4.0]), score=torch.tensor(0.25)
    )
    assert (box.label_id, box.points, box.score) == (0, [1.0, 2.0, 3.0, 4.0], 0.25)


# --- the three kinds -----------------------------------------------------------------------


def test_the_interaction_and_tracking_classes_are_cvat_sdks_own():
    for name in (
        "InteractionFunctionSpec",
        "InteractionFunctionContext",
        "InteractionPrompts",
        "InteractionResultAttributes",
        "InteractionResultShape",
        "TrackingFunctionSpec",
        "TrackingFunctionContext",
        "TrackingFunctionShapeContext",
        "TrackableShape",
    ):
        assert getattr(cvat_aa, name) is getattr(sdk_aa, name)


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        (cvat_aa.DetectionFunctionSpec(labels=[]), "detection"),
        (sdk_aa.DetectionFunctionSpec(labels=[]), "detection"),
        (sdk_aa.InteractionFunctionSpec(min_pos_points=1), "interaction"),
        (sdk_aa.TrackingFunctionSpec(supported_shape_types=["rectangle"]), "tracking"),
    ],
)
def test_the_kind_follows_from_the_specs_type(spec, kind):
    class Function:
        pass

    function = Function()
    function.spec = spec
    assert cvat_aa.function_kind(spec) == kind
    assert cvat_aa.function_kind(function) == kind


@pytest.mark.parametrize("thing", [object(), {"labels": []}, None])
def test_anything_else_has_no_kind(thing):
    with pytest.raises(cvat_aa.BadFunctionError, match="not a DetectionFunctionSpec"):
        cvat_aa.function_kind(thing)


def test_an_interaction_shape_with_numpy_points_and_a_confidence_is_valid():
    from cvat_aa.interface import validate_interaction_shape

    confidence = models.AttributeValRequest(
        spec_id=sdk_aa.InteractionResultAttributes.CONFIDENCE, value="1"
    )
    shape = sdk_aa.InteractionResultShape(
        type="polygon", points=np.array([[1, 1], [9, 1], [9, 9]]).tolist(), attributes=[confidence]
    )
    checked = validate_interaction_shape(shape, 10, 10)
    assert checked.points == [1, 1, 9, 1, 9, 9]
    assert checked.attributes == [confidence]


def test_a_trackable_shape_past_the_edge_is_clipped_like_a_detected_one():
    from cvat_aa.interface import validate_trackable_shape

    shape = sdk_aa.TrackableShape(type="rectangle", points=[-5, 2, np.float32(8), 12])
    checked = validate_trackable_shape(shape, 10, 10, original_type="rectangle")
    assert checked.points == [0, 2, 8, 10]


def test_interaction_and_tracked_shapes_take_torch_numbers():
    torch = pytest.importorskip("torch")
    from cvat_aa.interface import validate_interaction_shape, validate_trackable_shape

    polygon = sdk_aa.InteractionResultShape(
        type="polygon", points=torch.tensor([1.0, 1.0, 9.0, 1.0, 9.0, 9.0])
    )
    assert validate_interaction_shape(polygon, 10, 10).points == [1, 1, 9, 1, 9, 9]
    box = sdk_aa.TrackableShape(type="rectangle", points=torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert validate_trackable_shape(box, 10, 10).points == [1, 2, 3, 4]
