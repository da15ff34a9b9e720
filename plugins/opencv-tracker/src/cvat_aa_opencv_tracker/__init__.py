"""cvat-aa tracking function ``opencv-tracker``: follows rectangles with classical OpenCV trackers.

CVAT's own trackers (SiamMask, TransT) are deep models that want a GPU and weights files; a
classical tracker runs on any CPU with nothing to download, which is what a first tracker for
a new site, an air-gapped one included, needs. Each rectangle is tracked on its own
(single-object tracking); its state stays in this process, where cvat-aa keeps tracking
states and hands CVAT only their ids.

Two kinds of tracker:

* ``template`` (the default) looks for the object's first appearance near its last place, by
  normalised cross-correlation (``cv2.matchTemplate``), which ignores changes in brightness and
  contrast. It is deterministic: the same frames give the same boxes, in every run.
* OpenCV's own trackers: MIL, in every OpenCV; CSRT, in OpenCV's extra modules only.
  MIL samples patches at random, and ``cv2.setRNGSeed`` does not make it repeat itself, so its
  boxes differ from run to run; on a textured square moving over a blurred background (the
  tests' scene) it drifted off the square in about one run of five while this plugin was
  written. CSRT follows the square, and changes of size, but needs opencv-contrib (see the
  README).
  These trackers do not notice losing their object: MIL reports success on every frame, even
  one that no longer shows it. So each of their boxes is also compared with the object's first
  appearance, and a box that no longer looks like it counts as lost.

A lost object gives None, as cvat-sdk's protocol asks. ``cv2`` is imported at module level: it
loads in a fraction of a second, unlike torch.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import attrs
import cv2
import numpy as np
import PIL.Image
from cvat_aa import (
    TrackableShape,
    TrackingFunctionContext,
    TrackingFunctionShapeContext,
    TrackingFunctionSpec,
)

__all__ = ["ALGORITHMS", "OpenCvTrackerFunction", "TrackingState", "available_algorithms", "create"]

logger = logging.getLogger(__name__)

#: The trackers this function runs, by parameter value: the name of OpenCV's tracker class
#: (None: template matching, done here), and whether OpenCV's main modules (opencv-python,
#: opencv-python-headless) have it. CSRT is in the extra modules only (opencv-contrib-python,
#: opencv-contrib-python-headless). Not KCF, also there: in opencv-contrib 4.14 it reported
#: each object where it had been on the frame before (a frame late, on every frame).
ALGORITHMS: dict[str, tuple[str | None, bool]] = {
    "template": (None, True),
    "mil": ("TrackerMIL", True),
    "csrt": ("TrackerCSRT", False),
}

# Below this standard deviation (grey levels), a patch is flat: it has no pattern to compare.
_FLAT = 1.0
# How far around its last box (a fraction of its size) template matching looks for an object.
_TEMPLATE_SEARCH = 1.0
# How far around an OpenCV tracker's box (a fraction of its larger side) the object's first
# appearance is looked for: trackers place their boxes a pixel or two off.
_CHECK_SEARCH = 0.1


def available_algorithms() -> list[str]:
    """The algorithms that this environment's OpenCV has."""
    return [
        name
        for name, (cls, _) in ALGORITHMS.items()
        if cls is None or hasattr(cv2, f"{cls}_create")
    ]


@attrs.define(eq=False)
class TrackingState:
    """What tracking one rectangle needs: the object's first appearance, its last place, and
    OpenCV's tracker, for the algorithms that have one.

    OpenCV's trackers are C++ objects with no tie to the thread that made them, so a state
    made on one thread may be used on another (``cvat-aa serve`` runs functions on a worker
    thread); the lock keeps two calls from updating one state at once.
    """

    #: The grey-level pixels of the object on the first frame; None when the rectangle had no
    #: pixels inside its frame: it is then never found.
    template: np.ndarray | None
    #: The object's last box in whole pixels: left, top, width, height.
    box: tuple[int, int, int, int]
    #: The rectangle's width and height as CVAT gave them, and in whole pixels.
    size: tuple[float, float]
    start_size: tuple[int, int]
    #: Where the rectangle's top left corner was, less where the pixel box's was.
    offset: tuple[float, float]
    #: OpenCV's tracker (MIL, CSRT); None for template matching.
    tracker: Any = None
    lock: threading.Lock = attrs.field(factory=threading.Lock)


class OpenCvTrackerFunction:
    """Follow rectangles from frame to frame with classical OpenCV trackers (no weights).

    Each rectangle is tracked on its own.

    Parameters (the function's parameters):

    * ``algorithm``: ``template`` (the default: template matching, deterministic), ``mil`` (in
      every OpenCV) or ``csrt`` (needs OpenCV's extra modules, opencv-contrib; see the README).
    * ``min_similarity``: how much, from 0 to 1, the object's new box must look like its first
      appearance (normalised cross-correlation) to count as found. With OpenCV's trackers, 0
      turns the check off, and the object is lost only when the tracker says so.
    """

    spec = TrackingFunctionSpec(supported_shape_types={"rectangle"})

    def __init__(self, algorithm: str = "template", min_similarity: float = 0.4) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(
                f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}, not {algorithm!r}"
            )
        if algorithm not in available_algorithms():
            raise ValueError(
                f"algorithm {algorithm!r} needs OpenCV's extra modules (opencv-contrib), which"
                f" this environment's OpenCV {cv2.__version__} lacks; use algorithm 'template'"
                " or 'mil', or install opencv-contrib-python-headless as the README of"
                " cvat-aa-opencv-tracker describes"
            )
        if (
            type(min_similarity) not in (int, float)
            or not math.isfinite(min_similarity)
            or not 0 <= min_similarity <= 1
        ):
            raise ValueError(f"min_similarity must be a number from 0 to 1, not {min_similarity!r}")
        self.algorithm = algorithm
        self.min_similarity = float(min_similarity)
        tracker_class = ALGORITHMS[algorithm][0]
        self._create_tracker = tracker_class and getattr(cv2, f"{tracker_class}_create")

    def preprocess_image(
        self, context: TrackingFunctionContext, image: PIL.Image.Image
    ) -> np.ndarray:
        """The image as OpenCV wants it: an (H, W, 3) array in BGR order."""
        return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)

    def init_tracking_state(
        self, context: TrackingFunctionShapeContext, pp_image: np.ndarray, shape: TrackableShape
    ) -> TrackingState:
        x1, y1, x2, y2 = shape.points
        height, width = pp_image.shape[:2]
        # Whole pixels, inside the image.
        left, top = max(0, round(x1)), max(0, round(y1))
        right, bottom = min(width, round(x2)), min(height, round(y2))
        box = (left, top, right - left, bottom - top)
        state = TrackingState(
            template=None,
            box=box,
            size=(x2 - x1, y2 - y1),
            start_size=box[2:],
            offset=(x1 - left, y1 - top),
        )
        if box[2] < 1 or box[3] < 1:
            logger.debug(
                "rectangle %s has no pixels in its %dx%d frame", shape.points, width, height
            )
            return state
        state.template = _grey(pp_image)[top:bottom, left:right].copy()
        if self._create_tracker is not None:
            state.tracker = self._create_tracker()
            state.tracker.init(pp_image, box)
        return state

    def track(
        self, context: TrackingFunctionShapeContext, pp_image: np.ndarray, state: TrackingState
    ) -> TrackableShape | None:
        if state.template is None:
            return None
        with state.lock:
            if state.tracker is None:
                box = self._match(pp_image, state)
            else:
                box = self._update(pp_image, state)
            if box is None:
                return None
            state.box = box
        return self._shape(box, state, pp_image.shape)

    def _match(self, image: np.ndarray, state: TrackingState) -> tuple[int, int, int, int] | None:
        """Template matching: where near its last box the object's first appearance is best.

        A flat object has no pattern to look for: it is never found."""
        if state.template.std() < _FLAT:
            return None
        x, y, box_width, box_height = state.box
        margin_x = max(round(box_width * _TEMPLATE_SEARCH), 8)
        margin_y = max(round(box_height * _TEMPLATE_SEARCH), 8)
        found = _best_match(
            image,
            state.template,
            (x - margin_x, y - margin_y),
            (x + box_width + margin_x, y + box_height + margin_y),
        )
        if found is None or found[0] < max(self.min_similarity, 1e-6):
            return None
        _, (left, top) = found
        return (left, top, box_width, box_height)

    def _update(self, image: np.ndarray, state: TrackingState) -> tuple[int, int, int, int] | None:
        """OpenCV's tracker, then the check that its box still shows the object."""
        ok, box = state.tracker.update(image)
        if not ok:
            return None
        left, top, box_width, box_height = (int(v) for v in box)
        if self.min_similarity == 0 or state.template.std() < _FLAT:
            # A flat object has no pattern to recognise: OpenCV's answer stands.
            return (left, top, box_width, box_height)
        if box_width < 1 or box_height < 1:
            return None
        template_height, template_width = state.template.shape
        # At the template's scale, should the tracker have resized the box.
        scale = (template_width / box_width, template_height / box_height)
        margin = max(_CHECK_SEARCH * max(box_width, box_height), 2.0)
        found = _best_match(
            image,
            state.template,
            (left - margin, top - margin),
            (left + box_width + margin, top + box_height + margin),
            scale=scale,
        )
        similarity = -1.0 if found is None else found[0]
        logger.debug("similarity of the box %s to the object: %.3f", box, similarity)
        return (left, top, box_width, box_height) if similarity >= self.min_similarity else None

    @staticmethod
    def _shape(
        box: tuple[int, int, int, int], state: TrackingState, image_shape: tuple[int, ...]
    ) -> TrackableShape | None:
        """The rectangle CVAT gets: the first one's sub-pixel offset kept, scaled with the
        box, and cut to the image."""
        left, top, box_width, box_height = box
        height, width = image_shape[:2]
        first_width, first_height = state.start_size
        x1 = float(left + state.offset[0])
        y1 = float(top + state.offset[1])
        x2 = x1 + state.size[0] * box_width / first_width
        y2 = y1 + state.size[1] * box_height / first_height
        x1, x2 = max(0.0, x1), min(float(width), x2)
        y1, y2 = max(0.0, y1), min(float(height), y2)
        if x2 - x1 < 1 or y2 - y1 < 1:
            return None
        return TrackableShape(type="rectangle", points=[x1, y1, x2, y2])


def _best_match(
    image: np.ndarray,
    template: np.ndarray,
    top_left: tuple[float, float],
    bottom_right: tuple[float, float],
    *,
    scale: tuple[float, float] = (1.0, 1.0),
) -> tuple[float, tuple[int, int]] | None:
    """The best normalised cross-correlation of ``template`` in a region of ``image`` (cut to
    the image, then scaled by ``scale``), and where its top left corner is in the image; None
    when the region is smaller than the template or flat."""
    height, width = image.shape[:2]
    left, top = max(0, round(top_left[0])), max(0, round(top_left[1]))
    right, bottom = min(width, round(bottom_right[0])), min(height, round(bottom_right[1]))
    template_height, template_width = template.shape
    region_size = (round((right - left) * scale[0]), round((bottom - top) * scale[1]))
    if region_size[0] < template_width or region_size[1] < template_height:
        return None
    region = _grey(image)[top:bottom, left:right]
    if scale != (1.0, 1.0):
        region = cv2.resize(region, region_size, interpolation=cv2.INTER_AREA)
    if region.std() < _FLAT:
        return None
    scores = cv2.matchTemplate(region, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(scores)
    return float(best), (left + round(x / scale[0]), top + round(y / scale[1]))


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


create = OpenCvTrackerFunction
