"""Tracks in annotation files of runs over files, and in the annotations a run keeps.

A run whose result stages make tracks hands each track to its sinks when the track ends,
after the frames it covers. The files hold them as CVAT's own exporters do: COCO as a shape on
every frame where CVAT shows the track, with ``track_id`` and ``keyframe`` attributes; CVAT XML
as "CVAT for video 1.1", with the frames' own shapes as tracks of one keyframe.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET

import numpy as np
import PIL.Image
import pytest
from cvat_aa.annotations import AnnotationSet, FrameAnnotations
from cvat_aa.export import (
    CocoWriter,
    CvatXmlWriter,
    open_writer,
    read_annotations,
    write_annotations,
)
from cvat_aa.export.coco import to_coco
from cvat_aa.export.cvat_xml import read_cvat_video_xml
from cvat_aa.frames import Frame
from cvat_aa.labels import LabelCatalog
from cvat_aa.pipeline.run import MappedFrame
from cvat_aa.pipeline.sinks import ExportSink, KeepSink
from cvat_aa.result_stages import StageTrack
from cvat_sdk import models
from cvat_sdk.masks import encode_mask
from sample_annotations import SPEC

LABELS = LabelCatalog.from_spec(SPEC.labels)
CAR, ROAD, BLOB, CAT, SUNNY = 10, 11, 14, 15, 16
COLOUR, PARKED = 0, 1  # the car's attributes
HEAD, BODY, TAIL = 0, 1, 2  # the cat's points


def keyframe(frame, points, *, outside=False, rotation=0.0, type="rectangle", attributes=()):
    return models.TrackedShapeRequest(
        type=type,
        frame=frame,
        points=points,
        outside=outside,
        occluded=False,
        z_order=0,
        rotation=rotation,
        attributes=list(attributes),
    )


def value(spec_id, text):
    return models.AttributeValRequest(spec_id=spec_id, value=text)


def car_track(*keyframes, attributes=()):
    return models.LabeledTrackRequest(
        label_id=CAR,
        frame=keyframes[0].frame,
        source="auto",
        attributes=list(attributes),
        shapes=list(keyframes),
    )


def moving_car():
    """Keyframes on frames 1 and 3, and it leaves on frame 5."""
    return car_track(
        keyframe(1, [10, 10, 20, 20]),
        keyframe(3, [30, 10, 40, 20]),
        keyframe(5, [50, 10, 60, 20], outside=True),
    )


def frame(index, shapes=(), tags=()):
    return FrameAnnotations(index, f"frame_{index}.png", 100, 80, tags, shapes)


def road(index):
    return models.LabeledShapeRequest(
        type="polygon", frame=index, label_id=ROAD, points=[1, 1, 9, 1, 9, 9], source="auto"
    )


def coco_document(frames, tracks, tmp_path):
    path = tmp_path / "annotations.json"
    with CocoWriter(path, LABELS) as writer:
        for each in frames:
            writer.add(each)
        for track in tracks:
            writer.add_track(track)
    return json.loads(path.read_text())


def tracked(document):
    """(frame, bbox, keyframe) of the annotations that belong to track 0."""
    return [
        (a["image_id"] - 1, a["bbox"], a["attributes"]["keyframe"])
        for a in sorted(document["annotations"], key=lambda a: a["image_id"])
        if a["attributes"].get("track_id") == 0
    ]


# --- COCO ------------------------------------------------------------------------------------


def test_coco_has_a_track_on_every_frame_where_cvat_shows_it_boxes_interpolated(tmp_path):
    document = coco_document([frame(i) for i in range(7)], [moving_car()], tmp_path)
    # Not before the first keyframe, not from the outside keyframe on; the frames between
    # keyframes (and towards the outside one) are computed linearly, as CVAT computes them.
    assert tracked(document) == [
        (1, [10.0, 10.0, 10.0, 10.0], True),
        (2, [20.0, 10.0, 10.0, 10.0], False),
        (3, [30.0, 10.0, 10.0, 10.0], True),
        (4, [40.0, 10.0, 10.0, 10.0], False),
    ]


def test_coco_tracked_annotations_are_numbered_on_after_the_frames_and_name_their_track(
    tmp_path,
):
    document = coco_document(
        [frame(0, [road(0)]), frame(1), frame(2)], [moving_car(), moving_car()], tmp_path
    )
    annotations = document["annotations"]
    assert [a["id"] for a in annotations] == list(range(1, 6))
    assert [a["attributes"].get("track_id") for a in annotations] == [None, 0, 0, 1, 1]
    assert "keyframe" not in annotations[0]["attributes"]


def test_coco_rotation_is_interpolated_along_the_shorter_arc(tmp_path):
    turning = car_track(
        keyframe(0, [10, 10, 20, 20], rotation=350.0), keyframe(2, [10, 10, 20, 20], rotation=10.0)
    )
    document = coco_document([frame(i) for i in range(3)], [turning], tmp_path)
    rotations = [a["attributes"]["rotation"] for a in document["annotations"]]
    assert rotations == [350.0, 0.0, 10.0]


def test_coco_a_track_that_does_not_leave_is_on_every_later_frame_even_frames_added_after_it(
    tmp_path,
):
    staying = car_track(keyframe(1, [10, 10, 20, 20]))
    path = tmp_path / "annotations.json"
    with CocoWriter(path, LABELS) as writer:
        for index in range(3):
            writer.add(frame(index))
        writer.add_track(staying)
        writer.add(frame(3))
    document = json.loads(path.read_text())
    assert [(f, k) for f, _, k in tracked(document)] == [(1, True), (2, False), (3, False)]
    assert {tuple(bbox) for _, bbox, _ in tracked(document)} == {(10.0, 10.0, 10.0, 10.0)}


def test_coco_has_a_track_only_on_the_frames_of_the_file(tmp_path):
    # Frame 2 was left out of the run (the function failed on it, say).
    document = coco_document([frame(0), frame(1), frame(3), frame(4)], [moving_car()], tmp_path)
    assert [f for f, _, _ in tracked(document)] == [1, 3, 4]


def test_coco_a_keyframe_keeps_earlier_attribute_values_and_every_shape_has_the_tracks(tmp_path):
    track = car_track(
        keyframe(0, [10, 10, 20, 20], attributes=[value(PARKED, "true")]),
        keyframe(2, [10, 10, 20, 20]),
        attributes=[value(COLOUR, "blue")],
    )
    document = coco_document([frame(i) for i in range(3)], [track], tmp_path)
    for annotation in document["annotations"]:
        assert annotation["attributes"]["parked"] is True
        assert annotation["attributes"]["colour"] == "blue"


def test_coco_a_skeleton_track_is_keypoints_with_its_points_interpolated(tmp_path):
    def points(x):
        return [keyframe(0, [x, 10], type="points"), keyframe(2, [x + 20, 10], type="points")]

    cat = models.LabeledTrackRequest(
        label_id=CAT,
        frame=0,
        shapes=[keyframe(0, [], type="skeleton")],
        elements=[
            models.SubLabeledTrackRequest(label_id=HEAD, frame=0, shapes=points(10)),
            models.SubLabeledTrackRequest(label_id=BODY, frame=0, shapes=points(20)),
            models.SubLabeledTrackRequest(
                label_id=TAIL,
                frame=0,
                shapes=[keyframe(0, [30, 10], type="points", outside=True)],
            ),
        ],
    )
    document = coco_document([frame(i) for i in range(3)], [cat], tmp_path)
    assert [(a["keypoints"], a["attributes"]["keyframe"]) for a in document["annotations"]] == [
        ([10.0, 10.0, 2, 20.0, 10.0, 2, 0.0, 0.0, 0], True),
        ([20.0, 10.0, 2, 30.0, 10.0, 2, 0.0, 0.0, 0], False),
        ([30.0, 10.0, 2, 40.0, 10.0, 2, 0.0, 0.0, 0], True),
    ]


def test_coco_a_mask_stays_as_its_keyframe_until_the_next(tmp_path):
    bitmap = np.zeros((80, 100), dtype=bool)
    bitmap[10:20, 30:40] = True
    blob = models.LabeledTrackRequest(
        label_id=BLOB, frame=0, shapes=[keyframe(0, encode_mask(bitmap), type="mask")]
    )
    document = coco_document([frame(i) for i in range(3)], [blob], tmp_path)
    assert [a["bbox"] for a in document["annotations"]] == [[30.0, 10.0, 10.0, 10.0]] * 3


def test_coco_writer_and_to_coco_agree_on_annotations_with_tracks(tmp_path):
    annotations = AnnotationSet(
        LABELS, [frame(0, [road(0)]), *(frame(i) for i in range(1, 6))], [moving_car()]
    )
    path = tmp_path / "annotations.json"
    write_annotations(path, annotations)
    assert json.loads(path.read_text()) == to_coco(annotations)[0]


def test_coco_tracked_shapes_read_back_as_the_shapes_of_their_frames(tmp_path):
    path = tmp_path / "annotations.json"
    write_annotations(path, AnnotationSet(LABELS, [frame(i) for i in range(6)], [moving_car()]))
    read = read_annotations(path, LABELS)
    assert [len(f.shapes) for f in read.frames] == [0, 1, 1, 1, 1, 0]
    assert all(s.attributes == [] for f in read.frames for s in f.shapes)


# --- CVAT XML ---------------------------------------------------------------------------------


def video_file(tmp_path, frames, tracks):
    path = tmp_path / "annotations.xml"
    with open_writer(path, LABELS, task_name="run", tracks=True) as writer:
        for each in frames:
            writer.add(each)
        for track in tracks:
            writer.add_track(track)
    return path


def test_a_run_that_makes_tracks_writes_cvat_for_video(tmp_path):
    path = video_file(tmp_path, [frame(i) for i in range(6)], [moving_car()])
    root = ET.parse(path).getroot()
    assert [child.tag for child in root] == ["version", "meta", "track"]
    task = root.find("meta/task")
    assert (task.findtext("mode"), task.findtext("size"), task.findtext("stop_frame")) == (
        "interpolation",
        "6",
        "5",
    )
    assert (task.findtext("original_size/width"), task.findtext("original_size/height")) == (
        "100",
        "80",
    )
    assert read_cvat_video_xml(path, LABELS)[0].to_dict() == moving_car().to_dict()


def test_cvat_for_video_holds_a_frames_shapes_as_tracks_of_one_keyframe_closed_on_the_next(
    tmp_path,
):
    path = video_file(tmp_path, [frame(0, [road(0)]), frame(1, [road(1)])], [])
    first, last = ET.parse(path).getroot().findall("track")
    # As CVAT's video exporter writes a task's shapes; no outside keyframe past the last frame.
    assert [(p.get("frame"), p.get("keyframe"), p.get("outside")) for p in first] == [
        ("0", "1", "0"),
        ("1", "1", "1"),
    ]
    assert [(p.get("frame"), p.get("outside")) for p in last] == [("1", "0")]
    assert first.get("label") == "road" and first.find("polygon").get("points") == (
        "1.00,1.00;9.00,1.00;9.00,9.00"
    )
    assert [t.get("id") for t in ET.parse(path).getroot().findall("track")] == ["0", "1"]


def test_cvat_for_video_leaves_tags_out_with_a_warning(tmp_path, caplog):
    tag = models.LabeledImageRequest(frame=0, label_id=SUNNY, source="auto")
    with caplog.at_level(logging.WARNING):
        path = video_file(tmp_path, [frame(0, tags=[tag])], [])
    assert "1 tag(s) were left out" in caplog.text
    assert ET.parse(path).getroot().findall("track") == []


def test_cvat_for_video_writes_a_mask_track_as_a_mask_per_keyframe(tmp_path):
    bitmap = np.zeros((80, 100), dtype=bool)
    bitmap[10:20, 30:40] = True
    blob = models.LabeledTrackRequest(
        label_id=BLOB,
        frame=0,
        shapes=[
            keyframe(0, encode_mask(bitmap), type="mask"),
            keyframe(2, encode_mask(bitmap), type="mask"),
            keyframe(3, encode_mask(bitmap), type="mask", outside=True),
        ],
    )
    path = video_file(tmp_path, [frame(i) for i in range(4)], [blob])
    # CVAT keeps only the first mask of a mask track: one track per keyframe keeps them all.
    masks = [track.findall("mask") for track in ET.parse(path).getroot().findall("track")]
    assert [[m.get("frame") for m in track] for track in masks] == [["0"], ["2"]]


def test_cvat_for_video_writes_a_skeleton_track_with_its_points_per_keyframe(tmp_path):
    cat = models.LabeledTrackRequest(
        label_id=CAT,
        frame=0,
        shapes=[keyframe(0, [], type="skeleton")],
        elements=[
            models.SubLabeledTrackRequest(
                label_id=HEAD,
                frame=0,
                shapes=[
                    keyframe(0, [10, 10], type="points"),
                    keyframe(2, [30, 10], type="points", outside=True),
                ],
            ),
            models.SubLabeledTrackRequest(
                label_id=BODY, frame=0, shapes=[keyframe(0, [20, 10], type="points")]
            ),
        ],
    )
    path = video_file(tmp_path, [frame(i) for i in range(3)], [cat])
    skeletons = ET.parse(path).getroot().find("track").findall("skeleton")
    assert [(s.get("frame"), s.get("keyframe")) for s in skeletons] == [("0", "1"), ("2", "0")]
    assert [
        (p.get("label"), p.get("points"), p.get("outside"), p.get("keyframe"))
        for p in skeletons[0].findall("points")
    ] == [("head", "10.00,10.00", "0", "1"), ("body", "20.00,10.00", "0", "1")]
    assert [(p.get("label"), p.get("outside")) for p in skeletons[1].findall("points")] == [
        ("head", "1")
    ]


def test_a_run_without_tracks_writes_cvat_for_images_which_takes_no_track(tmp_path):
    writer = open_writer(tmp_path / "annotations.xml", LABELS)
    assert isinstance(writer, CvatXmlWriter)
    with pytest.raises(TypeError, match="tracks=True"):
        writer.add_track(moving_car())
    writer.discard()


def test_annotations_with_tracks_are_written_as_cvat_for_video(tmp_path):
    path = tmp_path / "annotations.xml"
    write_annotations(path, AnnotationSet(LABELS, [frame(i) for i in range(6)], [moving_car()]))
    assert ET.parse(path).getroot().findtext("meta/task/mode") == "interpolation"
    read = read_annotations(path, LABELS)
    assert [t.to_dict() for t in read.tracks] == [moving_car().to_dict()]
    assert read.frames == ()


# --- sinks -----------------------------------------------------------------------------------


def mapped(index):
    image = PIL.Image.new("RGB", (100, 80))
    return MappedFrame(Frame(index, f"frame_{index}.png", image), [], [])


def test_the_annotations_a_run_keeps_hold_its_tracks():
    sink = KeepSink(LABELS)
    sink.add([mapped(0), mapped(1)])
    sink.add_tracks([StageTrack("10:1", moving_car())])
    kept = sink.annotations()
    assert [t.to_dict() for t in kept.tracks] == [moving_car().to_dict()]
    assert kept.per_label() == {"car": 1}
    assert kept.count == 1


def test_the_file_of_a_run_that_makes_tracks_holds_them(tmp_path):
    path = tmp_path / "annotations.xml"
    sink = ExportSink(path, LABELS, "cvat", "run", tracks=True)
    sink.start()
    sink.add([mapped(i) for i in range(6)])
    sink.add_tracks([StageTrack("10:1", moving_car())])
    sink.finish()
    assert [t.to_dict() for t in read_cvat_video_xml(path, LABELS)] == [moving_car().to_dict()]
