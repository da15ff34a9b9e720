"""Media handling: probing uploaded images, decoding videos, building frames and chunks.

What the server hands out, by task kind:

* image tasks: original frames are the uploaded files, byte for byte; compressed frames are
  JPEGs at the task's ``image_quality``. Original and compressed chunks are both ZIP
  "imagesets": chunk ``i`` holds frames ``i * chunk_size ...`` as members ``000000.<ext>``,
  ``000001.<ext>``..., in frame order, stored without compression.
* video tasks: the uploaded video is kept as it is, and frames are what CVAT 2.73 serves:
  each job's chunks are built by decoding the video and encoding the chunk's frames exactly
  as CVAT's ``Mpeg4ChunkWriter`` (original chunks) and ``Mpeg4CompressedChunkWriter``
  (compressed ones) do: H.264 at 25 fps in MP4, with libopenh264 when PyAV has it, else
  libx264 with CVAT's fallback options (:func:`video_chunk_encoding`). A frame is decoded from
  its chunk and served as PNG, so with libopenh264 (PyAV 16, as in CVAT's image) even
  original frames differ slightly from an exact decode of the upload, bit for bit as on
  CVAT; with libx264 (PyAV 17+ wheels) original frames are the exact decode. The compressed
  chunk type is ``imageset`` (a ZIP of JPEGs, CVAT's ``ZipCompressedChunkWriter``) when the
  task was created with ``use_zip_chunks``.

Chunks and frames are built on first use and cached in the task's media directory
(:mod:`cvat_aa_testing.endpoints.data` decides which frames go into which chunk).
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
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


def probe_video(path: Path, name: str) -> tuple[int, int, int]:
    """The frame count, width and height of a video, found by decoding it (as CVAT does)."""
    av = _import_av()
    count, size = 0, None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"The file {name!r} has no video stream.")
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                size = size or (frame.width, frame.height)
                count += 1
    except av.error.FFmpegError as e:
        raise MediaError(f"The file {name!r} is not a video that can be decoded: {e}") from e
    if size is None:
        raise MediaError(f"The file {name!r} has no video frames.")
    return count, *size


def read_video_frames(path: Path, indexes: Sequence[int]) -> Iterator[Any]:
    """The decoded frames (``av.VideoFrame``) of a video at ``indexes``, ascending."""
    av = _import_av()
    wanted = iter(indexes)
    next_index = next(wanted, None)
    if next_index is None:
        return
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        # CVAT reads without threads; frames are the same either way, only slower to start.
        stream.thread_type = "NONE"
        for index, frame in enumerate(container.decode(stream)):
            if index == next_index:
                yield frame
                next_index = next(wanted, None)
                if next_index is None:
                    return


def read_video_chunk(path: Path) -> list[Any]:
    """Every frame (``av.VideoFrame``) of a video chunk, in order."""
    av = _import_av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        return list(container.decode(stream))


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


@attrs.frozen
class VideoChunkEncoding:
    """How CVAT's ``Mpeg4ChunkWriter`` (or ``Mpeg4CompressedChunkWriter``) encodes a chunk.

    ``qp`` is CVAT's translation of the image quality (1-100) to H.264's 51-0 scale; openh264
    uses it as the fixed quantizer, libx264 as its constant rate factor.
    """

    codec: str
    qp: int
    options: dict[str, str]
    profile: str | None = None


def video_chunk_encoding(quality: int, *, compressed: bool) -> VideoChunkEncoding:
    """CVAT's encoder choice for video chunks: libopenh264 when PyAV has it, else libx264.

    Original chunks are written at quality 100 (QP 0: near-lossless with openh264, lossless
    with libx264), compressed ones at the task's ``image_quality``.
    """
    av = _import_av()
    qp = round(51 * (100 - quality) / 99)
    try:
        av.codec.Codec("libopenh264", "w")
    except av.codec.codec.UnknownCodecError:
        if compressed:
            options = {"coder": "0", "crf": str(qp), "wpredp": "0", "flags": "-loop"}
            return VideoChunkEncoding("libx264", qp, options, profile="baseline")
        return VideoChunkEncoding("libx264", qp, {"crf": str(qp), "preset": "ultrafast"})
    return VideoChunkEncoding(
        "libopenh264", qp, {"rc_mode": "buffer"}, profile="constrained_baseline"
    )


# openh264 refuses frames of more macroblocks than level 5.2 allows (CVAT issue 7425).
MAX_MACROBLOCKS_PER_FRAME = 36864


def write_video_chunk(
    target: Path, frames: Iterable[Any], quality: int, *, compressed: bool
) -> None:
    """An MP4 chunk of decoded frames (``av.VideoFrame``), written as CVAT's writers do.

    25 fps H.264 in yuv420p at even dimensions; compressed chunks of frames 1080 pixels high or
    more are halved until they are not.
    """
    av = _import_av()
    encoding = video_chunk_encoding(quality, compressed=compressed)

    def produce(temporary: Path) -> None:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = None
            for frame in frames:
                if stream is None:
                    stream = _add_video_stream(container, encoding, frame, compressed)
                # As CVAT does: let libav number the frames at the stream's rate.
                frame.pts = None
                frame.time_base = Fraction(0, 1)
                for packet in stream.encode(frame):
                    container.mux(packet)
            if stream is None:
                raise MediaError("A video chunk needs at least one frame.")
            for packet in stream.encode():
                container.mux(packet)

    write_atomically(target, produce)


def _add_video_stream(
    container: Any, encoding: VideoChunkEncoding, first_frame: Any, compressed: bool
) -> Any:
    width, height = first_frame.width, first_frame.height
    if compressed:
        factor = 1
        while height / factor >= 1080:
            factor *= 2
        width, height = width // factor, height // factor
    width, height = width + width % 2, height + height % 2
    if width * height > MAX_MACROBLOCKS_PER_FRAME << 8:
        raise MediaError(
            f"Video frames of {width}x{height} are too large for CVAT's video chunks; "
            "use a video of at most 4K resolution."
        )
    stream = container.add_stream(encoding.codec, rate=25)
    stream.pix_fmt = "yuv420p"
    stream.width = width
    stream.height = height
    if encoding.profile is not None:
        stream.profile = encoding.profile
    if encoding.codec == "libopenh264":
        stream.codec_context.qmin = encoding.qp
        stream.codec_context.qmax = encoding.qp
    stream.options = dict(encoding.options)
    return stream


def write_compressed_imageset_chunk(
    target: Path, images: Iterable[PIL.Image.Image | bytes], quality: int
) -> None:
    """CVAT's ``ZipCompressedChunkWriter``: members ``000000.jpeg``..., JPEGs at ``quality``.

    ``bytes`` are stored as they are (CVAT's task chunks reuse its jobs' JPEGs so).
    """

    def produce(temporary: Path) -> None:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED) as archive:
            for index, image in enumerate(images):
                if not isinstance(image, bytes):
                    buffer = io.BytesIO()
                    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
                    image = buffer.getvalue()
                archive.writestr(f"{index:06d}.jpeg", image)

    write_atomically(target, produce)
