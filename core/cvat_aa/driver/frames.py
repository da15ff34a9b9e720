"""Reading a task's frames from a CVAT server: which frames, and their decoded images.

Image tasks are read chunk by chunk (one request per ``data_chunk_size`` frames, as CVAT's
own clients do); video tasks frame by frame, since CVAT serves each video frame as an image.
Chunks are fetched and decoded by worker threads ahead of the consumer, with a bounded
window, so memory does not grow with the task.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import attrs
import PIL.Image
from cvat_sdk.core.proxies.tasks import Task

from .retry import RetryPolicy

logger = logging.getLogger(__name__)

__all__ = ["Frame", "FrameSelection", "FrameSource", "NoDataError", "batches"]


class NoDataError(ValueError):
    """The task has no data (no frames to annotate)."""


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

    def __contains__(self, frame: int) -> bool:
        return any(
            start <= frame <= stop and (frame - start) % step == 0
            for start, stop, step in self.parts
        )


@attrs.frozen
class Frame:
    index: int
    """The task frame number."""
    name: str
    image: PIL.Image.Image


def batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Group frames into lists of ``size`` (the last may be shorter)."""
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _decode(data: bytes) -> PIL.Image.Image:
    image = PIL.Image.open(io.BytesIO(data))
    image.load()
    # Functions receive RGB images, as cvat-sdk's driver gives them.
    return image if image.mode == "RGB" else image.convert("RGB")


@attrs.define
class FrameSource:
    """The frames of a task (or of a job's frame range) to annotate."""

    task: Task
    frames: list[tuple[int, str]]
    """(task frame number, frame name) for every frame to process, in order."""
    chunk_size: int
    is_video: bool
    retry: RetryPolicy = attrs.Factory(RetryPolicy)

    @classmethod
    def for_task(
        cls,
        task: Task,
        *,
        frame_range: tuple[int, int] | None = None,
        selection: FrameSelection | None = None,
        retry: RetryPolicy | None = None,
    ) -> FrameSource:
        """Select the frames of ``task`` (optionally only those in an inclusive range)."""
        retry = retry or RetryPolicy()
        if not task.size or not task.data_chunk_size:
            raise NoDataError(
                f"task {task.id} has no data; upload images or a video to it before annotating"
            )
        meta = retry.call(task.get_meta, what=f"reading the frame list of task {task.id}")
        deleted = set(meta.deleted_frames or [])
        is_video = str(task.data_original_chunk_type) == "video"
        first, last = frame_range if frame_range is not None else (0, task.size - 1)
        frames = []
        for index in range(first, last + 1):
            if index in deleted or (selection is not None and index not in selection):
                continue
            if is_video:
                name = f"frame_{index:06d}"
            else:
                name = meta.frames[index].name
            frames.append((index, name))
        return cls(
            task=task, frames=frames, chunk_size=task.data_chunk_size, is_video=is_video, retry=retry
        )

    def __len__(self) -> int:
        return len(self.frames)

    def _fetch_frame(self, index: int) -> PIL.Image.Image:
        data = self.retry.call(
            lambda: self.task.get_frame(index, quality="original").read(),
            what=f"downloading frame {index}",
        )
        return _decode(data)

    def _download_chunk(self, chunk: int) -> io.BytesIO:
        buffer = io.BytesIO()
        self.task.download_chunk(chunk, buffer, quality="original")
        buffer.seek(0)
        return buffer

    def _fetch_chunk(self, chunk: int, indexes: Sequence[int]) -> list[PIL.Image.Image]:
        buffer = self.retry.call(
            lambda: self._download_chunk(chunk), what=f"downloading chunk {chunk}"
        )
        with zipfile.ZipFile(buffer) as archive:
            members = archive.infolist()
            # Frame f is member number f % chunk_size, whatever the member names are.
            return [_decode(archive.read(members[i % self.chunk_size])) for i in indexes]

    def _work_items(self) -> list[tuple[Callable[..., Any], tuple[Any, ...], list[tuple[int, str]]]]:
        if self.is_video:
            return [(self._fetch_frame, (i,), [(i, n)]) for i, n in self.frames]
        items: list[tuple[Callable[..., Any], tuple[Any, ...], list[tuple[int, str]]]] = []
        for index, name in self.frames:
            chunk = index // self.chunk_size
            if items and items[-1][1][0] == chunk:
                items[-1][2].append((index, name))
                items[-1][1][1].append(index)
            else:
                items.append((self._fetch_chunk, (chunk, [index]), [(index, name)]))
        return items

    def iter_frames(self, *, workers: int = 4, prefetch: int = 4) -> Iterator[Frame]:
        """Yield the frames in order, fetched and decoded ``prefetch`` requests ahead."""
        items = self._work_items()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cvat-aa-fetch") as pool:
            pending: list[tuple[Future, list[tuple[int, str]]]] = []
            position = 0
            try:
                while position < len(items) or pending:
                    while position < len(items) and len(pending) < max(1, prefetch):
                        fetch, args, frames = items[position]
                        pending.append((pool.submit(fetch, *args), frames))
                        position += 1
                    future, frames = pending.pop(0)
                    images = future.result()
                    if not isinstance(images, list):
                        images = [images]
                    for (index, name), image in zip(frames, images, strict=True):
                        yield Frame(index, name, image)
            finally:
                for future, _ in pending:
                    future.cancel()
