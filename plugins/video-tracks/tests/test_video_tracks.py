"""cvat-aa-video-tracks: the result stage, fed frames as the pipeline feeds them, and the tracks
it gives, read the way CVAT reads them."""

from __future__ import annotations

import json
import math
from importlib import metadata

import cvat_aa
import cvat_sdk.auto_annotation as cvataa
import numpy as np
import PIL.Image
import pytest
from cvat_aa.result_stages import StageRun
from cvat_sdk import models

# Skipped, with the way to install it, where the plugin is not installed (a clone set up before
# scripts/setup.sh listed it): an import error would stop the collection of the whole suite.
pytest.importorskip(
    "cvat_aa_video_tracks",
    reason="cvat-aa-video-tracks is not installed: pip install -e plugins/video-tracks",
)

from cvat_aa_video_tracks import OPTIONS, cvat_aa_result_stage, cvat_aa_run_options
from cvat_aa_video_tracks.options import TRACKERS
from video_tracks_scene import (
    APART,
    CAR,
    COLOR,
    CROSSING,
    HAND,
    HEAD,
    LABELS,
    MOVING,
    PERSON,
    POSE,
    as_data,
    cvat_shows,
    frame_result,
    mot_figures,
    rectangle,
    run_stage,
    scene,
    shape,
    stage_for,
)


def walk(frames, start=(100.0, 100.0), step=(4.0, 2.0), size=40.0, **fields):
    """A rectangle moving in a straight line, one per frame in ``frames``."""
    return [
        frame_result(
            f,
            [
                rectangle(
                    f,
                    (
                        start[0] + step[0] * f,
                        start[1] + step[1] * f,
                        start[0] + step[0] * f + size,
                        start[1] + step[1] * f + size,
                    ),
                    **fields,
                )
            ],
        )
        for f in frames
    ]


def keyframe_frames(track):
    return [s.frame for s in track.shapes if not s.outside]


def outside_frames(track):
    return [s.frame for s in track.shapes if s.outside]


# The plugin and its options


def test_the_plugin_is_a_hook_plugin_named_video_tracks():
    (entry_point,) = [
        ep for ep in metadata.entry_points(group="cvat_aa.plugins") if ep.name == "video-tracks"
    ]
    module = entry_point.load()
    assert module.cvat_aa_result_stage is cvat_aa_result_stage
    assert list(module.cvat_aa_run_options()) == list(OPTIONS)


def test_it_declares_the_tracking_options_each_with_a_sentence_of_help():
    options = {option.name: option for option in cvat_aa_run_options()}
    assert list(options) == [
        "tracks",
        "tracker",
        "track_activation",
        "track_iou",
        "track_lost_frames",
        "track_min_length",
        "keyframes",
        "keyframe_tolerance",
    ]
    assert options["tracks"].is_switch
    assert options["tracker"].choices == TRACKERS
    for option in options.values():
        assert option.help[0].isupper() and option.help.endswith("."), option.name


def test_without_tracks_it_takes_no_part_in_a_run():
    run = StageRun(
        target="task", target_id=1, options={"tracks": False}, labels=LABELS, stop_frame=9
    )
    assert cvat_aa_result_stage(run=run) is None


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("track_activation", "1.5", "--track-activation: give a number from 0 to 1, not '1.5'"),
        ("track_iou", "much", "--track-iou: give a number from 0 to 1, not 'much'"),
        (
            "track_lost_frames",
            "2.5",
            "--track-lost-frames: give a whole number of frames, 0 or more, not '2.5'",
        ),
        (
            "track_min_length",
            "0",
            (
                "--track-min-length: give a whole number of frames, 1 or more"
                " (1 keeps every track), not '0'"
            ),
        ),
        (
            "keyframe_tolerance",
            "-1",
            "--keyframe-tolerance: give a distance in pixels, 0 or more, not '-1'",
        ),
    ],
)
def test_a_bad_value_on_the_command_line_is_refused_with_a_sentence(name, text, message):
    (option,) = [o for o in OPTIONS if o.name == name]
    with pytest.raises(ValueError) as refused:
        option.convert(text)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"track_min_length": 0}, "track_min_length: give a whole number of frames, 1 or more"),
        ({"track_activation": 2}, "track_activation: give a number from 0 to 1, not 2"),
        ({"tracker": "deepsort"}, "tracker: give one of bytetrack, sort, ocsort, botsort"),
        ({"keyframes": "some"}, "keyframes: give one of motion, all, not 'some'"),
    ],
)
def test_a_bad_value_given_in_python_is_refused_when_the_stage_is_made(options, message):
    with pytest.raises(ValueError, match="^" + message):
        stage_for(**options)


# How well objects are followed


def _figures_row(name, figures):
    return (
        f"{name:<24} MOTA {figures['MOTA']:.3f}  IDSW {figures['IDSW']}  Frag {figures['Frag']}"
        f"  FP {figures['CLR_FP']}  FN {figures['CLR_FN']}  MT {figures['MT']}"
    )


def test_objects_whose_paths_never_meet_keep_one_track_each():
    walkers = scene(APART)
    _, tracks = run_stage(stage_for(stop_frame=99), walkers.frames)
    figures = mot_figures(walkers, tracks)
    print("\n" + _figures_row("apart, bytetrack", figures))
    assert len(tracks) == len(APART)
    assert figures["IDSW"] == 0
    assert figures["Frag"] == 0
    # What CVAT shows covers the missed detections too, and no false one lasts.
    assert figures["MOTA"] >= 0.99


@pytest.mark.parametrize("tracker", TRACKERS)
def test_objects_that_cross_and_hide_each_other_keep_their_tracks(tracker):
    walkers = scene(CROSSING)
    _, tracks = run_stage(stage_for(stop_frame=99, tracker=tracker), walkers.frames)
    figures = mot_figures(walkers, tracks)
    print("\n" + _figures_row(f"crossing, {tracker}", figures))
    assert len(tracks) == len(CROSSING)
    assert figures["IDSW"] <= 1
    assert figures["Frag"] <= 1
    assert figures["MOTA"] >= 0.99


@pytest.mark.parametrize("tracker", TRACKERS)
def test_a_track_starts_on_the_frame_its_object_is_first_detected(tracker):
    # The trackers number a track only from its second detection: the stage must still keep
    # the first, which it finds through the tracker's new tracklet.
    frames = [frame_result(f) for f in range(5)] + walk(range(5, 15))
    _, (track,) = run_stage(stage_for(stop_frame=14, tracker=tracker, keyframes="all"), frames)
    assert keyframe_frames(track.track) == list(range(5, 15))
    assert track.track.frame == 5
    assert track.track.shapes[0].points == frames[5].shapes[0].points


def test_an_object_hidden_for_longer_than_the_lost_frames_gets_a_new_track():
    frames = walk(range(20)) + [frame_result(f) for f in range(20, 30)] + walk(range(30, 50))
    _, tracks = run_stage(stage_for(stop_frame=49, track_lost_frames=5), frames)
    assert [(keyframe_frames(t.track)[0], outside_frames(t.track)) for t in tracks] == [
        (0, [20]),
        (30, []),
    ]


# Keyframes


def test_motion_keeps_few_keyframes_of_a_straight_path_and_cvat_shows_each_detection_within_tolerance():
    rng = np.random.default_rng(1)
    frames = walk(range(60))
    for result in frames:
        for detection in result.shapes:
            detection.points = [p + rng.uniform(-0.5, 0.5) for p in detection.points]
    _, (track,) = run_stage(stage_for(stop_frame=59, keyframe_tolerance=2.0), frames)
    assert len(keyframe_frames(track.track)) <= 4
    shown = cvat_shows(track.track, 60)
    for result in frames:
        (detection,) = result.shapes
        assert shown[result.frame][0] == pytest.approx(detection.points, abs=2.0)


def test_motion_follows_a_curved_path_within_tolerance_with_fewer_keyframes():
    def on_circle(f):
        x, y = 300 + 150 * math.cos(f / 20), 240 + 150 * math.sin(f / 20)
        return frame_result(f, [rectangle(f, (x, y, x + 40, y + 40))])

    frames = [on_circle(f) for f in range(80)]
    _, (track,) = run_stage(stage_for(stop_frame=79, keyframe_tolerance=1.0), frames)
    kept = keyframe_frames(track.track)
    assert 2 < len(kept) < 40
    shown = cvat_shows(track.track, 80)
    for result in frames:
        (detection,) = result.shapes
        assert shown[result.frame][0] == pytest.approx(detection.points, abs=1.0)


def test_all_keeps_every_detection_as_a_keyframe():
    frames = walk(range(30))
    _, (track,) = run_stage(stage_for(stop_frame=29, keyframes="all"), frames)
    assert keyframe_frames(track.track) == list(range(30))
    for keyframe, result in zip(track.track.shapes, frames, strict=True):
        assert keyframe.points == result.shapes[0].points


def test_polygons_keep_every_detection_as_a_keyframe_with_motion():
    frames = [
        frame_result(f, [shape("polygon", CAR, f, [100 + f, 100, 140 + f, 100, 120 + f, 140])])
        for f in range(12)
    ]
    _, (track,) = run_stage(stage_for(stop_frame=11), frames)
    assert keyframe_frames(track.track) == list(range(12))
    assert track.track.shapes[5].points == [105, 100, 145, 100, 125, 140]


def test_a_rotated_rectangle_is_followed_by_its_box_and_keeps_its_rotation():
    frames = [
        frame_result(f, [rectangle(f, (100 + 3 * f, 100, 180 + 3 * f, 140), rotation=2.0 * f)])
        for f in range(30)
    ]
    _, (track,) = run_stage(stage_for(stop_frame=29, keyframe_tolerance=1.0), frames)
    shown = cvat_shows(track.track, 30)
    for result in frames:
        (detection,) = result.shapes
        points, rotation = shown[result.frame]
        assert points == pytest.approx(detection.points, abs=1.0)
        assert rotation == pytest.approx(detection.rotation, abs=0.5)
    assert [s.rotation for s in track.track.shapes if not s.outside][-1] == 58.0


def test_a_change_of_a_mutable_attribute_is_kept_as_a_keyframe():
    frames = walk(range(20))
    for result in frames:
        value = "true" if result.frame >= 12 else "false"
        result.shapes[0].attributes = [models.AttributeValRequest(spec_id=MOVING, value=value)]
    _, (track,) = run_stage(stage_for(stop_frame=19), frames)
    # CVAT gives the frames between two keyframes the earlier one's attributes.
    assert keyframe_frames(track.track) == [0, 12, 19]
    assert [s.attributes[0].value for s in track.track.shapes] == ["false", "true", "true"]


# Where tracks end


def test_an_object_that_leaves_ends_with_an_outside_keyframe_on_the_next_frame_given_as_soon_as_the_tracker_gives_it_up():
    frames = [
        frame_result(f, walk([f])[0].shapes if f < 30 else [])
        for f in list(range(0, 40, 2)) + list(range(40, 60))
    ]
    stage = stage_for(stop_frame=59, track_lost_frames=5)
    ended_on = {}
    for result in frames:
        for finished in stage.add([result]).tracks:
            ended_on[finished.key] = (result.frame, finished)
    assert list(stage.finish()) == []
    ((frame, finished),) = ended_on.values()
    # Detected on even frames up to 28, missed on 30 to 38, given up on the sixth miss.
    assert frame == 40
    assert keyframe_frames(finished.track)[-1] == 28
    assert outside_frames(finished.track) == [30]
    last, outside = finished.track.shapes[-2:]
    assert (outside.points, outside.outside, last.outside) == (last.points, True, False)


def test_frames_an_object_was_missed_on_get_no_keyframe():
    frames = walk([f for f in range(20) if f not in (7, 8, 9)])
    frames[7:7] = [frame_result(f) for f in (7, 8, 9)]
    _, (track,) = run_stage(stage_for(stop_frame=19, keyframes="all"), frames)
    assert keyframe_frames(track.track) == [f for f in range(20) if f not in (7, 8, 9)]
    assert outside_frames(track.track) == []


def test_a_track_open_when_the_frames_end_early_gets_an_outside_keyframe_on_the_next_frame():
    _, (track,) = run_stage(stage_for(stop_frame=99), walk(range(50)))
    assert outside_frames(track.track) == [50]


@pytest.mark.parametrize("stop_frame", [49, None], ids=["last frame", "unknown length"])
def test_a_track_open_on_the_last_frame_there_is_has_no_outside_keyframe(stop_frame):
    _, (track,) = run_stage(stage_for(stop_frame=stop_frame), walk(range(50)))
    assert outside_frames(track.track) == []


def test_a_track_whose_object_was_missed_on_the_last_frames_ends_where_it_was_first_missed():
    frames = walk(range(46)) + [frame_result(f) for f in range(46, 50)]
    _, (track,) = run_stage(stage_for(stop_frame=49), frames)
    assert outside_frames(track.track) == [46]


# What is kept, what passes through


def test_tracks_detected_on_fewer_frames_than_the_minimum_are_left_out():
    frames = walk(range(10))
    for f in (3, 4):
        frames[f].shapes.append(rectangle(f, (400, 300, 430, 330)))
    _, tracks = run_stage(stage_for(stop_frame=9, track_min_length=3), frames)
    assert [keyframe_frames(t.track)[0] for t in tracks] == [0]
    _, tracks = run_stage(stage_for(stop_frame=9, track_min_length=2), frames)
    assert sorted(keyframe_frames(t.track)[0] for t in tracks) == [0, 3]


def test_with_a_minimum_of_one_frame_a_single_detection_is_a_track_of_one_keyframe():
    frames = [frame_result(0, [rectangle(0, (400, 300, 430, 330))])]
    frames += [frame_result(f) for f in range(1, 10)]
    _, (track,) = run_stage(stage_for(stop_frame=9, track_min_length=1), frames)
    assert (keyframe_frames(track.track), outside_frames(track.track)) == ([0], [1])


def test_tags_and_shapes_that_are_not_tracked_pass_through_and_tracked_ones_are_shown_numbered():
    tag = models.LabeledImageRequest(label_id=PERSON, frame=0, source="auto")
    others = [
        shape("points", PERSON, 0, [10, 10, 20, 20]),
        shape("polyline", PERSON, 0, [10, 10, 50, 50]),
        shape("cuboid", PERSON, 0, list(range(16))),
        # CVAT's server cannot interpolate a mask track: masks stay shapes.
        shape("mask", PERSON, 0, [4, 10, 10, 11, 11]),
    ]
    box = rectangle(0, (100, 100, 140, 140))
    (out,), _ = run_stage(stage_for(track_min_length=1), [frame_result(0, [*others, box], [tag])])
    assert list(out.tags) == [tag]
    assert list(out.shapes) == others
    assert list(out.shown) == [("#1", box)]


def test_each_label_has_its_own_tracks():
    frames = [
        frame_result(f, [*walk([f])[0].shapes, *walk([f], label_id=PERSON)[0].shapes])
        for f in range(10)
    ]
    _, tracks = run_stage(stage_for(stop_frame=9), frames)
    assert sorted((t.key, t.track.label_id) for t in tracks) == [
        ("1:1", CAR),
        ("2:1", PERSON),
    ]


def test_a_labels_shapes_of_two_types_make_separate_tracks_numbered_together():
    # A CVAT track has one shape type; a label of type "any" can have several.
    frames = [
        frame_result(
            f,
            [
                *walk([f])[0].shapes,
                shape("polygon", CAR, f, [300 + f, 300, 340 + f, 300, 320 + f, 340]),
            ],
        )
        for f in range(10)
    ]
    _, tracks = run_stage(stage_for(stop_frame=9), frames)
    assert sorted((t.key, t.track.shapes[0].type.value) for t in tracks) == [
        ("1:1", "polygon"),
        ("1:2", "rectangle"),
    ]


def test_a_track_keeps_the_detections_attributes_z_order_and_source():
    frames = walk(
        range(10),
        z_order=3,
        attributes=[
            models.AttributeValRequest(spec_id=COLOR, value="red"),
            models.AttributeValRequest(spec_id=MOVING, value="true"),
        ],
    )
    _, (track,) = run_stage(stage_for(stop_frame=9, keyframes="all"), frames)
    assert track.track.source == "auto"
    # CVAT keeps immutable attributes on the track, mutable ones on its keyframes.
    assert [(a.spec_id, a.value) for a in track.track.attributes] == [(COLOR, "red")]
    for keyframe in track.track.shapes:
        assert [(a.spec_id, a.value) for a in keyframe.attributes] == [(MOVING, "true")]
        assert (keyframe.z_order, keyframe.occluded) == (3, False)


def test_an_ellipse_track_is_followed_by_the_box_around_it():
    frames = [
        frame_result(f, [shape("ellipse", CAR, f, [200 + 5 * f, 200, 230 + 5 * f, 180])])
        for f in range(20)
    ]
    _, (track,) = run_stage(stage_for(stop_frame=30), frames)
    assert keyframe_frames(track.track) == [0, 19]
    assert outside_frames(track.track) == [20]
    assert {s.type.value for s in track.track.shapes} == {"ellipse"}


def _pose(f, *, hand_hidden=False):
    def element(sublabel_id, x, y, **fields):
        return models.SubLabeledShapeRequest(
            type="points", label_id=sublabel_id, frame=f, points=[x, y], **fields
        )

    return models.LabeledShapeRequest(
        type="skeleton",
        label_id=POSE,
        frame=f,
        points=[],
        source="auto",
        elements=[
            element(HEAD, 100.0 + 3 * f, 100.0),
            element(HAND, 130.0 + 3 * f, 150.0, occluded=hand_hidden),
        ],
    )


def test_a_skeleton_track_has_a_track_of_each_element_on_the_skeletons_keyframes():
    frames = [frame_result(f, [_pose(f, hand_hidden=f in (4, 5))]) for f in range(10)]
    _, (track,) = run_stage(stage_for(stop_frame=20), frames)
    skeleton = track.track
    assert keyframe_frames(skeleton) == list(range(10))
    assert outside_frames(skeleton) == [10]
    assert all(s.type.value == "skeleton" and s.points == [] for s in skeleton.shapes)
    head, hand = skeleton.elements
    assert (head.label_id, hand.label_id) == (HEAD, HAND)
    for element in (head, hand):
        assert isinstance(element, models.SubLabeledTrackRequest)
        assert [s.frame for s in element.shapes] == [s.frame for s in skeleton.shapes]
        assert [s.outside for s in element.shapes] == [False] * 10 + [True]
    assert head.shapes[7].points == [121.0, 100.0]
    # A keypoint the function marked hidden stays so.
    assert [s.occluded for s in hand.shapes[:10]] == [f in (4, 5) for f in range(10)]


# Determinism


@pytest.mark.parametrize("batch", [1, 7])
def test_the_same_frames_in_any_batches_give_the_same_tracks_with_the_same_keys(batch):
    frames = scene(CROSSING).frames
    _, whole = run_stage(stage_for(stop_frame=99), frames)
    _, batched = run_stage(stage_for(stop_frame=99), frames, batch=batch)
    assert as_data(batched) == as_data(whole)


def as_read_back(result):
    """A frame as the journal stores it (models as JSON) and reads it back."""
    data = json.loads(json.dumps([s.to_dict() for s in result.shapes]))
    return frame_result(result.frame, [models.LabeledShapeRequest(**s) for s in data])


def test_a_resumed_run_gives_the_same_tracks_with_the_same_keys():
    frames = scene(CROSSING).frames
    options = {"stop_frame": 99, "track_lost_frames": 10}
    _, uninterrupted = run_stage(stage_for(**options), frames)

    killed = stage_for(**options)
    before_kill = []
    for start in range(0, 84, 7):
        before_kill.extend(killed.add(frames[start : start + 7]).tracks)
    # The resumed run replays the 84 frames the killed one finished, read back from the
    # journal (as JSON), then goes on.
    resumed = stage_for(**options)
    replayed = resumed.add([as_read_back(f) for f in frames[:84]]).tracks
    _, rest = run_stage(resumed, frames[84:], batch=5)

    assert before_kill, "the scene should end some tracks before the kill"
    assert as_data(replayed) == as_data(before_kill)
    assert as_data([*replayed, *rest]) == as_data(uninterrupted)


def test_two_runs_in_one_process_number_their_objects_alike():
    frames = scene(CROSSING).frames
    first, second = stage_for(stop_frame=99), stage_for(stop_frame=99)
    first_tracks, second_tracks = [], []
    for start in range(0, 100, 10):
        first_tracks.extend(first.add(frames[start : start + 10]).tracks)
        second_tracks.extend(second.add(frames[start : start + 10]).tracks)
    first_tracks.extend(first.finish())
    second_tracks.extend(second.finish())
    assert as_data(first_tracks) == as_data(second_tracks)


# Through cvat-aa's pipeline


class _OneCar:
    """A detection function that finds one car, 5 pixels further right on each frame, on the
    frames whose red level says they are among the first 20."""

    spec = cvataa.DetectionFunctionSpec(labels=[cvataa.label_spec("car", 0, type="rectangle")])

    def detect(self, context, image):
        index = image.getpixel((0, 0))[0] // 5
        if index >= 20:
            return []
        return [cvataa.rectangle(0, [10 + 5 * index, 50, 50 + 5 * index, 90])]


def test_a_run_over_files_with_tracks_gives_tracks_instead_of_shapes(tmp_path):
    for index in range(30):
        PIL.Image.new("RGB", (160, 120), (5 * index, 0, 0)).save(tmp_path / f"{index:03d}.png")
    result = cvat_aa.annotate_images(
        _OneCar(), [tmp_path], tracks=True, batch_size=7, track_lost_frames=3
    )
    assert sum(len(frame.shapes) for frame in result.annotations.frames) == 0
    (track,) = result.annotations.tracks
    assert (track.frame, keyframe_frames(track)[-1], outside_frames(track)) == (0, 19, [20])
