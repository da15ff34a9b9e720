"""Media handling: probing uploaded images, decoding videos, building frames and chunks.

What the server hands out, by task kind:

* image tasks: original frames are the uploaded files, byte for byte; compressed frames are
  JPEGs at the task's ``image_quality``. Original and compressed chunks are both ZIP
  "imagesets": chunk ``i`` holds frames ``i * chunk_size ...`` as members ``000000.<ext>``,
  ``000001.<ext>``..., in frame order, stored without compression.
* video tasks: the video is decoded once (with PyAV) into lossless PNG frames. Original
  frames are those PNGs, compressed frames JPEGs. The original chunk type is ``video``: chunk
  ``i`` is an MPEG-4 video of that chunk's frames. The compressed chunk type is ``imageset``
  (a ZIP of JPEGs) when the task was created with ``use_zip_chunks``, else ``video`` as well.

Chunks and compressed frames are built on first use and cached in the task's media directory.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import PIL.Image

IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".webp",
        ".jfif",
        ".jpe",
        ".ppm",
        ".pgm",
    }
)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpeg", ".mpg", ".m4v", ".wmv", ".flv", ".3gp"}
)
ARCHIVE_EXTENSIONS = frozenset({".zip"})

MIME_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jfif": "image/jpeg",
    ".jpe": "image/jpeg",
    ".png": "image/png",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
    ".ppm": "image/x-portable-pixmap",
    ".pgm": "image/x-portable-graymap",
}


class MediaError(Exception):
    """Uploaded media the server cannot use; the message is shown to the client."""


def media_kind(name: str) -> str | None:
    """'image', 'video' or 'archive' by file extension, None for anything else."""
    extension = Path(name).suffix.lower()
    if extension in IMAGE_EXTENSIONS:
        return "image"
    if extension in VIDEO_EXTENSIONS:
        return "video"
    if extension in ARCHIVE_EXTENSIONS:
        return "archive"
    return None


def mime_type(path: str | Path) -> str:
    return MIME_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def default_chunk_size(compressed_chunk_type: str, width: int, height: int) -> int:
    """CVAT's chunk size for a task created without one.

    Video chunks hold 36 frames. Imageset chunks hold about 36 full-HD frames' worth of
    pixels, between 2 and 72 frames, judged by the size (``width`` x ``height``) of the task's
    first frame alone.
    """
    if compressed_chunk_type == "video":
        return 36
    area = max(1, width * height)
    return max(2, min(72, 36 * 1920 * 1080 // area))


def probe_image(path: Path, name: str) -> tuple[int, int]:
    """The width and height of an image file; MediaError if PIL cannot read it."""
    try:
        with PIL.Image.open(path) as image:
            image.verify()
        with PIL.Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as e:
        raise MediaError(f"The file {name!r} is not an image that can be read: {e}") from e


def extract_archive(path: Path, name: str, out_dir: Path) -> list[tuple[str, Path]]:
    """Extracts the images of a ZIP archive; returns (name inside the archive, path) pairs."""
    extracted = []
    try:
        with zipfile.ZipFile(path) as archive:
            for index, member in enumerate(archive.infolist()):
                if member.is_dir() or media_kind(member.filename) != "image":
                    continue
                target = out_dir / f"{index:06d}{Path(member.filename).suffix.lower()}"
                with archive.open(member) as source, open(target, "wb") as sink:
                    sink.write(source.read())
                extracted.append((member.filename, target))
    except zipfile.BadZipFile as e:
        raise MediaError(f"The file {name!r} is not a ZIP archive that can be read: {e}") from e
    if not extracted:
        raise MediaError(f"The archive {name!r} holds no images.")
    return extracted


def _import_av() -> Any:
    try:
        import av
    except ImportError as e:
        raise MediaError(
            "Video tasks need PyAV; install cvat-aa-testing with the 'video' extra "
            "(pip install 'cvat-aa-testing[video]')."
        ) from e
    return av


def decode_video(
    path: Path,
    name: str,
    out_dir: Path,
    select: Callable[[int], bool],
) -> list[tuple[Path, int, int]]:
    """Decodes every video frame for which ``select(index)`` holds into a PNG in ``out_dir``.

    Returns (path, width, height) for each kept frame, in order.
    """
    av = _import_av()
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"The file {name!r} has no video stream.")
            stream = container.streams.video[0]
            for index, frame in enumerate(container.decode(stream)):
                if not select(index):
                    continue
                image = frame.to_image()
                target = out_dir / f"{len(frames):06d}.png"
                image.save(target, compress_level=1)
                frames.append((target, image.width, image.height))
    except av.error.FFmpegError as e:
        raise MediaError(f"The file {name!r} is not a video that can be decoded: {e}") from e
    if not frames:
        raise MediaError(f"The video {name!r} has no frames in the requested range.")
    return frames


def encode_jpeg(path: Path, quality: int) -> bytes:
    with PIL.Image.open(path) as image:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=max(1, min(95, quality)))
        return buffer.getvalue()


def write_atomically(target: Path, produce: Callable[[Path], None]) -> None:
    """Runs ``produce(temporary_path)`` and moves the result to ``target`` in one step.

    Several request threads may build the same cached file at once; each writes its own
    temporary file and the last rename wins, so readers never see a partial file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        produce(Path(temporary))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_imageset_chunk(target: Path, frame_paths: Sequence[Path], quality: int | None) -> None:
    """A ZIP with one member per frame, in frame order: originals, or JPEGs at ``quality``."""

    def produce(temporary: Path) -> None:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
            for index, path in enumerate(frame_paths):
                if quality is None:
                    archive.write(path, f"{index:06d}{path.suffix.lower()}")
                else:
                    archive.writestr(f"{index:06d}.jpg", encode_jpeg(path, quality))

    write_atomically(target, produce)


def write_video_chunk(target: Path, frame_paths: Sequence[Path], quality: int) -> None:
    """An MPEG-4 video of the given frames; ``quality`` (1-100) scales the bit rate."""
    av = _import_av()

    def produce(temporary: Path) -> None:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = None
            for path in frame_paths:
                with PIL.Image.open(path) as image:
                    image = image.convert("RGB")
                    if stream is None:
                        stream = container.add_stream("mpeg4", rate=25)
                        # mpeg4 needs even dimensions
                        stream.width = image.width - image.width % 2 or 2
                        stream.height = image.height - image.height % 2 or 2
                        stream.pix_fmt = "yuv420p"
                        bits_per_pixel = 0.1 + 0.02 * max(1, min(100, quality))
                        stream.bit_rate = int(stream.width * stream.height * 25 * bits_per_pixel)
                    frame = av.VideoFrame.from_image(image)
                    frame = frame.reformat(width=stream.width, height=stream.height)
                    for packet in stream.encode(frame):
                        container.mux(packet)
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)

    write_atomically(target, produce)
