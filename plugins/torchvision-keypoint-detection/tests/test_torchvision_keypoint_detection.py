"""The torchvision_keypoint_detection function: skeletons from a torchvision keypoint model."""

import subprocess
import sys

import cvat_aa
import cvat_sdk.auto_annotation.functions.torchvision_keypoint_detection as sdk_keypoints
import pytest
import torch
from cvat_aa import FrameContext
from cvat_aa.pipeline.frame_bounds import fit_to_frame
from cvat_aa_torchvision_keypoint_detection import TorchvisionKeypointDetectionFunction

MODEL = "keypointrcnn_resnet50_fpn"

COCO_KEYPOINTS = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip

# Small model inputs and few detections per image keep the tests fast.
SMALL_INPUT = {"min_size": 120, "max_size": 160, "box_detections_per_img": 10}


@pytest.fixture(scope="session")
def model_name():
    return MODEL


@pytest.fixture(scope="module")
def function(weights_path):
    return TorchvisionKeypointDetectionFunction(
        MODEL, weights_path=weights_path, device="cpu", **SMALL_INPUT
    )


def context(conf_threshold=None):
    return FrameContext(frame_name="frame.jpg", conf_threshold=conf_threshold)


def points(*visibilities):
    """Keypoints (x, y, visibility) at (i, 2i) for every COCO keypoint."""
    visibility = list(visibilities) + [1.0] * (len(COCO_KEYPOINTS) - len(visibilities))
    return [[float(i), 2.0 * i, visibility[i]] for i in range(len(COCO_KEYPOINTS))]


@pytest.fixture
def model_outputs(function, monkeypatch):
    """Make the model return these skeletons for every image."""

    def inject(keypoints, scores):
        n = len(scores)
        detections = {
            "boxes": torch.zeros(n, 4),
            "labels": torch.ones(n, dtype=torch.int64),
            "scores": torch.tensor(scores, dtype=torch.float32),
            "keypoints": torch.tensor(keypoints, dtype=torch.float32).reshape(n, -1, 3),
            "keypoints_scores": torch.zeros(n, len(COCO_KEYPOINTS)),
        }
        monkeypatch.setattr(function.model, "forward", lambda batch: [detections] * len(batch))

    return inject


def labelled(function, annotations):
    """The annotations whose label is in the function's spec."""
    label_ids = {label.id for label in function.spec.labels}
    return [annotation for annotation in annotations if annotation.label_id in label_ids]


def without_score(annotation):
    data = annotation.to_dict()
    data.pop("score", None)
    for element in data.get("elements", []):
        element.pop("score", None)
    return data


def test_importing_the_plugin_leaves_torch_for_later():
    # `cvat-aa functions list` imports every plugin; torch takes seconds to import.
    code = "import sys, cvat_aa_torchvision_keypoint_detection; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_function_is_installed_as_torchvision_keypoint_detection(weights_path):
    function = cvat_aa.load_function(
        "torchvision_keypoint_detection",
        model_name=MODEL,
        weights_path=weights_path,
        device="cpu",
        **SMALL_INPUT,
    )
    assert isinstance(function, TorchvisionKeypointDetectionFunction)


def test_spec_has_a_person_skeleton_with_the_weights_keypoint_names(function):
    (person,) = function.spec.labels
    assert (person.name, person.id, person.type) == ("person", 1, "skeleton")
    assert [(point.name, point.id, point.type) for point in person.sublabels] == [
        (name, i, "points") for i, name in enumerate(COCO_KEYPOINTS)
    ]


def test_skeletons_carry_the_models_keypoints_label_and_score(function, model_outputs, photo):
    model_outputs(keypoints=[points()], scores=[0.75])
    (skeleton,) = function.detect(context(), photo)
    assert (skeleton.type.value, skeleton.label_id, skeleton.score) == ("skeleton", 1, 0.75)
    assert [(e.label_id, e.points) for e in skeleton.elements] == [
        (i, [float(i), 2.0 * i]) for i in range(len(COCO_KEYPOINTS))
    ]


def test_keypoints_the_model_marks_invisible_are_occluded(function, model_outputs, photo):
    model_outputs(keypoints=[points(0.0, 1.0, 0.0)], scores=[0.75])
    (skeleton,) = function.detect(context(), photo)
    assert [e.occluded for e in skeleton.elements[:4]] == [True, False, True, False]


def test_keypoints_carry_their_skeletons_score(function, model_outputs, photo):
    model_outputs(keypoints=[points()], scores=[0.75])
    (skeleton,) = function.detect(context(), photo)
    assert {element.score for element in skeleton.elements} == {0.75}


def test_threshold_drops_skeletons_scoring_below_it(function, model_outputs, photo):
    model_outputs(keypoints=[points(), points()], scores=[0.4, 0.6])
    result = function.detect(context(conf_threshold=0.5), photo)
    assert [skeleton.score for skeleton in result] == pytest.approx([0.6])


def test_skeleton_points_are_in_the_original_images_pixels(function, photo):
    # The model scales this image down by 2 to fit SMALL_INPUT; points come back scaled up.
    large = photo.resize((320, 240))
    coordinates = [
        e.points for skeleton in function.detect(context(), large) for e in skeleton.elements
    ]
    assert coordinates
    # A point is the centre of a heatmap cell, which may stick out of the image a little.
    assert all(-2 <= x <= 322 and -2 <= y <= 242 for x, y in coordinates)
    assert max(x for x, _ in coordinates) > 170


def test_batched_results_equal_one_by_one_results(function, photos):
    one_by_one = [function.detect(context(), frame) for frame in photos]
    assert function.detect_batch([context()] * len(photos), photos) == one_by_one


def test_annotations_equal_cvat_sdks_apart_from_score(function, torch_home, monkeypatch, photo):
    # cvat-sdk's function downloads DEFAULT weights through torchvision's cache, which holds
    # the same random weights as weights_path. Random weights also give classes that are no
    # label (unused "N/A" ids), which cvat-sdk's function returns and its driver rejects;
    # ours drops them, so they are left out of the comparison.
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    sdk_function = sdk_keypoints.create(MODEL, **SMALL_INPUT)
    ours = function.detect(context(), photo)
    theirs = labelled(function, sdk_function.detect(context(), photo))
    assert ours
    assert [without_score(a) for a in ours] == [without_score(a) for a in theirs]


def skeleton_summary(frame, name, score, elements):
    """A comparable view of a skeleton: elements as (point name, points, occluded)."""
    return (frame, name, score, sorted(elements))


def test_annotates_a_task_through_the_driver(function, cvat_server, cvat_client, photos):
    task_id = cvat_server.create_task(
        "people",
        images=photos,
        labels=[
            {
                "name": "person",
                "type": "skeleton",
                "sublabels": [{"name": name, "type": "points"} for name in COCO_KEYPOINTS],
            }
        ],
    )
    cvat_aa.annotate_task(cvat_client, task_id, function, batch_size=2)

    task = cvat_client.tasks.retrieve(task_id)
    (person,) = task.get_labels()
    point_names = {sublabel.id: sublabel.name for sublabel in person.sublabels}
    uploaded = [
        skeleton_summary(
            shape.frame,
            "person" if shape.label_id == person.id else shape.label_id,
            shape.score,
            [(point_names[e.label_id], e.points, e.occluded) for e in shape.elements],
        )
        for shape in task.get_annotations().shapes
    ]
    expected = [
        skeleton_summary(
            frame,
            "person" if shape.label_id == 1 else shape.label_id,
            shape.score,
            [(COCO_KEYPOINTS[e.label_id], e.points, e.occluded) for e in shape.elements],
        )
        for frame, photo in enumerate(photos)
        for shape in function.detect(context(), photo)
        # Keypoints of random weights fall outside the frame too: the driver moves those to
        # its edge (see frame_bounds) and uploads the rest as they are.
        if fit_to_frame(shape, *photo.size) is None
    ]
    assert expected
    assert sorted(uploaded) == sorted(expected)
