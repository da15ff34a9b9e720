"""The torchvision_instance_segmentation function: masks or polygons from Mask R-CNN."""

import subprocess
import sys

import cvat_aa
import cvat_sdk.auto_annotation.functions.torchvision_instance_segmentation as sdk_segmentation
import numpy as np
import pytest
import torch
from cvat_aa import FrameContext
from cvat_aa.pipeline.frame_bounds import fit_to_frame
from cvat_aa_torchvision_instance_segmentation import TorchvisionInstanceSegmentationFunction
from cvat_sdk.masks import decode_mask

MODEL = "maskrcnn_resnet50_fpn"

# Small model inputs and few detections per image keep the tests fast.
SMALL_INPUT = {"min_size": 120, "max_size": 160, "box_detections_per_img": 10}
WIDTH, HEIGHT = 160, 120


@pytest.fixture(scope="session")
def model_name():
    return MODEL


@pytest.fixture(scope="module")
def function(weights_path):
    return TorchvisionInstanceSegmentationFunction(
        MODEL, weights_path=weights_path, device="cpu", **SMALL_INPUT
    )


def context(conf_threshold=None, conv_mask_to_poly=False):
    return FrameContext(
        frame_name="frame.jpg", conf_threshold=conf_threshold, conv_mask_to_poly=conv_mask_to_poly
    )


def probabilities(*rectangles, value=1.0):
    """An image-sized mask of per-pixel probabilities, ``value`` inside the rectangles
    (x1, y1, x2, y2, ends excluded) and 0 elsewhere."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    for x1, y1, x2, y2 in rectangles:
        mask[y1:y2, x1:x2] = value
    return mask


@pytest.fixture
def model_outputs(function, monkeypatch):
    """Make the model return these instances (box, mask probabilities, label, score)."""

    def inject(instances):
        detections = {
            "boxes": torch.tensor([box for box, _, _, _ in instances]).reshape(-1, 4),
            "masks": torch.tensor(np.array([[mask] for _, mask, _, _ in instances])).reshape(
                -1, 1, HEIGHT, WIDTH
            ),
            "labels": torch.tensor([label for _, _, label, _ in instances], dtype=torch.int64),
            "scores": torch.tensor([score for _, _, _, score in instances]),
        }
        monkeypatch.setattr(function.model, "forward", lambda batch: [detections] * len(batch))

    return inject


def labelled(function, annotations):
    """The annotations whose label is in the function's spec."""
    label_ids = {label.id for label in function.spec.labels}
    return [annotation for annotation in annotations if annotation.label_id in label_ids]


def without_score(annotation):
    return {key: value for key, value in annotation.to_dict().items() if key != "score"}


def polygon_bounds(shape):
    xs, ys = shape.points[0::2], shape.points[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def test_importing_the_plugin_leaves_torch_for_later():
    # `cvat-aa functions list` imports every plugin; torch takes seconds to import.
    code = "import sys, cvat_aa_torchvision_instance_segmentation; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_function_is_installed_as_torchvision_instance_segmentation(weights_path):
    function = cvat_aa.load_function(
        "torchvision_instance_segmentation",
        model_name=MODEL,
        weights_path=weights_path,
        device="cpu",
        **SMALL_INPUT,
    )
    assert isinstance(function, TorchvisionInstanceSegmentationFunction)


def test_spec_has_a_mask_label_for_each_coco_category(function):
    labels = {label.id: label for label in function.spec.labels}
    assert len(labels) == 80
    assert labels[1].name == "person"
    assert {label.type for label in labels.values()} == {"mask"}


def test_masks_carry_the_models_label_and_score(function, model_outputs, photo):
    model_outputs([([10.0, 20.0, 40.0, 60.0], probabilities((12, 25, 30, 50)), 17, 0.625)])
    (mask,) = function.detect(context(), photo)
    assert (mask.type.value, mask.label_id, mask.score) == ("mask", 17, 0.625)


def test_masks_hold_the_pixels_of_probability_at_least_one_half(function, model_outputs, photo):
    mask = probabilities((12, 25, 30, 50))
    mask[30, 20] = 0.49
    mask[55, 35] = 0.5
    model_outputs([([10.0, 20.0, 40.0, 60.0], mask, 17, 0.625)])
    (shape,) = function.detect(context(), photo)
    assert np.array_equal(
        decode_mask(shape.points, image_width=WIDTH, image_height=HEIGHT), mask >= 0.5
    )


def test_masks_are_encoded_within_their_box(function, model_outputs, photo):
    model_outputs([([10.2, 20.7, 39.5, 60.0], probabilities((12, 25, 30, 50)), 17, 0.625)])
    (shape,) = function.detect(context(), photo)
    # An encoded mask ends with its box: left, top, right, bottom (inclusive) pixels.
    assert shape.points[-4:] == [10, 20, 39, 59]


def test_conv_mask_to_poly_gives_the_masks_outline(function, model_outputs, photo):
    model_outputs([([10.0, 20.0, 40.0, 60.0], probabilities((12, 25, 30, 50)), 17, 0.625)])
    (shape,) = function.detect(context(conv_mask_to_poly=True), photo)
    assert (shape.type.value, shape.label_id, shape.score) == ("polygon", 17, 0.625)
    # The outline runs half-way between the pixels inside and outside the mask.
    assert polygon_bounds(shape) == pytest.approx((11.5, 24.5, 29.5, 49.5), abs=0.01)


def test_polygons_leave_out_holes(function, model_outputs, photo):
    ring = probabilities((12, 25, 42, 55))
    ring[35:45, 22:32] = 0
    model_outputs([([10.0, 20.0, 50.0, 60.0], ring, 17, 0.625)])
    (shape,) = function.detect(context(conv_mask_to_poly=True), photo)
    assert polygon_bounds(shape) == pytest.approx((11.5, 24.5, 41.5, 54.5), abs=0.01)


def test_a_mask_in_separate_parts_gives_a_polygon_per_part(function, model_outputs, photo):
    parts = probabilities((12, 25, 30, 50), (60, 25, 80, 50))
    model_outputs([([10.0, 20.0, 90.0, 60.0], parts, 17, 0.625)])
    shapes = function.detect(context(conv_mask_to_poly=True), photo)
    assert [(s.label_id, s.score) for s in shapes] == [(17, 0.625), (17, 0.625)]
    assert sorted(polygon_bounds(s)[0] for s in shapes) == pytest.approx([11.5, 59.5])


def test_threshold_drops_instances_scoring_below_it(function, model_outputs, photo):
    mask = probabilities((12, 25, 30, 50))
    model_outputs(
        [([10.0, 20.0, 40.0, 60.0], mask, 1, 0.3), ([10.0, 20.0, 40.0, 60.0], mask, 2, 0.7)]
    )
    result = function.detect(context(conf_threshold=0.5), photo)
    assert [shape.label_id for shape in result] == [2]


def test_batched_results_equal_one_by_one_results(function, photos):
    one_by_one = [function.detect(context(), frame) for frame in photos]
    assert all(one_by_one)
    assert function.detect_batch([context()] * len(photos), photos) == one_by_one


@pytest.mark.parametrize("conv_mask_to_poly", [False, True], ids=["masks", "polygons"])
def test_annotations_equal_cvat_sdks_apart_from_score(
    function, torch_home, monkeypatch, photo, conv_mask_to_poly
):
    # cvat-sdk's function downloads DEFAULT weights through torchvision's cache, which holds
    # the same random weights as weights_path. Random weights also give classes that are no
    # label (unused "N/A" ids), which cvat-sdk's function returns and its driver rejects;
    # ours drops them, so they are left out of the comparison.
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    sdk_function = sdk_segmentation.create(MODEL, **SMALL_INPUT)
    ours = function.detect(context(conv_mask_to_poly=conv_mask_to_poly), photo)
    theirs = labelled(
        function, sdk_function.detect(context(conv_mask_to_poly=conv_mask_to_poly), photo)
    )
    assert ours
    assert [without_score(a) for a in ours] == [without_score(a) for a in theirs]


@pytest.mark.parametrize("conv_mask_to_poly", [False, True], ids=["masks", "polygons"])
def test_annotates_a_task_through_the_driver(
    function, cvat_server, cvat_client, photos, conv_mask_to_poly
):
    label_type = "polygon" if conv_mask_to_poly else "mask"
    task_id = cvat_server.create_task(
        "photos",
        images=photos,
        labels=[{"name": label.name, "type": label_type} for label in function.spec.labels],
    )
    cvat_aa.annotate_task(
        cvat_client, task_id, function, conv_mask_to_poly=conv_mask_to_poly, batch_size=2
    )

    task = cvat_client.tasks.retrieve(task_id)
    task_label_names = {label.id: label.name for label in task.get_labels()}
    uploaded = [
        (shape.frame, task_label_names[shape.label_id], str(shape.type), shape.points, shape.score)
        for shape in task.get_annotations().shapes
    ]
    function_label_names = {label.id: label.name for label in function.spec.labels}
    # Random weights give masks without a pixel and polygons without area, which the driver
    # leaves out (see frame_bounds); the rest it uploads as they are.
    expected = [
        (frame, function_label_names[shape.label_id], str(shape.type), shape.points, shape.score)
        for frame, photo in enumerate(photos)
        for shape in function.detect(context(conv_mask_to_poly=conv_mask_to_poly), photo)
        if fit_to_frame(shape, *photo.size) is None
    ]
    assert expected
    assert {shape_type for _, _, shape_type, _, _ in uploaded} == {label_type}
    assert sorted(uploaded) == sorted(expected)
