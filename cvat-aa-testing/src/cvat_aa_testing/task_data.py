"""Creating tasks and projects and attaching their data: labels, frames, chunks' layout, jobs.

Both the HTTP API (``POST /api/tasks``, the upload protocol) and the server's Python helpers
(:meth:`TestServer.create_task`) go through these functions, so a task looks the same however
it was made.
"""

from __future__ import annotations

import random
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from . import data_sources, media
from .label_colors import label_color
from .storage import Transaction
from .validation import ValidationError

SORTING_METHODS = ("lexicographical", "natural", "predefined", "random")


@attrs.frozen
class DataParams:
    """The parameters of Upload-Finish (CVAT's DataRequest) that the server honours."""

    image_quality: int = 70
    chunk_size: int | None = None
    sorting_method: str = "lexicographical"
    start_frame: int = 0
    stop_frame: int | None = None
    frame_step: int = 1
    use_zip_chunks: bool = False
    upload_file_order: tuple[str, ...] = ()
    #: Files on the server's share and URLs (:mod:`data_sources`), besides uploaded files.
    server_files: tuple[str, ...] = ()
    server_files_exclude: tuple[str, ...] = ()
    remote_files: tuple[str, ...] = ()
    copy_data: bool = False

    @property
    def storage(self) -> str:
        """Where CVAT reads the task's media from: the share, unless it copied the files."""
        return "share" if self.server_files and not self.copy_data else "local"


def parse_data_params(body: dict[str, Any]) -> DataParams:
    """Checks Upload-Finish parameters; unknown ones (use_cache...) are accepted."""
    errors: dict[str, list[str]] = {}

    def integer(key: str, default: int | None, minimum: int, maximum: int | None = None) -> Any:
        value = body.get(key, default)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            bounds = (
                f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            )
            errors[key] = [f"Expected an integer {bounds}, got {value!r}."]
            return default
        return value

    image_quality = integer("image_quality", 70, 0, 100)
    chunk_size = integer("chunk_size", None, 1)
    start_frame = integer("start_frame", 0, 0)
    stop_frame = integer("stop_frame", None, 0)
    frame_step = 1
    frame_filter = body.get("frame_filter") or ""
    if frame_filter:
        match = re.fullmatch(r"step\s*=\s*(\d+)", str(frame_filter))
        if match is None or int(match.group(1)) < 1:
            errors["frame_filter"] = [f"Expected 'step=N' with N >= 1, got {frame_filter!r}."]
        else:
            frame_step = int(match.group(1))
    sorting_method = body.get("sorting_method") or "lexicographical"
    if sorting_method not in SORTING_METHODS:
        errors["sorting_method"] = [
            f"{sorting_method!r} is not a valid choice, use one of {', '.join(SORTING_METHODS)}."
        ]
    use_zip_chunks = body.get("use_zip_chunks", False)
    if isinstance(use_zip_chunks, str):
        use_zip_chunks = use_zip_chunks.lower() in ("true", "1")
    upload_file_order = body.get("upload_file_order") or []
    if not isinstance(upload_file_order, list) or not all(
        isinstance(name, str) for name in upload_file_order
    ):
        errors["upload_file_order"] = ["Expected a list of file names."]
        upload_file_order = []
    server_files, server_files_exclude, remote_files = data_sources.parse_sources(body, errors)
    copy_data = body.get("copy_data", False)
    if isinstance(copy_data, str):
        copy_data = copy_data.lower() in ("true", "1")
    for unsupported in ("cloud_storage_id", "job_file_mapping"):
        if body.get(unsupported):
            errors[unsupported] = [
                "The test server takes uploaded files, server_files and remote_files only."
            ]
    if errors:
        raise ValidationError(errors)
    return DataParams(
        image_quality=image_quality,
        chunk_size=chunk_size,
        sorting_method=sorting_method,
        start_frame=start_frame,
        stop_frame=stop_frame,
        frame_step=frame_step,
        use_zip_chunks=bool(use_zip_chunks),
        upload_file_order=tuple(upload_file_order),
        server_files=tuple(server_files),
        server_files_exclude=tuple(server_files_exclude),
        remote_files=tuple(remote_files),
        copy_data=bool(copy_data),
    )


def create_labels(
    tx: Transaction,
    specs: Sequence[dict[str, Any]],
    *,
    task_id: int | None = None,
    project_id: int | None = None,
) -> None:
    """Stores the labels of a new task or project, normalized by ``parse_label_specs``.

    A label without a colour gets CVAT's (:func:`label_colors.label_color`), one that differs
    from the labels listed before it at its level: top-level labels, or one skeleton's points.
    """
    top_colors: list[str] = []
    for spec in specs:
        color = spec["color"] or label_color(spec["name"], top_colors)
        top_colors.append(color)
        label_id = _store_label(tx, spec, color, task_id, project_id, None)
        sub_colors: list[str] = []
        for sub in spec["sublabels"]:
            sub_color = sub["color"] or label_color(sub["name"], sub_colors)
            sub_colors.append(sub_color)
            _store_label(tx, sub, sub_color, task_id, project_id, label_id)
        _name_points_by_id(tx, label_id, spec["svg"])


def add_labels(
    tx: Transaction,
    specs: Sequence[dict[str, Any]],
    *,
    task_id: int | None = None,
    project_id: int | None = None,
) -> None:
    """Stores labels added to an existing task or project (a PATCH with ``labels``).

    Here CVAT makes each new colour differ from every label the task or project has by then,
    sublabels included, and colours a new skeleton's points before the skeleton itself.
    """
    existing = (
        tx.labels(task_id=task_id) if task_id is not None else tx.labels(project_id=project_id)
    )
    colors = [label["color"] for top in existing for label in [top, *top["sublabels"]]]
    for spec in specs:
        sub_colors = []
        for sub in spec["sublabels"]:
            sub_colors.append(sub["color"] or label_color(sub["name"], colors))
            colors.append(sub_colors[-1])
        color = spec["color"] or label_color(spec["name"], colors)
        colors.append(color)
        label_id = _store_label(tx, spec, color, task_id, project_id, None)
        for sub, sub_color in zip(spec["sublabels"], sub_colors):
            _store_label(tx, sub, sub_color, task_id, project_id, label_id)
        _name_points_by_id(tx, label_id, spec["svg"])


def _store_label(
    tx: Transaction,
    spec: dict[str, Any],
    color: str,
    task_id: int | None,
    project_id: int | None,
    parent_id: int | None,
) -> int:
    label_id = tx.create_label(
        name=spec["name"],
        color=color,
        type=spec["type"],
        svg=spec["svg"],
        task_id=task_id,
        project_id=project_id,
        parent_id=parent_id,
    )
    _create_attributes(tx, label_id, spec["attributes"])
    return label_id


def _name_points_by_id(tx: Transaction, label_id: int, svg: str) -> None:
    """CVAT's rewrite of a new skeleton's svg: each point named by its sublabel's new id
    (``data-label-id``) instead of by its name (``data-label-name``)."""
    for sub in tx.labels(parent_id=label_id):
        name, sublabel_id = sub["name"], sub["id"]
        svg = svg.replace(f'data-label-name="{name}"', f'data-label-id="{sublabel_id}"')
    if svg:
        tx.set_label_svg(label_id, svg)


def _create_attributes(tx: Transaction, label_id: int, specs: Sequence[dict[str, Any]]) -> None:
    for attr in specs:
        tx.create_attribute(
            label_id,
            name=attr["name"],
            mutable=attr["mutable"],
            input_type=attr["input_type"],
            default_value=attr["default_value"],
            values=attr["values"],
        )


def task_media_dir(media_root: Path, task_id: int) -> Path:
    return media_root / "tasks" / str(task_id)


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def sort_images(images: list[tuple[str, Path]], params: DataParams) -> list[tuple[str, Path]]:
    """(name, path) pairs in the order of the task's sorting method."""
    method = params.sorting_method
    if method == "lexicographical":
        return sorted(images, key=lambda item: item[0])
    if method == "natural":
        return sorted(images, key=lambda item: _natural_key(item[0]))
    if method == "random":
        shuffled = list(images)
        random.shuffle(shuffled)
        return shuffled
    if params.upload_file_order:
        # The SDK uploads large files last and sends the caller's order separately.
        position = {name: i for i, name in enumerate(params.upload_file_order)}
        missing = [name for name, _ in images if Path(name).name not in position]
        if missing:
            raise media.MediaError(
                f"upload_file_order does not list the uploaded files {', '.join(missing)}."
            )
        return sorted(images, key=lambda item: position[Path(item[0]).name])
    return list(images)


def _select_frames(count: int, params: DataParams) -> range:
    stop = count - 1 if params.stop_frame is None else min(params.stop_frame, count - 1)
    if params.start_frame > stop:
        raise media.MediaError(
            f"start_frame {params.start_frame} is past the last frame {stop}; "
            "choose a start_frame within the media."
        )
    return range(params.start_frame, stop + 1, params.frame_step)


def attach_data(
    tx: Transaction,
    media_root: Path,
    task_id: int,
    files: Sequence[tuple[str, Path]],
    params: DataParams,
) -> None:
    """Turns uploaded files (name, path), in upload order, into the task's data.

    Files are moved into the task's media directory. Raises MediaError for media that CVAT
    would refuse too; the caller then rolls the transaction back.
    """
    task = tx.task(task_id)
    if task["media_type"] is not None:
        raise media.MediaError("The task already has data; CVAT does not add data to a task twice.")
    if not files:
        raise media.MediaError("No files were uploaded; upload images, a ZIP of images or a video.")
    task_dir = task_media_dir(media_root, task_id)
    original_dir = task_dir / "original"
    original_dir.mkdir(parents=True, exist_ok=True)

    images: list[tuple[str, Path]] = []
    videos: list[tuple[str, Path]] = []
    for name, path in files:
        kind = media.media_kind(name)
        if kind == "image":
            images.append((name, path))
        elif kind == "video":
            videos.append((name, path))
        elif kind == "archive":
            unpacked = task_dir / "unpacked" / f"{len(images):06d}"
            unpacked.mkdir(parents=True, exist_ok=True)
            images.extend(media.extract_archive(path, name, unpacked))
        else:
            raise media.MediaError(
                f"The file {name!r} is neither an image, a ZIP of images nor a video."
            )
    if videos and (images or len(videos) > 1):
        raise media.MediaError("A task takes either images or exactly one video, not both.")

    if videos:
        frames, media_type = _attach_video(videos[0], original_dir, params), "video"
    else:
        frames, media_type = _attach_images(images, original_dir, params), "image"

    for frame in frames:
        frame["path"] = str(Path(frame["path"]).relative_to(task_dir))
    tx.add_frames(task_id, frames)
    size = len(frames)
    if media_type == "video":
        original = "video"
        compressed = "imageset" if params.use_zip_chunks else "video"
    else:
        original = compressed = "imageset"
    chunk_size = params.chunk_size or media.default_chunk_size(
        compressed, frames[0]["width"], frames[0]["height"]
    )
    stop_frame = params.start_frame + (size - 1) * params.frame_step
    tx.update_task(
        task_id,
        {
            "media_type": media_type,
            "size": size,
            "chunk_size": chunk_size,
            "image_quality": params.image_quality,
            "original_chunk_type": original,
            "compressed_chunk_type": compressed,
            "start_frame": params.start_frame,
            "stop_frame": stop_frame,
            "frame_filter": f"step={params.frame_step}" if params.frame_step > 1 else "",
            "sorting_method": params.sorting_method,
            "storage": params.storage,
            "chunks_updated_date": tx.now(),
            "upload_open": 0,
        },
    )
    _create_jobs(tx, tx.task(task_id))
    tx.clear_uploads(task_id)
    tx.touch_task(task_id)
    shutil.rmtree(task_dir / "uploads", ignore_errors=True)
    shutil.rmtree(task_dir / "unpacked", ignore_errors=True)


def _attach_images(
    images: list[tuple[str, Path]], original_dir: Path, params: DataParams
) -> list[dict[str, Any]]:
    ordered = sort_images(images, params)
    selected = _select_frames(len(ordered), params)
    frames = []
    for frame, index in enumerate(selected):
        name, source = ordered[index]
        width, height = media.probe_image(source, name)
        target = original_dir / f"{frame:06d}{Path(name).suffix.lower()}"
        shutil.copyfile(source, target)
        frames.append(
            {"frame": frame, "name": name, "width": width, "height": height, "path": target}
        )
    return frames


def _attach_video(
    video: tuple[str, Path], original_dir: Path, params: DataParams
) -> list[dict[str, Any]]:
    """Keeps the video as uploaded: its frames are decoded from it into chunks on demand."""
    name, path = video
    target = original_dir / f"video{Path(name).suffix.lower()}"
    shutil.copyfile(path, target)
    count, width, height = media.probe_video(target, name)
    stop = count - 1 if params.stop_frame is None else min(params.stop_frame, count - 1)
    selected = range(params.start_frame, stop + 1, params.frame_step)
    if not selected:
        raise media.MediaError(f"The video {name!r} has no frames in the requested range.")
    return [
        {"frame": frame, "name": name, "width": width, "height": height, "path": target}
        for frame in range(len(selected))
    ]


def _create_jobs(tx: Transaction, task: dict[str, Any]) -> None:
    """Splits the task into jobs by segment size and overlap, as CVAT does."""
    size = task["size"]
    segment_size = min(task["segment_size"] or size, size)
    # A video in one segment has no overlap on CVAT 2.73 (seen on a real server).
    default_overlap = 5 if task["media_type"] == "video" and segment_size < size else 0
    overlap = task["overlap"] if task["overlap"] is not None else default_overlap
    overlap = min(overlap, segment_size // 2)
    step = max(segment_size - overlap, 1)
    for start in range(0, size, step):
        stop = min(start + segment_size - 1, size - 1)
        tx.create_job(task["id"], start, stop)
        if stop == size - 1:
            break
    tx.update_task(task["id"], {"segment_size": segment_size, "overlap": overlap})
