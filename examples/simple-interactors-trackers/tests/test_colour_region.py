"""The colour-region interactor: what it finds for the user's clicks, through cvat-aa."""

import cvat_aa
import numpy as np
import pytest
from cvat_aa_simple_interactors_trackers import colour_region
from cvat_sdk.masks import decode_mask


def square_mask(width=160, height=120, x=(40, 70), y=(30, 60)):
    mask = np.zeros((height, width), dtype=bool)
    mask[y[0] : y[1], x[0] : x[1]] = True
    return mask


def decoded(shape, image):
    assert shape.type == "mask"
    return decode_mask(shape.points, image_width=image.width, image_height=image.height)


def test_a_click_on_the_square_returns_its_mask(image_with_a_square):
    interactor = cvat_aa.Interactor(colour_region.create())
    [shape] = interactor.interact(image_with_a_square, cvat_aa.Prompts(pos_points=[(50, 40)]))
    assert (decoded(shape, image_with_a_square) == square_mask()).all()


def test_a_bounding_box_limits_the_region(image_with_a_square):
    interactor = cvat_aa.Interactor(colour_region.create())
    prompts = cvat_aa.Prompts(pos_points=[(50, 40)], bounding_box=((40, 30), (55, 60)))
    [shape] = interactor.interact(image_with_a_square, prompts)
    assert (decoded(shape, image_with_a_square) == square_mask(x=(40, 55))).all()


def test_a_negative_point_on_the_same_colour_takes_the_region_away(image_with_a_square):
    interactor = cvat_aa.Interactor(colour_region.create())
    prompts = cvat_aa.Prompts(pos_points=[(50, 40)], neg_points=[(60, 50)])
    assert interactor.interact(image_with_a_square, prompts) == []


def test_the_spec_asks_for_one_positive_point_at_least(image_with_a_square):
    interactor = cvat_aa.Interactor(colour_region.create())
    with pytest.raises(cvat_aa.errors.BadRequestError, match="not enough positive points"):
        interactor.interact(image_with_a_square, cvat_aa.Prompts())


def test_the_image_is_preprocessed_once_for_several_clicks(image_with_a_square, monkeypatch):
    function = colour_region.create()
    calls = []
    original = function.preprocess_image
    monkeypatch.setattr(function, "preprocess_image", lambda *a: calls.append(1) or original(*a))
    interactor = cvat_aa.Interactor(function)
    for x in (45, 50, 55):
        interactor.interact(
            image_with_a_square, cvat_aa.Prompts(pos_points=[(x, 40)]), cache_key="frame 0"
        )
    assert len(calls) == 1


def test_a_tolerance_outside_0_to_255_is_refused():
    with pytest.raises(ValueError, match="tolerance"):
        colour_region.create(tolerance=300)
