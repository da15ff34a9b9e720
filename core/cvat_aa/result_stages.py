"""Result stages: hook plugins that turn a run's per-frame results into other annotations.

A detection function sees one frame at a time; some things a user wants from a run need the
frames in order: following each object from frame to frame as one CVAT *track*, say. A hook
plugin does that by returning a :class:`ResultStage` from ``cvat_aa_result_stage``. The
pipeline hands the stage every frame's validated, mapped results in frame order, and sends
on what the stage gives back: for each frame, the tags and shapes that stay as they are, and
the tracks it has finished. The stage may hold results back across batches (a track spans
many); it gives each finished track once, with a key.

Runs are enabled and configured per run by **run options** that the hook plugin declares
(``cvat_aa_run_options``): each is a command-line option of ``cvat-aa annotate`` and a
keyword of the Python API (``annotate_task(..., tracks=True)``), and its value, where it is
not the default, is part of the run's journal key.

What the pipeline promises a stage, and what it expects back, so that a run on a server is
exact when it is killed and resumed:

* frames come in frame order, each once, in batches of any size; a frame the function failed
  on (with ``on_error="skip"``) is not given;
* a resumed run gives a new stage every frame the killed run had finished, from its journal,
  then the frames it had not: the stage must give the same tracks, with the same keys, for
  the same frames whatever the batches were (a deterministic stage does);
* what the stage gives back for a frame is uploaded with that frame; its tracks are uploaded
  as they come, each journaled by its key and never sent twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from cvat_sdk import models

from .errors import BadFunctionError
from .labels import LabelCatalog

__all__ = [
    "FrameResult",
    "ResultStage",
    "RunOption",
    "StageChain",
    "StageOutput",
    "StageRun",
    "StageTrack",
]


@attrs.frozen(kw_only=True)
class RunOption:
    """An option of every run that a hook plugin adds (``cvat_aa_run_options``).

    ``name`` is the Python keyword (``track_min_length``); the command-line option is the
    name with dashes (``--track-min-length``). An option whose ``default`` is ``False`` is a
    flag; otherwise ``type`` turns the command line's text into the value (and checks it:
    raise ``ValueError`` with a sentence). Values given in Python are converted the same way
    when they are strings; others (``track_activation=2``) reach the stage as they are, and
    ``choices`` are checked: check the rest where the stage is made.
    """

    name: str
    help: str
    default: Any = None
    type: Callable[[str], Any] = str
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    serve: bool = False
    """Also an option of ``cvat-aa serve`` and ``cvat-aa agent run``, for what it changes in
    the functions they serve (``cvat_aa_wrap_function``); result stages take no part there."""
    plugin: str = ""
    """The hook plugin that declared it (set by cvat-aa)."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_switch(self) -> bool:
        return self.default is False

    def convert(self, value: Any) -> Any:
        """The value as the run takes it; ``ValueError`` with a sentence if it is not one."""
        if value is None:
            return self.default
        if self.is_switch:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} is True or False, not {value!r}")
            return value
        if isinstance(value, str):
            try:
                value = self.type(value)
            except (TypeError, ValueError) as ex:
                raise ValueError(f"{self.flag}: {ex}") from ex
        if self.choices is not None and value not in self.choices:
            raise ValueError(
                f"{self.flag} is one of {', '.join(map(str, self.choices))}, not {value!r}"
            )
        return value


@attrs.frozen
class FrameResult:
    """One frame's results, as a stage takes and gives them."""

    frame: int
    """The task frame number (for a run over files, the frame's number in the run)."""
    size: tuple[int, int]
    """The frame's (width, height)."""
    tags: Sequence[models.LabeledImageRequest] = ()
    shapes: Sequence[models.LabeledShapeRequest] = ()
    """Mapped to the task's labels (``label_id``), on this frame, with ``source`` set."""
    shown: Sequence[tuple[str, models.LabeledShapeRequest]] = ()
    """Only in what a stage gives back: shapes the stage took into tracks on this frame, each
    with a caption (``"#3"``), which the preview draws; they are not uploaded as shapes."""


@attrs.frozen
class StageTrack:
    """A finished track."""

    key: str
    """Unique within the run, and the same when the run is resumed (the journal knows the
    track by it): ``"<label id>:<the tracker's id>"``, say."""
    track: models.LabeledTrackRequest
    """Mapped to the task's labels, ``frame`` its first keyframe, shapes in frame order."""


@attrs.frozen
class StageOutput:
    """What a stage gives back for a batch: one :class:`FrameResult` per frame it was given,
    in the same order, and the tracks that ended."""

    frames: Sequence[FrameResult]
    tracks: Sequence[StageTrack] = ()


@attrs.frozen(kw_only=True)
class StageRun:
    """What a stage is told about the run (``cvat_aa_result_stage``)."""

    target: str
    """``"task"``, ``"job"`` or ``"images"`` (a run over files)."""
    target_id: int | None
    options: Mapping[str, Any]
    """Every declared run option (of every hook plugin) by name, with its value for this run
    (the default where the user gave none)."""
    labels: LabelCatalog
    """The labels the results refer to (a task's labels, with their types and sublabels)."""
    stop_frame: int | None
    """The last frame of the task, job or video; None where it is not known before reading
    (a video that does not state its length): then the last frame read is taken for it."""


class ResultStage(Protocol):
    """Takes a run's results frame by frame (see the module's docstring)."""

    def add(self, frames: Sequence[FrameResult]) -> StageOutput:
        """The next frames' results, in frame order."""
        ...

    def finish(self) -> Sequence[StageTrack]:
        """No more frames: the tracks still open, finished."""
        ...


class StageChain:
    """The stages of a run, one after the other, as the pipeline uses them.

    What a stage gives back is checked (one result per frame it was given, in the same
    order; tracks as :class:`StageTrack`), and what a stage raises is reported as its hook
    plugin's failure, naming the plugin: plugin code never decides how cvat-aa ends.
    """

    def __init__(self, stages: Sequence[tuple[str, ResultStage]] = ()) -> None:
        self.stages = list(stages)
        """(hook plugin name, stage) pairs, in the order results go through them."""

    def __bool__(self) -> bool:
        return bool(self.stages)

    def add(self, results: Sequence[FrameResult]) -> tuple[list[FrameResult], list[StageTrack]]:
        """``results`` through every stage: what stays per frame, and the tracks that ended."""
        frames = list(results)
        tracks: list[StageTrack] = []
        for plugin, stage in self.stages:
            output = _call(plugin, "add", lambda s=stage, f=frames: s.add(f))
            given = [r.frame for r in frames]
            back = list(getattr(output, "frames", None) or ())
            if (
                not isinstance(output, StageOutput)
                or [getattr(r, "frame", None) for r in back] != given
            ):
                raise BadFunctionError(
                    f"the result stage of hook plugin {plugin!r} must give back a StageOutput"
                    f" with one FrameResult for each of the frames it was given ({given}), in"
                    " their order; tell the plugin's authors, or disable it with"
                    f" CVAT_AA_DISABLE_PLUGINS={plugin}"
                )
            frames = back
            tracks.extend(_checked_tracks(plugin, output.tracks))
        return frames, tracks

    def finish(self) -> list[StageTrack]:
        """The tracks every stage still held, finished."""
        tracks: list[StageTrack] = []
        for plugin, stage in self.stages:
            tracks.extend(_checked_tracks(plugin, _call(plugin, "finish", stage.finish)))
        return tracks


def _call(plugin: str, method: str, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except KeyboardInterrupt:
        raise
    except BaseException as ex:  # the plugin's failure, not cvat-aa's exit status
        raise BadFunctionError(
            f"the result stage of hook plugin {plugin!r} failed in {method}():"
            f" {type(ex).__name__}: {ex}; tell the plugin's authors, or run without its"
            f" options (or disable it with CVAT_AA_DISABLE_PLUGINS={plugin})"
        ) from ex


def _checked_tracks(plugin: str, tracks: Any) -> list[StageTrack]:
    tracks = list(tracks or ())
    for track in tracks:
        if not (
            isinstance(track, StageTrack)
            and isinstance(track.key, str)
            and isinstance(track.track, models.LabeledTrackRequest)
            and track.track.shapes
        ):
            raise BadFunctionError(
                f"the result stage of hook plugin {plugin!r} gave a track that is not a"
                " StageTrack with a str key and a LabeledTrackRequest with shapes: "
                f"{track!r:.200}"
            )
    return tracks
