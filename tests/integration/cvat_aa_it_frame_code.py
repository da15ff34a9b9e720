"""The serve scenarios' function: every kind of annotation, from a frame number in the pixels.

CVAT's lambda manager sends a Nuclio function the frame's image alone (no name, no number),
so ``it_every_shape``, which reads the number from the frame's name, cannot be served. This
function reads the number from a code that :func:`draw_frame_code` paints into every image the
suite uploads (``workspace.write_images``): black and white 16x16 blocks, aligned to JPEG's
8x8 and 4:2:0 16x16 grid, so that they come back unchanged from CVAT's compressed frames as
from the original files. Its annotations are ``it_every_shape``'s for that number, with a
score on every shape, and some shapes occluded, raised (``z_order``) or grouped, so that
``cvat-aa serve`` behind CVAT and ``cvat-aa annotate`` must leave the same annotations but for
the fields CVAT's lambda manager does not take from a function. The suite installs it as the
plugin ``it_frame_code``.

The code fills the top-left 64x48 pixels, a grid of 4x3 blocks: row 0 holds bits 0-3 of the
number (white is 1), row 1 bits 4-7, and row 2 the complement of row 0 XOR row 1, so that an
image without a code (or with a damaged one) is refused instead of misread.

Factory parameters:

* ``fail_on``: comma-separated frame numbers to raise on;
* ``invalid_on``: comma-separated frame numbers on which to return, besides the usual
  annotations, a rectangle with 3 coordinates (which breaks the protocol).
"""

from __future__ import annotations

import cvat_aa
import numpy as np
import PIL.Image
from cvat_aa_it_functions import CAR, CONFIDENCE, SPEC, annotations_for
from cvat_sdk import models

BLOCK = 16
COLUMNS, ROWS = 4, 3
CODE_SIZE = (COLUMNS * BLOCK, ROWS * BLOCK)
MAX_FRAME = 255


def _rows(n: int) -> list[list[bool]]:
    low = [bool(n >> bit & 1) for bit in range(4)]
    high = [bool(n >> (bit + 4) & 1) for bit in range(4)]
    check = [not (a ^ b) for a, b in zip(low, high, strict=True)]
    return [low, high, check]


def draw_frame_code(image: PIL.Image.Image, n: int) -> PIL.Image.Image:
    """Paints frame number ``n`` (0-255) into the top-left 64x48 pixels of ``image``."""
    if not 0 <= n <= MAX_FRAME:
        raise ValueError(f"frame number {n} does not fit the frame code (0-{MAX_FRAME})")
    if image.width < CODE_SIZE[0] or image.height < CODE_SIZE[1]:
        raise ValueError(f"a {image.width}x{image.height} image is smaller than the code")
    for row, bits in enumerate(_rows(n)):
        for column, bit in enumerate(bits):
            box = (column * BLOCK, row * BLOCK, (column + 1) * BLOCK, (row + 1) * BLOCK)
            image.paste((255, 255, 255) if bit else (0, 0, 0), box)
    return image


def read_frame_code(image: PIL.Image.Image) -> int:
    """The frame number that :func:`draw_frame_code` painted into ``image``."""
    gray = np.asarray(image.convert("L"), dtype=float)
    if gray.shape[1] < CODE_SIZE[0] or gray.shape[0] < CODE_SIZE[1]:
        raise ValueError(f"a {image.width}x{image.height} frame is too small to carry a code")
    rows = []
    for row in range(ROWS):
        bits = []
        for column in range(COLUMNS):
            # The block's middle: its edges are where compression blurs.
            y, x = row * BLOCK + 4, column * BLOCK + 4
            mean = gray[y : y + BLOCK - 8, x : x + BLOCK - 8].mean()
            if 64 <= mean <= 192:
                raise ValueError(
                    f"block ({column}, {row}) of the frame code is neither black nor white"
                )
            bits.append(bool(mean > 192))
        rows.append(bits)
    n = sum(bit << i for i, bit in enumerate(rows[0])) + sum(
        bit << (i + 4) for i, bit in enumerate(rows[1])
    )
    if rows != _rows(n):
        raise ValueError("the frame carries no valid frame code (its check row is wrong)")
    return n


def frame_code_annotations(n: int) -> dict[str, list]:
    """``it_every_shape``'s annotations of frame ``n``, each shape with its label's confidence
    as its score; the first car and the person grouped, the second car occluded on even
    frames, the roof above the rest."""
    found = annotations_for(n)
    for name, of_label in found.items():
        for annotation in of_label:
            if isinstance(annotation, models.LabeledShapeRequest):  # tags have no score
                annotation.score = CONFIDENCE[name]
    first_car, second_car = found["car"]
    first_car.group = found["person"][0].group = 1
    second_car.occluded = n % 2 == 0
    found["roof"][0].z_order = 1
    return found


class FrameCode:
    spec = SPEC

    def __init__(self, fail_on: str = "", invalid_on: str = "") -> None:
        self.fail_on = {int(n) for n in fail_on.split(",") if n}
        self.invalid_on = {int(n) for n in invalid_on.split(",") if n}

    def detect(self, context, image):
        n = read_frame_code(image)
        if n in self.fail_on:
            raise RuntimeError(f"the model cannot read frame {n}")
        threshold = getattr(context, "conf_threshold", None) or 0.0
        out = []
        for name, found in frame_code_annotations(n).items():
            if CONFIDENCE[name] >= threshold:
                out.extend(found)
        if n in self.invalid_on:
            out.append(cvat_aa.rectangle(CAR, [1, 2, 3]))
        return out


def create(fail_on: str = "", invalid_on: str = "") -> FrameCode:
    """Every annotation type, from a frame number painted into the frame (see the module doc)."""
    return FrameCode(fail_on=fail_on, invalid_on=invalid_on)
