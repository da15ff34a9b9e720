"""The template tracker: it follows a rectangle over frames, through cvat-aa's Tracker."""

import cvat_aa
import numpy as np
import PIL.Image
import pytest
from cvat_aa_simple_interactors_trackers import template_tracker


def moved(pixels, dx, dy):
    """The image with its content moved by (dx, dy) (wrapping round at the edges)."""
    return PIL.Image.fromarray(np.roll(pixels, (dy, dx), axis=(0, 1)))


BOX = cvat_aa.TrackableShape(type="rectangle", points=[40.5, 30, 70, 60.25])


def test_follows_a_rectangle_over_three_frames(noise):
    tracker = cvat_aa.Tracker(template_tracker.create())
    [state] = tracker.init_tracking(PIL.Image.fromarray(noise), [BOX])
    found = [tracker.track(moved(noise, 3 * i, -2 * i), [state])[0].points for i in range(1, 4)]
    assert found == [[40.5 + 3 * i, 30 - 2 * i, 70 + 3 * i, 60.25 - 2 * i] for i in range(1, 4)]


def test_an_object_that_moved_further_than_the_search_is_lost(noise):
    tracker = cvat_aa.Tracker(template_tracker.create(search=4))
    [state] = tracker.init_tracking(PIL.Image.fromarray(noise), [BOX])
    assert tracker.track(moved(noise, 10, 0), [state]) == [None]


def test_on_a_plain_background_the_rectangle_stays_where_it_was():
    plain = PIL.Image.new("RGB", (160, 120), "grey")
    tracker = cvat_aa.Tracker(template_tracker.create())
    [state] = tracker.init_tracking(plain, [BOX])
    assert tracker.track(plain, [state])[0].points == BOX.points


def test_only_rectangles_are_tracked(noise):
    tracker = cvat_aa.Tracker(template_tracker.create())
    polygon = cvat_aa.TrackableShape(type="polygon", points=[1, 1, 9, 1, 9, 9])
    with pytest.raises(cvat_aa.errors.BadRequestError, match="Unsupported shape type 'polygon'"):
        tracker.init_tracking(PIL.Image.fromarray(noise), [polygon])


def test_a_negative_search_is_refused():
    with pytest.raises(ValueError, match="search"):
        template_tracker.create(search=-1)
