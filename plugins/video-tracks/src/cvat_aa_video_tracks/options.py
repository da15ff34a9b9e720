"""The run options this plugin declares, and the typed options object a stage is built from.

cvat-aa converts a value with the option's ``type`` only when it comes as text (the command
line); a number given in Python reaches the stage as it is. So the same checks run twice: as
``type`` (for text) and in :meth:`TrackOptions.from_run` (for every value), and both raise
``ValueError`` with the same sentence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from cvat_aa.result_stages import RunOption

__all__ = ["KEYFRAMES", "OPTIONS", "TRACKERS", "TrackOptions"]

TRACKERS = ("bytetrack", "sort", "ocsort", "botsort")
"""The multi-object trackers of Roboflow's ``trackers`` that work from boxes alone."""

KEYFRAMES = ("motion", "all")


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"give {what}, not {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"give {what}, not {value!r}")
    return number


def _whole(value: Any, what: str) -> int:
    number = _number(value, what)
    if isinstance(value, bool) or not number.is_integer():
        raise ValueError(f"give {what}, not {value!r}")
    return int(number)


def fraction(value: Any) -> float:
    """A number from 0 to 1 (a confidence, an IoU)."""
    what = "a number from 0 to 1"
    number = _number(value, what)
    if not 0 <= number <= 1:
        raise ValueError(f"give {what}, not {value!r}")
    return number


def frame_count(value: Any) -> int:
    """A whole number of frames, 0 or more."""
    what = "a whole number of frames, 0 or more"
    number = _whole(value, what)
    if number < 0:
        raise ValueError(f"give {what}, not {value!r}")
    return number


def track_length(value: Any) -> int:
    """A whole number of frames, 1 or more."""
    what = "a whole number of frames, 1 or more (1 keeps every track)"
    number = _whole(value, what)
    if number < 1:
        raise ValueError(f"give {what}, not {value!r}")
    return number


def pixels(value: Any) -> float:
    """A distance in pixels, 0 or more."""
    what = "a distance in pixels, 0 or more"
    number = _number(value, what)
    if number < 0:
        raise ValueError(f"give {what}, not {value!r}")
    return number


OPTIONS: tuple[RunOption, ...] = (
    RunOption(
        name="tracks",
        default=False,
        help=(
            "Make CVAT tracks from the detections: each object is followed from frame to frame"
            " and uploaded as one track (rectangles, ellipses, polygons and skeletons; other"
            " shapes and tags are uploaded as they are)."
        ),
    ),
    RunOption(
        name="tracker",
        default="bytetrack",
        choices=TRACKERS,
        help=(
            "The multi-object tracker that follows the objects with --tracks: bytetrack, sort,"
            " ocsort or botsort (without camera-motion compensation: it sees no images)."
        ),
    ),
    RunOption(
        name="track_activation",
        default=0.5,
        type=fraction,
        metavar="CONFIDENCE",
        help=(
            "The confidence (0 to 1) a detection needs to start a track; weaker ones only"
            " continue tracks (ocsort leaves them out). A shape without a score counts as"
            " confidence 1."
        ),
    ),
    RunOption(
        name="track_iou",
        default=None,
        type=fraction,
        metavar="IOU",
        help=(
            "The overlap (intersection over union, 0 to 1) a detection needs with where the"
            " tracker expects an object to be taken as that object (default: the tracker's"
            " own, 0.1 for bytetrack, 0.2 for botsort, 0.3 for sort and ocsort)."
        ),
    ),
    RunOption(
        name="track_lost_frames",
        default=30,
        type=frame_count,
        metavar="FRAMES",
        help=(
            "For how many frames an object that is not detected is still looked for before its"
            " track ends; CVAT interpolates across the frames it was missed on."
        ),
    ),
    RunOption(
        name="track_min_length",
        default=3,
        type=track_length,
        metavar="FRAMES",
        help=(
            "Tracks whose object was detected on fewer frames than this are left out (not"
            " uploaded): they are mostly false detections."
        ),
    ),
    RunOption(
        name="keyframes",
        default="motion",
        choices=KEYFRAMES,
        help=(
            "Which detections become keyframes of rectangle and ellipse tracks: 'motion' keeps"
            " only those that CVAT's interpolation between the kept ones would miss by more"
            " than --keyframe-tolerance; 'all' keeps every one. Other tracks keep every one."
        ),
    ),
    RunOption(
        name="keyframe_tolerance",
        default=2.0,
        type=pixels,
        metavar="PIXELS",
        help=(
            "With --keyframes motion: how far (pixels) a corner of an interpolated box may be"
            " from the detected one."
        ),
    ),
)


def _checked(name: str, convert: Callable[[Any], Any], value: Any) -> Any:
    try:
        return convert(value)
    except ValueError as ex:
        raise ValueError(f"{name}: {ex}") from None


def _choice(name: str, choices: tuple[str, ...], value: Any) -> str:
    if value not in choices:
        raise ValueError(f"{name}: give one of {', '.join(choices)}, not {value!r}")
    return value


@attrs.frozen(kw_only=True)
class TrackOptions:
    """This plugin's options for one run, checked."""

    tracker: str = "bytetrack"
    activation: float = 0.5
    iou: float | None = None
    """None: the tracker's own default."""
    lost_frames: int = 30
    min_length: int = 3
    keyframes: str = "motion"
    tolerance: float = 2.0

    @classmethod
    def from_run(cls, options: Mapping[str, Any]) -> TrackOptions:
        """The options of a run (``StageRun.options``); ``ValueError`` naming a bad one."""
        defaults = {option.name: option.default for option in OPTIONS}

        def get(name: str) -> Any:
            value = options.get(name)
            return defaults[name] if value is None else value

        iou = options.get("track_iou")
        return cls(
            tracker=_choice("tracker", TRACKERS, get("tracker")),
            activation=_checked("track_activation", fraction, get("track_activation")),
            iou=None if iou is None else _checked("track_iou", fraction, iou),
            lost_frames=_checked("track_lost_frames", frame_count, get("track_lost_frames")),
            min_length=_checked("track_min_length", track_length, get("track_min_length")),
            keyframes=_choice("keyframes", KEYFRAMES, get("keyframes")),
            tolerance=_checked("keyframe_tolerance", pixels, get("keyframe_tolerance")),
        )
