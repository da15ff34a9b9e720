"""cvat-aa-sliced-inference: a detection function run on tiles finds the small objects the
whole frame hides, each once and in its place; every shape type comes back in the frame's
coordinates; the run options are checked with sentences; cvat-aa accepts what comes out."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from cvat_sdk import masks, models

# Skipped, with the way to install it, where the plugin is not installed: an import error would
# stop the collection of the whole suite.
pytest.importorskip(
    "cvat_aa_sliced_inference",
    reason="cvat-aa-sliced-inference is not installed: pip install -e plugins/sliced-inference",
)

import cvat_aa
from cvat_aa_sliced_inference import (
    OPTIONS,
    SlicedDetection,
    cvat_aa_run_options,
    cvat_aa_wrap_function,
)
from cvat_aa_sliced_inference.tiles import frame_tiles
from sliced_inference_scene import (
    FRAME,
    LABELS,
    SQUARE,
    TILE,
    ByTile,
    SquareDetector,
    context,
    draw,
    scene_squares,
    truth_boxes,
)

CIRCLE = 1
TWO_LABELS = [*LABELS, cvat_aa.label_spec("circle", CIRCLE)]


def _iou(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    if not len(found):
        return np.zeros((len(truth), 0))
    x1 = np.maximum(truth[:, None, 0], found[None, :, 0])
    y1 = np.maximum(truth[:, None, 1], found[None, :, 1])
    x2 = np.minimum(truth[:, None, 2], found[None, :, 2])
    y2 = np.minimum(truth[:, None, 3], found[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area(truth)[:, None] + area(found)[None, :] - inter)


def _score(shapes: list) -> dict[str, float]:
    """Recall, objects found more than once, and boxes that match no object (IoU 0.5)."""
    truth = truth_boxes(scene_squares())
    found = np.array([s.points for s in shapes], dtype=float).reshape(-1, 4)
    matches = _iou(truth, found) >= 0.5
    per_object = matches.sum(axis=1)
    best = found[_iou(truth, found).argmax(axis=1)] if len(found) else truth
    return {
        "recall": float((per_object >= 1).mean()),
        "duplicates": int((per_object > 1).sum()),
        "unmatched": int((matches.sum(axis=0) == 0).sum()),
        "worst_corner_px": float(np.abs(best - truth)[per_object >= 1].max(initial=0)),
    }


@pytest.fixture(scope="module")
def scene():
    return draw(FRAME, scene_squares())


def _sliced(scene, **settings) -> list:
    return SlicedDetection(SquareDetector(), tile=TILE, **settings).detect(context(), scene)


# --- finding small objects --------------------------------------------------------------------


def test_tiles_find_the_small_objects_a_shrinking_detector_misses(scene):
    whole = _score(SquareDetector().detect(context(), scene))
    tiled = _score(_sliced(scene))
    print(f"\n{len(scene_squares())} squares in a {FRAME[0]}x{FRAME[1]} frame")
    print(f"whole frame:                   {whole}")
    print(f"tiles of {TILE}, overlap 0.2, ios: {tiled}")
    for settings in ({"match_metric": "iou"}, {"overlap": 0.0}, {"merge": "nmm"}):
        print(f"tiles with {settings}: {_score(_sliced(scene, **settings))}")
    assert whole["recall"] < 0.2
    assert tiled["recall"] == 1.0


def test_each_object_is_one_box_in_its_place_even_across_tile_edges(scene):
    tiled = _score(_sliced(scene))
    assert tiled["duplicates"] == 0
    assert tiled["unmatched"] == 0
    assert tiled["worst_corner_px"] <= 1


def test_iou_leaves_the_strip_a_tile_cut_off_a_larger_object_where_ios_drops_it(scene):
    assert _score(_sliced(scene, match_metric="iou"))["unmatched"] == 2
    assert _score(_sliced(scene, match_metric="ios"))["unmatched"] == 0


# --- tiles ------------------------------------------------------------------------------------


def test_tiles_overlap_by_the_fraction_and_the_last_ones_end_at_the_frame_edge():
    tiles = frame_tiles(2000, 1500, tile=640, overlap=0.2, whole_frame=False)
    assert sorted({t.x for t in tiles}) == [0, 512, 1024, 1360]
    assert sorted({t.y for t in tiles}) == [0, 512, 860]
    assert {(t.width, t.height, t.size) for t in tiles} == {(640, 640, (640, 640))}


def test_a_frame_smaller_than_a_tile_is_one_tile_of_its_own_size():
    tiles = frame_tiles(500, 300, tile=640, overlap=0.2, whole_frame=True)
    assert [(t.x, t.y, t.width, t.height, t.size) for t in tiles] == [(0, 0, 500, 300, (500, 300))]


def test_a_frame_smaller_than_a_tile_is_given_to_the_function_as_it_is():
    function = ByTile([lambda: [cvat_aa.rectangle(SQUARE, [10, 20, 30, 40])]])
    image = draw((500, 300), [])
    result = SlicedDetection(function, tile=640).detect(context(), image)
    assert [[size for _, size in call] for call in function.calls] == [[(500, 300)]]
    assert [s.points for s in result] == [[10, 20, 30, 40]]


def test_tiles_go_to_the_function_in_batches_of_batch_size_across_frames():
    function = SquareDetector()
    frames = [draw((1000, 640), []), draw((1000, 1000), [])]  # 2 tiles, then 4
    SlicedDetection(function, tile=640, batch_size=4).detect_batch([context()] * 2, frames)
    assert [len(call) for call in function.calls] == [4, 2]


def test_each_tile_gets_its_frames_context():
    function = ByTile([])
    frames = [draw((1000, 640), []), draw((640, 640), [])]
    contexts = [
        context("a.png", conf_threshold=0.3, conv_mask_to_poly=True),
        context("b.png", conf_threshold=0.7),
    ]
    SlicedDetection(function, tile=640).detect_batch(contexts, frames)
    given = [(c.frame_name, c.conf_threshold, c.conv_mask_to_poly) for c, _ in function.calls[0]]
    assert given == [("a.png", 0.3, True), ("a.png", 0.3, True), ("b.png", 0.7, False)]


def test_the_spec_is_the_inner_functions():
    function = SquareDetector()
    assert SlicedDetection(function, tile=640).spec == function.spec


def test_what_the_function_raises_reaches_the_caller_unchanged():
    error = RuntimeError("out of memory")

    class Failing(SquareDetector):
        def detect_batch(self, contexts, images):
            raise error

    with pytest.raises(RuntimeError) as raised:
        SlicedDetection(Failing(), tile=640).detect(context(), draw((1000, 640), []))
    assert raised.value is error


# --- shapes back in the frame -----------------------------------------------------------------

# A 1000x640 frame in tiles of 640 with no overlap: the second tile starts at x 360.
OFFSET = 360


def _on_second_tile(*shapes: models.LabeledShapeRequest | models.LabeledImageRequest) -> list:
    function = ByTile([list, lambda: list(shapes)], labels=TWO_LABELS)
    frame = draw((1000, 640), [])
    return SlicedDetection(function, tile=640, overlap=0).detect(context(), frame)


@pytest.mark.parametrize(
    ("shape_type", "points"),
    [
        ("rectangle", [10, 20, 30, 40]),
        ("ellipse", [50, 60, 70, 50]),
        ("polygon", [10, 10, 30, 10, 20, 40]),
        ("polyline", [10, 10, 30, 40, 50, 20]),
        ("points", [10, 10, 30, 40]),
        ("cuboid", [10, 10, 10, 30, 30, 10, 30, 30, 35, 5, 35, 25, 50, 5, 50, 25]),
    ],
)
def test_a_shapes_points_move_with_its_tile(shape_type, points):
    (result,) = _on_second_tile(cvat_aa.shape(SQUARE, type=shape_type, points=points))
    assert result.type.value == shape_type
    assert result.points == [p + OFFSET if i % 2 == 0 else p for i, p in enumerate(points)]


def test_a_rotated_rectangle_keeps_its_rotation():
    (result,) = _on_second_tile(cvat_aa.rectangle(SQUARE, [10, 20, 30, 40], rotation=30))
    assert result.points == [370, 20, 390, 40]
    assert result.rotation == 30


def test_a_skeletons_keypoints_move_with_its_tile():
    skeleton = cvat_aa.skeleton(
        SQUARE,
        [cvat_aa.keypoint(1, [10, 20]), cvat_aa.keypoint(2, [30, 40], outside=True)],
    )
    (result,) = _on_second_tile(skeleton)
    assert [e.points for e in result.elements] == [[370, 20], [390, 40]]
    assert [getattr(e, "outside", False) for e in result.elements] == [False, True]


def test_a_mask_covers_the_same_pixels_of_the_frame():
    bitmap = np.zeros((640, 640), dtype=bool)
    bitmap[100:120, 600:640] = True
    bitmap[110:115, 610:612] = False
    (result,) = _on_second_tile(cvat_aa.mask(SQUARE, masks.encode_mask(bitmap)))
    expected = np.zeros((640, 1000), dtype=bool)
    expected[:, OFFSET:] = bitmap
    assert (masks.decode_mask(result.points, image_width=1000, image_height=640) == expected).all()


def test_labels_scores_attributes_and_flags_are_kept():
    shape = cvat_aa.rectangle(
        CIRCLE, [10, 20, 30, 40], score=0.42, occluded=True, z_order=3, attributes=[]
    )
    (result,) = _on_second_tile(shape)
    assert (result.label_id, result.score, result.occluded, result.z_order) == (
        CIRCLE,
        0.42,
        True,
        3,
    )


def test_the_functions_own_shapes_are_not_changed():
    shape = cvat_aa.rectangle(SQUARE, [10, 20, 30, 40])
    _on_second_tile(shape)
    assert shape.points == [10, 20, 30, 40]


def test_a_frame_has_one_tag_of_each_label_however_many_tiles_gave_it():
    function = ByTile(
        [
            lambda: [cvat_aa.tag(SQUARE)],
            lambda: [cvat_aa.tag(SQUARE), cvat_aa.tag(CIRCLE)],
        ],
        labels=TWO_LABELS,
    )
    result = SlicedDetection(function, tile=640).detect(context(), draw((1000, 640), []))
    assert [(type(a), a.label_id) for a in result] == [
        (models.LabeledImageRequest, SQUARE),
        (models.LabeledImageRequest, CIRCLE),
    ]


def test_groups_of_different_tiles_stay_apart():
    grouped = lambda: [
        cvat_aa.rectangle(SQUARE, [10, 20, 30, 40], group=1),
        cvat_aa.polygon(SQUARE, [10, 20, 30, 20, 30, 40], group=1),
    ]
    function = ByTile([grouped, grouped])
    result = SlicedDetection(function, tile=640, overlap=0).detect(context(), draw((1280, 640), []))
    assert [s.group for s in result] == [1, 1, 2, 2]


# --- the whole frame --------------------------------------------------------------------------


def test_the_whole_frame_finds_the_objects_too_large_for_a_tile():
    big = [(200, 150, 900)]
    frame = draw((2000, 1500), big)
    tiles_only = SlicedDetection(SquareDetector(), tile=640).detect(context(), frame)
    with_frame = SlicedDetection(SquareDetector(), tile=640, whole_frame=True).detect(
        context(), frame
    )
    truth = truth_boxes(big)[0]
    # Each tile sees a part of it; none the whole.
    assert all(np.abs(np.array(s.points) - truth).max() > 100 for s in tiles_only)
    (found,) = with_frame
    # One pixel of the shrunk frame is 3.125 of the frame's.
    assert np.abs(np.array(found.points) - truth).max() <= 4


def test_shapes_from_the_whole_frame_are_scaled_up():
    # 1280x960 shrinks to 640x480: twice as small.
    bitmap = np.zeros((480, 640), dtype=bool)
    bitmap[20:30, 10:20] = True
    function = ByTile(
        [
            lambda: [
                cvat_aa.rectangle(SQUARE, [10, 20, 20, 30], rotation=45),
                cvat_aa.mask(SQUARE, masks.encode_mask(bitmap)),
            ]
        ]
    )
    rectangle, mask = SlicedDetection(function, tile=640, whole_frame=True).detect(
        context(), draw((1280, 960), [])
    )
    assert function.calls[0][0][1] == (640, 480)
    assert (rectangle.points, rectangle.rotation) == ([20, 40, 40, 60], 45)
    expected = np.zeros((960, 1280), dtype=bool)
    expected[40:60, 20:40] = True
    assert (masks.decode_mask(mask.points, image_width=1280, image_height=960) == expected).all()


# --- merging ----------------------------------------------------------------------------------

# Two tiles of a 1280x640 frame with an overlap of 0.5: the second starts at x 320. A square at
# x 600 to 660 is cut by the first tile's edge (at 640) and whole on the second.
CUT = [600, 100, 640, 120]
WHOLE_ON_SECOND = [280, 100, 340, 120]  # 600..660 in the frame


def _merged(first: list, second: list, **settings) -> list:
    function = ByTile([lambda: first, lambda: second], labels=TWO_LABELS)
    return SlicedDetection(function, tile=640, overlap=0.5, **settings).detect(
        context(), draw((1280, 640), [])
    )


def test_nms_keeps_the_shape_with_the_higher_score():
    (kept,) = _merged(
        [cvat_aa.rectangle(SQUARE, CUT, score=0.9)],
        [cvat_aa.rectangle(SQUARE, WHOLE_ON_SECOND, score=0.8)],
        merge="nms",
    )
    assert (kept.points, kept.score) == (CUT, 0.9)


def test_nmm_joins_the_boxes_of_rectangles_keeping_the_higher_score():
    (kept,) = _merged(
        [cvat_aa.rectangle(SQUARE, CUT, score=0.9)],
        [cvat_aa.rectangle(SQUARE, WHOLE_ON_SECOND, score=0.8)],
        merge="nmm",
    )
    assert (kept.points, kept.score) == ([600, 100, 660, 120], 0.9)


def test_nmm_keeps_other_shape_types_as_the_higher_scored_one_is():
    polygon = [600, 100, 640, 100, 640, 120]
    (kept,) = _merged(
        [cvat_aa.polygon(SQUARE, polygon, score=0.9)],
        [cvat_aa.rectangle(SQUARE, WHOLE_ON_SECOND, score=0.8)],
        merge="nmm",
    )
    assert (kept.type.value, kept.points) == ("polygon", polygon)


def test_between_equal_scores_the_whole_object_wins_over_its_cut_off_part():
    (kept,) = _merged(
        [cvat_aa.rectangle(SQUARE, CUT)], [cvat_aa.rectangle(SQUARE, WHOLE_ON_SECOND)]
    )
    assert kept.points == [600, 100, 660, 120]


def test_overlapping_shapes_of_one_tile_are_left_to_the_function():
    inner, outer = [610, 105, 620, 115], [600, 100, 660, 120]
    kept = _merged([cvat_aa.rectangle(SQUARE, outer), cvat_aa.rectangle(SQUARE, inner)], [])
    assert [s.points for s in kept] == [outer, inner]


def test_shapes_of_different_labels_are_merged_only_when_class_agnostic():
    first = [cvat_aa.rectangle(SQUARE, CUT, score=0.9)]
    second = [cvat_aa.rectangle(CIRCLE, WHOLE_ON_SECOND, score=0.8)]
    assert len(_merged(first, second)) == 2
    (kept,) = _merged(first, second, class_agnostic=True)
    assert kept.label_id == SQUARE


def test_every_shape_type_is_merged_by_the_box_around_it():
    ellipse_on_second = [310, 110, 340, 100]  # the box 600..660 x 100..120 in the frame
    (kept,) = _merged(
        [cvat_aa.rectangle(SQUARE, CUT, score=0.5)],
        [cvat_aa.shape(SQUARE, type="ellipse", points=ellipse_on_second, score=0.6)],
    )
    assert (kept.type.value, kept.points) == ("ellipse", [630, 110, 660, 100])


# --- the hook plugin --------------------------------------------------------------------------


def _run_options(**given) -> dict:
    return {option.name: given.get(option.name, option.default) for option in OPTIONS}


def test_the_plugin_declares_its_options_with_their_defaults():
    assert {o.name: o.default for o in cvat_aa_run_options()} == {
        "tile": None,
        "tile_overlap": 0.2,
        "tile_whole_frame": False,
        "tile_merge": "nms",
        "tile_match": 0.5,
        "tile_match_metric": "ios",
        "tile_class_agnostic": False,
        "tile_batch_size": 8,
    }


def test_every_option_is_also_an_option_of_serve_and_agent():
    assert all(option.serve for option in cvat_aa_run_options())


def test_without_tile_the_function_is_left_as_it_is():
    assert cvat_aa_wrap_function(SquareDetector(), _run_options()) is None


def test_with_tile_the_function_runs_on_tiles_as_the_options_say():
    function = SquareDetector()
    options = _run_options(tile=512, tile_overlap=0.3, tile_merge="nmm", tile_batch_size=2)
    wrapped = cvat_aa_wrap_function(function, options)
    assert isinstance(wrapped, SlicedDetection)
    assert wrapped.function is function
    settings = wrapped.settings
    assert (settings.tile, settings.overlap, settings.merge, settings.batch_size) == (
        512,
        0.3,
        "nmm",
        2,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "tile",
            10,
            "tile: give a tile size in whole pixels, 32 or more (640 suits most detectors), not 10",
        ),
        ("tile", 640.5, "tile: give a tile size in whole pixels, 32 or more"),
        (
            "tile_overlap",
            0.95,
            "tile_overlap: give the fraction of a tile that its neighbours overlap, from 0 to 0.9, not 0.95",
        ),
        ("tile_match", "lots", "tile_match: give an overlap from 0 to 1, not 'lots'"),
        ("tile_merge", "wbf", "tile_merge: give one of nms, nmm, not 'wbf'"),
        ("tile_match_metric", "giou", "tile_match_metric: give one of ios, iou, not 'giou'"),
        ("tile_whole_frame", "yes", "tile_whole_frame: give True or False, not 'yes'"),
        ("tile_batch_size", 0, "tile_batch_size: give a whole number of tiles, 1 or more, not 0"),
    ],
)
def test_a_bad_option_is_refused_with_a_sentence_naming_it(name, value, message):
    options = _run_options(tile=640) | {name: value}
    with pytest.raises(ValueError, match=f"^{message.replace('(', '[(]').replace(')', '[)]')}"):
        cvat_aa_wrap_function(SquareDetector(), options)


def test_command_line_text_is_converted_and_checked_by_the_option():
    tile = next(o for o in OPTIONS if o.name == "tile")
    assert tile.convert("640") == 640
    with pytest.raises(ValueError, match="give a tile size in whole pixels, 32 or more"):
        tile.convert("big")


def test_a_sliced_detection_built_in_python_checks_its_settings():
    with pytest.raises(ValueError, match="^overlap: give the fraction of a tile"):
        SlicedDetection(SquareDetector(), tile=640, overlap=-0.1)


# --- through cvat-aa --------------------------------------------------------------------------


def test_cvat_aa_accepts_what_a_sliced_run_gives(tmp_path):
    squares = scene_squares()
    draw(FRAME, squares).save(tmp_path / "large.png")
    draw((500, 400), [(100, 100, 30)]).save(tmp_path / "small.png")
    result = cvat_aa.annotate_images(SlicedDetection(SquareDetector(), tile=TILE), [tmp_path])
    frames = {f.name: f for f in result.annotations.frames}
    large = list(frames["large.png"].shapes)
    assert _score(large)["recall"] == 1.0
    assert len(large) == len(squares)
    assert [s.points for s in frames["small.png"].shapes] == [[100, 100, 130, 130]]
    assert {s.source for f in frames.values() for s in f.shapes} == {"auto"}


def test_a_run_with_tile_finds_the_small_objects(tmp_path):
    draw(FRAME, scene_squares()).save(tmp_path / "large.png")
    plain = cvat_aa.annotate_images(SquareDetector(), [tmp_path])
    tiled = cvat_aa.annotate_images(SquareDetector(), [tmp_path], tile=TILE)
    assert _score(list(plain.annotations.frames[0].shapes))["recall"] < 0.2
    assert _score(list(tiled.annotations.frames[0].shapes)) == {
        "recall": 1.0,
        "duplicates": 0,
        "unmatched": 0,
        "worst_corner_px": 0.0,
    }


_RUN_IN_A_FRESH_PROCESS = """
import sys
import PIL.Image
import cvat_aa

class Nothing:
    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("thing", 0)])

    def detect(self, context, image):
        return []

PIL.Image.new("RGB", (64, 48)).save(sys.argv[1])
cvat_aa.annotate_images(Nothing(), [sys.argv[1]], **eval(sys.argv[2]))
print(sorted(m for m in sys.modules if m.startswith("cvat_aa_sliced_inference")))
"""


@pytest.mark.parametrize(("options", "slicing_imported"), [("{}", False), ("{'tile': 32}", True)])
def test_only_a_run_with_tile_imports_the_slicing_code(tmp_path, options, slicing_imported):
    # Every run imports the hook plugin to learn its options; the slicing code (and what it
    # imports) is for the runs that ask for tiles.
    done = subprocess.run(
        [sys.executable, "-c", _RUN_IN_A_FRESH_PROCESS, str(tmp_path / "f.png"), options],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = done.stdout.strip().splitlines()[-1]
    assert "'cvat_aa_sliced_inference'" in loaded
    assert ("'cvat_aa_sliced_inference.sliced'" in loaded) is slicing_imported
    assert ("'cvat_aa_sliced_inference.merge'" in loaded) is slicing_imported
