"""cvat-aa-sliced-inference: a hook plugin that runs detection functions on tiles of each frame.

With ``--tile 640`` (``tile=640`` in Python), a run of any detection function gives the
function overlapping 640 x 640 tiles of each frame instead of the whole frame, puts what it
finds back in the frame and makes one shape of each object found on several tiles (SAHI,
"slicing aided hyper inference"): small objects in large frames are found that a detector,
shrinking the whole frame to its input size, would miss.

The plugin takes part through two hooks: ``cvat_aa_run_options`` declares its options, and
``cvat_aa_wrap_function`` gives the run a :class:`~.sliced.SlicedDetection` around the
function when ``tile`` is set. :class:`SlicedDetection` is a detection function itself, for
use without the hook (``annotate_images(SlicedDetection(function, tile=640), ...)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import cvat_aa
from cvat_aa.result_stages import RunOption

from .options import OPTIONS, SliceSettings

if TYPE_CHECKING:
    from .sliced import SlicedDetection

__all__ = [
    "OPTIONS",
    "SliceSettings",
    "SlicedDetection",
    "cvat_aa_run_options",
    "cvat_aa_wrap_function",
]


@cvat_aa.hookimpl
def cvat_aa_run_options() -> Sequence[RunOption]:
    """``--tile`` and the options that tune how tiles are cut and merged."""
    return OPTIONS


@cvat_aa.hookimpl
def cvat_aa_wrap_function(function: Any, options: Mapping[str, Any]) -> SlicedDetection | None:
    """``function`` run on tiles, when the run's ``tile`` option is set; ``ValueError`` with a
    sentence naming a bad option."""
    if options.get("tile") is None:
        return None
    settings = SliceSettings.from_run(options)
    from .sliced import SlicedDetection

    return SlicedDetection.from_settings(function, settings)


def __getattr__(name: str) -> Any:
    # SlicedDetection on first use, not at import: every cvat-aa command imports hook plugins
    # to list their options, and a run without --tile needs none of the slicing code.
    if name == "SlicedDetection":
        from .sliced import SlicedDetection

        return SlicedDetection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
