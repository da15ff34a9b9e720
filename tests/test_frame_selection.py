"""--frames SPEC: numbers, ranges and stepped ranges."""

from __future__ import annotations

import pytest

from cvat_aa import FrameSelection


def selected(spec: str, size: int = 30) -> list[int]:
    selection = FrameSelection.parse(spec)
    return [f for f in range(size) if f in selection]


def test_single_frames_and_lists():
    assert selected("3") == [3]
    assert selected("1,5,9") == [1, 5, 9]


def test_ranges_include_both_ends():
    assert selected("2-5") == [2, 3, 4, 5]


def test_stepped_ranges_count_from_their_start():
    assert selected("1-20:5") == [1, 6, 11, 16]


def test_parts_combine():
    assert selected("0-4:2, 10, 20-22") == [0, 2, 4, 10, 20, 21, 22]


@pytest.mark.parametrize("spec", ["", "a", "5-2", "1-9:0", "1--3", "-1"])
def test_malformed_selections_are_refused_with_the_bad_part(spec):
    with pytest.raises(ValueError, match="frame selection"):
        FrameSelection.parse(spec)
