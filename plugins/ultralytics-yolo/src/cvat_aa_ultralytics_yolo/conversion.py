"""Turning one image's Ultralytics ``Results`` into CVAT annotations, one function per task.

Ultralytics gives boxes, rotated boxes, keypoints and polygons in the original image's pixels;
masks come at the model's input resolution and are scaled here. Every shape carries the
model's confidence in ``score``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cvat_aa import DetectionAnnotation, keypoint, mask, polygon, rectangle, skeleton, tag

if TYPE_CHECKING:
    from cvat_sdk import models
    from ultralytics.engine.results import Results

__all__ = [
    "KEYPOINT_VISIBILITY",
    "MASK_LEVEL",
    "masks",
    "polygons",
    "rectangles",
    "rotated_rectangles",
    "skeletons",
    "tags",
]

#: A keypoint whose confidence is below this is marked occluded. Ultralytics' pose models
#: learn the confidence as the probability that the point is labelled in the image (COCO's
#: visibility 1 or 2); below one half, the model rather thinks that it cannot be seen.
KEYPOINT_VISIBILITY = 0.5
#: Scaling a mask to the original image blends its pixels; those at or above this are in it.
MASK_LEVEL = 0.5


def rectangles(result: Results) -> list[DetectionAnnotation]:
    """A rectangle per detected box (detection models)."""
    boxes = result.boxes.cpu()
    return [
        rectangle(int(label), box, score=score)
        for box, label, score in zip(
            boxes.xyxy.tolist(), boxes.cls.tolist(), boxes.conf.tolist(), strict=True
        )
    ]


def rotated_rectangles(result: Results) -> list[DetectionAnnotation]:
    """A rectangle with ``rotation`` per oriented box (OBB models).

    CVAT stores a rotated rectangle as the unrotated box around its centre and the rotation in
    degrees, clockwise on screen (the image's y axis points down). Ultralytics' angle, in
    radians, turns the box's width axis from x towards y: the same direction.
    """
    obb = result.obb.cpu()
    annotations: list[DetectionAnnotation] = []
    for (cx, cy, width, height, angle), label, score in zip(
        obb.xywhr.tolist(), obb.cls.tolist(), obb.conf.tolist(), strict=True
    ):
        rotation = math.degrees(angle) % 360
        annotations.append(
            rectangle(
                int(label),
                [cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2],
                # A tiny negative angle wraps to exactly 360.0 in floating point.
                rotation=0.0 if rotation >= 360 else rotation,
                score=score,
            )
        )
    return annotations


def masks(result: Results) -> list[DetectionAnnotation]:
    """A mask per detected object (segmentation models), in the original image's pixels.

    Each mask is scaled from the model's input to the original image with Ultralytics' own
    helper (undoing the letterbox), one at a time to bound memory on large images. A mask that
    vanishes at the original resolution is left out.
    """
    from cvat_sdk.masks import encode_mask
    from ultralytics.utils import ops

    if result.masks is None:
        return []
    annotations: list[DetectionAnnotation] = []
    for data, label, score in zip(
        result.masks.data, result.boxes.cls.tolist(), result.boxes.conf.tolist(), strict=True
    ):
        scaled = ops.scale_masks(data[None, None].float(), result.orig_shape)[0, 0]
        bitmap = (scaled >= MASK_LEVEL).cpu().numpy()
        if bitmap.any():
            annotations.append(mask(int(label), encode_mask(bitmap), score=score))
    return annotations


def polygons(result: Results) -> list[DetectionAnnotation]:
    """A polygon per detected object (segmentation models, when ``conv_mask_to_poly``).

    The polygons are Ultralytics' outlines of the masks (``masks.xy``): an object in several
    parts gets one polygon that joins them. Outlines with fewer than 3 points are left out.
    """
    if result.masks is None:
        return []
    return [
        polygon(int(label), outline.ravel().tolist(), score=score)
        for outline, label, score in zip(
            result.masks.xy, result.boxes.cls.tolist(), result.boxes.conf.tolist(), strict=True
        )
        if len(outline) >= 3
    ]


def skeletons(result: Results) -> list[DetectionAnnotation]:
    """A skeleton per detected object (pose models), its points in keypoint order.

    A point scoring below :data:`KEYPOINT_VISIBILITY` is occluded. Points carry their own
    confidence, or their skeleton's when the model predicts none (2-value keypoints).
    """
    if result.keypoints is None:
        return []
    boxes, keypoints = result.boxes.cpu(), result.keypoints.cpu()
    point_scores = (
        keypoints.conf.tolist() if keypoints.has_visible else [None] * len(keypoints.data)
    )
    return [
        skeleton(int(label), _keypoints(points, scores, score), score=score)
        for points, scores, label, score in zip(
            keypoints.xy.tolist(),
            point_scores,
            boxes.cls.tolist(),
            boxes.conf.tolist(),
            strict=True,
        )
    ]


def _keypoints(
    points: Sequence[Sequence[float]], scores: Sequence[float] | None, skeleton_score: float
) -> list[models.SubLabeledShapeRequest]:
    if scores is None:
        return [
            keypoint(point_id, list(xy), occluded=False, score=skeleton_score)
            for point_id, xy in enumerate(points)
        ]
    return [
        keypoint(point_id, list(xy), occluded=score < KEYPOINT_VISIBILITY, score=score)
        for point_id, (xy, score) in enumerate(zip(points, scores, strict=True))
    ]


def tags(result: Results, conf_threshold: float | None) -> list[DetectionAnnotation]:
    """A tag for the most likely class (classification models).

    With a threshold, the tag is left out when that class's probability is below it. Tags
    have no score field in CVAT's API, so the probability is not recorded.
    """
    probs = result.probs
    if probs is None or (conf_threshold is not None and float(probs.top1conf) < conf_threshold):
        return []
    return [tag(int(probs.top1))]
