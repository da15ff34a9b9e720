"""cvat-aa function ``torchvision_classification``: a tag from a torchvision classifier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from cvat_aa import DetectionAnnotation, DetectionFunctionContext, tag
from cvat_aa_torch import TorchvisionFunction, models_of_kind

if TYPE_CHECKING:
    import torch

__all__ = ["TorchvisionClassificationFunction", "create"]


class TorchvisionClassificationFunction(TorchvisionFunction):
    """Tag each image with its most likely class from a torchvision classifier (ImageNet).

    The class's probability is compared with the confidence threshold; tags have no score
    field in CVAT's API, so it is not recorded.
    """

    model_kind = "classification"
    label_type = "tag"
    has_background_class = False

    @classmethod
    def supported_models(cls) -> list[str]:
        import torchvision.models

        return models_of_kind(torchvision.models)

    def forward(self, batch: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        import torch

        probabilities = self.model(torch.stack(batch)).softmax(dim=1)
        labels = probabilities.argmax(dim=1, keepdim=True)
        scores = probabilities.gather(1, labels)
        return [
            {"labels": image_labels, "scores": image_scores}
            for image_labels, image_scores in zip(labels, scores, strict=True)
        ]

    def to_annotations(
        self, context: DetectionFunctionContext, detections: Mapping[str, torch.Tensor]
    ) -> list[DetectionAnnotation]:
        return [tag(label) for label in detections["labels"].tolist()]


create = TorchvisionClassificationFunction
