"""cvat-aa function ``ultralytics_yolo``: annotations from an Ultralytics YOLO model.

What it returns depends on the model's task: rectangles (detection), rotated rectangles
(oriented boxes), masks or polygons (segmentation), skeletons (pose) or tags (classification).
Ultralytics, torch and numpy are imported only when a function is built, so that listing the
installed functions stays fast.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from cvat_aa import (
    DetectionAnnotation,
    DetectionFunctionContext,
    DetectionFunctionSpec,
    keypoint_spec,
    label_spec,
    skeleton_label_spec,
)
from cvat_aa_torch.batching import batch_indices
from cvat_aa_torch.device import resolve_device

from . import conversion
from .loading import keypoint_names, load_model

if TYPE_CHECKING:
    import PIL.Image
    from cvat_sdk import models
    from ultralytics.engine.results import Results

__all__ = ["LABEL_TYPES", "UltralyticsYoloFunction", "create"]

logger = logging.getLogger(__name__)

# Scores are float32, about 6e-8 apart near 1.
_CONF_MARGIN = 1e-6

#: The CVAT label type of each Ultralytics task that this function runs.
LABEL_TYPES = {
    "detect": "rectangle",
    "obb": "rectangle",
    "segment": "mask",
    "pose": "skeleton",
    "classify": "tag",
}


class UltralyticsYoloFunction:
    """Annotate with an Ultralytics YOLO model: boxes, rotated boxes, masks, skeletons or tags.

    Parameters (the function's parameters):

    * ``model``: a local ``.pt`` weights file (nothing is downloaded), or the name of a stock
      Ultralytics model, e.g. ``yolov8n.pt``, ``yolo11n-seg.pt``, which Ultralytics downloads
      into the current directory on first use.
    * ``device``: ``auto`` (the first CUDA device when there is one), ``cpu``, ``cuda`` or
      ``cuda:N``.
    * ``imgsz``: the size the model sees images at; the model's own when not given.
    * ``iou``: the IoU above which non-maximum suppression merges boxes; Ultralytics' default
      (0.7) when not given.

    The labels are the model's class names (its ids are the label ids), typed by its task. The
    context's ``conf_threshold`` is the model's confidence threshold; without one,
    Ultralytics' default (0.25) applies. Classification models tag an image with their most
    likely class, when its probability reaches the threshold (always without one).
    """

    def __init__(
        self,
        model: str = "yolov8n.pt",
        device: str = "auto",
        imgsz: int | None = None,
        iou: float | None = None,
    ) -> None:
        _check_options(imgsz, iou)
        self.device = resolve_device(device)
        self.model = load_model(model)
        self.task: str = self.model.task
        if self.task not in LABEL_TYPES:
            raise ValueError(
                f"model {os.fspath(model)!r} is a {self.task!r} model; this function runs"
                f" {', '.join(LABEL_TYPES)} models"
            )
        self._predict_args: dict[str, Any] = {"device": self.device, "verbose": False}
        if imgsz is not None:
            self._predict_args["imgsz"] = imgsz
        if iou is not None:
            self._predict_args["iou"] = iou
        logger.debug("loaded %s model %s on %s", self.task, model, self.device)

    @cached_property
    def spec(self) -> DetectionFunctionSpec:
        return DetectionFunctionSpec(
            labels=[self._label_spec(label_id, name) for label_id, name in self.model.names.items()]
        )

    def _label_spec(self, label_id: int, name: str) -> models.PatchedLabelRequest:
        if self.task == "pose":
            return skeleton_label_spec(
                name,
                label_id,
                [
                    keypoint_spec(point_name, point_id)
                    for point_id, point_name in enumerate(self._keypoint_names[label_id])
                ],
            )
        return label_spec(name, label_id, type=LABEL_TYPES[self.task])

    @cached_property
    def _keypoint_names(self) -> dict[int, list[str]]:
        return keypoint_names(self.model)

    def detect(
        self, context: DetectionFunctionContext, image: PIL.Image.Image
    ) -> list[DetectionAnnotation]:
        return self.detect_batch([context], [image])[0]

    def detect_batch(
        self,
        contexts: Sequence[DetectionFunctionContext],
        images: Sequence[PIL.Image.Image],
    ) -> list[list[DetectionAnnotation]]:
        if len(contexts) != len(images):
            raise ValueError(f"got {len(contexts)} contexts for {len(images)} images")
        results: list[list[DetectionAnnotation]] = [[] for _ in images]
        for group in self.batches(contexts, images):
            conf_threshold = contexts[group[0]].conf_threshold
            predictions = self.predict([images[i] for i in group], conf_threshold)
            for index, prediction in zip(group, predictions, strict=True):
                results[index] = self.to_annotations(contexts[index], prediction)
        return results

    def batches(
        self, contexts: Sequence[DetectionFunctionContext], images: Sequence[PIL.Image.Image]
    ) -> list[list[int]]:
        """Group frames (by index) into the batches the model runs on.

        On a GPU, frames of the same size and threshold run together. Frames of different
        sizes do not: Ultralytics would pad them to a common square, which changes the
        detections, while a single frame or same-size frames are padded only to the model's
        stride. On the CPU, each frame runs alone: batching does not make CPU inference faster,
        and batched kernels may round differently, so only this is sure to give exactly
        ``detect``'s results.
        """
        keys = [
            (image.size, context.conf_threshold)
            for context, image in zip(contexts, images, strict=True)
        ]
        return batch_indices(keys, self.device)

    def predict(
        self, images: Sequence[PIL.Image.Image], conf_threshold: float | None
    ) -> list[Results]:
        """Run the model on RGB images; one ``Results`` per image, in the same order.

        With a threshold, the results may still hold detections scoring a hair below it;
        :meth:`to_annotations` drops them.
        """
        args = dict(self._predict_args)
        # Classification has no confidence threshold in Ultralytics; to_annotations applies it.
        if conf_threshold is not None and self.task != "classify":
            # Ultralytics keeps scores above its `conf`, the protocol those at the threshold
            # too: asking for a little less (more than float32 rounding) keeps them all.
            args["conf"] = max(conf_threshold - _CONF_MARGIN, 0.0)
        return self.model.predict(list(images), **args)

    def to_annotations(
        self, context: DetectionFunctionContext, result: Results
    ) -> list[DetectionAnnotation]:
        """Turn one image's ``Results`` into annotations, as the model's task asks.

        Detections scoring below the context's threshold are dropped first.
        """
        if self.task == "classify":
            return conversion.tags(result, context.conf_threshold)
        result = self._above_threshold(result, context.conf_threshold)
        if self.task == "segment":
            if getattr(context, "conv_mask_to_poly", False):
                return conversion.polygons(result)
            return conversion.masks(result)
        if self.task == "obb":
            return conversion.rotated_rectangles(result)
        if self.task == "pose":
            return conversion.skeletons(result)
        return conversion.rectangles(result)

    def _above_threshold(self, result: Results, conf_threshold: float | None) -> Results:
        if conf_threshold is None:
            return result
        detections = result.obb if self.task == "obb" else result.boxes
        if detections is None:
            return result
        # In float64, as the threshold is: float32 would round it.
        keep = detections.conf.double() >= conf_threshold
        return result if bool(keep.all()) else result[keep]


def _check_options(imgsz: object, iou: object) -> None:
    # bool is an int subclass, but True pixels is a mistake.
    if imgsz is not None and (type(imgsz) is not int or imgsz <= 0):
        raise ValueError(f"imgsz must be a positive whole number of pixels, not {imgsz!r}")
    if iou is not None and (type(iou) not in (int, float) or not 0 <= iou <= 1):
        raise ValueError(f"iou must be a number from 0 to 1, not {iou!r}")


create = UltralyticsYoloFunction
