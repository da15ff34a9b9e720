"""Tracks as plain JSON, for scripts: what ``cvat-aa track --output tracks.json`` writes.

CVAT imports tracks from "CVAT for video 1.1" XML (:class:`~.cvat_xml.CvatVideoXmlWriter`);
this format is for reading them in a program without an XML parser. It holds the tracks as
CVAT's API does, with names in place of ids::

    {"version": 1, "size": 300, "width": 1280, "height": 720,
     "labels": ["car", "person"],
     "tracks": [{"id": 0, "label": "car", "frame": 12, "source": "auto", "group": 0,
                 "attributes": {"make": "volvo"},
                 "shapes": [{"frame": 12, "type": "rectangle", "points": [x1, y1, x2, y2],
                             "outside": false, "occluded": false, "z_order": 0,
                             "rotation": 0.0, "attributes": {}}, ...]}, ...]}

Like every writer here it writes each track as it comes (to a temporary part) and the file
appears whole when the writer is closed.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

from ..labels import LabelCatalog
from .streaming import TracksWriter

__all__ = ["TracksJsonWriter", "read_tracks_json"]


def _attributes(annotation: Any, labels: LabelCatalog, label_id: int) -> dict[str, str]:
    label = labels.get(label_id)
    values = {}
    for value in getattr(annotation, "attributes", None) or []:
        attribute = label.attribute(value.spec_id) if label is not None else None
        values[attribute.name if attribute is not None else str(value.spec_id)] = str(value.value)
    return values


class TracksJsonWriter(TracksWriter):
    """Writes tracks (``models.LabeledTrackRequest``) as JSON, one by one (see the module
    docstring); the meta as :class:`~.cvat_xml.CvatVideoXmlWriter` takes it."""

    def _write_track(self, track: Any, number: int) -> None:
        data = {
            "id": number,
            "label": self.labels.name(track.label_id),
            "frame": track.frame,
            "source": str(getattr(track, "source", None) or "auto"),
            "group": int(getattr(track, "group", None) or 0),
            "attributes": _attributes(track, self.labels, track.label_id),
            "shapes": [
                {
                    "frame": shape.frame,
                    "type": str(getattr(shape.type, "value", shape.type)),
                    "points": [float(p) for p in shape.points],
                    "outside": bool(getattr(shape, "outside", False)),
                    "occluded": bool(getattr(shape, "occluded", False)),
                    "z_order": int(getattr(shape, "z_order", None) or 0),
                    "rotation": float(getattr(shape, "rotation", None) or 0),
                    "attributes": _attributes(shape, self.labels, track.label_id),
                }
                for shape in sorted(track.shapes, key=lambda s: s.frame)
            ],
        }
        self._tracks.write(("" if number == 0 else ",\n") + json.dumps(data))

    def _assemble(self, stream: IO[str]) -> None:
        width, height = self.original_size if self.original_size is not None else (None, None)
        head = {
            "version": 1,
            "size": self.frames,
            "width": width,
            "height": height,
            "labels": [label.name for label in self.labels],
        }
        stream.write(json.dumps(head)[:-1] + ', "tracks": [\n')
        self._copy(self._tracks, stream)
        stream.write("\n]}\n")


def read_tracks_json(source: str | os.PathLike[str] | IO[str]) -> dict[str, Any]:
    """A tracks file as the data it holds."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as stream:
            return json.load(stream)
    return json.load(source)
