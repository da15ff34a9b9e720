"""Shapes are fitted into the frame they were found on: clipped, left out, or refused."""

from __future__ import annotations

import logging

import attrs
import cvat_aa
import numpy as np
import PIL.Image
import pytest
from cvat_aa.pipeline.label_mapping import LabelMapper
from cvat_aa.labels import LabelCatalog
from cvat_aa.local import annotate_images
from cvat_aa.preview import PreviewWriter
from cvat_sdk.masks import decode_mask, encode_mask

WIDTH, HEIGHT = 40, 30

SPEC = cvat_aa.DetectionFunctionSpec(
    labels=[
        cvat_aa.label_spec("thing", 0),
        cvat_aa.skeleton_label_spec(
            "cat", 1, [cvat_aa.keypoint_spec("head", 0), cvat_aa.keypoint_spec("tail", 1)]
        ),
    ]
)


@attrs.frozen
class TaskLabel:
    id: int
    name: str
    type: str = "any"
    attributes: list = attrs.field(factory=list)
    sublabels: list = attrs.field(factory=list)


TASK_LABELS = [
    TaskLabel(100, "thing"),
    TaskLabel(101, "cat", "skeleton", sublabels=[TaskLabel(102, "head"), TaskLabel(103, "tail")]),
]


def fitted(*shapes):
    """What the mapper keeps of ``shapes`` on a WIDTH x HEIGHT frame."""
    mapper = LabelMapper(
        SPEC.labels, TASK_LABELS, allow_unmatched_labels=False, conv_mask_to_poly=False
    )
    _, kept = mapper.map_frame(list(shapes), 0, frame_size=(WIDTH, HEIGHT))
    return kept


def points_of(*shapes):
    return [shape.points for shape in fitted(*shapes)]


def cat(*points):
    return cvat_aa.skeleton(1, [cvat_aa.keypoint(i, p) for i, p in enumerate(points)])


def test_shapes_inside_the_frame_are_not_changed():
    shapes = [
        cvat_aa.rectangle(0, [0, 0, WIDTH, HEIGHT]),
        cvat_aa.polygon(0, [1, 1, 20, 1, 10, 20]),
        cvat_aa.shape(0, type="polyline", points=[0, 0, 40, 30]),
        cvat_aa.shape(0, type="points", points=[0, 0, 40, 30]),
        cvat_aa.mask(0, encode_mask(np.ones((HEIGHT, WIDTH), dtype=bool))),
    ]
    before = [list(shape.points) for shape in shapes]
    assert points_of(*shapes) == before


def test_a_box_past_the_frame_edge_is_clipped_to_it():
    assert points_of(cvat_aa.rectangle(0, [-5, 10, 50, 35])) == [[0, 10, WIDTH, HEIGHT]]


@pytest.mark.parametrize(
    "box",
    [[50, 0, 60, 10], [-20, -20, -1, 10], [0, 31, 10, 40], [-10, 0, 0, 10]],
    ids=["right", "left", "below", "touching-the-left-edge"],
)
def test_a_box_entirely_outside_the_frame_is_left_out(box):
    assert fitted(cvat_aa.rectangle(0, box)) == []


def test_a_box_with_no_width_or_height_is_left_out():
    assert fitted(cvat_aa.rectangle(0, [5, 5, 5, 20]), cvat_aa.rectangle(0, [5, 5, 20, 5])) == []


@pytest.mark.parametrize("box", [[20, 5, 10, 15], [5, 20, 15, 10]], ids=["x2<x1", "y2<y1"])
def test_an_inverted_box_is_a_bad_function(box):
    with pytest.raises(cvat_aa.BadFunctionError, match=r"x2 < x1 or y2 < y1.*\[x1, y1, x2, y2\]"):
        fitted(cvat_aa.rectangle(0, box))


def test_a_rotated_box_partly_outside_is_kept_as_it_is():
    assert points_of(cvat_aa.rectangle(0, [30, 20, 50, 40], rotation=45)) == [[30, 20, 50, 40]]


def test_a_rotated_box_entirely_outside_is_left_out():
    # Its bounding box overlaps the frame's corner, the box itself does not.
    assert fitted(cvat_aa.rectangle(0, [-12, -12, -1, -1], rotation=45)) == []


def test_a_polygon_is_clipped_at_the_frame_edges():
    assert points_of(cvat_aa.polygon(0, [-10, 10, 20, 10, 20, 20])) == [
        [0, 13.333333333333332, 0, 10, 20, 10, 20, 20]
    ]


def test_a_polygon_entirely_outside_or_without_area_is_left_out():
    assert fitted(cvat_aa.polygon(0, [50, 0, 60, 0, 60, 10])) == []
    assert fitted(cvat_aa.polygon(0, [1, 1, 5, 5, 10, 10])) == []


def test_a_polyline_is_cut_where_it_leaves_the_frame():
    line = cvat_aa.shape(0, type="polyline", points=[10, 10, 30, 10, 60, 10])
    assert points_of(line) == [[10, 10, 30, 10, 40, 10]]


def test_points_outside_the_frame_are_left_out_of_a_points_shape():
    dots = cvat_aa.shape(0, type="points", points=[1, 1, -1, 5, 39, 29, 41, 5])
    assert points_of(dots) == [[1, 1, 39, 29]]
    assert fitted(cvat_aa.shape(0, type="points", points=[-1, 5])) == []


def test_a_skeleton_point_outside_the_frame_is_moved_to_its_edge_and_marked_outside():
    (skeleton,) = fitted(cat([10, 10], [45, -3]))
    head, tail = skeleton.elements
    assert (head.points, getattr(head, "outside", False)) == ([10, 10], False)
    assert (tail.points, tail.outside) == ([WIDTH, 0], True)


def test_a_skeleton_entirely_outside_the_frame_is_left_out():
    assert fitted(cat([-5, -5], [50, 50])) == []


def test_an_ellipse_is_kept_unless_it_lies_outside():
    assert points_of(cvat_aa.shape(0, type="ellipse", points=[38, 15, 48, 5])) == [[38, 15, 48, 5]]
    assert fitted(cvat_aa.shape(0, type="ellipse", points=[60, 15, 70, 5])) == []


def test_an_ellipse_with_a_negative_radius_is_a_bad_function():
    with pytest.raises(cvat_aa.BadFunctionError, match="negative radius"):
        fitted(cvat_aa.shape(0, type="ellipse", points=[20, 15, 10, 5]))


def test_a_mask_larger_than_the_frame_is_refused_as_cvat_sdk_would_refuse_it():
    points = encode_mask(np.ones((HEIGHT + 5, WIDTH), dtype=bool))
    with pytest.raises(ValueError):
        decode_mask(points, image_width=WIDTH, image_height=HEIGHT)
    with pytest.raises(cvat_aa.BadFunctionError, match=r"does not fit in the 40x30 frame"):
        fitted(cvat_aa.mask(0, points))


def test_a_mask_without_pixels_is_left_out():
    empty = encode_mask(np.zeros((HEIGHT, WIDTH), dtype=bool), bbox=[0, 0, 4, 4])
    assert fitted(cvat_aa.mask(0, empty)) == []


def test_what_is_left_out_is_counted_and_logged(caplog):
    mapper = LabelMapper(
        SPEC.labels, TASK_LABELS, allow_unmatched_labels=False, conv_mask_to_poly=False
    )
    with caplog.at_level(logging.DEBUG, logger="cvat_aa.pipeline.label_mapping"):
        mapper.map_frame([cvat_aa.rectangle(0, [50, 0, 60, 10])], 7, frame_size=(WIDTH, HEIGHT))
    assert mapper.dropped == 1
    assert "rectangle of label 'thing' on frame 7: it lies outside the frame" in caplog.text


class OversizedMask:
    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("blob", 0, type="mask")])

    def detect(self, context, image):
        bitmap = np.ones((image.height * 2, image.width * 2), dtype=bool)
        return [cvat_aa.mask(0, encode_mask(bitmap))]


def test_the_preview_never_sees_a_mask_larger_than_the_frame(tmp_path):
    PIL.Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "a.png")
    labels = LabelCatalog.from_spec(OversizedMask.spec.labels)
    with (
        pytest.raises(cvat_aa.BadFunctionError, match="does not fit"),
        PreviewWriter(tmp_path / "preview", labels) as writer,
    ):
        annotate_images(OversizedMask(), [tmp_path / "a.png"], on_frame=writer.add)


class Outside:
    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])

    def detect(self, context, image):
        return [
            cvat_aa.rectangle(0, [-10, -10, 10, 10]),
            cvat_aa.rectangle(0, [image.width + 1, 0, image.width + 9, 9]),
        ]


def test_a_task_run_uploads_boxes_clipped_and_leaves_out_those_outside(cvat_server, cvat_client):
    task = cvat_server.create_task(
        "bounds",
        images=[PIL.Image.new("RGB", (WIDTH, HEIGHT))],
        labels=[{"name": "car", "type": "rectangle"}],
    )
    summary = cvat_aa.annotate_task(cvat_client, task, Outside())
    assert summary.annotations == 1
    assert [s["points"] for s in cvat_server.annotations(task)["shapes"]] == [[0, 0, 10, 10]]


def test_a_task_run_with_an_oversized_mask_uploads_nothing(cvat_server, cvat_client):
    task = cvat_server.create_task(
        "bounds",
        images=[PIL.Image.new("RGB", (WIDTH, HEIGHT))],
        labels=[{"name": "blob", "type": "mask"}],
    )
    with pytest.raises(cvat_aa.BadFunctionError, match="does not fit"):
        cvat_aa.annotate_task(cvat_client, task, OversizedMask())
    assert cvat_server.annotations(task)["shapes"] == []
