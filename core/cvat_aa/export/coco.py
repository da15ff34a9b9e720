"""The COCO 1.0 instances format (with COCO keypoints for skeletons): writing it, and reading it.

The file is one JSON object, laid out as CVAT's COCO exporter writes it:

* ``categories``: one per label, ``id`` counting from 1 in label order, ``name``,
  ``supercategory`` (empty). A skeleton label's category also has ``keypoints`` (its
  sublabels' names, in order) and ``skeleton`` (its edges, as pairs of 1-based keypoint
  numbers, from the label's svg).
* ``images``: ``id`` (frame number + 1), ``file_name`` (the frame name), ``width``,
  ``height``, and the empty ``license``, ``flickr_url``, ``coco_url``, ``date_captured``.
* ``annotations``: ``id`` counting from 1, ``image_id``, ``category_id``, ``bbox``
  (``[x, y, width, height]``), ``area``, ``iscrowd``, ``segmentation``, ``attributes``
  (``occluded``; ``rotation`` for boxes; the label's attributes, numbers as numbers and
  checkboxes as booleans) and ``score`` when the shape has one.

  - a box has an empty ``segmentation``, its area is ``width * height``, and ``bbox`` is the
    box before rotation;
  - a polygon's ``segmentation`` is ``[[x1, y1, x2, y2, ...]]``, its area the polygon's;
  - a mask has ``iscrowd: 1`` and its ``segmentation`` is an uncompressed RLE of the whole
    image, ``{"counts": [...], "size": [height, width]}``: run lengths over the pixels in
    column-major order (down the first column, then the next), alternating background and
    foreground and starting with background; ``bbox`` and ``area`` are those of its pixels;
  - a skeleton has ``keypoints`` (``[x, y, v, ...]`` in the category's keypoint order, with
    ``v`` 2 for a visible point, 1 for an occluded one and 0, at ``0, 0``, for one that is
    outside or missing), ``num_keypoints`` (points with ``v > 0``), and the box around those
    points as ``bbox``.

COCO has no place for tags, polylines, points, ellipses or cuboids: they are left out, with a
warning. Import the file into CVAT as "COCO 1.0" (boxes, polygons, masks) or "COCO Keypoints
1.0" (skeletons).

Tracks (a run whose result stages make them) are written as CVAT's COCO exporter writes them:
COCO has no tracks, so a track is an annotation on every frame of the file where CVAT shows
it (computed between keyframes as CVAT computes them, see :mod:`.interpolation`), each with
two more ``attributes``: ``track_id`` (the track's number in the file, from 0, in the order
the tracks ended) and ``keyframe`` (whether the track has a keyframe on that frame, or the
shape was computed). CVAT's COCO exporter writes these two through Datumaro's, and CVAT's COCO
importers (``import_dm_annotations`` in ``cvat/apps/dataset_manager/bindings.py``) turn
annotations that have both back into tracks: keyframes, plus those it infers where the object
appears, disappears or skips frames. A COCO tool that knows nothing of tracks sees the
object on every frame. A track ends up in the file only when it ended, after the frames it
covers: COCO does not need annotations in frame order, so its annotations simply follow.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

import attrs
from cvat_sdk import models

from ..annotations import AnnotationSet, FrameAnnotations
from ..labels import AttributeInfo, LabelCatalog, LabelInfo
from .interpolation import track_shapes
from .streaming import AnnotationWriter

if TYPE_CHECKING:
    import numpy as np

__all__ = ["UNSUPPORTED", "CocoWriter", "read_coco", "to_coco", "write_coco"]

logger = logging.getLogger(__name__)

UNSUPPORTED = ("tag", "polyline", "points", "ellipse", "cuboid")
"""What COCO cannot hold, and :func:`write_coco` leaves out."""

_RESERVED_ATTRIBUTES = {"occluded", "rotation", "track_id", "keyframe"}
_PLURALS = {
    "tag": "tag(s)",
    "polyline": "polyline(s)",
    "points": "points shape(s)",
    "ellipse": "ellipse(s)",
    "cuboid": "cuboid(s)",
    "polyline track": "polyline track(s)",
    "points track": "points track(s)",
    "ellipse track": "ellipse track(s)",
    "cuboid track": "cuboid track(s)",
}


def _type(shape: Any) -> str:
    return str(getattr(shape.type, "value", shape.type))


def _typed_value(value: str, attribute: AttributeInfo) -> Any:
    if attribute.input_type == "checkbox":
        return value.lower() == "true"
    if attribute.input_type == "number":
        try:
            return int(value)
        except ValueError:
            return float(value)
    return value


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _attributes(annotation: Any, label: LabelInfo) -> dict[str, Any]:
    values = {}
    for value in getattr(annotation, "attributes", None) or []:
        attribute = label.attribute(value.spec_id)
        if attribute is None:
            raise ValueError(f"label {label.name!r} has no attribute with id {value.spec_id}")
        values[attribute.name] = _typed_value(str(value.value), attribute)
    return values


def _box_of(xs: Sequence[float], ys: Sequence[float]) -> list[float]:
    if not xs:
        return [0.0, 0.0, 0.0, 0.0]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _polygon_area(points: Sequence[float]) -> float:
    # numpy (and cvat_sdk.masks, which imports it) only when a polygon or a mask is written or
    # read: importing cvat_aa, and every run that writes no COCO, goes without its 12 MiB.
    import numpy as np

    xs, ys = np.asarray(points[::2], dtype=float), np.asarray(points[1::2], dtype=float)
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2)


def _rle_counts(bitmap: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts of a boolean image: column-major, background first."""
    import numpy as np

    flat = bitmap.ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return [0, *counts] if flat.size and flat[0] else counts


def _rle_bitmap(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    import numpy as np

    if sum(counts) != height * width:
        raise ValueError(f"RLE counts cover {sum(counts)} pixels, not {height} x {width}")
    values = (np.arange(len(counts)) % 2).astype(bool)
    return np.repeat(values, counts).reshape((height, width), order="F")


def _geometry(shape: Any, frame: FrameAnnotations, label: LabelInfo) -> dict[str, Any]:
    shape_type = _type(shape)
    points = [float(p) for p in getattr(shape, "points", None) or []]
    if shape_type == "rectangle":
        x1, y1, x2, y2 = points
        return {
            "segmentation": [],
            "area": (x2 - x1) * (y2 - y1),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "iscrowd": 0,
        }
    if shape_type == "polygon":
        return {
            "segmentation": [points],
            "area": _polygon_area(points),
            "bbox": _box_of(points[::2], points[1::2]),
            "iscrowd": 0,
        }
    if shape_type == "mask":
        import numpy as np
        from cvat_sdk.masks import decode_mask

        bitmap = decode_mask(points, image_width=frame.width, image_height=frame.height)
        ys, xs = np.nonzero(bitmap)
        bbox = [0.0, 0.0, 0.0, 0.0]
        if xs.size:
            bbox = [
                float(xs.min()),
                float(ys.min()),
                float(xs.max() - xs.min() + 1),
                float(ys.max() - ys.min() + 1),
            ]
        return {
            "segmentation": {"counts": _rle_counts(bitmap), "size": [frame.height, frame.width]},
            "area": float(xs.size),
            "bbox": bbox,
            "iscrowd": 1,
        }
    # A skeleton: keypoints in the category's order.
    elements = {e.label_id: e for e in getattr(shape, "elements", None) or []}
    keypoints: list[float] = []
    for sublabel in label.sublabels:
        element = elements.get(sublabel.id)
        if element is None or getattr(element, "outside", False):
            keypoints += [0.0, 0.0, 0]
        else:
            x, y = (float(p) for p in element.points[:2])
            keypoints += [x, y, 1 if getattr(element, "occluded", False) else 2]
    shown = [i for i in range(0, len(keypoints), 3) if keypoints[i + 2] > 0]
    bbox = _box_of([keypoints[i] for i in shown], [keypoints[i + 1] for i in shown])
    return {
        "segmentation": [],
        "area": bbox[2] * bbox[3],
        "bbox": bbox,
        "iscrowd": 0,
        "keypoints": keypoints,
        "num_keypoints": len(shown),
    }


def _category(category_id: int, label: LabelInfo) -> dict[str, Any]:
    category: dict[str, Any] = {"id": category_id, "name": label.name, "supercategory": ""}
    if label.type == "skeleton" or label.sublabels:
        number = {s.id: i for i, s in enumerate(label.sublabels, start=1)}
        category["keypoints"] = [s.name for s in label.sublabels]
        category["skeleton"] = [[number[a], number[b]] for a, b in label.edges()]
    return category


def _head(labels: LabelCatalog) -> dict[str, Any]:
    """The document's parts before its images: licenses, info and the categories."""
    return {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {
            "contributor": "",
            "date_created": "",
            "description": "",
            "url": "",
            "version": "",
            "year": "",
        },
        "categories": [_category(i, label) for i, label in enumerate(labels, start=1)],
    }


def _image(frame: FrameAnnotations) -> dict[str, Any]:
    return {
        "id": frame.index + 1,
        "width": frame.width,
        "height": frame.height,
        "file_name": frame.name,
        "license": 0,
        "flickr_url": "",
        "coco_url": "",
        "date_captured": 0,
    }


def _annotation(
    shape: Any,
    frame: FrameAnnotations,
    labels: LabelCatalog,
    category_ids: dict[int, int],
    number: int,
    track: tuple[int, bool] | None = None,
) -> dict[str, Any]:
    """The COCO annotation ``number`` of ``shape`` on ``frame``; ``track`` is the track's
    number and whether the frame is one of its keyframes, for a shape of a track."""
    label = labels.get(shape.label_id)
    if label is None:
        raise ValueError(f"a shape refers to label id {shape.label_id}, which is not in the labels")
    attributes = {"occluded": bool(getattr(shape, "occluded", False))}
    if _type(shape) == "rectangle":
        attributes["rotation"] = float(getattr(shape, "rotation", None) or 0)
    attributes.update(_attributes(shape, label))
    if track is not None:
        attributes["track_id"], attributes["keyframe"] = track
    annotation = {
        "id": number,
        "image_id": frame.index + 1,
        "category_id": category_ids[label.id],
        **_geometry(shape, frame, label),
        "attributes": attributes,
    }
    if getattr(shape, "score", None) is not None:
        annotation["score"] = float(shape.score)
    return annotation


def _annotations(
    frame: FrameAnnotations,
    labels: LabelCatalog,
    category_ids: dict[int, int],
    first_id: int,
    skipped: Counter[str],
) -> list[dict[str, Any]]:
    """The COCO annotations of a frame, numbered from ``first_id``; what COCO cannot hold is
    counted in ``skipped``."""
    skipped["tag"] += len(frame.tags)
    annotations = []
    for shape in frame.shapes:
        shape_type = _type(shape)
        if shape_type in UNSUPPORTED:
            skipped[shape_type] += 1
            continue
        annotations.append(
            _annotation(shape, frame, labels, category_ids, first_id + len(annotations))
        )
    return annotations


@attrs.define
class _Frames:
    """The frames of a file (in increasing order) with their sizes, held as runs of
    consecutive frames of one size: a video's frames take one run, whatever their number."""

    runs: list[list[int]] = attrs.Factory(list)
    """[first frame, last frame, width, height] each."""

    def add(self, index: int, width: int, height: int) -> None:
        last = self.runs[-1] if self.runs else None
        if last is not None and index == last[1] + 1 and (width, height) == tuple(last[2:]):
            last[1] = index
        else:
            self.runs.append([index, index, width, height])

    @property
    def last(self) -> int:
        """The last frame (-1 before the first)."""
        return self.runs[-1][1] if self.runs else -1

    def indexes(self, start: int) -> Iterator[int]:
        """The frames from ``start`` on."""
        for first, last, _, _ in self.runs[self._run(start) :]:
            yield from range(max(first, start), last + 1)

    def frame(self, index: int) -> FrameAnnotations:
        """Frame ``index`` (one of the frames), with its size only."""
        _, _, width, height = self.runs[self._run(index)]
        return FrameAnnotations(index, "", width, height)

    def _run(self, index: int) -> int:
        """The first run that ends at or after frame ``index``."""
        return bisect.bisect_left(self.runs, index, key=lambda run: run[1])


def _track_annotations(
    track: models.LabeledTrackRequest,
    number: int,
    frames: _Frames,
    start: int,
    labels: LabelCatalog,
    category_ids: dict[int, int],
    first_id: int,
) -> Iterator[dict[str, Any]]:
    """The COCO annotations of track ``number`` on the frames from ``start`` on, numbered
    from ``first_id``."""
    start = max(start, min(shape.frame for shape in track.shapes))
    for count, computed in enumerate(track_shapes(track, frames.indexes(start))):
        yield _annotation(
            computed.shape,
            frames.frame(computed.shape.frame),
            labels,
            category_ids,
            first_id + count,
            (number, computed.keyframe),
        )


def _holds(track: models.LabeledTrackRequest, skipped: Counter[str]) -> bool:
    """Whether COCO can hold the track's shapes; if not, it is counted in ``skipped``."""
    shape_type = _type(track.shapes[0])
    if shape_type in UNSUPPORTED:
        skipped[f"{shape_type} track"] += 1
        return False
    return True


def _open_ended(track: models.LabeledTrackRequest) -> bool:
    """Whether CVAT shows the track on every frame after its last keyframe."""
    return not getattr(max(track.shapes, key=lambda s: s.frame), "outside", False)


def _category_ids(labels: LabelCatalog) -> dict[int, int]:
    return {label.id: i for i, label in enumerate(labels, start=1)}


def to_coco(annotations: AnnotationSet) -> tuple[dict[str, Any], Counter[str]]:
    """The COCO document for ``annotations``, and how many of each kind COCO lacks were left out."""
    labels = annotations.labels
    category_ids = _category_ids(labels)
    document: dict[str, Any] = {**_head(labels), "images": [], "annotations": []}
    skipped: Counter[str] = Counter()
    frames = _Frames()
    for frame in sorted(annotations.frames, key=lambda f: f.index):
        document["images"].append(_image(frame))
        document["annotations"] += _annotations(
            frame, labels, category_ids, len(document["annotations"]) + 1, skipped
        )
        frames.add(frame.index, frame.width, frame.height)
    for number, track in enumerate(annotations.tracks):
        if _holds(track, skipped):
            document["annotations"] += _track_annotations(
                track, number, frames, 0, labels, category_ids, len(document["annotations"]) + 1
            )
    return document, +skipped


class CocoWriter(AnnotationWriter):
    """Writes a COCO file frame by frame, and track by track (see :class:`AnnotationWriter`).

    Images and annotations are streamed into two parts, joined at :meth:`close`; the file is
    the one :func:`to_coco` describes, byte for byte, when the tracks are added after the
    frames they cover. What COCO cannot hold is left out and counted in :attr:`skipped`, and
    :meth:`close` warns about it.
    """

    def __init__(
        self, destination: str | os.PathLike[str] | IO[str], labels: LabelCatalog
    ) -> None:
        super().__init__(destination)
        self.labels = labels
        self.skipped: Counter[str] = Counter()
        self._category_ids = _category_ids(labels)
        self._images = self._part()
        self._annotations = self._part()
        self._image_count = 0
        self._annotation_count = 0
        self._frames = _Frames()
        self._track_count = 0
        self._open: list[tuple[models.LabeledTrackRequest, int, int]] = []
        """Tracks shown after their last keyframe, their numbers, and the first frame not
        yet written for them (which came after them)."""

    def add(self, frame: FrameAnnotations) -> None:
        annotations = _annotations(
            frame, self.labels, self._category_ids, self._annotation_count + 1, self.skipped
        )
        self._images.write((", " if self._image_count else "") + json.dumps(_image(frame)))
        self._image_count += 1
        self._frames.add(frame.index, frame.width, frame.height)
        self._write(annotations)

    def add_track(self, track: models.LabeledTrackRequest) -> None:
        """Write a track (label ids those of ``labels``) on the frames added so far, and on
        those added later where CVAT shows it there (it has no ``outside`` last keyframe)."""
        number = self._track_count
        self._track_count += 1
        if not _holds(track, self.skipped):
            return
        self._write_track(track, number, 0)
        if _open_ended(track):
            self._open.append((track, number, self._frames.last + 1))

    def _write_track(self, track: models.LabeledTrackRequest, number: int, start: int) -> None:
        self._write(
            _track_annotations(
                track,
                number,
                self._frames,
                start,
                self.labels,
                self._category_ids,
                self._annotation_count + 1,
            )
        )

    def _write(self, annotations: Iterable[dict[str, Any]]) -> None:
        for annotation in annotations:
            self._annotations.write(
                (", " if self._annotation_count else "") + json.dumps(annotation)
            )
            self._annotation_count += 1

    def _assemble(self, stream: IO[str]) -> None:
        for track, number, start in self._open:
            self._write_track(track, number, start)
        self._open.clear()
        self.skipped = +self.skipped
        if self.skipped:
            logger.warning(
                "COCO has no place for %s; they were left out (the CVAT for images format"
                " keeps them, and CVAT for video tracks)",
                ", ".join(
                    f"{count} {_PLURALS[kind]}" for kind, count in sorted(self.skipped.items())
                ),
            )
        # json.dumps of the whole document, written piece by piece.
        stream.write(json.dumps(_head(self.labels))[:-1])
        stream.write(', "images": [')
        self._copy(self._images, stream)
        stream.write('], "annotations": [')
        self._copy(self._annotations, stream)
        stream.write("]}")


def write_coco(
    destination: str | os.PathLike[str] | IO[str], annotations: AnnotationSet
) -> Counter[str]:
    """Write ``annotations`` as a COCO file (a path or a text stream).

    Returns how many tags and shapes of each kind COCO cannot hold were left out (also
    logged as a warning). A path is replaced only once the whole file is written.
    """
    with CocoWriter(destination, annotations.labels) as writer:
        for frame in sorted(annotations.frames, key=lambda f: f.index):
            writer.add(frame)
        for track in annotations.tracks:
            writer.add_track(track)
    return writer.skipped


# --- reading ---------------------------------------------------------------------------------


def _read_attributes(raw: dict[str, Any], label: LabelInfo) -> list[models.AttributeValRequest]:
    values = []
    for name, value in raw.items():
        if name in _RESERVED_ATTRIBUTES:
            continue
        attribute = label.attribute_named(name)
        if attribute is None:
            raise ValueError(f"label {label.name!r} has no attribute {name!r}")
        values.append(models.AttributeValRequest(spec_id=attribute.id, value=_text_value(value)))
    return values


def _read_skeleton(
    annotation: dict[str, Any], label: LabelInfo, names: Sequence[str], frame: int
) -> dict[str, Any]:
    keypoints = annotation["keypoints"]
    if len(keypoints) != 3 * len(names):
        raise ValueError(
            f"annotation {annotation['id']} has {len(keypoints) // 3} keypoints, not {len(names)}"
        )
    elements = []
    for i, name in enumerate(names):
        sublabel = label.sublabel_named(name)
        if sublabel is None:
            raise ValueError(f"skeleton {label.name!r} has no sublabel {name!r}")
        x, y, visibility = keypoints[3 * i : 3 * i + 3]
        elements.append(
            models.SubLabeledShapeRequest(
                type="points",
                frame=frame,
                label_id=sublabel.id,
                points=[float(x), float(y)],
                occluded=visibility == 1,
                outside=visibility == 0,
            )
        )
    return {"type": "skeleton", "points": [], "elements": elements}


def _read_geometry(annotation: dict[str, Any]) -> list[dict[str, Any]]:
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):
        counts = segmentation["counts"]
        if isinstance(counts, str):
            raise ValueError(
                f"annotation {annotation['id']} has a compressed RLE, which is not supported"
            )
        from cvat_sdk.masks import encode_mask

        height, width = segmentation["size"]
        bitmap = _rle_bitmap(counts, height, width)
        return [{"type": "mask", "points": encode_mask(bitmap)}]
    if segmentation:
        return [
            {"type": "polygon", "points": [float(v) for v in polygon]} for polygon in segmentation
        ]
    x, y, w, h = (float(v) for v in annotation["bbox"])
    return [{"type": "rectangle", "points": [x, y, x + w, y + h]}]


def read_coco(source: str | os.PathLike[str] | IO[str], labels: LabelCatalog) -> AnnotationSet:
    """Read a COCO file into annotations for ``labels``, matching them by name.

    Image ids are frame number + 1 (as :func:`write_coco` writes them). A category, keypoint
    or attribute name the labels lack raises ``ValueError`` (``KeyError`` for a category).
    Shapes have no ``source``, ``z_order`` or ``group`` (COCO has none). The shapes of tracks
    are read as shapes of their frames (their ``track_id`` and ``keyframe`` are not kept).
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as stream:
            document = json.load(stream)
    else:
        document = json.load(source)
    categories = {c["id"]: c for c in document["categories"]}
    images = {image["id"]: image for image in document["images"]}
    per_image: dict[int, list[models.LabeledShapeRequest]] = {image_id: [] for image_id in images}
    for annotation in document["annotations"]:
        image = images[annotation["image_id"]]
        frame = image["id"] - 1
        category = categories[annotation["category_id"]]
        label = labels.named(category["name"])
        raw_attributes = dict(annotation.get("attributes") or {})
        common: dict[str, Any] = {"frame": frame, "label_id": label.id}
        if annotation.get("score") is not None:
            common["score"] = float(annotation["score"])
        if "keypoints" in annotation and category.get("keypoints"):
            shapes = [_read_skeleton(annotation, label, category["keypoints"], frame)]
        else:
            shapes = _read_geometry(annotation)
            common["occluded"] = bool(raw_attributes.get("occluded", False))
            if shapes[0]["type"] == "rectangle" and raw_attributes.get("rotation"):
                common["rotation"] = float(raw_attributes["rotation"])
        for shape in shapes:
            per_image[image["id"]].append(
                models.LabeledShapeRequest(
                    **common, **shape, attributes=_read_attributes(raw_attributes, label)
                )
            )
    frames = [
        FrameAnnotations(
            image_id - 1,
            image["file_name"],
            image["width"],
            image["height"],
            (),
            per_image[image_id],
        )
        for image_id, image in sorted(images.items())
    ]
    return AnnotationSet(labels, frames)
