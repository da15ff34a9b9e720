"""cvat-aa function ``torchvision_instance_segmentation``: masks or polygons from Mask R-CNN."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from cvat_aa import DetectionAnnotation, DetectionFunctionContext, mask, polygon
from cvat_aa_torch import TorchvisionFunction, models_of_kind

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["TorchvisionInstanceSegmentationFunction", "create"]

# Mask R-CNN gives each pixel a probability of belonging to the object; pixels at or above
# this level are in the mask.
MASK_LEVEL = 0.5
# How far (in pixels) a simplified polygon may stray from the mask's outline.
POLYGON_TOLERANCE = 2.5


def _is_positively_oriented(contour: np.ndarray) -> bool:
    import numpy as np

    ys, xs = contour.T
    # The sign of the shoelace formula, inverted because the Y axis points down.
    return bool(np.sum(xs * np.roll(ys, -1)) < np.sum(ys * np.roll(xs, -1)))


def mask_polygons(probabilities: np.ndarray) -> Iterator[list[float]]:
    """The outer outlines of a mask, as flat ``[x1, y1, x2, y2, ...]`` polygons.

    ``probabilities`` is an (H, W) array of per-pixel probabilities. Holes are left out:
    positively oriented contours are the insides of holes.
    """
    from skimage import measure

    # Pixels of exactly MASK_LEVEL are in the mask, so find_contours must treat them as high:
    # its level has to be just below MASK_LEVEL.
    for contour in measure.find_contours(probabilities, level=math.nextafter(MASK_LEVEL, 0)):
        if len(contour) < 3 or _is_positively_oriented(contour):
            continue
        simplified = measure.approximate_polygon(contour, tolerance=POLYGON_TOLERANCE)
        if len(simplified) < 3:
            simplified = contour
        yield simplified[:, ::-1].ravel().tolist()


class TorchvisionInstanceSegmentationFunction(TorchvisionFunction):
    """Segment objects as masks with a torchvision Mask R-CNN model (COCO labels).

    When the context asks for ``conv_mask_to_poly``, each mask becomes the polygons of its
    outlines instead (one per separate part; holes are dropped).
    """

    model_kind = "instance segmentation"
    label_type = "mask"

    @classmethod
    def supported_models(cls) -> list[str]:
        import torchvision.models.detection

        return models_of_kind(
            torchvision.models.detection, builds=torchvision.models.detection.MaskRCNN
        )

    def to_annotations(
        self, context: DetectionFunctionContext, detections: Mapping[str, torch.Tensor]
    ) -> list[DetectionAnnotation]:
        from cvat_sdk.masks import encode_mask

        annotations: list[DetectionAnnotation] = []
        for box, probabilities, label, score in zip(
            detections["boxes"].tolist(),
            detections["masks"][:, 0].numpy(),
            detections["labels"].tolist(),
            detections["scores"].tolist(),
            strict=True,
        ):
            if context.conv_mask_to_poly:
                annotations.extend(
                    polygon(label, points, score=score) for points in mask_polygons(probabilities)
                )
            else:
                annotations.append(
                    mask(label, encode_mask(probabilities >= MASK_LEVEL, box), score=score)
                )
        return annotations


create = TorchvisionInstanceSegmentationFunction
