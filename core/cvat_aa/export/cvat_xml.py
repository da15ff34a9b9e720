"""The "CVAT for images 1.1" XML format: writing it, and reading it back.

The layout is the one CVAT's own exporter writes (``cvat/apps/dataset_manager/formats/cvat.py``),
so CVAT imports the file into a task with the same labels:

* ``<annotations>`` holds ``<version>1.1</version>``, a ``<meta>`` with a ``<task>`` that
  lists the labels (name, color, type, attributes; a skeleton's ``<svg>``, and its sublabels
  as labels of their own with a ``<parent>``), and one ``<image id name width height>`` per
  frame, annotated or not. ``id`` is the frame number; CVAT matches an image to a task frame
  by ``name`` and falls back to ``id``.
* Shapes are ``<box xtl ytl xbr ybr>``, ``<polygon points>``, ``<polyline points>``,
  ``<points points>`` (points as ``x,y;x,y``), ``<ellipse cx cy rx ry>``, ``<cuboid xtl1 ...>``,
  ``<mask rle left top width height>`` and ``<skeleton>`` with a ``<points>`` child per
  element; tags are ``<tag>``. Every one has ``label`` and ``source``; shapes other than
  skeletons have ``occluded``; top-level shapes have ``z_order``; ``rotation`` is written
  when it is not 0, ``group_id`` when the shape is grouped; skeleton elements have
  ``outside``. Attribute values are ``<attribute name="...">value</attribute>`` children.
  Coordinates have two decimals.
* A mask's ``rle`` is the run-length encoding of the mask cropped to its bounding box,
  row by row, as comma-separated run lengths that alternate background and foreground,
  starting with background (a first run of 0 when the top-left pixel is set); ``left`` and
  ``top`` are the box's first column and row, ``width`` and ``height`` its size. cvat-sdk's
  mask ``points`` (``cvat_sdk.masks.encode_mask``) are the same runs followed by
  ``[left, top, right, bottom]`` with inclusive ``right`` and ``bottom``, so
  ``width = right - left + 1`` and ``height = bottom - top + 1``.

The format has no place for a shape's ``score``; COCO files keep it.

Tracks are written in "CVAT for video 1.1" (:class:`CvatVideoXmlWriter`), the same file
with the meta's ``<mode>interpolation</mode>`` and an ``<original_size>``, and one ``<track id
label source>`` per track in place of the images: a child per keyframe (``<box frame
keyframe outside occluded xtl ytl xbr ybr z_order>``, or another shape's element) with the
shape's attributes and the track's. A skeleton track has a ``<skeleton frame keyframe
z_order>`` wherever it or one of its points has a keyframe, holding a ``<points label
keyframe outside occluded points>`` for each point with a keyframe there. CVAT imports it
into a task of the same frames, video or images, matching frames by number.

Why a run that makes tracks writes "CVAT for video", not "CVAT for images": the images flavour
has no tracks. CVAT's own exporter of it (``dump_as_cvat_annotation``) writes a track as a
plain shape on every frame where it is visible, without its identity or keyframes, so a file
in that flavour brings tracks back into CVAT as unrelated shapes. The video flavour is the one
CVAT writes tracks in (``dump_as_cvat_interpolation``) and reads them back from. It has no
images, so a run's frame by frame shapes go in as CVAT's video exporter writes a task's shapes:
each a track of one keyframe, closed by an ``outside`` keyframe on the next frame unless it is
on the last frame. It has no tags: they are left out, with a warning. CVAT has no mask tracks
(its importer keeps only the first mask of a mask track), so a mask track is written as one
such one-keyframe track per keyframe: CVAT imports each as the mask of its frame.
"""

from __future__ import annotations

import datetime
import html
import logging
import os
import xml.etree.ElementTree as ET
from typing import IO, Any

from cvat_sdk import models

from ..annotations import AnnotationSet, FrameAnnotations
from ..labels import LabelCatalog, LabelInfo
from .streaming import AnnotationWriter, TracksWriter

__all__ = [
    "CvatVideoXmlWriter",
    "CvatXmlWriter",
    "is_cvat_video_xml",
    "read_cvat_video_xml",
    "read_cvat_xml",
    "write_cvat_xml",
]

logger = logging.getLogger(__name__)

_SHAPE_ELEMENTS = {
    "rectangle": "box",
    "polygon": "polygon",
    "polyline": "polyline",
    "points": "points",
    "ellipse": "ellipse",
    "cuboid": "cuboid",
    "mask": "mask",
    "skeleton": "skeleton",
}
_SHAPE_TYPES = {element: shape_type for shape_type, element in _SHAPE_ELEMENTS.items()}
_CUBOID_CORNERS = ("tl1", "bl1", "tr1", "br1", "tl2", "bl2", "tr2", "br2")


def _number(value: float) -> str:
    return f"{value:.2f}"


def _type(shape: Any) -> str:
    return str(getattr(shape.type, "value", shape.type))


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _default_svg(label: LabelInfo) -> str:
    """Nodes in a row, as a placeholder for a skeleton whose spec has no svg (no edges)."""
    count = max(len(label.sublabels), 1)
    return "".join(
        f'<circle r="0.75" cx="{(i + 0.5) * 100 / count:.4f}" cy="50" data-type="element node"'
        f' data-element-id="{i + 1}" data-node-id="{i + 1}"'
        f' data-label-name="{html.escape(sublabel.name)}"></circle>'
        for i, sublabel in enumerate(label.sublabels)
    )


def _label_meta(parent: ET.Element, label: LabelInfo, parent_name: str | None = None) -> None:
    element = _sub(parent, "label")
    _sub(element, "name", label.name)
    _sub(element, "color", label.color)
    _sub(element, "type", label.type)
    attributes = _sub(element, "attributes")
    for attribute in label.attributes:
        node = _sub(attributes, "attribute")
        _sub(node, "name", attribute.name)
        _sub(node, "mutable", str(attribute.mutable))
        _sub(node, "input_type", attribute.input_type)
        _sub(node, "default_value", attribute.default_value)
        _sub(node, "values", "\n".join(attribute.values))
    if label.type == "skeleton":
        _sub(element, "svg", label.svg or _default_svg(label))
    if parent_name is not None:
        _sub(element, "parent", parent_name)
    for sublabel in label.sublabels:
        _label_meta(parent, sublabel, label.name)


def _meta(
    labels: LabelCatalog,
    task_name: str,
    now: str,
    size: int,
    start: int,
    stop: int,
    *,
    mode: str = "annotation",
    original_size: tuple[int, int] | None = None,
) -> ET.Element:
    meta = ET.Element("meta")
    task = _sub(meta, "task")
    for tag, text in (
        ("name", task_name),
        ("size", str(size)),
        ("mode", mode),
        ("overlap", "0"),
        ("bugtracker", ""),
        ("created", now),
        ("updated", now),
        ("subset", "default"),
        ("start_frame", str(start)),
        ("stop_frame", str(stop)),
        ("frame_filter", ""),
    ):
        _sub(task, tag, text)
    labels_element = _sub(task, "labels")
    for label in labels:
        _label_meta(labels_element, label)
    if original_size is not None:
        size_element = _sub(task, "original_size")
        _sub(size_element, "width", str(original_size[0]))
        _sub(size_element, "height", str(original_size[1]))
    _sub(meta, "dumped", now)
    return meta


def _add_attributes(element: ET.Element, annotation: Any, label: LabelInfo) -> None:
    for value in getattr(annotation, "attributes", None) or []:
        attribute = label.attribute(value.spec_id)
        if attribute is None:
            raise ValueError(f"label {label.name!r} has no attribute with id {value.spec_id}")
        _sub(element, "attribute", str(value.value)).set("name", attribute.name)


def _geometry(shape: Any, shape_type: str) -> dict[str, str]:
    points = [float(p) for p in getattr(shape, "points", None) or []]
    if shape_type == "rectangle":
        return dict(zip(("xtl", "ytl", "xbr", "ybr"), map(_number, points), strict=True))
    if shape_type == "ellipse":
        cx, cy, right, top = points
        return {
            "cx": _number(cx),
            "cy": _number(cy),
            "rx": _number(right - cx),
            "ry": _number(cy - top),
        }
    if shape_type == "cuboid":
        geometry = {}
        for corner, (x, y) in zip(_CUBOID_CORNERS, zip(points[::2], points[1::2]), strict=True):
            geometry[f"x{corner}"] = _number(x)
            geometry[f"y{corner}"] = _number(y)
        return geometry
    if shape_type == "mask":
        *runs, left, top, right, bottom = (int(p) for p in points)
        return {
            "rle": ", ".join(str(run) for run in runs),
            "left": str(left),
            "top": str(top),
            "width": str(right - left + 1),
            "height": str(bottom - top + 1),
        }
    if shape_type == "skeleton":
        return {}
    return {
        "points": ";".join(f"{_number(x)},{_number(y)}" for x, y in zip(points[::2], points[1::2]))
    }


def _shape_element(
    parent: ET.Element, shape: Any, label: LabelInfo, *, element_of: LabelInfo | None = None
) -> None:
    shape_type = _type(shape)
    if shape_type not in _SHAPE_ELEMENTS:
        raise ValueError(f"CVAT for images cannot hold a shape of type {shape_type!r}")
    attributes: dict[str, str] = {
        "label": label.name,
        "source": str(getattr(shape, "source", None) or "auto"),
    }
    if element_of is not None:
        attributes["outside"] = str(int(bool(getattr(shape, "outside", False))))
    if shape_type != "skeleton":
        attributes["occluded"] = str(int(bool(getattr(shape, "occluded", False))))
    attributes.update(_geometry(shape, shape_type))
    rotation = float(getattr(shape, "rotation", None) or 0)
    if rotation and shape_type in ("rectangle", "ellipse"):
        attributes["rotation"] = _number(rotation)
    if element_of is None:
        attributes["z_order"] = str(int(getattr(shape, "z_order", None) or 0))
    group = getattr(shape, "group", None)
    if group:
        attributes["group_id"] = str(group)
    element = ET.SubElement(parent, _SHAPE_ELEMENTS[shape_type], attributes)
    for child in getattr(shape, "elements", None) or []:
        sublabel = label.sublabel(child.label_id)
        if sublabel is None:
            raise ValueError(f"skeleton {label.name!r} has no sublabel with id {child.label_id}")
        _shape_element(element, child, sublabel, element_of=label)
    _add_attributes(element, shape, label)


def _label(labels: LabelCatalog, label_id: int) -> LabelInfo:
    label = labels.get(label_id)
    if label is None:
        raise ValueError(f"an annotation refers to label id {label_id}, which is not in the labels")
    return label


def _image_element(frame: FrameAnnotations, labels: LabelCatalog) -> ET.Element:
    image = ET.Element(
        "image",
        {
            "id": str(frame.index),
            "name": frame.name,
            "width": str(frame.width),
            "height": str(frame.height),
        },
    )
    for shape in frame.shapes:
        _shape_element(image, shape, _label(labels, shape.label_id))
    for tag in frame.tags:
        label = _label(labels, tag.label_id)
        attributes = {"label": label.name, "source": str(getattr(tag, "source", None) or "auto")}
        if getattr(tag, "group", None):
            attributes["group_id"] = str(tag.group)
        _add_attributes(ET.SubElement(image, "tag", attributes), tag, label)
    return image


def _serialize(element: ET.Element, level: int) -> str:
    ET.indent(element, space="  ", level=level)
    return "  " * level + ET.tostring(element, encoding="unicode") + "\n"


class CvatXmlWriter(AnnotationWriter):
    """Writes a "CVAT for images 1.1" file frame by frame (see :class:`AnnotationWriter`).

    Images are written in the order they are added; ``task_name`` goes into the meta's
    ``<task><name>``.
    """

    def __init__(
        self,
        destination: str | os.PathLike[str] | IO[str],
        labels: LabelCatalog,
        *,
        task_name: str = "cvat-aa",
    ) -> None:
        super().__init__(destination)
        self.labels = labels
        self.task_name = task_name
        self._images = self._part()
        self._size = 0
        self._start: int | None = None
        self._stop: int | None = None

    def add(self, frame: FrameAnnotations) -> None:
        self._images.write(_serialize(_image_element(frame, self.labels), 1))
        self._size += 1
        self._start = frame.index if self._start is None else min(self._start, frame.index)
        self._stop = frame.index if self._stop is None else max(self._stop, frame.index)

    def _assemble(self, stream: IO[str]) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat()
        meta = _meta(
            self.labels, self.task_name, now, self._size, self._start or 0, self._stop or 0
        )
        stream.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n')
        stream.write("  <version>1.1</version>\n")
        stream.write(_serialize(meta, 1))
        self._copy(self._images, stream)
        stream.write("</annotations>\n")


def write_cvat_xml(
    destination: str | os.PathLike[str] | IO[str],
    annotations: AnnotationSet,
    *,
    task_name: str = "cvat-aa",
) -> None:
    """Write ``annotations`` as a "CVAT for images 1.1" file (a path or a text stream), or as
    a "CVAT for video 1.1" file when they have tracks (see the module's docstring).

    ``task_name`` goes into the meta's ``<task><name>``. Frames are written in frame order; a
    path is replaced only once the whole file is written.
    """
    writer: AnnotationWriter
    if annotations.tracks:
        writer = CvatVideoXmlWriter(destination, annotations.labels, task_name=task_name)
    else:
        writer = CvatXmlWriter(destination, annotations.labels, task_name=task_name)
    with writer:
        for frame in sorted(annotations.frames, key=lambda f: f.index):
            writer.add(frame)
        for track in annotations.tracks:
            writer.add_track(track)


def _tracked_fields(shape: Any, shape_type: str) -> dict[str, str]:
    fields = {
        "keyframe": "1",
        "outside": str(int(bool(getattr(shape, "outside", False)))),
        "occluded": str(int(bool(getattr(shape, "occluded", False)))),
        **_geometry(shape, shape_type),
    }
    rotation = float(getattr(shape, "rotation", None) or 0)
    if rotation and shape_type in ("rectangle", "ellipse"):
        fields["rotation"] = _number(rotation)
    return fields


def _skeleton_keyframes(parent: ET.Element, track: Any, label: LabelInfo) -> None:
    """A skeleton track's ``<skeleton>`` children, as CVAT writes them: one on every frame
    where the skeleton or one of its points has a keyframe, with the points that have one."""
    skeletons = {shape.frame: shape for shape in track.shapes}
    points: dict[int, list[tuple[LabelInfo, Any]]] = {}
    for element in getattr(track, "elements", None) or []:
        sublabel = label.sublabel(element.label_id)
        if sublabel is None:
            raise ValueError(f"skeleton {label.name!r} has no sublabel with id {element.label_id}")
        for shape in element.shapes:
            points.setdefault(shape.frame, []).append((sublabel, shape))
    for frame in sorted(skeletons.keys() | points.keys()):
        skeleton = skeletons.get(frame)
        z_order = getattr(skeleton or track.shapes[0], "z_order", None) or 0
        fields = {
            "frame": str(frame),
            "keyframe": str(int(skeleton is not None)),
            "z_order": str(int(z_order)),
        }
        child = ET.SubElement(parent, "skeleton", fields)
        for sublabel, point in points.get(frame, []):
            point_fields = {"label": sublabel.name, **_tracked_fields(point, "points")}
            _add_attributes(ET.SubElement(child, "points", point_fields), point, sublabel)
        if skeleton is not None:
            _add_attributes(child, skeleton, label)
        _add_attributes(child, track, label)


def _track_element(track: Any, number: int, label: LabelInfo) -> ET.Element:
    attributes = {
        "id": str(number),
        "label": label.name,
        "source": str(getattr(track, "source", None) or "auto"),
    }
    if getattr(track, "group", None):
        attributes["group_id"] = str(track.group)
    element = ET.Element("track", attributes)
    if _type(track.shapes[0]) == "skeleton":
        _skeleton_keyframes(element, track, label)
        return element
    for shape in sorted(track.shapes, key=lambda s: s.frame):
        shape_type = _type(shape)
        if shape_type not in _SHAPE_ELEMENTS or shape_type == "skeleton":
            raise ValueError(f"CVAT for video cannot hold a tracked shape of type {shape_type!r}")
        fields = {
            "frame": str(shape.frame),
            **_tracked_fields(shape, shape_type),
            "z_order": str(int(getattr(shape, "z_order", None) or 0)),
        }
        child = ET.SubElement(element, _SHAPE_ELEMENTS[shape_type], fields)
        _add_attributes(child, shape, label)
        _add_attributes(child, track, label)
    return element


def _tracked(shape: Any, frame: int, outside: bool = False) -> models.TrackedShapeRequest:
    """``shape`` as a keyframe on ``frame``; ``outside`` for the keyframe that closes it."""
    return models.TrackedShapeRequest(
        type=_type(shape),
        frame=frame,
        points=[float(p) for p in getattr(shape, "points", None) or []],
        outside=outside or bool(getattr(shape, "outside", False)),
        occluded=bool(getattr(shape, "occluded", False)),
        z_order=int(getattr(shape, "z_order", None) or 0),
        rotation=float(getattr(shape, "rotation", None) or 0),
        attributes=list(getattr(shape, "attributes", None) or []),
    )


def _one_keyframe_track(shape: Any, closed: bool) -> models.LabeledTrackRequest:
    """A shape on its frame as CVAT's video exporter writes it: a track with one keyframe,
    and (``closed``) an ``outside`` keyframe on the next frame."""
    frames = [shape.frame, shape.frame + 1] if closed else [shape.frame]
    fields: dict[str, Any] = {}
    if getattr(shape, "elements", None):
        fields["elements"] = [
            models.SubLabeledTrackRequest(
                label_id=element.label_id,
                frame=shape.frame,
                shapes=[_tracked(element, f, outside=f != shape.frame) for f in frames],
            )
            for element in shape.elements
        ]
    return models.LabeledTrackRequest(
        label_id=shape.label_id,
        frame=shape.frame,
        group=int(getattr(shape, "group", None) or 0),
        source=str(getattr(shape, "source", None) or "auto"),
        shapes=[_tracked(shape, f, outside=f != shape.frame) for f in frames],
        **fields,
    )


class CvatVideoXmlWriter(TracksWriter):
    """Writes a "CVAT for video 1.1" file track by track (see :class:`TracksWriter`), and
    frame by frame: a frame's shapes are written as tracks of one keyframe, its tags are left
    out and counted in :attr:`skipped_tags` (see the module's docstring).

    ``task_name`` is the name the file gives the task it stands for.
    """

    def __init__(
        self,
        destination: str | os.PathLike[str] | IO[str],
        labels: LabelCatalog,
        *,
        task_name: str = "cvat-aa",
        size: int | None = None,
        original_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(destination, labels, size=size, original_size=original_size)
        self.task_name = task_name
        self.skipped_tags = 0
        """Tags of the frames added, which the format has no place for."""
        self._waiting: FrameAnnotations | None = None
        """The last frame added, whose shapes are written once it is known whether a frame
        follows (their tracks are closed on the next frame, which must be in the task)."""

    def add(self, frame: FrameAnnotations) -> None:
        """Write a frame's shapes, each as a track of one keyframe."""
        self.saw_frame(frame.index, frame.width, frame.height)
        self._write_waiting(closed=True)
        self._waiting = frame
        self.skipped_tags += len(frame.tags)

    def add_track(self, track: Any) -> None:
        if _type(track.shapes[0]) != "mask":
            super().add_track(track)
            return
        for shape in track.shapes:
            if not getattr(shape, "outside", False):
                mask = models.LabeledShapeRequest(
                    type="mask",
                    label_id=track.label_id,
                    frame=shape.frame,
                    points=list(shape.points),
                    occluded=bool(getattr(shape, "occluded", False)),
                    z_order=int(getattr(shape, "z_order", None) or 0),
                    group=int(getattr(track, "group", None) or 0),
                    source=str(getattr(track, "source", None) or "auto"),
                    attributes=[
                        *(getattr(shape, "attributes", None) or []),
                        *(getattr(track, "attributes", None) or []),
                    ],
                )
                super().add_track(_one_keyframe_track(mask, closed=False))

    def _write_waiting(self, closed: bool) -> None:
        if self._waiting is not None:
            for shape in self._waiting.shapes:
                super().add_track(_one_keyframe_track(shape, closed))
            self._waiting = None

    def _write_track(self, track: Any, number: int) -> None:
        element = _track_element(track, number, _label(self.labels, track.label_id))
        self._tracks.write(_serialize(element, 1))

    def _assemble(self, stream: IO[str]) -> None:
        if self._waiting is not None:
            self._write_waiting(closed=self._waiting.index + 1 < self.frames)
        if self.skipped_tags:
            logger.warning(
                "CVAT for video has no place for tags; %d tag(s) were left out",
                self.skipped_tags,
            )
        now = datetime.datetime.now(datetime.UTC).isoformat()
        size = self.frames
        meta = _meta(
            self.labels,
            self.task_name,
            now,
            size,
            0,
            max(size - 1, 0),
            mode="interpolation",
            original_size=self.original_size,
        )
        stream.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n')
        stream.write("  <version>1.1</version>\n")
        stream.write(_serialize(meta, 1))
        self._copy(self._tracks, stream)
        stream.write("</annotations>\n")


# --- reading ---------------------------------------------------------------------------------


def _points(text: str) -> list[float]:
    return [float(value) for pair in text.split(";") if pair for value in pair.split(",")]


def _read_geometry(element: ET.Element, shape_type: str) -> list[float]:
    a = element.attrib
    if shape_type == "rectangle":
        return [float(a["xtl"]), float(a["ytl"]), float(a["xbr"]), float(a["ybr"])]
    if shape_type == "ellipse":
        cx, cy = float(a["cx"]), float(a["cy"])
        return [cx, cy, cx + float(a["rx"]), cy - float(a["ry"])]
    if shape_type == "cuboid":
        return [float(a[f"{axis}{corner}"]) for corner in _CUBOID_CORNERS for axis in "xy"]
    if shape_type == "mask":
        left, top = int(a["left"]), int(a["top"])
        runs = [int(run) for run in a["rle"].split(",") if run.strip()]
        return [*runs, left, top, left + int(a["width"]) - 1, top + int(a["height"]) - 1]
    if shape_type == "skeleton":
        return []
    return _points(a["points"])


def _read_attributes(element: ET.Element, label: LabelInfo) -> list[models.AttributeValRequest]:
    values = []
    for node in element.findall("attribute"):
        attribute = label.attribute_named(node.get("name", ""))
        if attribute is None:
            raise ValueError(f"label {label.name!r} has no attribute {node.get('name')!r}")
        values.append(models.AttributeValRequest(spec_id=attribute.id, value=node.text or ""))
    return values


def _common(element: ET.Element, frame: int, label: LabelInfo) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "frame": frame,
        "label_id": label.id,
        "source": element.get("source", "manual"),
        "attributes": _read_attributes(element, label),
    }
    if element.get("group_id"):
        fields["group"] = int(element.get("group_id"))
    return fields


def _read_shape(element: ET.Element, frame: int, label: LabelInfo) -> models.LabeledShapeRequest:
    shape_type = _SHAPE_TYPES[element.tag]
    fields = _common(element, frame, label)
    fields["points"] = _read_geometry(element, shape_type)
    fields["z_order"] = int(element.get("z_order", 0))
    if shape_type != "skeleton":
        fields["occluded"] = element.get("occluded") == "1"
    if element.get("rotation"):
        fields["rotation"] = float(element.get("rotation"))
    if shape_type == "skeleton":
        fields["elements"] = [
            _read_element(child, frame, label) for child in element.findall("points")
        ]
    return models.LabeledShapeRequest(type=shape_type, **fields)


def _read_element(
    element: ET.Element, frame: int, skeleton: LabelInfo
) -> models.SubLabeledShapeRequest:
    sublabel = skeleton.sublabel_named(element.get("label", ""))
    if sublabel is None:
        raise ValueError(f"skeleton {skeleton.name!r} has no sublabel {element.get('label')!r}")
    return models.SubLabeledShapeRequest(
        type="points",
        points=_points(element.attrib["points"]),
        occluded=element.get("occluded") == "1",
        outside=element.get("outside") == "1",
        **_common(element, frame, sublabel),
    )


def _read_image(image: ET.Element, labels: LabelCatalog) -> FrameAnnotations:
    index = int(image.attrib["id"])
    tags, shapes = [], []
    for element in image:
        if element.tag == "tag":
            label = labels.named(element.attrib["label"])
            tags.append(models.LabeledImageRequest(**_common(element, index, label)))
        elif element.tag in _SHAPE_TYPES:
            shapes.append(_read_shape(element, index, labels.named(element.attrib["label"])))
    return FrameAnnotations(
        index,
        image.attrib["name"],
        int(image.attrib["width"]),
        int(image.attrib["height"]),
        tags,
        shapes,
    )


def read_cvat_xml(
    source: str | os.PathLike[str] | IO[str] | IO[bytes], labels: LabelCatalog
) -> AnnotationSet:
    """Read a "CVAT for images 1.1" file into annotations for ``labels``.

    Names are resolved as CVAT resolves them when it imports the file into a task with these
    labels: labels, sublabels and attributes by name. A name the labels lack raises
    ``ValueError`` (``KeyError`` for a label). Shapes have no ``score`` (the format has none).
    """
    root = ET.parse(source).getroot()
    if root.tag != "annotations" or root.findtext("version") != "1.1":
        raise ValueError("not a 'CVAT for images 1.1' file: expected <annotations><version>1.1")
    frames = [_read_image(image, labels) for image in root.findall("image")]
    return AnnotationSet(labels, frames)


def is_cvat_video_xml(source: str | os.PathLike[str]) -> bool:
    """Whether the CVAT XML file ``source`` is "CVAT for video" (its meta's mode says so),
    read only up to its meta."""
    for _, element in ET.iterparse(source, events=("end",)):
        if element.tag == "mode":
            return element.text == "interpolation"
        if element.tag in ("image", "track"):
            return element.tag == "track"
    return False


def read_cvat_video_xml(
    source: str | os.PathLike[str] | IO[str] | IO[bytes], labels: LabelCatalog
) -> list[models.LabeledTrackRequest]:
    """Read the tracks of a "CVAT for video 1.1" file, for ``labels`` (matched by name, as
    :func:`read_cvat_xml` does). An attribute that is not mutable goes to the track, a
    mutable one to its keyframe."""
    root = ET.parse(source).getroot()
    if root.tag != "annotations" or root.findtext("version") != "1.1":
        raise ValueError("not a 'CVAT for video 1.1' file: expected <annotations><version>1.1")
    tracks = []
    for element in root.findall("track"):
        label = labels.named(element.attrib["label"])
        track_attributes: dict[int, models.AttributeValRequest] = {}
        shapes = []
        for child in element:
            shape_type = _SHAPE_TYPES.get(child.tag)
            if shape_type is None:
                continue
            mutable = []
            for value in _read_attributes(child, label):
                attribute = label.attribute(value.spec_id)
                if attribute is not None and not attribute.mutable:
                    track_attributes[value.spec_id] = value
                else:
                    mutable.append(value)
            fields: dict[str, Any] = {
                "type": shape_type,
                "frame": int(child.attrib["frame"]),
                "points": _read_geometry(child, shape_type),
                "outside": child.get("outside") == "1",
                "occluded": child.get("occluded") == "1",
                "z_order": int(child.get("z_order", 0)),
                "rotation": float(child.get("rotation", 0)),
                "attributes": mutable,
            }
            shapes.append(models.TrackedShapeRequest(**fields))
        track_fields: dict[str, Any] = {
            "frame": min((s.frame for s in shapes), default=0),
            "label_id": label.id,
            "source": element.get("source", "manual"),
            "attributes": list(track_attributes.values()),
            "shapes": shapes,
        }
        if element.get("group_id"):
            track_fields["group"] = int(element.get("group_id"))
        tracks.append(models.LabeledTrackRequest(**track_fields))
    return tracks
