"""A scene for tracking tests: coloured squares that move on known paths, and a small
deterministic tracker that finds a square by its colour.

Frames are black; square ``k`` is a ``SIZE`` x ``SIZE`` block of ``COLOURS[k]`` whose top-left
corner on frame ``n`` is ``path(k, n)``, or absent where the path says None (the object left).

The module is a function file too (``cvat-aa track tests/track_scene.py``): :func:`create`
makes the tracker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import cvat_aa
import numpy as np
import PIL.Image

WIDTH, HEIGHT = 96, 64
SIZE = 8
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def default_path(k: int, n: int) -> tuple[int, int] | None:
    """Square 0 moves right and down, square 1 moves left, square 2 stays."""
    if k == 0:
        return (4 + 3 * n, 6 + 2 * n)
    if k == 1:
        return (80 - 2 * n, 40)
    return (40, 50)


Path = Callable[[int, int], "tuple[int, int] | None"]


def frame_image(n: int, squares: int = 1, path: Path = default_path) -> PIL.Image.Image:
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for k in range(squares):
        corner = path(k, n)
        if corner is not None:
            x, y = corner
            pixels[y : y + SIZE, x : x + SIZE] = COLOURS[k]
    return PIL.Image.fromarray(pixels)


def frames(count: int, squares: int = 1, path: Path = default_path) -> list[PIL.Image.Image]:
    return [frame_image(n, squares, path) for n in range(count)]


def box(k: int, n: int, path: Path = default_path) -> list[float]:
    """The true box of square ``k`` on frame ``n``: [x1, y1, x2, y2]."""
    x, y = path(k, n)
    return [float(x), float(y), float(x + SIZE), float(y + SIZE)]


class ColourTracker:
    """Finds the square again by the colour at the centre of its start box; None when that
    colour is gone. Fails on a frame whose top-left pixel is white; takes ``delay`` seconds
    a frame.

    It counts its calls, to check that an image is preprocessed once for all objects.
    """

    spec = cvat_aa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

    def __init__(self, delay: float = 0.0) -> None:
        self.preprocessed = 0
        self.delay = delay

    def preprocess_image(self, context, image):
        self.preprocessed += 1
        time.sleep(self.delay)
        pixels = np.asarray(image.convert("RGB")).astype(int)
        if tuple(pixels[0, 0]) == (255, 255, 255):
            raise RuntimeError("the model ran out of memory")
        return pixels

    def init_tracking_state(self, context, pp_image, shape):
        x1, y1, x2, y2 = shape.points
        centre = pp_image[int((y1 + y2) / 2), int((x1 + x2) / 2)]
        return {"colour": centre}

    def track(self, context, pp_image, state):
        close = np.abs(pp_image - state["colour"]).sum(axis=2) < 60
        ys, xs = np.nonzero(close)
        if len(xs) == 0:
            return None
        return cvat_aa.TrackableShape(
            type="rectangle",
            points=[float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)],
        )


def write_video(path: os.PathLike[str] | str, images: Sequence[PIL.Image.Image]) -> None:
    """Write ``images`` as a lossless video (FFV1; name the file ``*.mkv``), with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height = images[0].size
        stream.pix_fmt = "bgr0"
        for image in images:
            frame = av.VideoFrame.from_image(image).reformat(format="bgr0")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def create(delay: float = 0.0) -> ColourTracker:
    """The tracker; ``TRACK_SCENE_DELAY`` in the environment slows it down without changing
    its parameters (and so the run's journal key)."""
    return ColourTracker(float(os.environ.get("TRACK_SCENE_DELAY", delay)))


def keyframes(track: dict) -> list[tuple[int, bool]]:
    return [(s["frame"], s["outside"]) for s in track["shapes"]]


def off_by(points: Sequence[float], expected: Sequence[float]) -> float:
    return max(abs(a - b) for a, b in zip(points, expected, strict=True))
