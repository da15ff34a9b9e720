"""`cvat-aa interact`: one call of an interaction function on an image file."""

from __future__ import annotations

import json
from pathlib import Path

import PIL.Image
import pytest
from cvat_aa.cli import main

# The box around the clicks, as a CVAT mask (run-length encoding, then left, top, right,
# bottom), or a polygon with --polygon; counts its preprocessing in a file beside it.
BOX_INTERACTOR = """
import cvat_aa
from cvat_sdk import models

spec = cvat_aa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=0, min_bounding_boxes=0)


def detect(context, image, prompts):
    xs = [x for x, _ in prompts.pos_points]
    ys = [y for _, y in prompts.pos_points]
    left, top, right, bottom = min(xs), min(ys), max(xs), max(ys)
    ones = int((right - left + 1) * (bottom - top + 1))
    return [
        cvat_aa.InteractionResultShape(
            type="mask",
            points=[0, ones, left, top, right, bottom],
            attributes=[models.AttributeValRequest(spec_id=0, value="0.75")],
        )
    ]
"""

TRACKER = """
import cvat_aa

spec = cvat_aa.TrackingFunctionSpec(supported_shape_types={"rectangle"})


def init_tracking_state(context, image, shape):
    return shape


def track(context, image, state):
    return state
"""


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "frame.png"
    PIL.Image.new("RGB", (64, 48), (40, 90, 200)).save(path)
    return path


@pytest.fixture
def interactor(tmp_path: Path) -> str:
    path = tmp_path / "box_interactor.py"
    path.write_text(BOX_INTERACTOR)
    return str(path)


def test_prints_the_shapes_as_cvat_receives_them(interactor, image, capsys):
    assert main(["interact", interactor, str(image), "--pos", "10,5", "--pos", "19,14"]) == 0

    result = json.loads(capsys.readouterr().out)
    assert result == {
        "shapes": [
            {
                "type": "mask",
                "points": [0, 100, 10, 5, 19, 14],
                "attributes": [{"spec_id": 0, "value": "0.75"}],
            }
        ]
    }


def test_writes_the_json_to_output_and_draws_a_preview_the_size_of_the_image(
    interactor, image, tmp_path, capsys
):
    output, preview = tmp_path / "shapes.json", tmp_path / "preview.png"
    args = ["--pos", "10,5", "--neg", "40,40", "--output", str(output), "--preview", str(preview)]
    assert main(["interact", interactor, str(image), *args]) == 0

    assert capsys.readouterr().out == ""
    assert json.loads(output.read_text())["shapes"][0]["type"] == "mask"
    with PIL.Image.open(preview) as drawn:
        assert drawn.size == (64, 48)
        # the positive click is drawn in green on the blue image
        red, green, blue = drawn.getpixel((10, 5))
        assert green > red and green > blue


def test_prompts_the_spec_does_not_allow_are_a_usage_error_with_cvat_clis_message(
    interactor, image, capsys
):
    assert main(["interact", interactor, str(image), "--neg", "3,3"]) == 2

    assert "not enough positive points" in capsys.readouterr().err


def test_a_function_of_another_kind_is_refused_naming_its_kind(image, tmp_path, capsys):
    tracker = tmp_path / "tracker.py"
    tracker.write_text(TRACKER)

    assert main(["interact", str(tracker), str(image), "--pos", "1,1"]) == 5

    assert "is a tracking function; 'cvat-aa interact' calls interaction functions" in (
        capsys.readouterr().err
    )


def test_a_missing_image_is_refused_before_the_function_is_loaded(tmp_path, capsys):
    loaded = tmp_path / "loaded"
    function = tmp_path / "function.py"
    function.write_text(f"open({str(loaded)!r}, 'w').close()\n" + BOX_INTERACTOR)

    assert main(["interact", str(function), str(tmp_path / "none.png"), "--pos", "1,1"]) == 2

    assert "IMAGE:" in capsys.readouterr().err
    assert not loaded.exists()


@pytest.mark.parametrize("point", ["1", "1,x", "1,2,3"])
def test_a_point_that_is_not_two_numbers_is_a_usage_error(interactor, image, point, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["interact", interactor, str(image), "--pos", point])

    assert exited.value.code == 2
    assert "is not X,Y" in capsys.readouterr().err
