"""The integration suite's function: every kind of annotation, computed from the frame number.

Its output depends on nothing but the frame's number (parsed from the frame's name, which is
``frame_000123.png`` for the suite's images and ``frame_000123`` for any video frame), never on
the pixels, so the annotations a run uploads can be checked exactly, and a video that the
server re-encodes gives the same results. The suite installs it as the plugin
``it_every_shape`` (a distribution written into a temporary folder) and also uses it by file.

Factory parameters let one function play every part a scenario needs:

* ``only``: comma-separated label names to output (default: all of them);
* ``delay``: seconds to sleep per frame, so a run can be killed half-way;
* ``fail_on``: comma-separated frame numbers to raise on;
* ``touch``: a file to create when ``detect`` first runs, to see whether any work was done;
* ``kind``: ``interaction`` or ``tracking`` for the serve scenarios' interactor and tracker
  (:class:`BoxOfPoints`, with ``result`` ``mask`` or ``polygon``; :class:`FrameCodeTracker`)
  instead of the detection function.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import cvat_aa
import numpy as np
from cvat_sdk import models
from cvat_sdk.masks import encode_mask

#: The confidence of each label's annotations: with ``--conf-threshold 0.5`` the ones below it
#: ("spot", "lane") are left out by the function, as cvat-sdk's protocol asks.
CONFIDENCE = {
    "car": 0.9,
    "roof": 0.8,
    "lane": 0.4,
    "spot": 0.3,
    "wheel": 0.7,
    "stain": 0.6,
    "person": 0.95,
    "night": 0.85,
}

CAR, ROOF, LANE, SPOT, WHEEL, STAIN, PERSON, NIGHT = range(8)
HEAD, FOOT = 0, 1
COLOR, PARKED, DOORS, PLATE, MAKE = range(5)
CLOUDY = 0

SPEC = cvat_aa.DetectionFunctionSpec(
    labels=[
        cvat_aa.label_spec(
            "car",
            CAR,
            type="rectangle",
            attributes=[
                cvat_aa.select_attribute_spec("color", COLOR, ["red", "green", "blue"]),
                cvat_aa.checkbox_attribute_spec("parked", PARKED),
                cvat_aa.number_attribute_spec("doors", DOORS, ["2", "5", "1"]),
                cvat_aa.text_attribute_spec("plate", PLATE),
                cvat_aa.radio_attribute_spec("make", MAKE, ["acme", "zenith"]),
            ],
        ),
        cvat_aa.label_spec("roof", ROOF, type="polygon"),
        cvat_aa.label_spec("lane", LANE, type="polyline"),
        cvat_aa.label_spec("spot", SPOT, type="points"),
        cvat_aa.label_spec("wheel", WHEEL, type="ellipse"),
        cvat_aa.label_spec("stain", STAIN, type="mask"),
        cvat_aa.skeleton_label_spec(
            "person",
            PERSON,
            [cvat_aa.keypoint_spec("head", HEAD), cvat_aa.keypoint_spec("foot", FOOT)],
        ),
        cvat_aa.label_spec(
            "night",
            NIGHT,
            type="tag",
            attributes=[cvat_aa.checkbox_attribute_spec("cloudy", CLOUDY)],
        ),
    ]
)

_FRAME_NUMBER = re.compile(r"frame_(\d+)")


def frame_number(frame_name: str) -> int:
    match = _FRAME_NUMBER.search(frame_name)
    if match is None:
        raise ValueError(f"frame name {frame_name!r} has no frame number")
    return int(match.group(1))


def annotations_for(n: int) -> dict[str, list]:
    """Every label's annotations on frame ``n``, keyed by label name (fits a 64x48 frame)."""
    bitmap = np.zeros((48, 64), dtype=bool)
    bitmap[10 : 14 + n % 4, 20 + n % 5 : 26] = True
    return {
        "car": [
            cvat_aa.rectangle(
                CAR,
                [1 + n, 2, 11 + n, 12],
                attributes=[
                    _attribute(COLOR, ["red", "green", "blue"][n % 3]),
                    _attribute(PARKED, "true" if n % 2 else "false"),
                    _attribute(DOORS, str(2 + n % 4)),
                    _attribute(PLATE, f"IT-{n}"),
                    _attribute(MAKE, "zenith" if n % 2 else "acme"),
                ],
            ),
            cvat_aa.rectangle(CAR, [30, 20, 40, 30 + n % 5], rotation=15.0 * (n % 3)),
        ],
        "roof": [cvat_aa.polygon(ROOF, [2, 30, 12 + n, 30, 7, 40])],
        "lane": [cvat_aa.shape(LANE, type="polyline", points=[0, 47, 20, 20 + n, 63, 0])],
        "spot": [cvat_aa.shape(SPOT, type="points", points=[5, 5, 6 + n, 7])],
        "wheel": [cvat_aa.shape(WHEEL, type="ellipse", points=[50, 10, 55 + n % 3, 6])],
        "stain": [cvat_aa.mask(STAIN, encode_mask(bitmap))],
        "person": [
            cvat_aa.skeleton(
                PERSON,
                [
                    cvat_aa.keypoint(HEAD, [40, 2 + n % 3]),
                    cvat_aa.keypoint(FOOT, [42, 20], outside=n % 2 == 1),
                ],
            )
        ],
        "night": [cvat_aa.tag(NIGHT, attributes=[_attribute(CLOUDY, "true")])] if n % 2 else [],
    }


def _attribute(spec_id: int, value: str) -> models.AttributeValRequest:
    return models.AttributeValRequest(spec_id=spec_id, value=value)


class EveryShape:
    spec = SPEC

    def __init__(
        self, only: str = "", delay: float = 0.0, fail_on: str = "", touch: str = ""
    ) -> None:
        self.only = {name for name in only.split(",") if name}
        self.delay = delay
        self.fail_on = {int(n) for n in fail_on.split(",") if n}
        self.touch = Path(touch) if touch else None

    def detect(self, context, image):
        if self.touch is not None:
            self.touch.touch()
        n = frame_number(context.frame_name)
        if self.delay:
            time.sleep(self.delay)
        if n in self.fail_on:
            raise RuntimeError(f"the model cannot read frame {n}")
        threshold = getattr(context, "conf_threshold", None) or 0.0
        out = []
        for name, found in annotations_for(n).items():
            if (self.only and name not in self.only) or CONFIDENCE[name] < threshold:
                continue
            out.extend(found)
        return out


class BoxOfPoints:
    """An interactor: the box around the positive points (and the box, if one is given), as a
    mask or a polygon; negative points are taken and ignored."""

    spec = cvat_aa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=0, min_bounding_boxes=0)

    def __init__(self, result: str = "mask") -> None:
        if result not in ("mask", "polygon"):
            raise ValueError(f"result must be mask or polygon, not {result!r}")
        self.result = result

    def detect(self, context, image, prompts):
        points = list(prompts.pos_points)
        if prompts.bounding_box is not None:
            points += list(prompts.bounding_box)
        x1, y1 = int(min(p[0] for p in points)), int(min(p[1] for p in points))
        x2, y2 = int(max(p[0] for p in points)), int(max(p[1] for p in points))
        if self.result == "polygon":
            return [
                cvat_aa.InteractionResultShape(
                    type="polygon", points=[x1, y1, x2, y1, x2, y2, x1, y2]
                )
            ]
        bitmap = np.zeros((image.height, image.width), dtype=bool)
        bitmap[y1 : y2 + 1, x1 : x2 + 1] = True
        return [cvat_aa.InteractionResultShape(type="mask", points=encode_mask(bitmap))]


TRACKER_STEP = 3
"""Pixels :class:`FrameCodeTracker` moves a shape right per frame."""


class FrameCodeTracker:
    """A tracker of rectangles and polygons: it moves a shape :data:`TRACKER_STEP` pixels right
    for every frame after the one tracking started on, both read from the frame code (see
    cvat_aa_it_frame_code), so its answers depend on the frames CVAT sends and nothing else."""

    spec = cvat_aa.TrackingFunctionSpec(supported_shape_types=["rectangle", "polygon"])

    def init_tracking_state(self, context, image, shape):
        from cvat_aa_it_frame_code import read_frame_code

        return {"start": read_frame_code(image), "points": list(shape.points)}

    def track(self, context, image, state):
        from cvat_aa_it_frame_code import read_frame_code

        shift = TRACKER_STEP * (read_frame_code(image) - state["start"])
        return cvat_aa.TrackableShape(
            type=context.original_shape_type,
            points=[p + (shift if i % 2 == 0 else 0) for i, p in enumerate(state["points"])],
        )


def create(
    only: str = "",
    delay: float = 0.0,
    fail_on: str = "",
    touch: str = "",
    kind: str = "detection",
    result: str = "mask",
) -> EveryShape | BoxOfPoints | FrameCodeTracker:
    """Every annotation type, computed from the frame number (see the module docstring)."""
    if kind == "interaction":
        return BoxOfPoints(result)
    if kind == "tracking":
        return FrameCodeTracker()
    if kind != "detection":
        raise ValueError(f"kind must be detection, interaction or tracking, not {kind!r}")
    return EveryShape(only=only, delay=delay, fail_on=fail_on, touch=touch)
