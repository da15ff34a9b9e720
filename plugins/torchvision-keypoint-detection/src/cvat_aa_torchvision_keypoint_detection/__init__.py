"""cvat-aa function ``torchvision_keypoint_detection``: skeletons from a torchvision model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from cvat_aa import (
    DetectionAnnotation,
    DetectionFunctionContext,
    keypoint,
    keypoint_spec,
    skeleton,
    skeleton_label_spec,
)
from cvat_aa_torch import TorchvisionFunction, models_of_kind

if TYPE_CHECKING:
    import torch
    from cvat_sdk import models

__all__ = ["TorchvisionKeypointDetectionFunction", "create"]


class TorchvisionKeypointDetectionFunction(TorchvisionFunction):
    """Detect skeletons with a torchvision keypoint model (COCO person keypoints).

    Each skeleton's points are named by the weights' keypoint names. A keypoint that the model
    marks invisible becomes an occluded point. The points carry their skeleton's score:
    torchvision's per-keypoint scores are unnormalised heatmap values, not confidences.
    """

    model_kind = "keypoint detection"
    label_type = "skeleton"

    @classmethod
    def supported_models(cls) -> list[str]:
        import torchvision.models.detection

        return models_of_kind(
            torchvision.models.detection, builds=torchvision.models.detection.KeypointRCNN
        )

    def label_spec(self, label_id: int, name: str) -> models.PatchedLabelRequest:
        return skeleton_label_spec(
            name,
            label_id,
            [
                keypoint_spec(point_name, point_id)
                for point_id, point_name in enumerate(self.weights.meta["keypoint_names"])
            ],
        )

    def to_annotations(
        self, context: DetectionFunctionContext, detections: Mapping[str, torch.Tensor]
    ) -> list[DetectionAnnotation]:
        return [
            skeleton(
                label,
                [
                    keypoint(point_id, [x, y], occluded=not visibility, score=score)
                    for point_id, (x, y, visibility) in enumerate(points)
                ],
                score=score,
            )
            for points, label, score in zip(
                detections["keypoints"].tolist(),
                detections["labels"].tolist(),
                detections["scores"].tolist(),
                strict=True,
            )
        ]


create = TorchvisionKeypointDetectionFunction
