"""Reading a task's or a job's data: meta (and deleted frames), frames, chunks, previews.

Compressed frames and chunks are built on first use and cached in the task's media
directory (see :mod:`cvat_aa_testing.media`); a job's chunks are numbered from its first
frame, a task's from frame 0, as in CVAT.
"""

from __future__ import annotations

import io
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
    return _serve_data(ctx, request, task, frames, 0, task["size"] - 1, job_relative_chunks=False)


def task_preview(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    with ctx.storage.read() as tx:
        task = ctx.task(tx, task_id)
        frame = tx.frame(task["id"], 0)
    if frame is None:
        raise ApiError(404, {"detail": "The task has no data."})
    return _preview(ctx, task, frame)


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
    return _serve_data(
        ctx, request, task, frames, job["start_frame"], job["stop_frame"], job_relative_chunks=True
    )


def _serve_data(
    ctx: ServerContext,
    request: Request,
    task: dict[str, Any],
    frames: list[dict[str, Any]],
    first: int,
    last: int,
    *,
    job_relative_chunks: bool,
) -> Response:
    kind = request.args.get("type", "")
    quality = request.args.get("quality") or "compressed"
    if quality not in ("compressed", "original"):
        raise ApiError(
            400,
            {"quality": [f"{quality!r} is not a valid choice, use compressed or original."]},
        )
    number = int_param(request, "number")
    if task["media_type"] is None:
        raise ApiError(400, ["The task has no data."])
    if kind == "preview":
        return _preview(ctx, task, frames[first])
    if number is None:
        raise ApiError(400, {"number": ["This parameter is required."]})
    if kind == "frame":
        if not first <= number <= last:
            raise ApiError(
                400, [f"The frame number {number} is outside the frames {first}-{last}."]
            )
        return _frame(ctx, task, frames[number], quality)
    if kind == "chunk":
        chunk_size = task["chunk_size"]
        base = first if job_relative_chunks else 0
        start = base + number * chunk_size
        if number < 0 or start > last:
            raise ApiError(400, [f"The chunk number {number} is outside the data."])
        chunk_frames = frames[start : min(start + chunk_size - 1, last) + 1]
        return _chunk(ctx, task, chunk_frames, quality, f"{start}-{start + len(chunk_frames) - 1}")
    raise ApiError(400, {"type": [f"{kind!r} is not a valid choice, use chunk, frame or preview."]})


def _frame_path(ctx: ServerContext, task: dict[str, Any], frame: dict[str, Any]) -> Path:
    return task_media_dir(ctx.media_root, task["id"]) / frame["path"]


def _frame(
    ctx: ServerContext, task: dict[str, Any], frame: dict[str, Any], quality: str
) -> Response:
    path = _frame_path(ctx, task, frame)
    if quality == "original":
        return Response(path.read_bytes(), status=200, content_type=media.mime_type(path))
    cached = task_media_dir(ctx.media_root, task["id"]) / "compressed" / f"{frame['frame']:06d}.jpg"
    if not cached.exists():
        data = media.encode_jpeg(path, task["image_quality"])
        media.write_atomically(cached, lambda temporary: temporary.write_bytes(data))
    return Response(cached.read_bytes(), status=200, content_type="image/jpeg")


def _preview(ctx: ServerContext, task: dict[str, Any], frame: dict[str, Any]) -> Response:
    with PIL.Image.open(_frame_path(ctx, task, frame)) as image:
        image = image.convert("RGB")
        image.thumbnail((256, 256))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
    return Response(buffer.getvalue(), status=200, content_type="image/jpeg")


def _chunk(
    ctx: ServerContext, task: dict[str, Any], frames: list[dict[str, Any]], quality: str, span: str
) -> Response:
    chunk_type = (
        task["original_chunk_type"] if quality == "original" else task["compressed_chunk_type"]
    )
    extension = "zip" if chunk_type == "imageset" else "mp4"
    cached = task_media_dir(ctx.media_root, task["id"]) / "chunks" / f"{quality}_{span}.{extension}"
    if not cached.exists():
        paths = [_frame_path(ctx, task, frame) for frame in frames]
        if chunk_type == "imageset":
            media.write_imageset_chunk(
                cached, paths, None if quality == "original" else task["image_quality"]
            )
        else:
            media.write_video_chunk(
                cached, paths, 100 if quality == "original" else task["image_quality"]
            )
    content_type = "application/zip" if extension == "zip" else "video/mp4"
    return Response(cached.read_bytes(), status=200, content_type=content_type)


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
