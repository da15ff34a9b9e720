"""What sliced inference (plugins/sliced-inference) costs beyond the extra model calls.

The function is an oracle that knows where every object is and answers for a tile at once
(no model): so the time measured is the wrapper's own. Three rows per case, each the median
of ``--repeat`` frames, measured side by side in one run:

* ``floor``: cutting the frame's tiles and calling the oracle on each (what any tiling must
  do; a real detector's time on the tiles comes on top of it);
* ``sliced``: ``SlicedDetection`` on the frame: the same, plus mapping every shape back to
  the frame and merging the duplicates across tiles;
* the wrapper's overhead is ``sliced - floor``, per frame and per object found.

Prints a table and writes JSON (``--json``). Run: ``.venv/bin/python
benchmarks/sliced_overhead.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import cvat_aa
import numpy as np
import PIL.Image
from cvat_aa.interface import FrameContext
from cvat_aa_sliced_inference import SlicedDetection
from cvat_aa_sliced_inference.tiles import frame_tiles

SIZE = 12  # pixels across an object


class Oracle:
    """Boxes every object that lies whole in the image it is given, by the image's offset in
    the frame (``offsets``: the tile each image is, in order of the calls)."""

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("thing", 0)])

    def __init__(self, corners: np.ndarray) -> None:
        self.corners = corners
        self.offsets: list[tuple[int, int, int, int]] = []

    def detect(self, context, image):
        left, top, right, bottom = self.offsets.pop(0)
        x, y = self.corners[:, 0], self.corners[:, 1]
        inside = (x >= left) & (y >= top) & (x + SIZE <= right) & (y + SIZE <= bottom)
        scale_x = image.width / (right - left)
        scale_y = image.height / (bottom - top)
        return [
            cvat_aa.rectangle(
                0,
                [
                    (cx - left) * scale_x,
                    (cy - top) * scale_y,
                    (cx + SIZE - left) * scale_x,
                    (cy + SIZE - top) * scale_y,
                ],
                score=0.9,
            )
            for cx, cy in self.corners[inside]
        ]


def tile_boxes(width: int, height: int, tile: int, overlap: float) -> list[tuple[int, ...]]:
    return [
        (t.x, t.y, t.x + t.width, t.y + t.height)
        for t in frame_tiles(width, height, tile=tile, overlap=overlap, whole_frame=False)
    ]


def measure(width: int, height: int, objects: int, tile: int, overlap: float, repeat: int):
    rng = np.random.default_rng(0)
    corners = np.stack(
        [rng.integers(0, width - SIZE, objects), rng.integers(0, height - SIZE, objects)], axis=1
    )
    image = PIL.Image.new("RGB", (width, height))
    context = FrameContext(frame_name="frame", conf_threshold=None, conv_mask_to_poly=False)
    boxes = tile_boxes(width, height, tile, overlap)
    oracle = Oracle(corners)
    sliced = SlicedDetection(oracle, tile=tile, overlap=overlap)

    floor, wrapped, found = [], [], 0
    oracle.offsets = list(boxes)
    sliced.detect_batch([context], [image])  # warm up: the first call imports the merging
    for _ in range(repeat):
        oracle.offsets = list(boxes)
        started = time.perf_counter()
        for box in boxes:
            oracle.detect(context, image.crop(box))
        floor.append(time.perf_counter() - started)

        oracle.offsets = list(boxes)
        started = time.perf_counter()
        [result] = sliced.detect_batch([context], [image])
        wrapped.append(time.perf_counter() - started)
        found = len(result)
    floor_s, sliced_s = statistics.median(floor), statistics.median(wrapped)
    return {
        "frame": f"{width}x{height}",
        "objects": objects,
        "tile": tile,
        "overlap": overlap,
        "tiles": len(boxes),
        "found": found,
        "floor_ms": round(1000 * floor_s, 2),
        "sliced_ms": round(1000 * sliced_s, 2),
        "overhead_ms": round(1000 * (sliced_s - floor_s), 2),
        "overhead_us_per_object": round(1e6 * (sliced_s - floor_s) / max(found, 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("sliced_overhead.json"))
    args = parser.parse_args()
    cases = [
        (1920, 1080, 50, 640, 0.2),
        (4000, 3000, 400, 640, 0.2),
        (4000, 3000, 2000, 640, 0.2),
        (8000, 6000, 2000, 1024, 0.25),
    ]
    rows = [measure(*case, args.repeat) for case in cases]
    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))
    args.json.write_text(
        json.dumps({"machine": platform.platform(), "cpu": platform.processor(), "rows": rows})
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
