"""cvat-aa-video-tracks: a hook plugin that makes CVAT tracks of a detection function's results.

With ``--tracks`` (``tracks=True`` in Python), a run of any detection function on a video
uploads each object it follows from frame to frame as one CVAT track, instead of one shape per
frame: keyframes where it was detected, ``outside`` where it left, and CVAT interpolating in
between. The objects are followed by a multi-object tracker from Roboflow's ``trackers``
(ByteTrack by default), on the boxes of the detections alone: the stage never sees the images,
so any detector works, and a run that is resumed gives the same tracks again.

The plugin takes part through two hooks: ``cvat_aa_run_options`` declares its options, and
``cvat_aa_result_stage`` gives the run a :class:`~.stage.TrackStage` when ``tracks`` is on.
"""

from __future__ import annotations

from collections.abc import Sequence

import cvat_aa
from cvat_aa.result_stages import ResultStage, RunOption, StageRun

from .options import OPTIONS, TrackOptions

__all__ = ["OPTIONS", "TrackOptions", "cvat_aa_result_stage", "cvat_aa_run_options"]


@cvat_aa.hookimpl
def cvat_aa_run_options() -> Sequence[RunOption]:
    """``--tracks`` and the options that tune the tracks it makes."""
    return OPTIONS


@cvat_aa.hookimpl
def cvat_aa_result_stage(run: StageRun) -> ResultStage | None:
    """A stage that makes tracks, when the run asks for them; ``ValueError`` for a bad option."""
    if not run.options.get("tracks"):
        return None
    options = TrackOptions.from_run(run.options)
    # Here, not at the top: every cvat-aa command imports hook plugins to list their options,
    # and the trackers (with supervision, scipy and OpenCV) take most of a second to import.
    from .stage import TrackStage

    return TrackStage(run, options)
