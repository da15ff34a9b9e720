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

Whatever goes wrong while a file is read (an empty or damaged file, one that is not what its
extension says, an image too large to decode safely, a video that fails or ends before the
frames it states) is one :class:`ImageInputError` that names the file, which a run either
stops at or, with ``on_error="skip"``, records as :class:`Skipped` and goes on from. Frames
after a video that broke keep the numbers they would have had.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import PIL.Image
import PIL.ImageOps

from ..errors import ImageInputError
from ..frames import Frame, FrameSelection
from ..pipeline.summary import Skipped

if TYPE_CHECKING:
    from ..pipeline.options import RunOptions

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ImageInputError",
    "LocalFrames",
    "MediaFile",
    "Skipped",
    "find_media",
    "open_image",
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


def open_image(path: Path) -> PIL.Image.Image:
    """An image file as RGB, turned as its EXIF says; ``ImageInputError`` if unreadable."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with PIL.Image.open(path) as raw:
                image = PIL.ImageOps.exif_transpose(raw)
                image = image.convert("RGB") if image.mode != "RGB" else image.copy()
    except PIL.Image.DecompressionBombError as ex:
        raise ImageInputError(f"the image {str(path)!r} is too large to read safely: {ex}") from ex
    except PIL.UnidentifiedImageError as ex:
        why = "the file is empty" if _is_empty(path) else "it is not in an image format PIL reads"
        raise ImageInputError(f"cannot read the image {str(path)!r}: {why}") from ex
    except Exception as ex:  # decoders raise many types on malformed data
        raise ImageInputError(f"cannot read the image {str(path)!r}: {_why(ex)}") from ex
    # What PIL warns about a file (corrupt EXIF data; more pixels than PIL deems safe, which it
    # reads up to twice its limit) is said in the log, with the file's name.
    for warning in caught:
        if issubclass(warning.category, PIL.Image.DecompressionBombWarning):
            logger.warning(
                "%s is a very large image; it was read anyway (%s)", path, warning.message
            )
        elif not issubclass(warning.category, DeprecationWarning | PendingDeprecationWarning):
            logger.warning("%s: %s", path, warning.message)
    return image


def _why(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


class _Video:
    """An open video file: its frames, undecoded to images (only selected ones become images)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._av = _import_av(path)
        try:
            self._container = self._av.open(str(path))
        except Exception as ex:
            raise ImageInputError(f"cannot read the video {str(path)!r}: {_why(ex)}") from ex
        if not self._container.streams.video:
            self._container.close()
            raise ImageInputError(f"cannot read the video {str(path)!r}: it has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"

    @property
    def length(self) -> int:
        """The number of frames the file announces (0 when it does not say)."""
        return self._stream.frames or 0

    def frames(self) -> Iterator[Any]:
        decoded = self._container.decode(self._stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                return
            except Exception as ex:
                raise ImageInputError(
                    f"cannot decode the video {str(self.path)!r}: {_why(ex)}"
                ) from ex
            yield frame

    def image(self, frame: Any) -> PIL.Image.Image:
        try:
            return frame.to_image()
        except Exception as ex:
            raise ImageInputError(
                f"cannot decode the video {str(self.path)!r}: {_why(ex)}"
            ) from ex

    def close(self) -> None:
        self._container.close()


def _video_length(path: Path) -> int | None:
    try:
        video = _Video(path)
    except ImageInputError:
        return None
    try:
        return video.length or None
    finally:
        video.close()


OnUnreadable = Callable[[Skipped], None]
"""Called with each frame (or file) that cannot be read, when a run goes on without it."""


@attrs.define
class LocalFrames:
    """The frames of some images and videos, optionally only a selection of them: the
    pipeline's source for runs over files."""

    target = "images"
    target_id = None
    task_id = None

    media: Sequence[MediaFile] = attrs.field(converter=tuple)
    selection: FrameSelection | None = None
    frames_read: int = attrs.field(default=0, init=False)
    """How many frames of the inputs (selected or not) :meth:`iter_frames` has gone past."""

    @classmethod
    def find(
        cls, paths: Sequence[str | os.PathLike[str]], selection: FrameSelection | None = None
    ) -> LocalFrames:
        return cls(find_media(paths), selection)

    def count(self) -> int | None:
        """How many frames the inputs have, if the videos say how long they are."""
        total = 0
        for item in self.media:
            length = _video_length(item.path) if item.is_video else 1
            if length is None:
                return None
            total += length
        return total

    def estimated_count(self) -> int | None:
        """How many frames will be read, if the videos say how long they are."""
        total = self.count()
        if total is None or self.selection is None:
            return total
        return sum(1 for index in range(total) if index in self.selection)

    def frame_count(self) -> int | None:
        return self.estimated_count()

    def read(self, options: RunOptions, on_unreadable: OnUnreadable | None) -> Iterator[Frame]:
        return self.iter_frames(on_unreadable)

    def finished_reading(self, frames: int) -> None:
        """Raise :class:`~cvat_aa.frames.EmptySelectionError` when the selection matched no
        frame: videos that do not say how long they are could not tell it before."""
        if self.selection is not None and not frames:
            raise self.selection.no_frame_error("the inputs", 0, max(self.frames_read - 1, 0))

    def check_selection(self, total: int | None = None) -> None:
        """Raise :class:`~cvat_aa.frames.EmptySelectionError` when the selection
        matches no frame of the inputs (``total`` frames; counted when not given). Nothing
        is said when a video does not tell its length."""
        if self.selection is None:
            return
        total = self.count() if total is None else total
        if total is not None and self.selection.first >= total:
            raise self.selection.no_frame_error("the inputs", 0, max(total - 1, 0))

    def _selected(self, index: int) -> bool:
        return self.selection is None or index in self.selection

    def iter_frames(self, on_unreadable: OnUnreadable | None = None) -> Iterator[Frame]:
        """Yield the selected frames in order, each decoded when it is reached.

        A file that cannot be read raises :class:`ImageInputError`; with ``on_unreadable``,
        it is passed there instead (a video that breaks after some frames: once, with the
        first frame not read) and the frames of the next files keep their numbers.
        """
        self.frames_read = 0
        index = 0
        for item in self.media:
            if self.selection is not None and index > self.selection.last:
                return  # nothing more is selected
            if not item.is_video:
                if self._selected(index):
                    try:
                        image = open_image(item.path)
                    except ImageInputError as ex:
                        if on_unreadable is None:
                            raise
                        on_unreadable(Skipped(index, item.name, str(ex)))
                    else:
                        yield Frame(index, item.name, image)
                index += 1
                self.frames_read = index
                continue
            index = yield from self._video_frames(item, index, on_unreadable)
            self.frames_read = index

    def _video_frames(
        self, item: MediaFile, start: int, on_unreadable: OnUnreadable | None
    ) -> Generator[Frame, None, int]:
        """Yield a video's selected frames; return the number of the frame after its last."""
        position, length = 0, 0
        try:
            video = _Video(item.path)
            try:
                length = video.length
                for video_frame in video.frames():
                    index = start + position
                    if self.selection is not None and index > self.selection.last:
                        return start + max(position, length)
                    if self._selected(index):
                        yield Frame(index, item.frame_name(position), video.image(video_frame))
                    position += 1
                    self.frames_read = start + position
            finally:
                video.close()
            if position < length:
                # FFmpeg ends a damaged or cut-short stream quietly.
                raise ImageInputError(
                    f"the video {str(item.path)!r} ended after {position} of the {length} frames"
                    " it says it has; it may be cut short or damaged"
                )
        except ImageInputError as ex:
            if on_unreadable is None:
                raise
            if position:
                on_unreadable(Skipped(start + position, item.frame_name(position), str(ex)))
            else:
                on_unreadable(Skipped(None, str(item.path), str(ex)))
        # The next files' frames are numbered after all the frames the video says it has, so
        # a video that broke leaves their numbers as they would be if it had not.
        return start + max(position, length)
