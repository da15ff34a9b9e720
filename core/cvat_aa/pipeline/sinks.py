"""Sinks that any run can have: the caller's callback, the preview gallery, an annotation file,
and the annotations kept in memory.

The upload to a task, with its journal, is the driver's sink
(:class:`~cvat_aa.driver.task_run.UploadSink`): only runs on a server have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs

from ..annotations import AnnotationSet, FrameAnnotations
from ..export import AnnotationWriter, open_writer
from ..frames import FrameCallback
from ..labels import LabelCatalog
from ..preview import PreviewWriter
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
    """Draws every frame into a gallery; the gallery is written whether the run succeeds or
    not (a failed run's gallery shows what it did)."""

    directory: Path
    labels: LabelCatalog
    title: str
    _writer: PreviewWriter | None = None

    def start(self) -> None:
        self._writer = PreviewWriter(self.directory, self.labels, title=self.title)

    def add(self, frames: Sequence[MappedFrame]) -> None:
        assert self._writer is not None
        for mapped in frames:
            self._writer.add(mapped.frame, mapped.tags, mapped.shapes)

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def abort(self, error: BaseException) -> None:
        self.finish()


@attrs.define
class ExportSink(_Sink):
    """Writes every frame to an annotation file, which appears only when the run succeeds."""

    path: Path
    labels: LabelCatalog
    format: str
    task_name: str
    _writer: AnnotationWriter | None = None

    def start(self) -> None:
        self._writer = open_writer(
            self.path, self.labels, format=self.format, task_name=self.task_name
        )

    def add(self, frames: Sequence[MappedFrame]) -> None:
        assert self._writer is not None
        for mapped in frames:
            self._writer.add(_frame_annotations(mapped))

    def finish(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def abort(self, error: BaseException) -> None:
        if self._writer is not None:
            self._writer.discard()


@attrs.define
class KeepSink(_Sink):
    """Keeps every frame's annotations in memory."""

    labels: LabelCatalog
    frames: list[FrameAnnotations] = attrs.Factory(list)

    def add(self, frames: Sequence[MappedFrame]) -> None:
        self.frames.extend(_frame_annotations(mapped) for mapped in frames)

    def annotations(self) -> AnnotationSet:
        return AnnotationSet(self.labels, self.frames)


def _frame_annotations(mapped: MappedFrame) -> FrameAnnotations:
    frame = mapped.frame
    return FrameAnnotations(
        frame.index, frame.name, frame.image.width, frame.image.height, mapped.tags, mapped.shapes
    )
