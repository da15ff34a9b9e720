"""Writing annotations in formats CVAT imports, and reading them back.

* ``cvat``: "CVAT for images 1.1" XML (:mod:`.cvat_xml`): every shape type, tags, attributes;
  for a run that makes tracks, "CVAT for video 1.1", the flavour that holds tracks;
* ``coco``: COCO 1.0 JSON (:mod:`.coco`): boxes, polygons, masks, and skeletons as keypoints;
  a track as a shape on every frame where CVAT shows it, with ``track_id`` and ``keyframe``
  attributes, as CVAT writes tracks in COCO.

The format is chosen by name, or else by the file's extension: ``.xml`` for ``cvat``,
``.json`` for ``coco``. :func:`open_writer` writes a file frame by frame, holding one frame in
memory at a time, and the file appears only when it is complete (see :mod:`.streaming`);
:func:`write_annotations` writes annotations held in memory the same way. Tracks come to a
writer when they end, after the frames they cover were written; which flavour of ``cvat`` a
file is must be known before its first frame, so a writer for a run that makes tracks is
opened with ``tracks=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..annotations import AnnotationSet
from ..labels import LabelCatalog
from .coco import CocoWriter, read_coco, write_coco
from .cvat_xml import (
    CvatVideoXmlWriter,
    CvatXmlWriter,
    is_cvat_video_xml,
    read_cvat_video_xml,
    read_cvat_xml,
    write_cvat_xml,
)
from .streaming import AnnotationWriter, check_output_path

__all__ = [
    "FORMATS",
    "AnnotationWriter",
    "CocoWriter",
    "CvatVideoXmlWriter",
    "CvatXmlWriter",
    "check_output",
    "format_for",
    "open_writer",
    "read_annotations",
    "read_coco",
    "read_cvat_xml",
    "write_annotations",
    "write_coco",
    "write_cvat_xml",
]

FORMATS = {"cvat": "CVAT for images 1.1", "coco": "COCO 1.0"}
"""Format names, with the names CVAT gives them in its import dialog."""

_EXTENSIONS = {".xml": "cvat", ".json": "coco"}


def format_for(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The format to use for ``path``: ``format`` if given, else the one its extension names.

    Raises ``ValueError`` for an unknown format, or an extension that names none.
    """
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ValueError(
            f"cannot tell the format from the name {os.fspath(path)!r}: name the file *.xml"
            " (CVAT for images) or *.json (COCO), or choose the format with --format cvat|coco"
        )
    return _EXTENSIONS[suffix]


def check_output(path: str | os.PathLike[str], format: str | None = None) -> str:
    """Check, before any work, that annotations can be written to ``path``; return the format.

    Raises ``ValueError`` saying what to change for an unknown format, a name that names
    none, a folder, or a folder that does not exist or cannot be written to.
    """
    check_output_path(path)
    return format_for(path, format)


def open_writer(
    path: str | os.PathLike[str],
    labels: LabelCatalog,
    *,
    format: str | None = None,
    task_name: str = "cvat-aa",
    tracks: bool = False,
) -> AnnotationWriter:
    """A writer that writes frames to ``path`` in ``format`` (or the one its extension names).

    ``task_name`` is used where the format names a task. ``tracks`` says that tracks will be
    added too (``add_track``): a ``cvat`` file is then "CVAT for video 1.1". The file appears
    when the writer is closed; use it as a context manager, so that a failure leaves no file
    behind.
    """
    if format_for(path, format) == "coco":
        return CocoWriter(path, labels)
    if tracks:
        return CvatVideoXmlWriter(path, labels, task_name=task_name)
    return CvatXmlWriter(path, labels, task_name=task_name)


def write_annotations(
    path: str | os.PathLike[str],
    annotations: AnnotationSet,
    *,
    format: str | None = None,
    task_name: str = "cvat-aa",
) -> str:
    """Write ``annotations`` to ``path`` in ``format`` (or the one its extension names).

    ``task_name`` is used where the format names a task; ``cvat`` is "CVAT for video 1.1"
    when the annotations have tracks. Returns the format written. The file is replaced only
    once it is complete.
    """
    chosen = format_for(path, format)
    if chosen == "cvat":
        write_cvat_xml(path, annotations, task_name=task_name)
    else:
        write_coco(path, annotations)
    return chosen


def read_annotations(
    path: str | os.PathLike[str], labels: LabelCatalog, *, format: str | None = None
) -> AnnotationSet:
    """Read a file written by :func:`write_annotations` into annotations for ``labels``.

    A "CVAT for video 1.1" file gives tracks and no frames (its shapes are tracks of one
    keyframe, which CVAT reads as tracks too); a COCO file gives the shapes of tracks as
    shapes of their frames.
    """
    if format_for(path, format) == "coco":
        return read_coco(path, labels)
    if is_cvat_video_xml(path):
        return AnnotationSet(labels, (), read_cvat_video_xml(path, labels))
    return read_cvat_xml(path, labels)
