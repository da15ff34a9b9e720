"""Sinks that any run can have: the caller's callback, the preview gallery, an annotation file,
and the annotations kept in memory.

The upload to a task, with its journal, is the driver's sink
(:class:`~cvat_aa.driver.task_run.UploadSink`): only runs on a server have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs
from cvat_sdk import models

from ..annotations import AnnotationSet, FrameAnnotations
from ..export import AnnotationWriter, open_writer
from ..frames import FrameCallback
from ..labels import LabelCatalog
from ..preview import PreviewWriter
from ..result_stages import FrameResult, StageTrack
from .run import MappedFrame
from .summary import Skipped

__all__ = ["CallbackSink", "ExportSink", "KeepSink", "PreviewSink"]


class _Sink:
    """Does nothing; sinks override what they need."""

    def start(self) -> None:
        pass

    def add(self, frames: Sequence[MappedFrame]) -> None:
        pass

    def skip(self, skipped: Skipped) -> None:
        pass

    def add_tracks(self, tracks: Sequence[StageTrack]) -> None:
        pass

    def replay(self, frames: Sequence[FrameResult], tracks: Sequence[StageTrack]) -> None:
        pass

    def finish(self) -> None:
        pass

    def abort(self, error: BaseException) -> None:
        pass


@attrs.define
class CallbackSink(_Sink):
    """Calls ``on_frame(frame, tags, shapes)`` for every frame."""

    on_frame: FrameCallback

    def add(self, frames: Sequence[MappedFrame]) -> None:
        for mapped in frames:
            self.on_frame(mapped.frame, mapped.tags, mapped.shapes)


@attrs.define
class PreviewSink(_Sink):
    """Draws every frame into a gallery, with the shapes the result stages took into tracks
    captioned with their track; the gallery is written whether the run succeeds or not (a
    failed run's gallery shows what it did)."""

    directory: Path
    labels: LabelCatalog
    title: str
    _writer: PreviewWriter | None = None

    def start(self) -> None:
        self._writer = PreviewWriter(self.directory, self.labels, title=self.title)

    def add(self, frames: Sequence[MappedFrame]) -> None:
        assert self._writer is not None
        for mapped in frames:
            self._writer.add(mapped.frame, mapped.tags, mapped.shapes, shown=mapped.shown)

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def abort(self, error: BaseException) -> None:
        self.finish()


@attrs.define
class ExportSink(_Sink):
    """Writes every frame, and every track, to an annotation file, which appears only when
    the run succeeds."""

    path: Path
    labels: LabelCatalog
    format: str
    task_name: str
    tracks: bool = False
    """The run makes tracks (it has result stages): the file is of a kind that holds them,
    chosen before the first frame (see :func:`~cvat_aa.export.open_writer`)."""
    _writer: AnnotationWriter | None = None

    def start(self) -> None:
        self._writer = open_writer(
            self.path,
            self.labels,
            format=self.format,
            task_name=self.task_name,
            tracks=self.tracks,
        )

    def add(self, frames: Sequence[MappedFrame]) -> None:
        assert self._writer is not None
        for mapped in frames:
            self._writer.add(_frame_annotations(mapped))

    def add_tracks(self, tracks: Sequence[StageTrack]) -> None:
        assert self._writer is not None
        for stage_track in tracks:
            self._writer.add_track(stage_track.track)

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def abort(self, error: BaseException) -> None:
        if self._writer is not None:
            self._writer.discard()


@attrs.define
class KeepSink(_Sink):
    """Keeps every frame's annotations, and every track, in memory."""

    labels: LabelCatalog
    frames: list[FrameAnnotations] = attrs.Factory(list)
    tracks: list[models.LabeledTrackRequest] = attrs.Factory(list)

    def add(self, frames: Sequence[MappedFrame]) -> None:
        self.frames.extend(_frame_annotations(mapped) for mapped in frames)

    def add_tracks(self, tracks: Sequence[StageTrack]) -> None:
        self.tracks.extend(stage_track.track for stage_track in tracks)

    def annotations(self) -> AnnotationSet:
        return AnnotationSet(self.labels, self.frames, self.tracks)


def _frame_annotations(mapped: MappedFrame) -> FrameAnnotations:
    frame = mapped.frame
    return FrameAnnotations(
        frame.index, frame.name, frame.image.width, frame.image.height, mapped.tags, mapped.shapes
    )
