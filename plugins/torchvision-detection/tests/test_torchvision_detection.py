"""The torchvision_detection function: rectangles from a torchvision detector."""

import subprocess
import sys

import cvat_aa
import cvat_sdk.auto_annotation.functions.torchvision_detection as sdk_detection
import pytest
import torch
from cvat_aa import FrameContext, FunctionParameterError
from cvat_aa_torchvision_detection import TorchvisionDetectionFunction

MODEL = "fasterrcnn_mobilenet_v3_large_320_fpn"


@pytest.fixture(scope="session")
def model_name():
    return MODEL


@pytest.fixture(scope="module")
def function(weights_path):
    # Random weights score every class about equally, below the model's default threshold.
    return TorchvisionDetectionFunction(
        MODEL, weights_path=weights_path, device="cpu", box_score_thresh=0.0
    )


def context(conf_threshold=None):
    return FrameContext(frame_name="frame.jpg", conf_threshold=conf_threshold)


@pytest.fixture
def model_outputs(function, monkeypatch):
    """Make the model return these detections for every image."""

    def inject(boxes, labels, scores):
        detections = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "scores": torch.tensor(scores, dtype=torch.float32),
        }
        monkeypatch.setattr(function.model, "forward", lambda batch: [detections] * len(batch))

    return inject


def labelled(function, annotations):
    """The annotations whose label is in the function's spec."""
    label_ids = {label.id for label in function.spec.labels}
    return [annotation for annotation in annotations if annotation.label_id in label_ids]


def without_score(annotation):
    return {key: value for key, value in annotation.to_dict().items() if key != "score"}


def test_importing_the_plugin_leaves_torch_for_later():
    # `cvat-aa functions list` imports every plugin; torch takes seconds to import.
    code = "import sys, cvat_aa_torchvision_detection; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_function_is_installed_as_torchvision_detection(weights_path):
    function = cvat_aa.load_function(
        "torchvision_detection", model_name=MODEL, weights_path=weights_path, device="cpu"
    )
    assert isinstance(function, TorchvisionDetectionFunction)


def test_spec_has_a_rectangle_label_for_each_coco_category(function):
    labels = {label.id: label for label in function.spec.labels}
    assert len(labels) == 80
    assert labels[1].name == "person"
    assert labels[90].name == "toothbrush"
    assert {label.type for label in labels.values()} == {"rectangle"}


def test_rectangles_carry_the_models_boxes_labels_and_scores(function, model_outputs, photo):
    model_outputs(boxes=[[10.5, 20.25, 60.0, 90.75]], labels=[18], scores=[0.875])
    (rectangle,) = function.detect(context(), photo)
    assert rectangle.to_dict() == {
        "type": "rectangle",
        "frame": 0,
        "label_id": 18,
        "points": [10.5, 20.25, 60.0, 90.75],
        "score": 0.875,
    }


def test_threshold_drops_rectangles_scoring_below_it(function, model_outputs, photo):
    model_outputs(boxes=[[0, 0, 5, 5]] * 3, labels=[1, 2, 3], scores=[0.3, 0.6, 0.9])
    result = function.detect(context(conf_threshold=0.6), photo)
    assert [rectangle.label_id for rectangle in result] == [2, 3]


def test_no_detections_give_no_rectangles(function, model_outputs, photo):
    model_outputs(boxes=[], labels=[], scores=[])
    assert function.detect(context(), photo) == []


def test_model_keywords_reach_the_model(function):
    assert function.model.roi_heads.score_thresh == 0.0


def test_rectangles_are_in_the_original_images_pixels(function, photo):
    # The model sees the image scaled up to 320 pixels; boxes come back scaled down.
    rectangles = function.detect(context(), photo)
    assert rectangles
    assert all(
        0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120
        for x1, y1, x2, y2 in (r.points for r in rectangles)
    )
    assert max(r.points[2] for r in rectangles) > 120


def test_every_rectangle_has_a_score_between_0_and_1(function, photo):
    assert all(0 <= rectangle.score <= 1 for rectangle in function.detect(context(), photo))


def test_batched_results_equal_one_by_one_results(function, photos):
    one_by_one = [function.detect(context(), frame) for frame in photos]
    assert function.detect_batch([context()] * len(photos), photos) == one_by_one


def test_unknown_model_error_lists_the_detection_models(weights_path):
    with pytest.raises(FunctionParameterError, match="use one of: fasterrcnn_mobilenet_v3"):
        cvat_aa.load_function("torchvision_detection", model_name="resnet18")


def test_annotations_equal_cvat_sdks_apart_from_score(function, torch_home, monkeypatch, photo):
    # cvat-sdk's function downloads DEFAULT weights through torchvision's cache, which holds
    # the same random weights as weights_path. Random weights also give classes that are no
    # label (unused "N/A" ids), which cvat-sdk's function returns and its driver rejects;
    # ours drops them, so they are left out of the comparison.
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    sdk_function = sdk_detection.create(MODEL, box_score_thresh=0.0)
    scores = sorted(rectangle.score for rectangle in function.detect(context(), photo))
    for conf_threshold in (None, scores[len(scores) // 2]):
        ours = function.detect(context(conf_threshold), photo)
        theirs = labelled(function, sdk_function.detect(context(conf_threshold), photo))
        assert ours
        assert [without_score(a) for a in ours] == [without_score(a) for a in theirs]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_device_without_cuda_is_a_clear_error(weights_path):
    with pytest.raises(FunctionParameterError, match="sees no CUDA device"):
        cvat_aa.load_function(
            "torchvision_detection", model_name=MODEL, weights_path=weights_path, device="cuda"
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_detects_rectangles_on_cuda(weights_path, photos):
    function = TorchvisionDetectionFunction(
        MODEL, weights_path=weights_path, device="cuda", box_score_thresh=0.0
    )
    results = function.detect_batch([context()] * len(photos), photos)
    assert all(results)
    assert all(0 <= r.points[0] < r.points[2] <= 160 for result in results for r in result)


def test_annotates_a_task_through_the_driver(function, cvat_server, cvat_client, photos):
    task_id = cvat_server.create_task(
        "photos",
        images=photos,
        labels=[{"name": label.name, "type": "rectangle"} for label in function.spec.labels],
    )
    cvat_aa.annotate_task(cvat_client, task_id, function, batch_size=2)

    task = cvat_client.tasks.retrieve(task_id)
    task_label_names = {label.id: label.name for label in task.get_labels()}
    uploaded = [
        (shape.frame, task_label_names[shape.label_id], shape.points, shape.score)
        for shape in task.get_annotations().shapes
    ]
    function_label_names = {label.id: label.name for label in function.spec.labels}
    expected = [
        (frame, function_label_names[shape.label_id], shape.points, shape.score)
        for frame, photo in enumerate(photos)
        for shape in function.detect(context(), photo)
    ]
    assert expected
    assert sorted(uploaded) == sorted(expected)
