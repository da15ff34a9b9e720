"""An interaction function: the region of similar colour around the user's click, as a mask.

CVAT calls an interaction function each time the user clicks: the same frame, one more point
each time. So the work that does not depend on the clicks (here, reading the image into an
array) goes in ``preprocess_image``, which cvat-aa runs once per frame and caches; ``detect``
gets that array back with the clicks (the *prompts*).

The function grows a region from each positive point over the connected pixels whose colour
differs from the point's by at most ``tolerance`` in every channel, takes away the regions
grown from negative points, and keeps to the bounding box when the user drew one. It returns
one mask (CVAT's UI shows only masks from interactors), built with
``cvat_sdk.masks.encode_mask`` from a bitmap the size of the image.
"""

from __future__ import annotations

import cvat_aa
import numpy as np
import PIL.Image
import PIL.ImageDraw
from cvat_sdk import models
from cvat_sdk.masks import encode_mask

__all__ = ["ColourRegionFunction", "create"]

_FILLED = 128  # what the flood fill paints over the similar (255) pixels it reaches


class ColourRegionFunction:
    """Finds the region of similar colour around the positive points. Build it with
    :func:`create`."""

    # Declared here too: cvat-aa reads the kind from this annotation (through create's return
    # annotation) to list the function without building it.
    spec: cvat_aa.InteractionFunctionSpec

    def __init__(self, *, tolerance: int) -> None:
        # At least one positive point; negative points and a bounding box are optional.
        self.spec = cvat_aa.InteractionFunctionSpec(
            min_pos_points=1, min_neg_points=0, min_bounding_boxes=0
        )
        self._tolerance = tolerance

    def preprocess_image(
        self, context: cvat_aa.InteractionFunctionContext, image: PIL.Image.Image
    ) -> np.ndarray:
        """The image as a (height, width, 3) array; cvat-aa keeps it for the next clicks."""
        return np.asarray(image.convert("RGB"), dtype=np.int16)

    def detect(
        self,
        context: cvat_aa.InteractionFunctionContext,
        pp_image: np.ndarray,
        prompts: cvat_aa.InteractionPrompts,
    ) -> list[cvat_aa.InteractionResultShape]:
        """One mask: the regions grown from the positive points, less those grown from the
        negative points, within the bounding box if there is one; nothing if that is empty."""
        allowed = np.zeros(pp_image.shape[:2], dtype=bool)
        if prompts.bounding_box is None:
            allowed[:] = True
        else:
            (x1, y1), (x2, y2) = prompts.bounding_box
            allowed[int(y1) : int(np.ceil(y2)), int(x1) : int(np.ceil(x2))] = True
        region = np.zeros_like(allowed)
        for point in prompts.pos_points:
            region |= self._grow(pp_image, allowed, point)
        for point in prompts.neg_points:
            region &= ~self._grow(pp_image, allowed, point)
        if not region.any():
            return []
        # The points come from cvat-sdk's encoder; cvat-aa checks they fit the image.
        return [
            cvat_aa.InteractionResultShape(
                type="mask",
                points=encode_mask(region),
                attributes=[
                    models.AttributeValRequest(
                        spec_id=cvat_aa.InteractionResultAttributes.CONFIDENCE, value="1"
                    )
                ],
            )
        ]

    def _grow(
        self, pixels: np.ndarray, allowed: np.ndarray, point: tuple[float, float]
    ) -> np.ndarray:
        """The allowed pixels of similar colour connected to ``point``."""
        height, width = allowed.shape
        x, y = int(point[0]), int(point[1])
        if not (0 <= x < width and 0 <= y < height) or not allowed[y, x]:
            return np.zeros_like(allowed)
        similar = (np.abs(pixels - pixels[y, x]).max(axis=2) <= self._tolerance) & allowed
        # A copy: an image made from an array shares its (read-only) memory.
        canvas = PIL.Image.fromarray(similar.astype(np.uint8) * 255).copy()
        PIL.ImageDraw.floodfill(canvas, (x, y), _FILLED)
        return np.asarray(canvas) == _FILLED


def create(tolerance: int = 20) -> ColourRegionFunction:
    """Click an object: the region of similar colour around the click, as a mask (no weights)."""
    if not 0 <= tolerance <= 255:
        raise ValueError(f"tolerance must be from 0 to 255, not {tolerance}")
    return ColourRegionFunction(tolerance=tolerance)
