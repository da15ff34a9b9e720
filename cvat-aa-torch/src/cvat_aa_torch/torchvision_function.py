"""The base class of function plugins that run a torchvision model.

The ``torchvision_*`` plugins differ only in which models they accept, the type of their
labels and how one image's detections become annotations; everything else (parameters,
model and weights, the spec, batched inference on the device, the confidence threshold) is
:class:`TorchvisionFunction`'s, so that they all behave alike.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from cvat_aa import (
    DetectionAnnotation,
    DetectionFunctionContext,
    DetectionFunctionSpec,
    label_spec,
)

from .batching import batch_indices, to_device
from .device import resolve_device
from .torchvision_models import build_model
from .weights import resolve_weights, weights_full_name, weights_labels

if TYPE_CHECKING:
    import PIL.Image
    import torch
    from cvat_sdk import models

__all__ = ["TorchvisionFunction"]

logger = logging.getLogger(__name__)


class TorchvisionFunction:
    """Base of a detection function that runs a torchvision model.

    A subclass names the models it supports (:meth:`supported_models`), its label type, and
    how one image's detections become annotations (:meth:`to_annotations`). It may adapt the
    model call (:meth:`forward`), e.g. to turn class scores into one detection.

    Parameters (the plugins' function parameters):

    * ``model_name``: a torchvision model that fits the function, e.g.
      ``fasterrcnn_resnet50_fpn_v2``; an unknown one raises ``ValueError`` listing them.
    * ``weights_name``: the model's weights, e.g. ``COCO_V1``; ``DEFAULT`` is torchvision's
      best. The labels come from their metadata.
    * ``weights_path``: a local file with those weights' state dict, for machines without
      network access; nothing is downloaded. Without it, torchvision loads the weights from
      its cache, downloading them on first use.
    * ``device``: ``auto`` (the first CUDA device when there is one), ``cpu``, ``cuda`` or
      ``cuda:N``.
    * any other keyword goes to the model's constructor, e.g. ``box_score_thresh``.

    The base class resolves the model, weights and device, builds the spec from the weights'
    categories, and implements ``detect`` and ``detect_batch``: inputs go through the
    weights' transforms and run under ``torch.inference_mode`` on the device (see
    :meth:`batches`), and detections scoring below the context's ``conf_threshold`` are
    dropped. Without a threshold, the model's own score threshold applies. Detections of
    classes that are not in the spec (unused "N/A" ids, the background) are dropped too.
    """

    #: Used in messages, e.g. "detection" in "'x' is not a torchvision detection model".
    model_kind: ClassVar[str]
    #: The type of each label in the spec.
    label_type: ClassVar[str]
    #: Whether class id 0 is the background class, which the model never outputs.
    has_background_class: ClassVar[bool] = True

    def __init__(
        self,
        model_name: str,
        weights_name: str = "DEFAULT",
        weights_path: str | os.PathLike[str] | None = None,
        device: str = "auto",
        **model_kwargs: Any,
    ) -> None:
        self.device = resolve_device(device)
        self.weights = resolve_weights(
            model_name, weights_name, valid_models=self.supported_models(), kind=self.model_kind
        )
        self.model = build_model(
            model_name,
            self.weights,
            weights_path=weights_path,
            device=self.device,
            **model_kwargs,
        )
        self.transforms = self.weights.transforms()
        logger.debug(
            "built %s with %s on %s", model_name, weights_full_name(self.weights), self.device
        )

    @classmethod
    def supported_models(cls) -> list[str]:
        """Names of the torchvision models this function can run."""
        raise NotImplementedError

    def label_spec(self, label_id: int, name: str) -> models.PatchedLabelRequest:
        """The spec of one label; subclasses override it to add sublabels."""
        return label_spec(name, label_id, type=self.label_type)

    @cached_property
    def spec(self) -> DetectionFunctionSpec:
        return DetectionFunctionSpec(
            labels=[
                self.label_spec(label_id, name)
                for label_id, name in weights_labels(
                    self.weights, has_background=self.has_background_class
                )
            ]
        )

    def forward(self, batch: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Run the model on transformed same-size images already on the device.

        Returns one dict per image of tensors indexed by detection, with at least ``labels``
        and ``scores``: what torchvision's detection models return, which this default
        implementation passes through.
        """
        return self.model(batch)

    def to_annotations(
        self, context: DetectionFunctionContext, detections: Mapping[str, torch.Tensor]
    ) -> list[DetectionAnnotation]:
        """Turn one image's detections (on the CPU, above the threshold) into annotations."""
        raise NotImplementedError

    def batches(self, inputs: Sequence[torch.Tensor]) -> list[list[int]]:
        """Group transformed inputs (by index) into the batches the model runs on.

        On a GPU, images of the same size run together. Images of different sizes do not:
        the model would pad them to a common size, which changes the detections. On the CPU,
        each image runs alone (see :func:`cvat_aa_torch.batching.batch_indices`). On a GPU,
        batched results can differ from ``detect``'s in the last digits, as batched kernels
        round differently.
        """
        return batch_indices([tuple(tensor.shape) for tensor in inputs], self.device)

    def detect(
        self, context: DetectionFunctionContext, image: PIL.Image.Image
    ) -> list[DetectionAnnotation]:
        return self.detect_batch([context], [image])[0]

    def detect_batch(
        self,
        contexts: Sequence[DetectionFunctionContext],
        images: Sequence[PIL.Image.Image],
    ) -> list[list[DetectionAnnotation]]:
        import torch

        if len(contexts) != len(images):
            raise ValueError(f"got {len(contexts)} contexts for {len(images)} images")
        inputs = [self.transforms(image) for image in images]
        results: list[list[DetectionAnnotation]] = [[] for _ in images]
        with torch.inference_mode():
            for group in self.batches(inputs):
                outputs = self.forward(to_device([inputs[i] for i in group], self.device))
                for index, output in zip(group, outputs, strict=True):
                    detections = self._kept(
                        {key: value.cpu() for key, value in output.items()},
                        contexts[index].conf_threshold,
                    )
                    results[index] = self.to_annotations(contexts[index], detections)
        return results

    @cached_property
    def _label_ids(self) -> torch.Tensor:
        import torch

        return torch.tensor([label.id for label in self.spec.labels])

    def _kept(
        self, detections: Mapping[str, torch.Tensor], conf_threshold: float | None
    ) -> dict[str, torch.Tensor]:
        import torch

        # torchvision's detectors score every class for every box, so at a low score
        # threshold even classes that are no label (unused ids) come up; a function must
        # not return labels outside its spec.
        keep = torch.isin(detections["labels"], self._label_ids)
        if conf_threshold is not None:
            keep &= detections["scores"] >= conf_threshold
        return {key: value[keep] for key, value in detections.items()}
