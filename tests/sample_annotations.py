"""A function that outputs every kind of annotation, and a comparable view of annotations.

Shared by the local-run, export and preview tests.
"""

from __future__ import annotations

from typing import Any

import cvat_aa
import numpy as np
from cvat_sdk import models
from cvat_sdk.masks import decode_mask, encode_mask

# CVAT's skeleton svg: circles are nodes bound to sublabels, lines join nodes.
CAT_SVG = (
    '<line x1="10" y1="10" x2="20" y2="20" data-type="edge" data-node-from="1" data-node-to="2"></line>'
    '<line x1="20" y1="20" x2="20" y2="30" data-type="edge" data-node-from="2" data-node-to="3"></line>'
    '<circle r="1.5" cx="10" cy="10" data-type="element node" data-node-id="1" data-label-name="head"></circle>'
    '<circle r="1.5" cx="20" cy="20" data-type="element node" data-node-id="2" data-label-name="body"></circle>'
    '<circle r="1.5" cx="20" cy="30" data-type="element node" data-node-id="3" data-label-name="tail"></circle>'
)

SPEC = cvat_aa.DetectionFunctionSpec(
    labels=[
        cvat_aa.label_spec(
            "car",
            10,
            type="rectangle",
            attributes=[
                cvat_aa.select_attribute_spec("colour", 0, ["red", "blue"]),
                cvat_aa.checkbox_attribute_spec("parked", 1),
                cvat_aa.number_attribute_spec("doors", 2, ["2", "5", "1"]),
                cvat_aa.text_attribute_spec("note", 3),
            ],
        ),
        cvat_aa.label_spec("road", 11, type="polygon"),
        cvat_aa.label_spec("lane", 12, type="polyline"),
        cvat_aa.label_spec("dot", 13, type="points"),
        cvat_aa.label_spec("blob", 14, type="mask"),
        cvat_aa.skeleton_label_spec(
            "cat",
            15,
            [
                cvat_aa.keypoint_spec("head", 0),
                cvat_aa.keypoint_spec("body", 1),
                cvat_aa.keypoint_spec("tail", 2),
            ],
            svg=CAT_SVG,
        ),
        cvat_aa.label_spec(
            "sunny",
            16,
            type="tag",
            attributes=[cvat_aa.radio_attribute_spec("strength", 0, ["low", "high"])],
        ),
        cvat_aa.label_spec("ball", 17, type="ellipse"),
        cvat_aa.label_spec("crate", 18, type="cuboid"),
    ]
)

KINDS = (
    "rectangle",
    "polygon",
    "polyline",
    "points",
    "mask",
    "skeleton",
    "tag",
    "ellipse",
    "cuboid",
)


def _attribute(spec_id: int, value: str) -> models.AttributeValRequest:
    return models.AttributeValRequest(spec_id=spec_id, value=value)


def sample_annotations(width: int, height: int, kinds: tuple[str, ...] = KINDS) -> list[Any]:
    """One annotation of each kind, fitting a ``width`` x ``height`` image (at least 100 x 100)."""
    bitmap = np.zeros((height, width), dtype=bool)
    bitmap[10:30, 40:70] = True
    bitmap[12, 40] = False
    made = {
        "rectangle": lambda: cvat_aa.rectangle(
            10,
            [5, 6, 50.5, 40.25],
            rotation=30,
            score=0.75,
            attributes=[
                _attribute(0, "blue"),
                _attribute(1, "true"),
                _attribute(2, "3"),
                _attribute(3, 'a <b> & "c"'),
            ],
        ),
        "polygon": lambda: cvat_aa.polygon(
            11, [60, 60, 90, 60, 90, 90, 60, 90], occluded=True, z_order=2, group=4
        ),
        "polyline": lambda: cvat_aa.shape(12, type="polyline", points=[1, 90, 30, 70, 60, 95]),
        "points": lambda: cvat_aa.shape(13, type="points", points=[10, 10, 20, 20]),
        "mask": lambda: cvat_aa.mask(14, encode_mask(bitmap), score=0.5),
        "skeleton": lambda: cvat_aa.skeleton(
            15,
            [
                cvat_aa.keypoint(0, [70, 10]),
                cvat_aa.keypoint(1, [80, 20], occluded=True),
                cvat_aa.keypoint(2, [0, 0], outside=True),
            ],
            score=0.25,
        ),
        "tag": lambda: cvat_aa.tag(16, attributes=[_attribute(0, "high")]),
        "ellipse": lambda: cvat_aa.shape(17, type="ellipse", points=[50, 50, 60, 45], rotation=10),
        "cuboid": lambda: cvat_aa.shape(
            18,
            type="cuboid",
            points=[10, 50, 10, 70, 30, 50, 30, 70, 15, 45, 15, 65, 35, 45, 35, 65],
        ),
    }
    return [made[kind]() for kind in kinds]


class SampleFunction:
    """Outputs one annotation of each of ``kinds`` on every frame."""

    spec = SPEC

    def __init__(self, kinds: tuple[str, ...] = KINDS) -> None:
        self.kinds = kinds

    def detect(self, context: Any, image: Any) -> list[Any]:
        return sample_annotations(image.width, image.height, self.kinds)


def kind_of(annotation: Any) -> str:
    if isinstance(annotation, models.LabeledImageRequest):
        return "tag"
    return str(annotation.type.value)


def _rounded(points: Any) -> list[float]:
    return [round(float(p), 2) for p in points or []]


def _attributes(data: dict[str, Any]) -> list[tuple[int, str]]:
    return sorted((a["spec_id"], a["value"]) for a in data.get("attributes", []))


def view(annotation: Any, *, width: int, height: int) -> dict[str, Any]:
    """Everything an annotation says, in a form that compares across formats.

    Missing fields get the defaults CVAT gives them; coordinates are rounded to two decimals;
    a mask's points are re-encoded tightly (formats may crop differently); an outside
    skeleton point's coordinates are dropped (they mean nothing).
    """
    data = annotation.to_dict()
    result = {
        "kind": kind_of(annotation),
        "label_id": data["label_id"],
        "frame": data["frame"],
        "source": data.get("source"),
        "group": data.get("group") or 0,
        "attributes": _attributes(data),
    }
    if result["kind"] == "tag":
        return result
    points = data.get("points") or []
    if result["kind"] == "mask":
        points = encode_mask(decode_mask(points, image_width=width, image_height=height))
    result.update(
        points=_rounded(points),
        occluded=bool(data.get("occluded", False)),
        z_order=data.get("z_order", 0),
        rotation=round(float(data.get("rotation", 0) or 0), 2),
        score=data.get("score"),
        elements=sorted(
            (
                {
                    "label_id": e["label_id"],
                    "points": None if e.get("outside") else _rounded(e.get("points")),
                    "occluded": bool(e.get("occluded", False)),
                    "outside": bool(e.get("outside", False)),
                    "source": e.get("source"),
                    "attributes": _attributes(e),
                }
                for e in data.get("elements", [])
            ),
            key=lambda e: e["label_id"],
        ),
    )
    return result


def views(annotations: Any, *, without: tuple[str, ...] = ()) -> dict[int, list[dict[str, Any]]]:
    """``view`` of every tag and shape of an AnnotationSet, by frame, leaving out ``without``."""
    result = {}
    for frame in annotations.frames:
        items = []
        for annotation in (*frame.tags, *frame.shapes):
            item = view(annotation, width=frame.width, height=frame.height)
            for key in without:
                item.pop(key, None)
                for element in item.get("elements", []):
                    element.pop(key, None)
            items.append(item)
        result[frame.index] = sorted(items, key=lambda item: (item["kind"], item["label_id"]))
    return result
