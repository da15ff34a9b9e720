"""Writing annotations in formats CVAT imports, and reading them back.

* ``cvat``: "CVAT for images 1.1" XML (:mod:`.cvat_xml`): every shape type, tags, attributes;
* ``coco``: COCO 1.0 JSON (:mod:`.coco`): boxes, polygons, masks, and skeletons as keypoints.

The format is chosen by name, or else by the file's extension: ``.xml`` for ``cvat``,
``.json`` for ``coco``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..annotations import AnnotationSet
from ..labels import LabelCatalog
from .coco import read_coco, write_coco
from .cvat_xml import read_cvat_xml, write_cvat_xml

__all__ = [
    "FORMATS",
    "format_for",
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


def write_annotations(
    path: str | os.PathLike[str],
    annotations: AnnotationSet,
    *,
    format: str | None = None,
    task_name: str = "cvat-aa",
) -> str:
    """Write ``annotations`` to ``path`` in ``format`` (or the one its extension names).

    ``task_name`` is used where the format names a task. Returns the format written.
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
    """Read a file written by :func:`write_annotations` into annotations for ``labels``."""
    reader: Any = read_cvat_xml if format_for(path, format) == "cvat" else read_coco
    return reader(path, labels)
