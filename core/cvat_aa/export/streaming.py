"""Writing an annotation file frame by frame, so that it appears whole or not at all.

A local run over a long video must not hold every frame's annotations until the end, so its
file is written while the frames come. Both formats have parts that are known only at the
end, though: a CVAT XML file states its number of frames before its images, and a COCO file
lists all images before all annotations. So a writer streams each part into its own
temporary file (an unnamed one beside the output where the system allows it, so that not even
a killed run leaves it behind), and :meth:`AnnotationWriter.close` assembles the parts into one
more temporary file beside the output and renames it over the output. A run that fails or is
interrupted calls :meth:`AnnotationWriter.discard` (the context manager does): the output is
left as it was, never half written.

Memory holds one frame at a time, whatever the number of frames.
"""

from __future__ import annotations

import abc
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from ..annotations import FrameAnnotations
from ..labels import LabelCatalog

__all__ = ["AnnotationWriter", "TracksWriter", "check_output_path"]

_COPY_BUFFER = 1 << 20


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Check that an annotation file can be written at ``path``; return it as a ``Path``.

    Raises ``ValueError`` saying what to change when ``path`` is a folder, or its folder does
    not exist or cannot be written to. Nothing is created.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(
            f"the output {os.fspath(path)!r} is a folder; give a file name, such as"
            f" {os.fspath(target / 'annotations.xml')!r}"
        )
    folder = target.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ValueError(
            f"the folder of the output, {os.fspath(folder)!r}, {what}; create it or write"
            " the output elsewhere"
        )
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as ex:
        raise ValueError(
            f"cannot write in {os.fspath(folder)!r}, the folder of the output"
            f" ({ex.strerror or ex}); write the output elsewhere"
        ) from None
    return target


class AnnotationWriter(abc.ABC):
    """Writes an annotation file frame by frame: :meth:`add` each frame, then :meth:`close`.

    ``destination`` is a path (written atomically: the file appears at :meth:`close`) or an
    open text stream (written at :meth:`close`). Used as a context manager, the writer
    closes when the block ends normally and discards everything when it raises.
    """

    def __init__(self, destination: str | os.PathLike[str] | IO[str]) -> None:
        self.destination = destination
        self._parts: list[IO[str]] = []
        self._done = False

    def _part(self) -> IO[str]:
        """A temporary text file for a part of the output, deleted when the writer is done."""
        folder = None
        if isinstance(self.destination, (str, os.PathLike)):
            folder = Path(self.destination).parent
        part = tempfile.TemporaryFile("w+", encoding="utf-8", dir=folder)
        self._parts.append(part)
        return part

    @staticmethod
    def _copy(part: IO[str], stream: IO[str]) -> None:
        part.flush()
        part.seek(0)
        shutil.copyfileobj(part, stream, _COPY_BUFFER)

    @abc.abstractmethod
    def add(self, frame: FrameAnnotations) -> None:
        """Write one frame with its annotations."""

    def add_track(self, track: Any) -> None:
        """Write a track (``models.LabeledTrackRequest``), after the frames it covers.

        Raises ``TypeError`` where the file's format has no place for tracks (open the
        writer with ``tracks=True``: see :func:`~cvat_aa.export.open_writer`).
        """
        raise TypeError(f"{type(self).__name__} writes no tracks; open the writer with tracks=True")

    @abc.abstractmethod
    def _assemble(self, stream: IO[str]) -> None:
        """Write the whole file into ``stream``, copying the parts."""

    def close(self) -> None:
        """Finish the file: assemble it and, for a path, move it into place."""
        if self._done:
            return
        try:
            if isinstance(self.destination, (str, os.PathLike)):
                _replace_atomically(Path(self.destination), self._assemble)
            else:
                self._assemble(self.destination)
        finally:
            self._release()

    def discard(self) -> None:
        """Drop what was written: a path is left as it was before the writer was made."""
        self._release()

    def _release(self) -> None:
        self._done = True
        for part in self._parts:
            part.close()
        self._parts.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


class TracksWriter(AnnotationWriter):
    """Writes an annotation file track by track: :meth:`add_track` each track, then
    :meth:`close`. Subclasses write a track (:meth:`_write_track`) and the whole file.

    Tracks (``models.LabeledTrackRequest``, their label ids those of ``labels``) are numbered
    in the order they are added. ``size`` is the number of frames of the media, and
    ``original_size`` its (width, height), if known when the writer is made; otherwise set
    them (or call :meth:`saw_frame`) before :meth:`close`.
    """

    def __init__(
        self,
        destination: str | os.PathLike[str] | IO[str],
        labels: LabelCatalog,
        *,
        size: int | None = None,
        original_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(destination)
        self.labels = labels
        self.size = size
        self.original_size = original_size
        self._tracks = self._part()
        self._count = 0
        self._last_frame = -1

    def saw_frame(self, index: int, width: int, height: int) -> None:
        """Note a frame of the media: its size, and how many frames there are at least."""
        if self.original_size is None:
            self.original_size = (width, height)
        self._last_frame = max(self._last_frame, index)

    def add(self, frame: FrameAnnotations) -> None:
        raise TypeError(f"{type(self).__name__} writes tracks: use add_track")

    def add_track(self, track: Any) -> None:
        """Write one track."""
        self._write_track(track, self._count)
        self._count += 1
        self._last_frame = max(self._last_frame, *(s.frame for s in track.shapes))

    @property
    def frames(self) -> int:
        """The number of frames the file says the media has."""
        return self.size if self.size is not None else self._last_frame + 1

    @abc.abstractmethod
    def _write_track(self, track: Any, number: int) -> None:
        """Write ``track``, the ``number``-th, to ``self._tracks``."""


def _replace_atomically(path: Path, write: Callable[[IO[str]], None]) -> None:
    """Write a file beside ``path`` with ``write``, then rename it to ``path``."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    # Created like any new file (0666 less the umask), unlike tempfile's private 0600 files.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "w", encoding="utf-8") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
