"""A large frame of small squares at known places, a detector that misses small objects as real
ones do, and functions that return what a test tells them to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import cvat_aa
import numpy as np
import PIL.Image
import scipy.ndimage
from cvat_sdk import models

SQUARE = 0
LABELS = [cvat_aa.label_spec("square", SQUARE, type="rectangle")]

FRAME = (2000, 1500)
TILE = 640
"""With the default overlap (0.2, 128 pixels) the tiles start at x 0, 512, 1024, 1360 and at
y 0, 512, 860: tile edges lie at x 512, 640, 1024, 1152, 1360, 1536 and y 512, 640, 860, 1152."""

DETECTOR_WIDTH = 640
SMALLEST = 12
"""The detector finds squares of at least this many of its input's pixels (after shrinking)."""


def _across_edges() -> list[tuple[int, int, int]]:
    """Squares that tile edges cut: some mostly on one side, some evenly split."""
    return [
        (630, 100, 16),  # 10 px left of x 640: too little on tile 0 to be found there
        (625, 300, 20),  # 15 px on tile 0: found there cut off, and whole on tile 1
        (505, 200, 18),  # across x 512
        (1146, 150, 14),  # across x 1152
        (1355, 400, 20),  # across x 1360
        (1530, 250, 12),  # across x 1536
        (300, 632, 16),  # across y 640
        (800, 505, 20),  # across y 512
        (1100, 855, 18),  # across y 860
        (1700, 1146, 15),  # across y 1152
        (634, 634, 14),  # across x 640 and y 640
        (1020, 1020, 16),  # across x 1024 and y 1024
        # Larger ones, of which a tile shows a strip: IoU with the whole square about 0.33.
        (1138, 1300, 44),  # 14 px left of x 1152
        (626, 1000, 42),  # 14 px left of x 640
    ]


def _scattered(count: int, sizes: tuple[int, int], seed: int, taken: list) -> list:
    rng = np.random.default_rng(seed)
    squares: list[tuple[int, int, int]] = []
    while len(squares) < count:
        size = int(rng.integers(*sizes, endpoint=True))
        x = int(rng.integers(10, FRAME[0] - size - 10))
        y = int(rng.integers(10, FRAME[1] - size - 10))
        # 30 px apart at least: neighbours must not touch when shrunk.
        if all(
            x + size + 30 < ox or ox + osize + 30 < x or y + size + 30 < oy or oy + osize + 30 < y
            for ox, oy, osize in taken + squares
        ):
            squares.append((x, y, size))
    return squares


def scene_squares() -> list[tuple[int, int, int]]:
    """(x, y, side) of each square: 14 across tile edges, 36 small ones scattered (12 to 20
    px) and 8 medium ones (40 to 48 px, which the detector finds on the whole frame too)."""
    squares = _across_edges()
    squares += _scattered(36, (12, 20), seed=1, taken=squares)
    squares += _scattered(8, (40, 48), seed=2, taken=squares)
    return squares


def draw(size: tuple[int, int], squares: Sequence[tuple[int, int, int]]) -> PIL.Image.Image:
    """White squares on black."""
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    for x, y, side in squares:
        pixels[y : y + side, x : x + side] = 255
    return PIL.Image.fromarray(pixels)


def truth_boxes(squares: Sequence[tuple[int, int, int]]) -> np.ndarray:
    return np.array([(x, y, x + side, y + side) for x, y, side in squares], dtype=float)


class SquareDetector:
    """Finds white squares as a real detector finds objects: it shrinks its input to 640
    pixels across and finds only those at least 12 of those pixels wide and tall. Each call's
    image sizes are kept in ``calls``."""

    spec = cvat_aa.DetectionFunctionSpec(labels=LABELS)

    def __init__(self) -> None:
        self.calls: list[list[tuple[int, int]]] = []

    def detect_batch(self, contexts: Sequence[Any], images: Sequence[PIL.Image.Image]) -> list:
        self.calls.append([image.size for image in images])
        return [self._find(image) for image in images]

    def detect(self, context: Any, image: PIL.Image.Image) -> list:
        return self.detect_batch([context], [image])[0]

    def _find(self, image: PIL.Image.Image) -> list[models.LabeledShapeRequest]:
        shrink = min(1.0, DETECTOR_WIDTH / image.width)
        seen = image.convert("L")
        if shrink < 1:
            size = (round(image.width * shrink), round(image.height * shrink))
            seen = seen.resize(size, PIL.Image.Resampling.BILINEAR)
        components, _ = scipy.ndimage.label(np.asarray(seen) > 127)
        found = []
        for rows, columns in scipy.ndimage.find_objects(components):
            if min(rows.stop - rows.start, columns.stop - columns.start) < SMALLEST:
                continue
            box = [columns.start, rows.start, columns.stop, rows.stop]
            found.append(cvat_aa.rectangle(SQUARE, [c / shrink for c in box], score=0.9))
        return found


@attrs.define
class ByTile:
    """Returns ``results[n]`` (built anew each time) for the n-th image it is given, and
    nothing once they run out; keeps each call's contexts and image sizes."""

    results: Sequence[Callable[[], list]]
    labels: Sequence[models.PatchedLabelRequest] = LABELS
    calls: list[list[tuple[Any, tuple[int, int]]]] = attrs.field(factory=list)

    @property
    def spec(self) -> cvat_aa.DetectionFunctionSpec:
        return cvat_aa.DetectionFunctionSpec(labels=self.labels)

    def detect_batch(self, contexts: Sequence[Any], images: Sequence[PIL.Image.Image]) -> list:
        given = sum(len(call) for call in self.calls)
        self.calls.append([(c, image.size) for c, image in zip(contexts, images, strict=True)])
        return [
            self.results[given + n]() if given + n < len(self.results) else []
            for n in range(len(images))
        ]

    def detect(self, context: Any, image: PIL.Image.Image) -> list:
        return self.detect_batch([context], [image])[0]


def context(name: str = "frame.png", **kwargs: Any) -> cvat_aa.FrameContext:
    return cvat_aa.FrameContext(frame_name=name, **kwargs)
