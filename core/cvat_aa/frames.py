"""Frames, whatever they come from: a frame, a selection of frame numbers, and batching.

Every source of frames (a task or job on a server, files on disk) yields :class:`Frame`
objects numbered its own way (task frame numbers; numbers across the files), selected by the
same :class:`FrameSelection`, and the pipeline groups them with :func:`batches`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import attrs
import PIL.Image
from cvat_sdk import models

from .errors import EmptySelectionError

__all__ = [
    "EmptySelectionError",
    "Frame",
    "FrameCallback",
    "FrameSelection",
    "batches",
]

T = TypeVar("T")


_RANGE = re.compile(r"^(\d+)(?:-(\d+))?(?::(\d+))?$")


@attrs.frozen
class FrameSelection:
    """A subset of frames: ranges (``0-99``), steps (``0-99:5``) and lists (``1,5,9``).

    Parts are separated by commas; a range includes both ends; a step applies to its range.
    """

    parts: tuple[tuple[int, int | None, int], ...]

    @classmethod
    def parse(cls, text: str) -> FrameSelection:
        parts = []
        for raw in text.split(","):
            match = _RANGE.match(raw.strip())
            if not match:
                raise ValueError(
                    f"frame selection {text!r}: {raw.strip()!r} is not a frame number, a range"
                    " like 0-99 or a stepped range like 0-99:5"
                )
            start, stop, step = match.groups()
            start_i = int(start)
            stop_i = int(stop) if stop is not None else start_i
            step_i = int(step) if step is not None else 1
            if stop_i < start_i or step_i < 1:
                raise ValueError(f"frame selection {text!r}: {raw.strip()!r} is an empty range")
            parts.append((start_i, stop_i, step_i))
        return cls(tuple(parts))

    @classmethod
    def of(cls, frames: FrameSelection | str | Iterable[int] | None) -> FrameSelection | None:
        """A selection from what the API takes: a selection, a string for :meth:`parse`, or
        frame numbers; None stays None (every frame)."""
        if frames is None or isinstance(frames, FrameSelection):
            return frames
        if isinstance(frames, str):
            return cls.parse(frames)
        return cls(tuple((int(f), int(f), 1) for f in frames))

    def __contains__(self, frame: int) -> bool:
        return any(
            start <= frame <= stop and (frame - start) % step == 0
            for start, stop, step in self.parts
        )

    def __str__(self) -> str:
        """The selection as ``parse`` reads it (shortened when it lists many frames)."""
        text = ",".join(
            str(start) if stop == start else f"{start}-{stop}" + (f":{step}" if step != 1 else "")
            for start, stop, step in self.parts
        )
        return text if len(text) <= 60 else text[:57] + "..."

    @property
    def first(self) -> int:
        """The lowest frame number selected."""
        return min(start for start, _, _ in self.parts)

    @property
    def last(self) -> int:
        """The highest frame number a part reaches (it may not be selected itself)."""
        return max(start if stop is None else stop for start, stop, _ in self.parts)

    def no_frame_error(
        self, what: str, first: int, last: int, note: str = ""
    ) -> EmptySelectionError:
        """The error for a selection that matches no frame of ``what``, whose frames are
        ``first`` to ``last``."""
        frames = str(first) if first == last else f"{first}-{last}"
        return EmptySelectionError(
            f"the frame selection {self} matches no frame of {what} (frames {frames}{note});"
            " choose frames in that range"
        )


@attrs.frozen
class Frame:
    index: int
    """The frame number: a task frame number, or the number across the files of a local run."""
    name: str
    image: PIL.Image.Image


FrameCallback = Callable[
    [Frame, list[models.LabeledImageRequest], list[models.LabeledShapeRequest]], None
]
"""Called with each frame and its annotations (tags, shapes), once they are validated."""


def batches(frames: Iterable[T], size: int) -> Iterator[list[T]]:
    """Group frames (or anything) into lists of ``size`` (the last may be shorter)."""
    batch: list[T] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
