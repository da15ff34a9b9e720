"""The video-tracks scenarios' detector: a box for each coloured square of tests/track_scene.py.

Red squares are cars, green ones cyclists, each with a score of 0.9. A frame whose top-left
pixel is white makes it raise (a run that fails there). ``SQUARES_DELAY`` (seconds a frame)
slows it down, so that a run can be killed while it goes on. The module is a function file:
``cvat-aa annotate TASK --function-file cvat_aa_it_squares.py --tracks``.
"""

from __future__ import annotations

import os
import time

import cvat_aa
import numpy as np

COLOURS = {0: (255, 0, 0), 1: (0, 255, 0)}

spec = cvat_aa.DetectionFunctionSpec(
    labels=[
        cvat_aa.label_spec("car", 0, type="rectangle"),
        cvat_aa.label_spec("cyclist", 1, type="rectangle"),
    ]
)


def detect(context, image):
    time.sleep(float(os.environ.get("SQUARES_DELAY", "0")))
    pixels = np.asarray(image.convert("RGB")).astype(int)
    if (pixels[0, 0] == 255).all():
        raise RuntimeError(f"a white pixel on {context.frame_name}")
    found = []
    for label, colour in COLOURS.items():
        # CVAT's compressed frames change colours a little.
        near = np.abs(pixels - np.array(colour)).sum(axis=-1) < 120
        ys, xs = np.nonzero(near)
        if len(xs) >= 16:
            box = [float(xs.min()), float(ys.min()), xs.max() + 1.0, ys.max() + 1.0]
            found.append(cvat_aa.rectangle(label, box, score=0.9))
    return found
