"""Annotations of frames held in memory, with the labels they refer to.

This is what a local run produces, what the exporters write and what their readers return.
Tags, shapes and tracks are cvat-sdk request models exactly as a task run would upload them:
label, sublabel and attribute ids refer to :attr:`AnnotationSet.labels`, ``frame`` is the
frame's index and ``source`` is ``"auto"``. Tracks (made by the result stages of hook plugins,
:mod:`cvat_aa.result_stages`) are kept beside the frames, not in them: a track spans frames,
and the shapes it took are not in its frames' ``shapes``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import attrs
from cvat_sdk import models

from .labels import LabelCatalog

__all__ = ["AnnotationSet", "FrameAnnotations"]


@attrs.frozen
class FrameAnnotations:
    """One frame: where it came from, its size, and its tags and shapes."""

    index: int
    """The frame number (unique within a run)."""
    name: str
    """The frame's name, as CVAT would name it in a task (see ``cvat_aa.local``)."""
    width: int
    height: int
    tags: Sequence[models.LabeledImageRequest] = attrs.field(default=(), converter=tuple)
    shapes: Sequence[models.LabeledShapeRequest] = attrs.field(default=(), converter=tuple)

    @property
    def count(self) -> int:
        """Tags and shapes on this frame."""
        return len(self.tags) + len(self.shapes)


@attrs.frozen
class AnnotationSet:
    """Frames with their annotations, the tracks across them, and the labels their ids refer to."""

    labels: LabelCatalog
    frames: Sequence[FrameAnnotations] = attrs.field(default=(), converter=tuple)
    tracks: Sequence[models.LabeledTrackRequest] = attrs.field(default=(), converter=tuple)
    """In the order they ended, each with its shapes in frame order (keyframes only: CVAT
    interpolates the frames between them)."""

    @property
    def count(self) -> int:
        """Tags and shapes on all frames, and tracks (counted as a run's summary counts them)."""
        return sum(frame.count for frame in self.frames) + len(self.tracks)

    def per_label(self) -> dict[str, int]:
        """How many tags, shapes and tracks each label has, by label name."""
        counts: Counter[str] = Counter()
        for frame in self.frames:
            for annotation in (*frame.tags, *frame.shapes):
                counts[self.labels.name(annotation.label_id)] += 1
        for track in self.tracks:
            counts[self.labels.name(track.label_id)] += 1
        return dict(counts)
