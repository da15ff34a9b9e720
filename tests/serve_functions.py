"""Functions that the serve tests run, one per behaviour a gateway must get right.

They are loaded by module name (``--function serve_functions``... is not used: the tests pass
objects), so each is a plain object with ``spec`` and ``detect``.
"""

from __future__ import annotations

import threading
import time

import cvat_aa
import numpy as np
from cvat_sdk import models
from cvat_sdk.masks import encode_mask

SKELETON_SVG = (
    '<line x1="10" y1="10" x2="50" y2="50" data-type="edge" data-node-from="1" data-node-to="2">'
    '</line><circle r="0.75" cx="10" cy="10" data-type="element node" data-element-id="1"'
    ' data-node-id="1" data-label-name="head"></circle><circle r="0.75" cx="50" cy="50"'
    ' data-type="element node" data-element-id="2" data-node-id="2" data-label-name="tail">'
    "</circle>"
)


class EveryKind:
    """A rectangle with attributes, a polygon, points, a mask, a skeleton and a tag, placed
    relative to the frame's size; scores below the threshold are left out."""

    spec = cvat_aa.DetectionFunctionSpec(
        labels=[
            cvat_aa.label_spec(
                "car",
                0,
                type="rectangle",
                attributes=[
                    cvat_aa.select_attribute_spec("color", 0, ["red", "blue"]),
                    cvat_aa.number_attribute_spec("doors", 1, ["2", "5", "1"]),
                ],
            ),
            cvat_aa.label_spec("lake", 1, type="polygon"),
            cvat_aa.label_spec("spot", 2, type="points"),
            cvat_aa.label_spec("blob", 3, type="mask"),
            cvat_aa.skeleton_label_spec(
                "animal",
                4,
                [cvat_aa.keypoint_spec("head", 0), cvat_aa.keypoint_spec("tail", 1)],
                svg=SKELETON_SVG,
            ),
            cvat_aa.label_spec("night", 5, type="tag"),
        ]
    )

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def detect(self, context, image):
        width, height = image.size
        bitmap = np.zeros((height, width), dtype=bool)
        bitmap[10:20, 30:45] = True
        out = [
            cvat_aa.rectangle(
                0,
                [1, 2, width - 1, height / 2],
                score=0.9,
                attributes=[
                    models.AttributeValRequest(spec_id=0, value="blue"),
                    models.AttributeValRequest(spec_id=1, value="4"),
                ],
            ),
            cvat_aa.polygon(1, [0, 0, 20, 0, 20, 20], score=0.3),
            cvat_aa.shape(2, type="points", points=[5, 6, 7, 8], score=0.8),
            cvat_aa.skeleton(
                4,
                [cvat_aa.keypoint(0, [10, 12]), cvat_aa.keypoint(1, [30, 32], outside=True)],
                score=0.6,
            ),
            cvat_aa.tag(5),
        ]
        if width >= 45 and height >= 20:
            out.append(cvat_aa.mask(3, encode_mask(bitmap, [30, 10, 45, 20]), score=0.7))
        threshold = context.conf_threshold or 0
        return [a for a in out if (getattr(a, "score", None) or 1) >= threshold]


class Batching:
    """Records the size of every batch; each call takes ``delay`` seconds."""

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("thing", 0)])

    def __init__(self, delay: float = 0.2) -> None:
        self.delay = delay
        self.batches: list[int] = []
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()

    def detect_batch(self, contexts, images):
        with self.lock:
            self.batches.append(len(images))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1
        return [
            [cvat_aa.rectangle(0, [0, 0, image.width / 2, image.height / 2])] for image in images
        ]

    def detect(self, context, image):
        return self.detect_batch([context], [image])[0]


class Raising:
    """Raises on images whose top-left pixel is pure red, and finds nothing on the others."""

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("thing", 0)])

    def detect(self, context, image):
        if image.getpixel((0, 0)) == (255, 0, 0):
            raise ValueError("the model cannot take red frames")
        return [cvat_aa.rectangle(0, [1, 1, 5, 5])]

    def detect_batch(self, contexts, images):
        return [self.detect(c, i) for c, i in zip(contexts, images, strict=True)]


class Invalid:
    """Returns a rectangle with three coordinates."""

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("thing", 0)])

    def detect(self, context, image):
        return [models.LabeledShapeRequest(type="rectangle", frame=0, label_id=0, points=[1, 2, 3])]
