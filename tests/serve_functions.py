"""Functions that the serve tests run, one per behaviour a gateway must get right.

The tests pass them as objects (or classes, which serve calls as factories), never by name: each
is a plain object with cvat-sdk's methods for its kind, detection (``spec``, ``detect``),
interaction (``spec``, ``detect`` with prompts, maybe ``preprocess_image``) or tracking
(``spec``, ``init_tracking_state``, ``track``, maybe ``preprocess_image``).
"""

from __future__ import annotations

import threading
import time

import cvat_aa
import numpy as np
import PIL.Image
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


# --- interaction and tracking -------------------------------------------------------------------


def _confidence(value: float) -> models.AttributeValRequest:
    return models.AttributeValRequest(
        spec_id=cvat_aa.InteractionResultAttributes.CONFIDENCE, value=str(value)
    )


def _box_of(prompts) -> tuple[int, int, int, int]:
    """The whole-pixel box around the positive points and the box of the prompts."""
    points = list(prompts.pos_points)
    if prompts.bounding_box is not None:
        points += list(prompts.bounding_box)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return int(min(xs)), int(min(ys)), int(max(xs)), int(max(ys))


class BoxOfPoints:
    """An interactor: a mask over the box around the positive points (and the box, if one is
    given), with a confidence; negative points are taken and ignored. It counts the images it
    preprocesses, and the threads it ran on."""

    spec = cvat_aa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=0, min_bounding_boxes=0)

    def __init__(self) -> None:
        self.preprocessed: list[tuple[int, int]] = []
        self.threads: set[int] = {threading.get_ident()}

    def preprocess_image(self, context, image):
        self.preprocessed.append(image.size)
        self.threads.add(threading.get_ident())
        return np.asarray(image)

    def detect(self, context, pp_image, prompts):
        self.threads.add(threading.get_ident())
        height, width = pp_image.shape[:2]
        x1, y1, x2, y2 = _box_of(prompts)
        bitmap = np.zeros((height, width), dtype=bool)
        bitmap[y1 : y2 + 1, x1 : x2 + 1] = True
        return [
            cvat_aa.InteractionResultShape(
                type="mask", points=encode_mask(bitmap), attributes=[_confidence(0.9)]
            )
        ]


class PolygonOfPoints:
    """An interactor that takes three positive points or more, and nothing else, and returns
    the polygon through them."""

    spec = cvat_aa.InteractionFunctionSpec(min_pos_points=3)

    def detect(self, context, image, prompts):
        return [
            cvat_aa.InteractionResultShape(
                type="polygon", points=[c for point in prompts.pos_points for c in point]
            )
        ]


class BoxFirst:
    """An interactor that needs a box and returns it as a rectangle."""

    spec = cvat_aa.InteractionFunctionSpec(min_pos_points=0, min_bounding_boxes=1)

    def detect(self, context, image, prompts):
        (x1, y1), (x2, y2) = prompts.bounding_box
        return [cvat_aa.InteractionResultShape(type="rectangle", points=[x1, y1, x2, y2])]


class RaisingInteractor:
    """Raises when the first positive point is in the frame's top-left 10x10 pixels; else
    returns a rectangle with three coordinates (which breaks the protocol)."""

    spec = cvat_aa.InteractionFunctionSpec(min_pos_points=1)

    def detect(self, context, image, prompts):
        x, y = prompts.pos_points[0]
        if x < 10 and y < 10:
            raise ValueError("the model cannot segment the corner")
        return [cvat_aa.InteractionResultShape(type="rectangle", points=[1, 2, 3])]


def square_frame(x: int, y: int = 10, size: int = 8, frame: tuple[int, int] = (64, 48)):
    """A grey frame with a red ``size``-pixel square whose top-left corner is at (x, y)."""
    image = PIL.Image.new("RGB", frame, (90, 90, 90))
    image.paste((255, 0, 0), (x, y, x + size, y + size))
    return image


class RedSquareTracker:
    """A tracker of rectangles: it finds the red pixels of each frame and answers a rectangle
    of the starting shape's size centred on them (None where there are none). It counts the
    images it preprocesses."""

    spec = cvat_aa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

    def __init__(self) -> None:
        self.preprocessed = 0

    def preprocess_image(self, context, image):
        self.preprocessed += 1
        pixels = np.asarray(image).astype(int)
        return (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)

    def init_tracking_state(self, context, pp_image, shape):
        x1, y1, x2, y2 = shape.points
        return {"width": x2 - x1, "height": y2 - y1}

    def track(self, context, pp_image, state):
        ys, xs = np.nonzero(pp_image)
        if len(xs) == 0:
            return None
        cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
        half_w, half_h = state["width"] / 2, state["height"] / 2
        return cvat_aa.TrackableShape(
            type="rectangle",
            points=[float(cx - half_w), float(cy - half_h), float(cx + half_w), float(cy + half_h)],
        )


class ShiftTracker:
    """A tracker of polygons and rectangles that moves each shape by (3, 1) pixels a frame.
    With ``broken``, it answers a polyline instead; with ``raising``, it raises."""

    spec = cvat_aa.TrackingFunctionSpec(supported_shape_types=["polygon", "rectangle"])

    def __init__(self, broken: bool = False, raising: bool = False) -> None:
        self.broken = broken
        self.raising = raising

    def init_tracking_state(self, context, pp_image, shape):
        return {"type": shape.type, "points": list(shape.points)}

    def track(self, context, pp_image, state):
        if self.raising:
            raise RuntimeError("the tracker lost its footing")
        state["points"] = [p + (3 if i % 2 == 0 else 1) for i, p in enumerate(state["points"])]
        shape_type = "polyline" if self.broken else state["type"]
        return cvat_aa.TrackableShape(type=shape_type, points=state["points"])
