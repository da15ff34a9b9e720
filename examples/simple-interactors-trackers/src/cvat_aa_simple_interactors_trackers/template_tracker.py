"""A tracking function: it follows a rectangle by matching the pixels it held on the first frame.

A tracking function works in two steps. ``init_tracking_state`` looks at the first frame and
the shape and returns a *state*: here, the grey pixels inside the rectangle (the template)
and where the rectangle is. ``track`` gets a later frame and that state and returns where the
shape is now: here, the place within ``search`` pixels of the last one where the frame's
pixels differ least from the template. It may change the state (the rectangle's position),
and it returns ``None`` when the object is lost (the best place still differs by more than
``max_difference`` grey levels on average). cvat-aa keeps the states; CVAT gets opaque ids.

``preprocess_image`` (grey levels as floats) runs once per frame, for all the shapes tracked
on it. The search is exhaustive and numpy only: fine for an example and small moves; a real
tracker would use OpenCV (see the cvat-aa-opencv-tracker plugin).
"""

from __future__ import annotations

import math

import attrs
import cvat_aa
import numpy as np
import PIL.Image

__all__ = ["TemplateTracker", "create"]


@attrs.define
class TemplateState:
    """What the tracker keeps for one rectangle."""

    template: np.ndarray
    """The grey pixels the rectangle held on the first frame (whole pixels inside it)."""
    left: int
    top: int
    """Where the template's top left corner is now."""
    corners: tuple[float, float, float, float]
    """The rectangle's corners relative to (left, top): its own, unrounded, geometry."""


class TemplateTracker:
    """Follows rectangles by template matching. Build it with :func:`create`."""

    # Declared here too: cvat-aa reads the kind from this annotation (through create's return
    # annotation) to list the function without building it.
    spec: cvat_aa.TrackingFunctionSpec

    def __init__(self, *, search: int, max_difference: float) -> None:
        self.spec = cvat_aa.TrackingFunctionSpec(supported_shape_types=["rectangle"])
        self._search = search
        self._max_difference = max_difference

    def preprocess_image(
        self, context: cvat_aa.TrackingFunctionContext, image: PIL.Image.Image
    ) -> np.ndarray:
        """The frame's grey levels, once for every shape tracked on it."""
        return np.asarray(image.convert("L"), dtype=np.float32)

    def init_tracking_state(
        self,
        context: cvat_aa.TrackingFunctionShapeContext,
        pp_image: np.ndarray,
        shape: cvat_aa.TrackableShape,
    ) -> TemplateState:
        x1, y1, x2, y2 = shape.points
        height, width = pp_image.shape
        left, top = max(math.ceil(x1), 0), max(math.ceil(y1), 0)
        right, bottom = min(math.floor(x2), width), min(math.floor(y2), height)
        # .copy(): the state must not hold on to the frame (the caller may reuse it).
        template = pp_image[top:bottom, left:right].copy()
        return TemplateState(template, left, top, (x1 - left, y1 - top, x2 - left, y2 - top))

    def track(
        self,
        context: cvat_aa.TrackingFunctionShapeContext,
        pp_image: np.ndarray,
        state: TemplateState,
    ) -> cvat_aa.TrackableShape | None:
        found = self._best_offset(pp_image, state)
        if found is None:
            return None
        state.left += found[0]
        state.top += found[1]
        x1, y1, x2, y2 = state.corners
        return cvat_aa.TrackableShape(
            type="rectangle",
            points=[state.left + x1, state.top + y1, state.left + x2, state.top + y2],
        )

    def _best_offset(self, pixels: np.ndarray, state: TemplateState) -> tuple[int, int] | None:
        """The move (dx, dy) after which the template fits best, or None if nothing fits."""
        h, w = state.template.shape
        if h == 0 or w == 0:
            return None
        height, width = pixels.shape
        best, best_score = None, math.inf
        span = range(-self._search, self._search + 1)
        # Nearest moves first, so that a tie (a plain background) keeps the rectangle still.
        for dx, dy in sorted(
            ((dx, dy) for dx in span for dy in span), key=lambda d: d[0] ** 2 + d[1] ** 2
        ):
            left, top = state.left + dx, state.top + dy
            if left < 0 or top < 0 or left + w > width or top + h > height:
                continue
            score = float(np.abs(pixels[top : top + h, left : left + w] - state.template).mean())
            if score < best_score:
                best, best_score = (dx, dy), score
        return best if best_score <= self._max_difference else None


def create(search: int = 16, max_difference: float = 40.0) -> TemplateTracker:
    """Follow rectangles by template matching, numpy only (no weights)."""
    if search < 0:
        raise ValueError(f"search must be 0 or more pixels, not {search}")
    if max_difference < 0:
        raise ValueError(f"max_difference must be 0 or more grey levels, not {max_difference}")
    return TemplateTracker(search=search, max_difference=max_difference)
