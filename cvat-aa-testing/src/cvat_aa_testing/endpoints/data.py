"""Reading a task's or a job's data: meta (and deleted frames), frames, chunks, previews.

Frames and chunks are built on first use and cached in the task's media directory, the way
CVAT 2.73 builds them (see :class:`_TaskMedia`). A job's chunks are numbered from its first
frame (``index``); ``number`` asks for a task's chunk, numbered from frame 0, of a task or,
cut to the job's frames, of a job, as in CVAT.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import PIL.Image
from werkzeug.wrappers import Request, Response

from .. import auth, media, representations
from ..task_data import task_media_dir
from .context import ServerContext
from .http import ID, ApiError, Route, int_param, json_response, parse_json


def task_data_meta(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    with ctx.storage.read() as tx:
        task = ctx.task(tx, task_id)
        return json_response(200, representations.data_meta(task, tx.frames(task["id"])))


def update_task_data_meta(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    body = parse_json(request)
    deleted = body.get("deleted_frames") if isinstance(body, dict) else None
    if deleted is None:
        return task_data_meta(ctx, request, identity, task_id)
    if not isinstance(deleted, list) or not all(
        isinstance(f, int) and not isinstance(f, bool) and f >= 0 for f in deleted
    ):
        raise ApiError(400, {"deleted_frames": ["Expected a list of non-negative frame numbers."]})
    with ctx.storage.write() as tx:
        task = ctx.task(tx, task_id)
        outside = [f for f in deleted if f >= task["size"]]
        if outside:
            raise ApiError(
                400,
                {
                    "deleted_frames": [
                        f"Frames {outside} are outside the task's {task['size']} frames."
                    ]
                },
            )
        tx.set_deleted_frames(task["id"], deleted)
        tx.touch_task(task["id"])
        return json_response(
            200, representations.data_meta(tx.task(task["id"]), tx.frames(task["id"]))
        )


def task_data(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    with ctx.storage.read() as tx:
        task = ctx.task(tx, task_id)
        frames = tx.frames(task["id"])
        jobs = tx.jobs(task["id"])
    return _serve_data(ctx, request, task, frames, jobs, None)


def task_preview(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    with ctx.storage.read() as tx:
        task = ctx.task(tx, task_id)
        frames = tx.frames(task["id"])
        jobs = tx.jobs(task["id"])
    if not frames:
        raise ApiError(404, {"detail": "The task has no data."})
    return _preview(_TaskMedia(ctx, task, frames, jobs), _segment_of(jobs, 0))


def job_data_meta(
    ctx: ServerContext, request: Request, identity: auth.Identity, job_id: str
) -> Response:
    with ctx.storage.read() as tx:
        job, task = ctx.job(tx, job_id)
        meta = representations.data_meta(
            task, tx.frames(task["id"]), job["start_frame"], job["stop_frame"]
        )
    return json_response(200, meta)


def job_data(
    ctx: ServerContext, request: Request, identity: auth.Identity, job_id: str
) -> Response:
    with ctx.storage.read() as tx:
        job, task = ctx.job(tx, job_id)
        frames = tx.frames(task["id"])
        jobs = tx.jobs(task["id"])
    return _serve_data(ctx, request, task, frames, jobs, job)


def _serve_data(
    ctx: ServerContext,
    request: Request,
    task: dict[str, Any],
    frames: list[dict[str, Any]],
    jobs: list[dict[str, Any]],
    job: dict[str, Any] | None,
) -> Response:
    """``GET .../data`` of a task (``job`` None) or of one of its jobs."""
    kind = request.args.get("type", "")
    quality = request.args.get("quality") or "compressed"
    if quality not in ("compressed", "original"):
        raise ApiError(
            400,
            {"quality": [f"{quality!r} is not a valid choice, use compressed or original."]},
        )
    number = int_param(request, "number")
    index = int_param(request, "index") if job is not None else None
    if task["media_type"] is None:
        raise ApiError(400, ["The task has no data."])
    first, last = (0, task["size"] - 1) if job is None else (job["start_frame"], job["stop_frame"])
    task_media = _TaskMedia(ctx, task, frames, jobs)
    if kind == "preview":
        return _preview(task_media, job or _segment_of(jobs, 0))
    if kind == "chunk" and job is not None:
        if number is None and index is None:
            raise ApiError(400, ["Number or Index is not specified"])
        if number is not None and index is not None:
            raise ApiError(400, ["Number and Index cannot be used together"])
        if index is not None:
            return task_media.segment_chunk(job, index, quality)
        return task_media.task_chunk(number, quality, within=job)
    if number is None:
        raise ApiError(400, {"number": ["This parameter is required."]})
    if kind == "frame":
        if not first <= number <= last:
            raise ApiError(
                400, [f"The frame number {number} is outside the frames {first}-{last}."]
            )
        return task_media.frame(job or _segment_of(jobs, number), number, quality)
    if kind == "chunk":
        return task_media.task_chunk(number, quality)
    raise ApiError(400, {"type": [f"{kind!r} is not a valid choice, use chunk, frame or preview."]})


def task_frame(ctx: ServerContext, task: dict[str, Any], frame: int, quality: str) -> bytes:
    """A task's frame as ``GET /api/tasks/{id}/data?type=frame`` serves it."""
    with ctx.storage.read() as tx:
        frames = tx.frames(task["id"])
        jobs = tx.jobs(task["id"])
    task_media = _TaskMedia(ctx, task, frames, jobs)
    return task_media.frame(_segment_of(jobs, frame), frame, quality).get_data()


def _segment_of(jobs: list[dict[str, Any]], frame: int) -> dict[str, Any]:
    """The job whose chunks a task's frame is read from: the first that has it, as in CVAT."""
    return next(job for job in jobs if job["start_frame"] <= frame <= job["stop_frame"])


class _TaskMedia:
    """A task's frames and chunks, built as CVAT 2.73 builds them (``media_io/frame_provider``).

    Frames are read from the chunks of a job ("segment" in CVAT): of the job asked for, or,
    through the task, of the first job that has the frame. A job's chunk ``i`` holds its
    frames ``i * chunk_size...`` and is built from the media. A task's chunk ``n`` (frames
    ``n * chunk_size...``) is built from its frames as read from the jobs' chunks; a job's
    chunk by ``number`` is that task chunk cut to the job's frames, built from the media.

    For video tasks this is what makes the frames CVAT's: the media is decoded and encoded
    into each chunk, and a frame is decoded from that chunk (see :mod:`..media`). Image
    tasks' frames are the uploaded files (or JPEGs of them), whichever chunk they come from.
    Everything built is cached in the task's media directory.
    """

    def __init__(
        self,
        ctx: ServerContext,
        task: dict[str, Any],
        frames: list[dict[str, Any]],
        jobs: list[dict[str, Any]],
    ) -> None:
        self.task = task
        self.frames = frames
        self.jobs = jobs
        self.directory = task_media_dir(ctx.media_root, task["id"])
        self.chunk_size = task["chunk_size"]
        self.is_video = task["media_type"] == "video"

    def chunk_type(self, quality: str) -> str:
        return self.task[f"{quality}_chunk_type"]

    def _cached(self, name: str, quality: str) -> Path:
        extension = "zip" if self.chunk_type(quality) == "imageset" else "mp4"
        return self.directory / "chunks" / f"{name}_{quality}.{extension}"

    def _respond(self, path: Path) -> Response:
        content_type = "application/zip" if path.suffix == ".zip" else "video/mp4"
        return Response(path.read_bytes(), status=200, content_type=content_type)

    def _segment_chunk_frames(self, job: dict[str, Any], index: int) -> range:
        start = job["start_frame"] + index * self.chunk_size
        if index < 0 or start > job["stop_frame"]:
            raise ApiError(400, [f"The chunk number {index} is outside the job's data."])
        return range(start, min(start + self.chunk_size - 1, job["stop_frame"]) + 1)

    def segment_chunk(self, job: dict[str, Any], index: int, quality: str) -> Response:
        return self._respond(self._segment_chunk_path(job, index, quality))

    def _segment_chunk_path(self, job: dict[str, Any], index: int, quality: str) -> Path:
        frames = self._segment_chunk_frames(job, index)
        path = self._cached(f"job{job['id']}_{index}", quality)
        if not path.exists():
            self._build_from_media(path, frames, quality)
        return path

    def task_chunk(
        self, number: int, quality: str, *, within: dict[str, Any] | None = None
    ) -> Response:
        size = self.task["size"]
        start = number * self.chunk_size
        if number < 0 or start >= size:
            raise ApiError(400, [f"The chunk number {number} is outside the data."])
        frames = range(start, min(start + self.chunk_size, size))
        if within is None:
            path = self._cached(f"task_{number}", quality)
            if not path.exists():
                self._build_from_segments(path, frames, quality)
            return self._respond(path)
        first, last = within["start_frame"], within["stop_frame"]
        lowest, highest = first // self.chunk_size, last // self.chunk_size
        if not lowest <= number <= highest:
            message = f"The chunk number should be in the [{lowest}, {highest}] range"
            raise ApiError(400, [f"Invalid chunk number '{number}'. {message}"])
        frames = range(max(frames.start, first), min(frames.stop, last + 1))
        path = self._cached(f"job{within['id']}_task_{number}", quality)
        if not path.exists():
            self._build_from_media(path, frames, quality)
        return self._respond(path)

    def _media_path(self, frame: int) -> Path:
        return self.directory / self.frames[frame]["path"]

    def _build_from_media(self, path: Path, frames: range, quality: str) -> None:
        """A chunk of the given frames, from the uploaded media (CVAT's segment chunks)."""
        if not self.is_video:
            paths = [self._media_path(frame) for frame in frames]
            image_quality = None if quality == "original" else self.task["image_quality"]
            media.write_imageset_chunk(path, paths, image_quality)
            return
        source = self._media_path(frames[0])
        step = _frame_step(self.task)
        indexes = [self.task["start_frame"] + frame * step for frame in frames]
        decoded = media.read_video_frames(source, indexes)
        if self.chunk_type(quality) == "imageset":
            images = (frame.to_image() for frame in decoded)
            media.write_compressed_imageset_chunk(path, images, self.task["image_quality"])
        else:
            self._write_video_chunk(path, decoded, quality)

    def _build_from_segments(self, path: Path, frames: range, quality: str) -> None:
        """A task chunk: its frames as the jobs' chunks have them, re-encoded as in CVAT."""
        if not self.is_video:
            self._build_from_media(path, frames, quality)
            return
        jobs = sorted(self.jobs, key=lambda job: job["start_frame"])
        chunks: dict[Path, list[Any]] = {}
        decoded = []
        for frame in frames:
            job = _segment_of(jobs, frame)
            index, offset = divmod(frame - job["start_frame"], self.chunk_size)
            chunk = self._segment_chunk_path(job, index, quality)
            if chunk not in chunks:
                chunks[chunk] = _read_chunk(chunk)
            decoded.append(chunks[chunk][offset])
        if self.chunk_type(quality) == "imageset":
            media.write_compressed_imageset_chunk(path, decoded, self.task["image_quality"])
        else:
            self._write_video_chunk(path, decoded, quality)

    def _write_video_chunk(self, path: Path, frames: Any, quality: str) -> None:
        try:
            if quality == "original":
                media.write_video_chunk(path, frames, 100, compressed=False)
            else:
                media.write_video_chunk(path, frames, self.task["image_quality"], compressed=True)
        except media.MediaError as e:
            raise ApiError(400, [str(e)]) from e

    def frame(self, job: dict[str, Any], frame: int, quality: str) -> Response:
        if not self.is_video:
            return self._image_frame(frame, quality)
        index, offset = divmod(frame - job["start_frame"], self.chunk_size)
        chunk = self._segment_chunk_path(job, index, quality)
        if chunk.suffix == ".zip":
            return Response(_read_chunk(chunk)[offset], status=200, content_type="image/jpeg")
        # A frame is decoded from its chunk; decoding once stores all the chunk's frames.
        frames_dir = self.directory / "frames" / f"{chunk.stem}"
        cached = frames_dir / f"{offset:06d}.png"
        if not cached.exists():
            for position, decoded in enumerate(media.read_video_chunk(chunk)):
                image = decoded.to_image()
                media.write_atomically(
                    frames_dir / f"{position:06d}.png",
                    lambda temporary, image=image: image.save(
                        temporary, format="PNG", compress_level=1
                    ),
                )
        return Response(cached.read_bytes(), status=200, content_type="image/png")

    def _image_frame(self, frame: int, quality: str) -> Response:
        path = self._media_path(frame)
        if quality == "original":
            return Response(path.read_bytes(), status=200, content_type=media.mime_type(path))
        cached = self.directory / "compressed" / f"{frame:06d}.jpg"
        if not cached.exists():
            data = media.encode_jpeg(path, self.task["image_quality"])
            media.write_atomically(cached, lambda temporary: temporary.write_bytes(data))
        return Response(cached.read_bytes(), status=200, content_type="image/jpeg")

    def preview_image(self, job: dict[str, Any]) -> PIL.Image.Image:
        """The image of a job's preview: its first frame, compressed (as CVAT's)."""
        frame = job["start_frame"]
        if not self.is_video:
            return PIL.Image.open(self._media_path(frame))
        data = self.frame(job, frame, "compressed").get_data()
        return PIL.Image.open(io.BytesIO(data))


def _read_chunk(path: Path) -> list[Any]:
    """A video task's chunk's frames: ``av.VideoFrame`` objects, or JPEGs (imageset)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return [archive.read(info) for info in archive.infolist()]
    return media.read_video_chunk(path)


def _frame_step(task: dict[str, Any]) -> int:
    match = re.fullmatch(r"step=(\d+)", task["frame_filter"] or "")
    return int(match.group(1)) if match else 1


def _preview(task_media: _TaskMedia, job: dict[str, Any]) -> Response:
    with task_media.preview_image(job) as image:
        image = image.convert("RGB")
        image.thumbnail((256, 256))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
    return Response(buffer.getvalue(), status=200, content_type="image/jpeg")


ROUTES = [
    Route("GET", "/api/tasks/" + ID.format("task_id") + "/data", task_data, scope="view:data"),
    Route(
        "GET",
        "/api/tasks/" + ID.format("task_id") + "/data/meta",
        task_data_meta,
        scope="view:metadata",
    ),
    Route(
        "PATCH",
        "/api/tasks/" + ID.format("task_id") + "/data/meta",
        update_task_data_meta,
        scope="update:metadata",
    ),
    Route("GET", "/api/tasks/" + ID.format("task_id") + "/preview", task_preview, scope="view"),
    Route("GET", "/api/jobs/" + ID.format("job_id") + "/data", job_data, scope="view:data"),
    Route(
        "GET",
        "/api/jobs/" + ID.format("job_id") + "/data/meta",
        job_data_meta,
        scope="view:metadata",
    ),
]
