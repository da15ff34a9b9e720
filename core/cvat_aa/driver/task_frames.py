"""Reading a task's frames from a CVAT server: which frames, and their decoded images.

Image tasks are read chunk by chunk (one request per ``data_chunk_size`` frames, as CVAT's
own clients do); video tasks frame by frame, since CVAT serves each video frame as an image.
A job's frames are read through the job's own endpoints (its meta, its chunks numbered from
its first frame, its frames), never the task's: on CVAT a user assigned only the job may not
read the task.
Worker threads download chunks and decode frames ahead of the consumer, each within a bounded
window, so memory grows neither with the task nor with its chunk size. A chunk is written to an
anonymous temporary file as it arrives (as cvat-sdk's driver keeps chunks in its cache
directory) and each frame is read out of it only when its decoding starts: the chunks waiting
ahead cost disk pages, not memory, which in memory were a few MiB each (and twice that while
a chunk was unpacked).
"""

from __future__ import annotations

import functools
import io
import logging
import shutil
import tempfile
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Container, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

import attrs
import PIL.Image
from cvat_sdk.core.proxies.jobs import Job
from cvat_sdk.core.proxies.tasks import Task

from ..errors import NoDataError
from ..frames import Frame, FrameSelection
from .retry import RetryPolicy

if TYPE_CHECKING:
    from ..pipeline.options import RunOptions

logger = logging.getLogger(__name__)

__all__ = ["NoDataError", "TaskFrames"]

_WORKERS = 4
"""Threads that decode frames (downloads run in threads of their own, ``prefetch`` of them)."""


class _Chunk:
    """A downloaded chunk: its zip archive in a temporary file, and the members still to read.

    The decoding threads read it, a frame each; the file is closed (and so deleted) when its
    last frame has been read, or by :meth:`close` when the run stops early.
    """

    def __init__(self, file: BinaryIO, members: list[int]) -> None:
        self._file = file
        self._archive = zipfile.ZipFile(file)
        self._infos = self._archive.infolist()
        self._left = len(members)
        self._lock = threading.Lock()
        self.members = members
        """The member number of each of this chunk's frames, in order."""

    def read(self, member: int) -> bytes:
        with self._lock:
            try:
                return self._archive.read(self._infos[member])
            finally:
                self._left -= 1
                if self._left <= 0:
                    self.close()

    def close(self) -> None:
        self._archive.close()
        self._file.close()


def _readers(download: list[bytes] | _Chunk) -> list[Callable[[], bytes]]:
    """How to read each frame of a download: a chunk's frames, or the video frames' bytes."""
    if isinstance(download, _Chunk):
        return [functools.partial(download.read, member) for member in download.members]
    return [functools.partial(_given, data) for data in download]


def _given(data: bytes) -> bytes:
    return data


def _decode(read: Callable[[], bytes]) -> PIL.Image.Image:
    image = PIL.Image.open(io.BytesIO(read()))
    image.load()
    # Functions receive RGB images, as cvat-sdk's driver gives them.
    return image if image.mode == "RGB" else image.convert("RGB")


@attrs.define
class TaskFrames:
    """The frames of a task (or of a job's frame range) to annotate: the pipeline's source
    for runs on a server."""

    media: Task | Job
    """What the frames are read through: the task, or the job of a job run."""
    frames: list[tuple[int, str]]
    """(task frame number, frame name) for every frame to process, in order."""
    chunk_size: int
    is_video: bool
    retry: RetryPolicy = attrs.Factory(RetryPolicy)
    span: tuple[int, int] = (0, -1)
    """The first and last frame of the task or job, whatever the selection."""
    deleted: frozenset[int] = frozenset()
    """The task's deleted frames."""
    job_id: int | None = None
    """The job whose frames these are, if the run is on a job."""
    positions: dict[int, int] | None = None
    """A job's frames: task frame number -> its place among the job's frames, which numbers
    the job's chunks (chunk ``place // chunk_size``, member ``place % chunk_size``)."""

    @classmethod
    def for_task(
        cls,
        task: Task,
        *,
        selection: FrameSelection | None = None,
        retry: RetryPolicy | None = None,
    ) -> TaskFrames:
        """Select the frames of ``task``.

        Raises :class:`NoDataError` for a task without data, and :class:`EmptySelectionError`
        when ``selection`` matches none of the frames (not deleted) of the task.
        """
        retry = retry or RetryPolicy()
        # CVAT leaves these fields out of a task without data (an absent field raises).
        if not getattr(task, "size", None) or not getattr(task, "data_chunk_size", None):
            raise NoDataError(
                f"task {task.id} has no data; upload images or a video to it before annotating"
            )
        meta = retry.call(task.get_meta, what=f"reading the frame list of task {task.id}")
        deleted = set(meta.deleted_frames or [])
        is_video = str(task.data_original_chunk_type) == "video"
        first, last = 0, task.size - 1
        frames = []
        for index in range(first, last + 1):
            if index in deleted or (selection is not None and index not in selection):
                continue
            name = f"frame_{index:06d}" if is_video else meta.frames[index].name
            frames.append((index, name))
        if not frames and selection is not None:
            note = ", deleted ones excluded" if deleted else ""
            raise selection.no_frame_error(f"task {task.id}", first, last, note)
        return cls(
            media=task,
            frames=frames,
            chunk_size=task.data_chunk_size,
            is_video=is_video,
            retry=retry,
            span=(first, last),
            deleted=frozenset(deleted),
        )

    @classmethod
    def for_job(
        cls,
        job: Job,
        *,
        selection: FrameSelection | None = None,
        retry: RetryPolicy | None = None,
    ) -> TaskFrames:
        """Select the frames of ``job``, read through the job's endpoints only.

        Raises like :meth:`for_task`.
        """
        retry = retry or RetryPolicy()
        if not job.data_chunk_size:
            raise NoDataError(
                f"task {job.task_id} has no data; upload images or a video to it before annotating"
            )
        meta = retry.call(job.get_meta, what=f"reading the frame list of job {job.id}")
        deleted = set(meta.deleted_frames or [])
        is_video = str(job.data_original_chunk_type) == "video"
        first, last = job.start_frame, job.stop_frame
        # A job's meta lists its own frames, in order: those of its range, or, for a job of
        # chosen frames (a ground truth job), the frames it includes.
        numbers = list(meta.included_frames or range(first, last + 1))
        frames = []
        for place, index in enumerate(numbers):
            if index in deleted or (selection is not None and index not in selection):
                continue
            name = f"frame_{index:06d}" if is_video else meta.frames[place].name
            frames.append((index, name))
        if not frames and selection is not None:
            note = f" of task {job.task_id}" + (", deleted ones excluded" if deleted else "")
            raise selection.no_frame_error("the job", first, last, note)
        return cls(
            media=job,
            frames=frames,
            chunk_size=job.data_chunk_size,
            is_video=is_video,
            retry=retry,
            span=(first, last),
            deleted=frozenset(deleted),
            job_id=job.id,
            positions={index: place for place, index in enumerate(numbers)},
        )

    def __len__(self) -> int:
        return len(self.frames)

    # --- the pipeline's Source protocol ------------------------------------------------------

    @property
    def target(self) -> str:
        return "task" if self.job_id is None else "job"

    @property
    def target_id(self) -> int:
        return self.media.id if self.job_id is None else self.job_id

    @property
    def task_id(self) -> int:
        return self.media.task_id if isinstance(self.media, Job) else self.media.id

    def describe(self) -> str:
        """``task 3`` or ``job 5``."""
        return f"{self.target} {self.target_id}"

    def without(self, frames: Container[int]) -> TaskFrames:
        """These frames but ``frames`` (those a resumed run had finished)."""
        return attrs.evolve(self, frames=[(i, n) for i, n in self.frames if i not in frames])

    def frame_count(self) -> int:
        return len(self.frames)

    def read(self, options: RunOptions, on_unreadable: object = None) -> Iterator[Frame]:
        """The frames, downloaded ``options.prefetch`` chunks ahead and decoded ahead of the
        batches. A frame that cannot be read fails the run (``on_unreadable`` is not used:
        the server's frames are not the user's files to skip).

        One batch is decoded ahead (at least a frame a decoding thread): the next batch is ready
        when the function is done with this one. Every frame decoded ahead is a full image
        in memory (1.2 MiB at 640x480), beside the batch being assembled and the batch the
        pipeline still holds; two batches ahead cost 10 MiB of peak memory at the default
        batch size and were no faster (benchmarks/driver_vs_sdk.py).
        """
        return self.iter_frames(
            prefetch=options.prefetch,
            workers=_WORKERS,
            decode_ahead=max(_WORKERS, options.batch_size),
        )

    def finished_reading(self, frames: int) -> None:
        """Nothing to check: the selection was matched against the task's frames before."""

    def _download_frame(self, index: int) -> list[bytes]:
        data = self.retry.call(
            lambda: self.media.get_frame(index, quality="original").read(),
            what=f"downloading frame {index}",
        )
        return [data]

    def _place(self, index: int) -> int:
        """Where frame ``index`` is among the frames the chunks are numbered by."""
        return index if self.positions is None else self.positions[index]

    def _download_chunk(self, chunk: int, indexes: Sequence[int]) -> _Chunk:
        def download() -> BinaryIO:
            # Not a with block: the chunk's file outlives this call, and _Chunk closes it.
            file = tempfile.TemporaryFile()  # noqa: SIM115
            try:
                if isinstance(self.media, Job):
                    # The job's chunk number ``chunk`` (``index``), numbered from its first frame.
                    _, response = self.media.api.retrieve_data(
                        self.media.id,
                        type="chunk",
                        index=chunk,
                        quality="original",
                        _parse_response=False,
                    )
                    with response:
                        shutil.copyfileobj(response, file)
                else:
                    self.media.download_chunk(chunk, file, quality="original")
                file.seek(0)
            except BaseException:
                file.close()
                raise
            return file

        file = self.retry.call(download, what=f"downloading chunk {chunk}")
        try:
            # A frame is member number place % chunk_size, whatever the member names are.
            return _Chunk(file, [self._place(i) % self.chunk_size for i in indexes])
        except BaseException:
            file.close()
            raise

    def _downloads(self) -> list[tuple[Callable[[], list[bytes] | _Chunk], list[tuple[int, str]]]]:
        """One download per chunk (image tasks) or per frame (video): what, and its frames."""
        if self.is_video:
            return [(lambda i=i: self._download_frame(i), [(i, n)]) for i, n in self.frames]
        groups: dict[int, list[tuple[int, str]]] = {}
        for index, name in self.frames:
            groups.setdefault(self._place(index) // self.chunk_size, []).append((index, name))
        return [
            (lambda c=chunk, f=frames: self._download_chunk(c, [i for i, _ in f]), frames)
            for chunk, frames in groups.items()
        ]

    def iter_frames(
        self, *, workers: int = _WORKERS, prefetch: int = 4, decode_ahead: int = 8
    ) -> Iterator[Frame]:
        """Yield the frames in order.

        Up to ``prefetch`` downloads (chunks, or video frames) run ahead, each in a thread of
        its own, and up to ``decode_ahead`` frames are decoded ahead by ``workers`` other
        threads (a download waiting on the network never holds up a decoding). Memory holds at
        most that many decoded frames and downloaded video frames (chunks wait in temporary
        files), whatever the size of the task or of its chunks.
        """
        downloads = deque(self._downloads())
        fetching: deque[tuple[Future[list[bytes] | _Chunk], list[tuple[int, str]]]] = deque()
        # How to read each frame's bytes, and the chunk it is read from (None: a video frame).
        encoded: deque[tuple[Callable[[], bytes], _Chunk | None, int, str]] = deque()
        decoding: deque[tuple[Future[PIL.Image.Image], _Chunk | None, int, str]] = deque()
        try:
            with (
                ThreadPoolExecutor(
                    max_workers=max(1, prefetch),
                    thread_name_prefix="cvat-aa-download",
                ) as download_pool,
                ThreadPoolExecutor(
                    max_workers=max(1, workers),
                    thread_name_prefix="cvat-aa-decode",
                ) as decode_pool,
            ):
                try:
                    while downloads or fetching or encoded or decoding:
                        while downloads and len(fetching) < max(1, prefetch):
                            download, frames = downloads.popleft()
                            fetching.append((download_pool.submit(download), frames))
                        while len(decoding) < max(1, decode_ahead) and (encoded or fetching):
                            if not encoded:
                                future, frames = fetching.popleft()
                                got = future.result()
                                encoded.extend(
                                    (read, got if isinstance(got, _Chunk) else None, *frame)
                                    for read, frame in zip(_readers(got), frames, strict=True)
                                )
                                continue
                            read, chunk, index, name = encoded.popleft()
                            decoding.append((decode_pool.submit(_decode, read), chunk, index, name))
                        future, _, index, name = decoding.popleft()
                        yield Frame(index, name, future.result())
                finally:
                    for future, *_ in (*fetching, *decoding):
                        future.cancel()
        finally:
            # The threads are done: close the chunks a run that stopped early left open.
            for future, _ in fetching:
                if not future.cancelled() and future.exception() is None:
                    got = future.result()
                    if isinstance(got, _Chunk):
                        got.close()
            for _, chunk, *_ in (*encoded, *decoding):
                if chunk is not None:
                    chunk.close()
