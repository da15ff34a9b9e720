"""Running real models (random weights): specs, coordinates, batches, and a run through the driver."""

import cvat_aa
import pytest
import torch
from cvat_aa import FrameContext

TASKS = ["detect", "segment", "pose", "obb", "classify"]
COCO_KEYPOINTS = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip


def context(conf_threshold=None, conv_mask_to_poly=False):
    return FrameContext(
        frame_name="frame.jpg", conf_threshold=conf_threshold, conv_mask_to_poly=conv_mask_to_poly
    )


@pytest.mark.parametrize(
    ("kind", "label_type"),
    [("detect", "rectangle"), ("obb", "rectangle"), ("segment", "mask"), ("classify", "tag")],
)
def test_spec_has_a_label_per_class_typed_by_the_task(yolo_function, kind, label_type):
    function = yolo_function(kind)
    labels = [(label.id, label.name, label.type) for label in function.spec.labels]
    assert labels == [(i, name, label_type) for i, name in function.model.names.items()]
    assert [name for _, name, _ in labels] != [str(i) for i in range(len(labels))]


def test_pose_spec_has_a_skeleton_with_cocos_keypoint_names(yolo_function):
    (person,) = yolo_function("pose").spec.labels
    assert (person.id, person.name, person.type) == (0, "person", "skeleton")
    assert [(point.id, point.name, point.type) for point in person.sublabels] == [
        (i, name, "points") for i, name in enumerate(COCO_KEYPOINTS)
    ]


def test_pose_spec_takes_the_keypoint_names_that_the_model_carries(yolo_function):
    (fish,) = yolo_function("pose-named").spec.labels
    assert [point.name for point in fish.sublabels] == ["head", "fin", "tail"]


def test_pose_spec_numbers_keypoints_that_have_no_names(yolo_function):
    (hand,) = yolo_function("pose-xy").spec.labels
    assert [point.name for point in hand.sublabels] == ["kp0", "kp1", "kp2", "kp3", "kp4"]


def points_of(annotation):
    if annotation.type.value == "skeleton":
        return [value for element in annotation.elements for value in element.points]
    return annotation.points


@pytest.mark.parametrize("kind", ["detect", "pose", "yolo11", "yolo26"])
def test_shapes_are_in_the_original_images_pixels(yolo_function, photo, kind):
    # The model sees the 160x120 photo at 96x72; shapes come back scaled up.
    shapes = yolo_function(kind).detect(context(), photo)
    assert shapes
    xs = [x for shape in shapes for x in points_of(shape)[0::2]]
    ys = [y for shape in shapes for y in points_of(shape)[1::2]]
    assert 0 <= min(xs) and max(xs) <= 160 and 0 <= min(ys) and max(ys) <= 120
    assert max(xs) > 96


def test_masks_and_polygons_are_in_the_original_images_pixels(yolo_function, photo):
    from cvat_sdk.masks import decode_mask

    function = yolo_function("segment")
    masks = function.detect(context(), photo)
    polygons = function.detect(context(conv_mask_to_poly=True), photo)
    assert masks and polygons
    assert {shape.type.value for shape in masks} == {"mask"}
    assert {shape.type.value for shape in polygons} == {"polygon"}
    for shape in masks:
        assert decode_mask(shape.points, image_width=160, image_height=120).any()
    assert all(0 <= x <= 160 for shape in polygons for x in shape.points[0::2])
    assert all(0 <= y <= 120 for shape in polygons for y in shape.points[1::2])


@pytest.mark.parametrize("kind", TASKS)
def test_every_shape_has_a_score_between_0_and_1(yolo_function, photo, kind):
    shapes = [a for a in yolo_function(kind).detect(context(), photo) if hasattr(a, "type")]
    assert all(0 <= shape.score <= 1 for shape in shapes)
    assert all(0 <= e.score <= 1 for shape in shapes for e in getattr(shape, "elements", []))


def test_a_threshold_above_every_score_gives_nothing(yolo_function, photo):
    assert yolo_function("detect").detect(context(conf_threshold=0.99), photo) == []


def test_imgsz_and_iou_reach_the_model(model_file, photo):
    from cvat_aa_ultralytics_yolo import UltralyticsYoloFunction

    function = UltralyticsYoloFunction(model_file("detect"), device="cpu", imgsz=64, iou=0.5)
    function.detect(context(), photo)
    assert (function.model.predictor.args.imgsz, function.model.predictor.args.iou) == (64, 0.5)


@pytest.mark.parametrize("kind", TASKS)
def test_batched_results_equal_one_by_one_results(yolo_function, photos, kind):
    function = yolo_function(kind)
    for conv_mask_to_poly in (False, True):
        contexts = [context(conv_mask_to_poly=conv_mask_to_poly)] * len(photos)
        one_by_one = [function.detect(c, frame) for c, frame in zip(contexts, photos, strict=True)]
        assert any(one_by_one)
        assert function.detect_batch(contexts, photos) == one_by_one


def test_ultralytics_pads_a_batch_of_same_size_frames_as_each_frame_alone(yolo_function, photos):
    # What lets a GPU run same-size frames together (up to batched kernels' rounding).
    function = yolo_function("segment")
    same_size = [photos[0], photos[2]]
    batched = function.predict(same_size, None)
    for frame, result in zip(same_size, batched, strict=True):
        (alone,) = function.predict([frame], None)
        assert result.masks.data.shape == alone.masks.data.shape
        assert torch.allclose(result.boxes.data, alone.boxes.data, atol=1e-3)


def test_on_the_cpu_each_frame_runs_alone(yolo_function, photos):
    function = yolo_function("detect")
    assert function.batches([context()] * len(photos), photos) == [[0], [1], [2]]


def test_on_a_gpu_frames_of_the_same_size_and_threshold_share_a_batch(
    yolo_function, photos, monkeypatch
):
    function = yolo_function("detect")
    monkeypatch.setattr(function, "device", torch.device("cuda"))  # only batches() reads it
    frames = [*photos, photos[0]]
    contexts = [context(), context(), context(), context(0.5)]
    assert function.batches(contexts, frames) == [[0, 2], [1], [3]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_detects_on_cuda(model_file, photos):
    from cvat_aa_ultralytics_yolo import UltralyticsYoloFunction

    function = UltralyticsYoloFunction(model_file("segment"), device="cuda", imgsz=96)
    results = function.detect_batch([context()] * len(photos), photos)
    assert all(results)
    assert {shape.type.value for result in results for shape in result} == {"mask"}


def task_label(label):
    """A task label (CVAT's TaskWriteRequest form) matching a spec label."""
    data = {"name": label.name, "type": label.type}
    if label.type == "skeleton":
        data["sublabels"] = [{"name": point.name, "type": "points"} for point in label.sublabels]
    return data


def summary(annotation, frame, label_name, point_name):
    """A comparable view of a tag or shape, with labels by name."""
    if not hasattr(annotation, "type"):
        return (frame, label_name(annotation.label_id))
    elements = tuple(
        (point_name(e.label_id), tuple(e.points), e.occluded)
        for e in getattr(annotation, "elements", None) or []
    )
    return (
        frame,
        label_name(annotation.label_id),
        annotation.type.value,
        tuple(getattr(annotation, "points", None) or ()),
        getattr(annotation, "rotation", 0.0) or 0.0,
        annotation.score,
        tuple(sorted(elements)),
    )


@pytest.mark.parametrize("kind", TASKS)
def test_annotates_a_task_through_the_driver(yolo_function, cvat_server, cvat_client, photos, kind):
    function = yolo_function(kind)
    task_id = cvat_server.create_task(
        kind, images=photos, labels=[task_label(label) for label in function.spec.labels]
    )
    cvat_aa.annotate_task(cvat_client, task_id, function, batch_size=2)

    task = cvat_client.tasks.retrieve(task_id)
    task_labels = {label.id: label for label in task.get_labels()}
    task_points = {s.id: s.name for label in task_labels.values() for s in label.sublabels}
    uploaded = task.get_annotations()
    spec_labels = {label.id: label for label in function.spec.labels}
    spec_points = {
        label.id: {s.id: s.name for s in getattr(label, "sublabels", [])}
        for label in function.spec.labels
    }
    expected = sorted(
        summary(
            annotation,
            frame,
            lambda label_id: spec_labels[label_id].name,
            lambda point_id, label=annotation.label_id: spec_points[label][point_id],
        )
        for frame, photo in enumerate(photos)
        for annotation in function.detect(context(), photo)
    )
    actual = sorted(
        summary(a, a.frame, lambda label_id: task_labels[label_id].name, task_points.get)
        for a in [*uploaded.tags, *uploaded.shapes]
    )
    assert expected
    assert actual == expected
