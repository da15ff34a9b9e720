"""Offline tracking over a video or images on disk, with no server: the tracks go to a file.

The frames are read as a run over files reads them (:class:`~.inputs.LocalFrames`: one at a
time, videos through PyAV), the tracks are made as every tracking run makes them
(:mod:`cvat_aa.tracks`), and each is written as it ends to a "CVAT for video 1.1" file
(:class:`~cvat_aa.export.cvat_xml.CvatVideoXmlWriter`), or to plain JSON for scripts
(:class:`~cvat_aa.export.tracks_json.TracksJsonWriter`); the file appears whole when the run
ends and not at all when it fails. The start shapes come from a shapes file: their label names
are the file's labels (there is no task to match them to).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvat_sdk.core.progress import ProgressReporter

from ..export.cvat_xml import CvatVideoXmlWriter
from ..export.streaming import check_output_path
from ..export.tracks_json import TracksJsonWriter
from ..frames import Frame, FrameSelection
from ..labels import LabelCatalog, LabelInfo, stable_color
from ..pipeline.detection import raising_as_the_function_did
from ..pipeline.run import function_name as name_of_function
from ..tracks import (
    TrackedObject,
    TrackSummary,
    check_start_shapes,
    follow,
    start_shapes_from_entries,
    tracker_for,
)
from .inputs import LocalFrames

__all__ = ["check_track_output", "labels_of", "track_files"]

logger = logging.getLogger(__name__)


def labels_of(entries: Sequence[Mapping[str, Any]]) -> LabelCatalog:
    """The labels a shapes file names, numbered in the order they first appear."""
    names = list(dict.fromkeys(str(entry["label"]) for entry in entries))
    return LabelCatalog(
        tuple(
            LabelInfo(id=number, name=name, color=stable_color(name))
            for number, name in enumerate(names)
        )
    )


def check_track_output(path: str | os.PathLike[str]) -> Path:
    """Check, before any work, that tracks can be written to ``path``: a ``.xml`` file (CVAT
    for video 1.1) or a ``.json`` one (plain JSON).

    Raises ``ValueError`` saying what to change.
    """
    target = check_output_path(path)
    if target.suffix.lower() not in (".xml", ".json"):
        raise ValueError(
            f"name the output *.xml (CVAT for video 1.1, which CVAT imports) or *.json (the"
            f" tracks as plain JSON), not {os.fspath(path)!r}"
        )
    return target


def _run(
    function: Any,
    source: LocalFrames,
    start_shapes: Sequence[Mapping[str, Any]],
    output: Path | None,
    *,
    function_name: str | None,
    task_name: str,
    pbar: ProgressReporter | None,
) -> TrackSummary:
    started = time.monotonic()
    labels = labels_of(start_shapes)
    first = source.selection.first if source.selection is not None else 0
    starts = start_shapes_from_entries(start_shapes, labels, first_frame=first)
    if not starts:
        raise ValueError("the shapes file lists no shape to start tracking from")
    tracker = tracker_for(function)
    check_start_shapes(starts, tracker.spec, labels)
    count = source.count()
    last_frame = None if count is None else count - 1
    per_label: dict[str, int] = {}
    writer: CvatVideoXmlWriter | TracksJsonWriter | None = None
    if output is not None and output.suffix.lower() == ".json":
        writer = TracksJsonWriter(output, labels, size=count)
    elif output is not None:
        writer = CvatVideoXmlWriter(output, labels, task_name=task_name, size=count)

    def on_track(obj: TrackedObject) -> None:
        name = labels.name(obj.start.label_id)
        per_label[name] = per_label.get(name, 0) + 1
        if writer is not None:
            writer.add_track(obj.request(labels))

    def on_frame(frame: Frame) -> None:
        if writer is not None:
            writer.saw_frame(frame.index, *frame.image.size)
        if pbar is not None:
            pbar.advance(1)

    progress = (
        contextlib.nullcontext()
        if pbar is None
        else pbar.task(total=source.estimated_count(), desc="Tracking", unit="frames")
    )
    try:
        with progress:
            following = follow(
                tracker,
                source.iter_frames(),
                starts,
                labels,
                last_frame=last_frame,
                on_track=on_track,
                on_frame=on_frame,
            )
        source.finished_reading(following.frames)
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    return TrackSummary(
        target="video",
        function=function_name or name_of_function(function),
        frames=following.frames,
        tracks=following.tracks,
        keyframes=following.keyframes,
        lost=following.lost,
        made=following.made,
        per_label=per_label,
        elapsed_s=time.monotonic() - started,
        output=output,
    )


def track_files(
    function: Any,
    paths: Sequence[str | os.PathLike[str]],
    start_shapes: Sequence[Mapping[str, Any]],
    *,
    output: str | os.PathLike[str] | None = None,
    frames: FrameSelection | str | Sequence[int] | None = None,
    function_name: str | None = None,
    task_name: str = "cvat-aa",
    pbar: ProgressReporter | None = None,
) -> TrackSummary:
    """Run a tracking ``function`` over the frames of videos or images on disk (``paths``, as
    ``annotate_images`` takes them, frames numbered from 0 across them) from ``start_shapes``
    (a shapes file's contents: ``[{"label": name, "frame": n, "type": "rectangle",
    "points": [...]}, ...]``), and write the tracks to ``output``: "CVAT for video 1.1" XML
    for ``*.xml``, plain JSON for ``*.json`` (see ``cvat_aa.export.tracks_json``).

    Tracks end as on a task: an ``outside`` keyframe where the object is lost, or on the frame
    after the last one of ``frames`` (unless the media end there). The file appears when the
    run ends, and not at all if it fails. Raises like :func:`cvat_aa.track_task`, and
    ``ImageInputError`` for a file that cannot be read.
    """
    target = None if output is None else check_track_output(output)
    source = LocalFrames.find(paths, FrameSelection.of(frames))
    source.check_selection()
    return raising_as_the_function_did(
        lambda: _run(
            function,
            source,
            start_shapes,
            target,
            function_name=function_name,
            task_name=task_name,
            pbar=pbar,
        )
    )
