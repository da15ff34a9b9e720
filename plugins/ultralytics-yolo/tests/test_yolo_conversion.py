"""From known model outputs to annotations: coordinates, labels, rotation, keypoints, masks.

The model's ``predict`` is replaced by one that returns Ultralytics ``Results`` built from
known tensors, so that all of the function's own code runs on outputs whose annotations are
known.
"""

import math

import numpy as np
import pytest
import torch
from cvat_aa import FrameContext
from cvat_sdk.masks import decode_mask

WIDTH, HEIGHT = 160, 120


def context(conf_threshold=None, conv_mask_to_poly=False):
    return FrameContext(
        frame_name="frame.jpg", conf_threshold=conf_threshold, conv_mask_to_poly=conv_mask_to_poly
    )


@pytest.fixture
def model_outputs(monkeypatch):
    """Make a function's model return these outputs (Results keywords) for every image.

    Returns the keyword arguments of each ``predict`` call.
    """
    calls = []

    def inject(function, **outputs):
        from ultralytics.engine.results import Results

        tensors = {
            key: torch.as_tensor(value, dtype=torch.float32) for key, value in outputs.items()
        }

        def predict(images, **kwargs):
            calls.append(kwargs)
            return [
                Results(
                    np.zeros((image.height, image.width, 3), np.uint8),
                    path="",
                    names=function.model.names,
                    **tensors,
                )
                for image in images
            ]

        monkeypatch.setattr(function.model, "predict", predict)
        return calls

    return inject


def box(x1, y1, x2, y2, score, label):
    return [x1, y1, x2, y2, score, label]


def rectangle_corners(points, rotation):
    """The corners of a CVAT rectangle, rotated as CVAT's own exporters rotate them."""
    x1, y1, x2, y2 = points
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    angle = math.radians(rotation)
    return [
        (
            cx + math.cos(angle) * (x - cx) - math.sin(angle) * (y - cy),
            cy + math.sin(angle) * (x - cx) + math.cos(angle) * (y - cy),
        )
        for x, y in [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    ]


def test_rectangles_carry_the_models_boxes_labels_and_scores(yolo_function, model_outputs, photo):
    function = yolo_function("detect")
    model_outputs(function, boxes=[box(10.5, 20.25, 60.0, 90.75, 0.875, 2)])
    (rectangle,) = function.detect(context(), photo)
    assert rectangle.to_dict() == {
        "type": "rectangle",
        "frame": 0,
        "label_id": 2,
        "points": [10.5, 20.25, 60.0, 90.75],
        "score": 0.875,
    }


def test_label_ids_are_the_models_class_ids(yolo_function, model_outputs, photo):
    function = yolo_function("detect")
    model_outputs(function, boxes=[box(0, 0, 5, 5, 0.5, 1), box(0, 0, 5, 5, 0.5, 0)])
    names = {label.id: label.name for label in function.spec.labels}
    assert [names[r.label_id] for r in function.detect(context(), photo)] == ["car", "person"]


def test_threshold_keeps_shapes_scoring_at_or_above_it(yolo_function, model_outputs, photo):
    function = yolo_function("detect")
    model_outputs(function, boxes=[box(0, 0, 5, 5, score, 0) for score in (0.25, 0.5, 0.75)])
    result = function.detect(context(conf_threshold=0.5), photo)
    assert [rectangle.score for rectangle in result] == [0.5, 0.75]


def test_threshold_goes_to_the_model_so_that_scores_equal_to_it_survive(
    yolo_function, model_outputs, photo
):
    function = yolo_function("detect")
    calls = model_outputs(function, boxes=torch.zeros(0, 6))
    function.detect(context(conf_threshold=0.5), photo)
    # Ultralytics keeps scores above `conf`: a float32 score of exactly 0.5 must be above it.
    assert 0.5 - 1e-5 < calls[-1]["conf"] < np.float32(0.5)


def test_without_threshold_the_models_own_applies(yolo_function, model_outputs, photo):
    function = yolo_function("detect")
    calls = model_outputs(function, boxes=[box(0, 0, 5, 5, 0.01, 0)])
    assert len(function.detect(context(), photo)) == 1
    assert "conf" not in calls[-1]


def test_no_detections_give_no_shapes(yolo_function, model_outputs, photo):
    function = yolo_function("segment")
    model_outputs(function, boxes=torch.zeros(0, 6), masks=torch.zeros(0, HEIGHT, WIDTH))
    assert function.detect(context(), photo) == []
    assert function.detect(context(conv_mask_to_poly=True), photo) == []


def test_oriented_boxes_become_rectangles_rotated_clockwise_in_degrees(
    yolo_function, model_outputs, photo
):
    function = yolo_function("obb")
    # Centre (80, 60), 40 wide, 20 high, turned by pi/6 from x towards y (down the image).
    model_outputs(function, obb=[[80.0, 60.0, 40.0, 20.0, math.pi / 6, 0.75, 1]])
    (rectangle,) = function.detect(context(), photo)
    assert (rectangle.label_id, rectangle.score) == (1, 0.75)
    assert rectangle.points == pytest.approx([60.0, 50.0, 100.0, 70.0])
    assert rectangle.rotation == pytest.approx(30.0)


def test_rotated_rectangles_have_the_oriented_boxes_corners(yolo_function, model_outputs, photo):
    from ultralytics.engine.results import OBB

    function = yolo_function("obb")
    obb = [[70.0, 50.0, 50.0, 16.0, angle, 0.5, 0] for angle in (0.4, 1.3, -0.7, 2.9)]
    model_outputs(function, obb=obb)
    corners = OBB(torch.tensor(obb), (HEIGHT, WIDTH)).xyxyxyxy.tolist()
    for rectangle, expected in zip(function.detect(context(), photo), corners, strict=True):
        assert 0 <= rectangle.rotation < 360
        actual = np.array(sorted(rectangle_corners(rectangle.points, rectangle.rotation)))
        assert actual == pytest.approx(np.array(sorted(map(tuple, expected))), abs=1e-3)


def test_negative_angles_become_rotations_below_360(yolo_function, model_outputs, photo):
    function = yolo_function("obb")
    model_outputs(function, obb=[[80.0, 60.0, 40.0, 20.0, -math.pi / 6, 0.75, 0]])
    (rectangle,) = function.detect(context(), photo)
    assert rectangle.rotation == pytest.approx(330.0)


def test_threshold_applies_to_oriented_boxes(yolo_function, model_outputs, photo):
    function = yolo_function("obb")
    model_outputs(function, obb=[[80, 60, 40, 20, 0, score, 0] for score in (0.25, 0.75)])
    assert [r.score for r in function.detect(context(conf_threshold=0.5), photo)] == [0.75]


def person(confidences):
    """17 keypoints (x, y, confidence) at (i, 2i)."""
    return [[float(i), 2.0 * i, confidence] for i, confidence in enumerate(confidences)]


def test_skeletons_carry_the_models_keypoints_label_and_score(yolo_function, model_outputs, photo):
    function = yolo_function("pose")
    confidences = [0.75] * 17
    model_outputs(function, boxes=[box(0, 0, 50, 60, 0.875, 0)], keypoints=[person(confidences)])
    (skeleton,) = function.detect(context(), photo)
    assert (skeleton.type.value, skeleton.label_id, skeleton.score) == ("skeleton", 0, 0.875)
    assert [(e.label_id, e.points, e.score) for e in skeleton.elements] == [
        (i, [float(i), 2.0 * i], 0.75) for i in range(17)
    ]


def test_keypoints_below_half_confidence_are_occluded(yolo_function, model_outputs, photo):
    function = yolo_function("pose")
    confidences = [0.25, 0.5, 0.4999, 0.9] + [1.0] * 13
    model_outputs(function, boxes=[box(0, 0, 50, 60, 0.875, 0)], keypoints=[person(confidences)])
    (skeleton,) = function.detect(context(), photo)
    assert [e.occluded for e in skeleton.elements[:4]] == [True, False, True, False]
    # Occluded points keep the place that the model gave them.
    assert skeleton.elements[0].points == [0.0, 0.0]
    assert skeleton.elements[2].points == [2.0, 4.0]


def test_keypoints_without_confidence_carry_their_skeletons_score(
    yolo_function, model_outputs, photo
):
    function = yolo_function("pose-xy")
    model_outputs(
        function,
        boxes=[box(0, 0, 50, 60, 0.625, 0)],
        keypoints=[[[float(i), 3.0 * i] for i in range(5)]],
    )
    (skeleton,) = function.detect(context(), photo)
    assert [(e.points, e.occluded, e.score) for e in skeleton.elements] == [
        ([float(i), 3.0 * i], False, 0.625) for i in range(5)
    ]


def test_threshold_applies_to_skeletons(yolo_function, model_outputs, photo):
    function = yolo_function("pose")
    model_outputs(
        function,
        boxes=[box(0, 0, 50, 60, 0.25, 0), box(0, 0, 50, 60, 0.75, 0)],
        keypoints=[person([1.0] * 17), person([0.0] * 17)],
    )
    (skeleton,) = function.detect(context(conf_threshold=0.5), photo)
    assert skeleton.score == 0.75
    assert all(e.occluded for e in skeleton.elements)


def square_mask(height, width, top, left, size):
    data = torch.zeros(height, width)
    data[top : top + size, left : left + size] = 1
    return data


def test_masks_cover_the_models_mask_pixels(yolo_function, model_outputs, photo):
    function = yolo_function("segment")
    masks = torch.stack(
        [square_mask(HEIGHT, WIDTH, 10, 20, 30), square_mask(HEIGHT, WIDTH, 70, 100, 5)]
    )
    model_outputs(
        function,
        boxes=[box(20, 10, 50, 40, 0.875, 2), box(100, 70, 105, 75, 0.5, 0)],
        masks=masks,
    )
    shapes = function.detect(context(), photo)
    assert [(s.type.value, s.label_id, s.score) for s in shapes] == [
        ("mask", 2, 0.875),
        ("mask", 0, 0.5),
    ]
    for shape, expected in zip(shapes, masks, strict=True):
        decoded = decode_mask(shape.points, image_width=WIDTH, image_height=HEIGHT)
        assert np.array_equal(decoded, expected.numpy().astype(bool))


def test_masks_are_scaled_from_the_models_letterboxed_input_to_the_image(
    yolo_function, model_outputs, photo
):
    # A 160x120 image enters a 160x128 input at scale 1, padded by 4 rows above and below;
    # the same square, 4 rows lower in the input, is where it was in the image.
    function = yolo_function("segment")
    model_outputs(
        function,
        boxes=[box(20, 10, 50, 40, 0.875, 0)],
        masks=square_mask(128, WIDTH, 14, 20, 30)[None],
    )
    (shape,) = function.detect(context(), photo)
    decoded = decode_mask(shape.points, image_width=WIDTH, image_height=HEIGHT)
    assert np.array_equal(decoded, square_mask(HEIGHT, WIDTH, 10, 20, 30).numpy().astype(bool))


def test_masks_at_twice_the_images_size_are_halved(yolo_function, model_outputs, photo):
    function = yolo_function("segment")
    model_outputs(
        function,
        boxes=[box(20, 10, 50, 40, 0.875, 0)],
        masks=square_mask(2 * HEIGHT, 2 * WIDTH, 20, 40, 60)[None],
    )
    (shape,) = function.detect(context(), photo)
    decoded = decode_mask(shape.points, image_width=WIDTH, image_height=HEIGHT)
    assert np.array_equal(decoded, square_mask(HEIGHT, WIDTH, 10, 20, 30).numpy().astype(bool))


def test_polygons_outline_the_masks_when_the_context_asks(yolo_function, model_outputs, photo):
    function = yolo_function("segment")
    model_outputs(
        function,
        boxes=[box(20, 10, 50, 40, 0.875, 2)],
        masks=square_mask(128, WIDTH, 14, 20, 30)[None],
    )
    (shape,) = function.detect(context(conv_mask_to_poly=True), photo)
    assert (shape.type.value, shape.label_id, shape.score) == ("polygon", 2, 0.875)
    corners = set(zip(shape.points[::2], shape.points[1::2], strict=True))
    assert corners == {(20.0, 10.0), (49.0, 10.0), (49.0, 39.0), (20.0, 39.0)}


def test_outlines_of_fewer_than_3_points_give_no_polygon(yolo_function, model_outputs, photo):
    function = yolo_function("segment")
    line = torch.zeros(HEIGHT, WIDTH)
    line[50, 10:40] = 1  # a one-pixel line: its outline has 2 points
    model_outputs(
        function,
        boxes=[box(10, 50, 40, 51, 0.5, 0), box(20, 10, 50, 40, 0.75, 1)],
        masks=torch.stack([line, square_mask(HEIGHT, WIDTH, 10, 20, 30)]),
    )
    shapes = function.detect(context(conv_mask_to_poly=True), photo)
    assert [shape.label_id for shape in shapes] == [1]


def test_threshold_applies_to_masks_and_polygons(yolo_function, model_outputs, photo):
    function = yolo_function("segment")
    model_outputs(
        function,
        boxes=[box(20, 10, 50, 40, 0.25, 0), box(100, 70, 105, 75, 0.75, 1)],
        masks=torch.stack(
            [square_mask(HEIGHT, WIDTH, 10, 20, 30), square_mask(HEIGHT, WIDTH, 70, 100, 5)]
        ),
    )
    for conv_mask_to_poly in (False, True):
        shapes = function.detect(context(0.5, conv_mask_to_poly), photo)
        assert [(shape.label_id, shape.score) for shape in shapes] == [(1, 0.75)]


def test_classification_tags_the_most_likely_class(yolo_function, model_outputs, photo):
    function = yolo_function("classify")
    model_outputs(function, probs=[0.125, 0.75, 0.125])
    (tag,) = function.detect(context(), photo)
    assert tag.to_dict() == {"label_id": 1, "frame": 0}


@pytest.mark.parametrize(("conf_threshold", "tags"), [(0.75, 1), (0.875, 0)])
def test_classification_tags_only_at_or_above_the_threshold(
    yolo_function, model_outputs, photo, conf_threshold, tags
):
    function = yolo_function("classify")
    calls = model_outputs(function, probs=[0.125, 0.75, 0.125])
    assert len(function.detect(context(conf_threshold), photo)) == tags
    assert "conf" not in calls[-1]
