"""cvat-aa function ``torchvision_detection``: rectangles from a torchvision detection model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from cvat_aa import DetectionAnnotation, DetectionFunctionContext, rectangle
from cvat_aa_torch import TorchvisionFunction, models_of_kind

if TYPE_CHECKING:
    import torch

__all__ = ["TorchvisionDetectionFunction", "create"]


class TorchvisionDetectionFunction(TorchvisionFunction):
    """Detect objects as rectangles with a torchvision detection model (COCO labels)."""

    model_kind = "detection"
    label_type = "rectangle"

    @classmethod
    def supported_models(cls) -> list[str]:
        import torchvision.models.detection

        return models_of_kind(torchvision.models.detection)

    def to_annotations(
        self, context: DetectionFunctionContext, detections: Mapping[str, torch.Tensor]
    ) -> list[DetectionAnnotation]:
        return [
            rectangle(label, box, score=score)
            for box, label, score in zip(
                detections["boxes"].tolist(),
                detections["labels"].tolist(),
                detections["scores"].tolist(),
                strict=True,
            )
        ]


create = TorchvisionDetectionFunction
