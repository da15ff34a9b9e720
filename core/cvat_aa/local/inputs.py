"""Finding the images and videos a local run reads, naming their frames, and decoding them.

What a path names:

* a **folder**: the images directly in it (not in subfolders), in name order;
* a **file**: that image, or that video if its extension is a video's (``.mp4``, ``.avi``...);
* a **glob** (``'photos/**/*.jpg'``, quoted so that the shell leaves it alone): the images and
  videos it matches, in name order; ``**`` matches subfolders.

Frames are numbered from 0 across all inputs, in the order the paths were given. Names are
the ones CVAT gives frames in a task made from the same files, so that CVAT matches the
exported annotations to them:

* an image is named by its path relative to the folder (or the glob's fixed leading folder)
  it was found in, or by its file name when it was given itself: ``cat.jpg``, ``2024/cat.jpg``;
* frame ``n`` of a video is ``<video file name>/frame_<n, 6 digits>``:
  ``clip.mp4/frame_000012``. CVAT names a video task's frames ``frame_000012`` and matches an
  imported frame by that last part.

Images are turned upright by their EXIF orientation, as CVAT does, and given to the function
as RGB. Frames are decoded one at a time, as the run needs them. Videos are decoded with PyAV
(the ``video`` extra: ``pip install 'cvat-aa[video]'``).
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import PIL.Image
import PIL.ImageOps

from ..driver.frames import Frame, FrameSelection

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ImageInputError",
    "LocalFrames",
    "MediaFile",
    "find_media",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".bmp", ".gif", ".jfif", ".jpe", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif",
     ".tiff", ".webp"}
)  # fmt: skip
VIDEO_EXTENSIONS = frozenset(
    {".3gp", ".avi", ".flv", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".ts", ".webm",
     ".wmv"}
)  # fmt: skip

_GLOB_MAGIC = re.compile(r"[*?\[]")
_VIDEO_HINT = "install PyAV with: pip install 'cvat-aa[video]'"


class ImageInputError(ValueError):
    """The images or videos to annotate cannot be found or read."""


@attrs.frozen
class MediaFile:
    """An image or video to read."""

    path: Path
    name: str
    """The image's frame name, or the prefix of the video's frame names."""
    is_video: bool

    def frame_name(self, position: int) -> str:
        """The name of the frame at ``position`` in this file (0 for an image)."""
        return f"{self.name}/frame_{position:06d}" if self.is_video else self.name


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def _glob_root(pattern: str) -> Path:
    """The leading folders of a glob pattern that hold no wildcard."""
    root = []
    for part in Path(pattern).parts[:-1]:
        if _GLOB_MAGIC.search(part):
            break
        root.append(part)
    return Path(*root) if root else Path()


def _relative_name(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _expand(text: str) -> list[MediaFile]:
    path = Path(text)
    if path.is_dir():
        found = [
            MediaFile(child, child.name, False)
            for child in sorted(path.iterdir(), key=lambda p: p.name)
            if child.is_file() and _kind(child) == "image"
        ]
        if not found:
            extensions = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
            raise ImageInputError(
                f"folder {text!r} has no images ({extensions}); videos in a folder must be"
                " named one by one or with a glob such as 'folder/*.mp4'"
            )
        return found
    if path.is_file():
        return [MediaFile(path, path.name, _kind(path) == "video")]
    if _GLOB_MAGIC.search(text):
        root = _glob_root(text)
        found = []
        for hit in sorted(glob.glob(text, recursive=True)):
            hit_path = Path(hit)
            kind = _kind(hit_path)
            if not hit_path.is_file() or kind is None:
                logger.debug("%s matches %r but is not an image or a video; skipped", hit, text)
                continue
            found.append(MediaFile(hit_path, _relative_name(hit_path, root), kind == "video"))
        if not found:
            raise ImageInputError(f"no images or videos match {text!r}")
        return found
    raise ImageInputError(f"there is no file or folder {text!r}")


def find_media(paths: Sequence[str | os.PathLike[str]]) -> list[MediaFile]:
    """The images and videos that ``paths`` name, in order (see the module's docstring).

    A file named twice is read once. Raises :class:`ImageInputError` for a path that names
    nothing, for two files that would get the same frame name, and for videos when PyAV is
    not installed.
    """
    if not paths:
        raise ImageInputError("give at least one image, video, folder or glob")
    media: list[MediaFile] = []
    seen_paths: set[Path] = set()
    by_name: dict[str, Path] = {}
    for text in paths:
        for item in _expand(os.fspath(text)):
            resolved = item.path.resolve()
            if resolved in seen_paths:
                continue
            seen_paths.add(resolved)
            if item.name in by_name:
                raise ImageInputError(
                    f"{str(by_name[item.name])!r} and {str(item.path)!r} would both be named"
                    f" {item.name!r}; give their common parent folder as a glob"
                    " (e.g. 'parent/**/*.jpg') so that names keep their folders"
                )
            by_name[item.name] = item.path
            media.append(item)
    if any(item.is_video for item in media):
        _import_av(next(item for item in media if item.is_video).path)
    return media


def _import_av(path: Path) -> Any:
    try:
        import av
    except ImportError:
        raise ImageInputError(
            f"reading the video {str(path)!r} needs PyAV; {_VIDEO_HINT}"
        ) from None
    return av


def _open_image(path: Path) -> PIL.Image.Image:
    try:
        with PIL.Image.open(path) as raw:
            image = PIL.ImageOps.exif_transpose(raw)
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except (OSError, SyntaxError, ValueError) as ex:
        raise ImageInputError(f"cannot read the image {str(path)!r}: {ex}") from ex


def _video_frames(path: Path) -> Iterator[Any]:
    """Yield the video's frames undecoded to images: only selected ones become images."""
    av = _import_av(path)
    try:
        container = av.open(str(path))
    except (OSError, av.FFmpegError) as ex:
        raise ImageInputError(f"cannot read the video {str(path)!r}: {ex}") from ex
    with container:
        if not container.streams.video:
            raise ImageInputError(f"{str(path)!r} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            yield from container.decode(stream)
        except av.FFmpegError as ex:
            raise ImageInputError(f"cannot decode the video {str(path)!r}: {ex}") from ex


def _video_length(path: Path) -> int | None:
    av = _import_av(path)
    try:
        with av.open(str(path)) as container:
            frames = container.streams.video[0].frames if container.streams.video else 0
    except (OSError, av.FFmpegError):
        return None
    return frames or None


@attrs.frozen
class LocalFrames:
    """The frames of some images and videos, optionally only a selection of them."""

    media: Sequence[MediaFile] = attrs.field(converter=tuple)
    selection: FrameSelection | None = None

    @classmethod
    def find(
        cls, paths: Sequence[str | os.PathLike[str]], selection: FrameSelection | None = None
    ) -> LocalFrames:
        return cls(find_media(paths), selection)

    def estimated_count(self) -> int | None:
        """How many frames will be read, if the videos say how long they are."""
        total = 0
        for item in self.media:
            length = _video_length(item.path) if item.is_video else 1
            if length is None:
                return None
            total += length
        if self.selection is None:
            return total
        return sum(1 for index in range(total) if index in self.selection)

    def iter_frames(self) -> Iterator[Frame]:
        """Yield the selected frames in order, each decoded when it is reached."""
        index = 0
        for item in self.media:
            if not item.is_video:
                if self.selection is None or index in self.selection:
                    yield Frame(index, item.name, _open_image(item.path))
                index += 1
                continue
            for position, video_frame in enumerate(_video_frames(item.path)):
                if self.selection is None or index in self.selection:
                    yield Frame(index, item.frame_name(position), video_frame.to_image())
                index += 1
