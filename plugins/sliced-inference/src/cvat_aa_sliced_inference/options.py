"""The run options this plugin declares, and the checked settings a sliced run is built from.

cvat-aa converts a value with the option's ``type`` only when it comes as text (the command
line); a number given in Python reaches the plugin as it is, and :class:`SlicedDetection` may
be built directly. So every value goes through the same checks in :class:`SliceSettings`,
which raise ``ValueError`` with the same sentence as the option's ``type``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs
from cvat_aa.pipeline.options import DEFAULT_BATCH_SIZE
from cvat_aa.result_stages import RunOption

__all__ = ["MERGES", "METRICS", "OPTIONS", "SliceSettings"]

MERGES = ("nms", "nmm")
"""How duplicates are merged: non-maximum suppression (keep one) or merging (join boxes)."""

METRICS = ("ios", "iou")
"""How the overlap of two boxes is measured: over the smaller box, or over their union."""

MIN_TILE = 32
"""Below this, a tile holds too little context for any detector to be worth running on."""


def _number(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"give {what}, not {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"give {what}, not {value!r}")
    return number


def tile_size(value: Any) -> int:
    """A tile's side in whole pixels, :data:`MIN_TILE` or more."""
    what = f"a tile size in whole pixels, {MIN_TILE} or more (640 suits most detectors)"
    number = _number(value, what)
    if not number.is_integer() or number < MIN_TILE:
        raise ValueError(f"give {what}, not {value!r}")
    return int(number)


def overlap_fraction(value: Any) -> float:
    """How much of a tile its neighbour covers: 0 to 0.9."""
    what = "the fraction of a tile that its neighbours overlap, from 0 to 0.9"
    number = _number(value, what)
    if not 0 <= number <= 0.9:
        raise ValueError(f"give {what}, not {value!r}")
    return number


def match_fraction(value: Any) -> float:
    """An overlap (IoS or IoU) from 0 to 1."""
    what = "an overlap from 0 to 1"
    number = _number(value, what)
    if not 0 <= number <= 1:
        raise ValueError(f"give {what}, not {value!r}")
    return number


def tile_count(value: Any) -> int:
    """A whole number of tiles, 1 or more."""
    what = "a whole number of tiles, 1 or more"
    number = _number(value, what)
    if not number.is_integer() or number < 1:
        raise ValueError(f"give {what}, not {value!r}")
    return int(number)


# serve=True: tiling changes what a function finds wherever it runs, so cvat-aa serve and
# cvat-aa agent run take these options too.
OPTIONS: tuple[RunOption, ...] = (
    RunOption(
        serve=True,
        name="tile",
        default=None,
        type=tile_size,
        metavar="PIXELS",
        help=(
            "Run the function on overlapping square tiles of this size (pixels) cut from each"
            " frame, not on the whole frame, and merge what it finds on them: small objects in"
            " large frames are found that a detector shrinking the frame would miss. Off by"
            " default; 640 suits most detectors."
        ),
    ),
    RunOption(
        serve=True,
        name="tile_overlap",
        default=0.2,
        type=overlap_fraction,
        metavar="FRACTION",
        help=(
            "With --tile: how much of a tile (0 to 0.9) its neighbours overlap. An object up to"
            " this fraction of a tile wide is whole in at least one tile."
        ),
    ),
    RunOption(
        serve=True,
        name="tile_whole_frame",
        default=False,
        help=(
            "With --tile: also run the function on the whole frame shrunk to about the tile's"
            " size, for objects too large for a tile."
        ),
    ),
    RunOption(
        serve=True,
        name="tile_merge",
        default="nms",
        choices=MERGES,
        help=(
            "With --tile: how shapes found twice (on overlapping tiles) become one: 'nms' keeps"
            " the one with the higher score; 'nmm' also joins the boxes of rectangles."
        ),
    ),
    RunOption(
        serve=True,
        name="tile_match",
        default=0.5,
        type=match_fraction,
        metavar="OVERLAP",
        help=(
            "With --tile: how much (0 to 1, by --tile-match-metric) the boxes of two shapes from"
            " different tiles must overlap to be taken as one object."
        ),
    ),
    RunOption(
        serve=True,
        name="tile_match_metric",
        default="ios",
        choices=METRICS,
        help=(
            "With --tile: 'ios' measures the overlap of two boxes over the smaller one, so that"
            " the part of an object a tile cut off matches the whole object; 'iou' over their"
            " union."
        ),
    ),
    RunOption(
        serve=True,
        name="tile_class_agnostic",
        default=False,
        help="With --tile: shapes of different labels may also be taken as one object.",
    ),
    RunOption(
        serve=True,
        name="tile_batch_size",
        default=DEFAULT_BATCH_SIZE,
        type=tile_count,
        metavar="TILES",
        help="With --tile: how many tiles the function is given at once.",
    ),
)


def _checked(name: str, convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            return convert(value)
        except ValueError as ex:
            raise ValueError(f"{name}: {ex}") from None

    return check


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"{name}: give one of {', '.join(choices)}, not {value!r}")
        return value

    return check


def _switch(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, bool):
            # ValueError, as for every other bad option: cvat-aa reports those as the user's.
            raise ValueError(f"{name}: give True or False, not {value!r}")  # noqa: TRY004
        return value

    return check


@attrs.frozen(kw_only=True)
class SliceSettings:
    """How a sliced run cuts frames and merges what it finds, checked on construction
    (``ValueError`` naming the bad setting)."""

    tile: int = attrs.field(converter=_checked("tile", tile_size))
    overlap: float = attrs.field(default=0.2, converter=_checked("overlap", overlap_fraction))
    whole_frame: bool = attrs.field(default=False, converter=_switch("whole_frame"))
    merge: Literal["nms", "nmm"] = attrs.field(default="nms", converter=_choice("merge", MERGES))
    match_threshold: float = attrs.field(
        default=0.5, converter=_checked("match_threshold", match_fraction)
    )
    match_metric: Literal["ios", "iou"] = attrs.field(
        default="ios", converter=_choice("match_metric", METRICS)
    )
    class_agnostic: bool = attrs.field(default=False, converter=_switch("class_agnostic"))
    batch_size: int = attrs.field(
        default=DEFAULT_BATCH_SIZE, converter=_checked("batch_size", tile_count)
    )

    @classmethod
    def from_run(cls, options: Mapping[str, Any]) -> SliceSettings:
        """The settings of a run whose ``tile`` is set; ``ValueError`` naming a bad option by
        its run-option name."""
        defaults = {option.name: option.default for option in OPTIONS}

        def get(name: str) -> Any:
            value = options.get(name)
            return defaults[name] if value is None else value

        # Named as the user named them: a bad --tile-overlap must not be reported as "overlap".
        return cls(
            tile=_checked("tile", tile_size)(get("tile")),
            overlap=_checked("tile_overlap", overlap_fraction)(get("tile_overlap")),
            whole_frame=_switch("tile_whole_frame")(get("tile_whole_frame")),
            merge=_choice("tile_merge", MERGES)(get("tile_merge")),
            match_threshold=_checked("tile_match", match_fraction)(get("tile_match")),
            match_metric=_choice("tile_match_metric", METRICS)(get("tile_match_metric")),
            class_agnostic=_switch("tile_class_agnostic")(get("tile_class_agnostic")),
            batch_size=_checked("tile_batch_size", tile_count)(get("tile_batch_size")),
        )
