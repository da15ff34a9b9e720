"""cvat-aa interaction function ``segment-anything``: an object's mask from clicks and a box.

Segment Anything splits its work the way cvat-sdk's interaction protocol does: a heavy image
encoder that sees the image alone (``preprocess_image``: the image embedding, which
``cvat-aa serve`` and the agent keep for each frame) and a light decoder that turns the user's
prompts into a mask in milliseconds (``detect``, called again at every click). So a user who
clicks ten times on a frame waits for the encoder once.

The models (MobileSAM, SAM, SAM 2, SAM 2.1) are Ultralytics' implementations, run through its
SAM predictors' public steps (``preprocess``, ``get_im_features``, ``inference_features``),
which take the embedding as an argument: the predictor holds no per-image state here, so one
function serves many frames and threads at once. Weights come from a local file only
(:mod:`.models`). torch and Ultralytics are imported when a function is built, so that
listing the installed functions stays fast.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import attrs
from cvat_aa import (
    InteractionFunctionContext,
    InteractionFunctionSpec,
    InteractionPrompts,
    InteractionResultAttributes,
    InteractionResultShape,
)
from cvat_aa_torch.device import resolve_device

from .models import (
    MODELS,
    build_model,
    find_weights,
    import_ultralytics,
    load_weights,
    model_info,
)

if TYPE_CHECKING:
    import numpy as np
    import PIL.Image
    import torch

__all__ = ["MODELS", "OUTPUTS", "Embedding", "SegmentAnythingFunction", "create"]

logger = logging.getLogger(__name__)

#: What ``output`` may ask for.
OUTPUTS = ("mask", "polygon")

# The side of the square that the models see images at: the size they were trained at.
_INPUT_SIZE = 1024
# How far (pixels) a polygon may stray from its mask's outline (cv2.approxPolyDP).
_POLYGON_TOLERANCE = 1.0


@attrs.frozen(eq=False)
class Embedding:
    """An image as the decoder needs it: the encoder's features, and the image's size."""

    #: A tensor (SAM, MobileSAM) or Ultralytics' dict of tensors (SAM 2), on the model's device.
    features: Any
    #: (width, height) of the image, in pixels.
    size: tuple[int, int]


class SegmentAnythingFunction:
    """Segment the object that the prompts point at, as a mask or a polygon.

    ``sam_model`` is a model that Ultralytics built (``ultralytics.models.sam.build``), with
    its weights; :func:`create` builds one from a weights file. Prompts may be positive points,
    negative points and a box, in any mix (as CVAT's own Segment Anything takes them). With a
    single positive point and nothing else, which can mean several objects, the model gives
    three masks and the one it scores best is kept. Without any positive point or box there is
    nothing to segment and no shape comes back.

    Each shape carries the model's predicted IoU, from 0 to 1, as its confidence
    (``InteractionResultAttributes.CONFIDENCE``).
    """

    spec = InteractionFunctionSpec(min_pos_points=0, min_neg_points=0, min_bounding_boxes=0)

    def __init__(
        self, sam_model: torch.nn.Module, *, output: str = "mask", device: str = "auto"
    ) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        self.output = output
        self.device = resolve_device(device)
        self._predictor = _predictor_for(sam_model, self.device)

    @property
    def model(self) -> torch.nn.Module:
        """The model, on :attr:`device`."""
        return self._predictor.model

    def preprocess_image(
        self, context: InteractionFunctionContext, image: PIL.Image.Image
    ) -> Embedding:
        """The image's embedding: the expensive step, done once per image."""
        import numpy as np
        import torch

        # Ultralytics' predictors take OpenCV's BGR order.
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
        with torch.inference_mode():
            tensor = self._predictor.preprocess([bgr])
            features = self._predictor.get_im_features(tensor)
        return Embedding(features=features, size=image.size)

    def detect(
        self, context: InteractionFunctionContext, pp_image: Embedding, prompts: InteractionPrompts
    ) -> list[InteractionResultShape]:
        import torch

        points = [*prompts.pos_points, *prompts.neg_points]
        labels = [1] * len(prompts.pos_points) + [0] * len(prompts.neg_points)
        box = prompts.bounding_box
        if not prompts.pos_points and box is None:
            return []
        width, height = pp_image.size
        with torch.inference_mode():
            masks, boxes = self._predictor.inference_features(
                pp_image.features,
                src_shape=(height, width),
                dst_shape=(_INPUT_SIZE, _INPUT_SIZE),
                bboxes=None if box is None else [[*box[0], *box[1]]],
                points=[[list(point) for point in points]] if points else None,
                labels=[labels] if points else None,
                # SAM's advice: three guesses for a lone click, which is ambiguous.
                multimask_output=box is None and len(points) == 1,
            )
        if masks is None:
            return []
        best = int(boxes[:, 4].argmax())
        mask = masks[best].cpu().numpy()
        confidence = _confidence(float(boxes[best, 4]))
        shape = self._shape(mask, confidence)
        return [] if shape is None else [shape]

    def _shape(self, mask: np.ndarray, confidence: float) -> InteractionResultShape | None:
        from cvat_sdk import models

        attributes = [
            models.AttributeValRequest(
                spec_id=int(InteractionResultAttributes.CONFIDENCE), value=f"{confidence:.6g}"
            )
        ]
        if self.output == "polygon":
            points = largest_polygon(mask)
        elif mask.any():
            from cvat_sdk.masks import encode_mask

            points = encode_mask(mask)
        else:
            points = None
        if points is None:
            return None
        return InteractionResultShape(type=self.output, points=points, attributes=attributes)


def _confidence(iou: float) -> float:
    # SAM 2 predicts IoU through a sigmoid; SAM's head is linear and may stray out of 0..1.
    return min(max(iou, 0.0), 1.0) if math.isfinite(iou) else 0.0


def largest_polygon(mask: np.ndarray) -> list[float] | None:
    """The outline of the mask's largest part, as flat ``[x1, y1, x2, y2, ...]`` points (OpenCV's
    ``findContours``, simplified within a pixel); None when the mask has no part with an area.
    """
    import cv2
    import numpy as np

    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    contours = [c for c in contours if len(c) >= 3 and cv2.contourArea(c) > 0]
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea)
    simplified = cv2.approxPolyDP(largest, _POLYGON_TOLERANCE, True)
    if len(simplified) < 3:
        simplified = largest
    return simplified.reshape(-1).astype(float).tolist()


def _predictor_for(sam_model: torch.nn.Module, device: torch.device) -> Any:
    """Ultralytics' predictor for ``sam_model``, set up on ``device`` at the models' size.

    Only its stateless steps are used (see the module's docstring).
    """
    import_ultralytics()
    from ultralytics.models.sam.modules.sam import SAM2Model, SAMModel
    from ultralytics.models.sam.predict import Predictor, SAM2Predictor

    if isinstance(sam_model, SAM2Model):
        predictor_class = SAM2Predictor
    elif isinstance(sam_model, SAMModel):
        predictor_class = Predictor
    else:
        raise TypeError(
            f"sam_model must be a SAM or SAM 2 model that Ultralytics built, not a"
            f" {type(sam_model).__name__}"
        )
    import torch

    predictor = predictor_class(
        overrides={"imgsz": _INPUT_SIZE, "device": str(device), "verbose": False, "save": False}
    )
    # Ultralytics' device selection sets torch's thread count (for its training runs) and the
    # current CUDA device, for the whole process: put them back, for the other functions there.
    threads = torch.get_num_threads()
    cuda_device = torch.cuda.current_device() if torch.cuda.is_available() else None
    try:
        predictor.setup_model(sam_model, verbose=False)
    finally:
        torch.set_num_threads(threads)
        if cuda_device is not None:
            torch.cuda.set_device(cuda_device)
    # What a predictor's own source set-up would set; preprocess() resizes images to it.
    predictor.imgsz = [_INPUT_SIZE, _INPUT_SIZE]
    return predictor


def create(
    model: str = "mobile_sam",
    weights: str | None = None,
    output: str = "mask",
    device: str = "auto",
) -> SegmentAnythingFunction:
    """Segment the object that clicks and a box point at, as a mask or polygon (Segment Anything).

    Builds ``model`` with the weights in a local file; the parameters:

    * ``model``: ``mobile_sam`` (the default), ``sam_b``, ``sam_l``, ``sam_h``, ``sam2_t``,
      ``sam2_s``, ``sam2_b``, ``sam2_l`` or ``sam2.1_t`` ... ``sam2.1_l``.
    * ``weights``: the weights file; when not given, Ultralytics' file for the model
      (``mobile_sam.pt``...) in the current directory or in Ultralytics' weights directory.
      Nothing is downloaded.
    * ``output``: ``mask`` (CVAT's interactors show masks) or ``polygon`` (the outline of the
      mask's largest part).
    * ``device``: ``auto`` (the first CUDA device when there is one), ``cpu``, ``cuda`` or
      ``cuda:N``.
    """
    model_info(model)
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    resolve_device(device)
    import_ultralytics()
    path = find_weights(model, weights)
    sam_model = build_model(model)
    load_weights(sam_model, path)
    logger.debug("built %s from %s", model, path)
    return SegmentAnythingFunction(sam_model, output=output, device=device)
