"""The face detection function: what it finds, what it declares, and what it accepts."""

import tomllib
from pathlib import Path

import cvat_aa
import cvat_aa_face_detection as face_detection
import cvat_sdk.auto_annotation as sdk_aa
import PIL.Image
import pytest
from cvat_sdk import models

# Where the astronaut's face is in tests/data/astronaut.jpg, measured by hand: its centre
# and the side of a square box from brow to chin.
FACE_CENTER = (224, 113)
FACE_SIDE = 95


def centre(points: list[float]) -> tuple[float, float]:
    x1, y1, x2, y2 = points
    return (x1 + x2) / 2, (y1 + y2) / 2


def assert_is_the_face(points: list[float], offset: tuple[int, int] = (0, 0)) -> None:
    x1, y1, x2, y2 = points
    cx, cy = centre(points)
    assert abs(cx - (FACE_CENTER[0] + offset[0])) < 15
    assert abs(cy - (FACE_CENTER[1] + offset[1])) < 15
    assert 0.75 * FACE_SIDE < x2 - x1 < 1.3 * FACE_SIDE
    assert 0.75 * FACE_SIDE < y2 - y1 < 1.3 * FACE_SIDE


def test_finds_the_face_on_a_photo(astronaut, context):
    shapes = face_detection.create().detect(context, astronaut)

    assert len(shapes) == 1
    assert shapes[0].type.value == "rectangle"
    assert shapes[0].label_id == face_detection.FACE_LABEL_ID
    assert_is_the_face(shapes[0].points)


def test_boxes_are_in_the_frames_own_pixels(astronaut, context):
    offset = (300, 150)
    frame = PIL.Image.new("RGB", (1000, 800), "gray")
    frame.paste(astronaut, offset)

    (shape,) = face_detection.create().detect(context, frame)

    assert_is_the_face(shape.points, offset)


def test_finds_no_face_on_a_blank_image(context):
    blank = PIL.Image.new("RGB", (640, 480), "white")

    assert face_detection.create().detect(context, blank) == []


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK"])
def test_accepts_images_in_other_modes(astronaut, context, mode):
    (shape,) = face_detection.create().detect(context, astronaut.convert(mode))

    assert_is_the_face(shape.points)


@pytest.mark.parametrize("cascade", ["frontalface_default", "frontalface_alt", "frontalface_alt2"])
def test_every_frontal_cascade_finds_the_face(astronaut, context, cascade):
    (shape,) = face_detection.create(cascade=cascade).detect(context, astronaut)

    assert_is_the_face(shape.points)


def test_eyes_are_found_inside_the_face(astronaut, context):
    shapes = face_detection.create(eyes=True).detect(context, astronaut)

    (face,) = [s for s in shapes if s.label_id == face_detection.FACE_LABEL_ID]
    eyes = [s for s in shapes if s.label_id == face_detection.EYE_LABEL_ID]
    assert len(eyes) == 2
    fx1, fy1, fx2, fy2 = face.points
    for eye in eyes:
        ex, ey = centre(eye.points)
        assert fx1 < ex < fx2
        assert fy1 < ey < (fy1 + fy2) / 2
    left, right = sorted(centre(e.points)[0] for e in eyes)
    assert left < FACE_CENTER[0] < right


def test_spec_declares_one_face_rectangle_label():
    spec = face_detection.create().spec

    assert isinstance(spec, cvat_aa.DetectionFunctionSpec)
    assert [(label.name, label.id, label.type) for label in spec.labels] == [
        ("face", face_detection.FACE_LABEL_ID, "rectangle")
    ]


def test_spec_declares_an_eye_label_when_eyes_are_enabled():
    spec = face_detection.create(eyes=True).spec

    assert [(label.name, label.type) for label in spec.labels] == [
        ("face", "rectangle"),
        ("eye", "rectangle"),
    ]


def test_spec_is_accepted_by_cvat_sdk():
    spec = face_detection.create(eyes=True).spec

    assert isinstance(spec, sdk_aa.DetectionFunctionSpec)
    # cvat-sdk's own constructor applies its validation rules to the same labels.
    sdk_aa.DetectionFunctionSpec(labels=spec.labels)


def test_function_follows_the_detection_protocol():
    function = face_detection.create()

    assert isinstance(function, cvat_aa.DetectionFunction)


def test_shapes_follow_cvat_sdks_output_rules(astronaut, context):
    function = face_detection.create(eyes=True)
    label_ids = {label.id for label in function.spec.labels}

    shapes = function.detect(context, astronaut)

    assert shapes
    for shape in shapes:
        assert isinstance(shape, models.LabeledShapeRequest)
        assert shape.frame == 0
        assert not hasattr(shape, "id")
        assert not hasattr(shape, "source")
        assert shape.label_id in label_ids
        assert len(shape.points) == 4
        assert all(isinstance(p, float) for p in shape.points)


def test_shapes_carry_no_score_and_ignore_the_confidence_threshold(astronaut):
    function = face_detection.create()
    strict = cvat_aa.FrameContext(frame_name="astronaut.jpg", conf_threshold=0.99)
    lenient = cvat_aa.FrameContext(frame_name="astronaut.jpg", conf_threshold=0.0)

    strict_shapes = function.detect(strict, astronaut)
    lenient_shapes = function.detect(lenient, astronaut)

    assert [s.points for s in strict_shapes] == [s.points for s in lenient_shapes]
    assert not any(hasattr(s, "score") for s in strict_shapes)


def test_min_size_larger_than_the_face_finds_nothing(astronaut, context):
    function = cvat_aa.load_function(function_module="cvat_aa_face_detection", min_size=200)

    assert function.detect(context, astronaut) == []


def test_loads_by_module_name_with_parameters():
    function = cvat_aa.load_function(function_module="cvat_aa_face_detection", eyes=True)

    assert [label.name for label in function.spec.labels] == ["face", "eye"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cascade": "cat"}, "unknown cascade 'cat'; choose one of frontalface_default"),
        ({"scale_factor": 1.0}, "scale_factor must be greater than 1"),
        ({"min_neighbors": -1}, "min_neighbors must be 0 or more"),
        ({"min_size": 0}, "min_size must be at least 1 pixel"),
        ({"min_size": "big"}, "parameter 'min_size' must be int"),
        ({"threshold": 0.5}, "unexpected keyword argument 'threshold'"),
    ],
)
def test_bad_parameters_are_reported(params, message):
    with pytest.raises(cvat_aa.FunctionParameterError, match=message):
        cvat_aa.load_function(function_module="cvat_aa_face_detection", **params)


def test_summary_is_the_first_docstring_line():
    summary = face_detection.create.__doc__.strip().splitlines()[0]

    assert summary.startswith("Detect faces")
    assert len(summary) <= 100


def test_entry_point_is_the_factory():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())

    entry_points = pyproject["project"]["entry-points"]["cvat_aa.functions"]

    assert entry_points == {"face_detection": "cvat_aa_face_detection:create"}
