"""Making one shape of each object found on several tiles.

Tiles overlap, so an object near a tile's edge is found on two tiles or more (and on the
shrunk whole frame): whole on one, and perhaps cut off on another. Shapes are matched by the
boxes around them (every shape type has one, see ``geometry.bounding_box``):

* only shapes from *different* tiles are matched: the function already decided what the
  overlaps within one tile mean (its own NMS), and a small object inside a larger one of the
  same label (a face on a poster) is no duplicate;
* per label, unless ``class_agnostic``;
* by overlap over the smaller box (IoS) by default: the part of an object a tile cut off
  lies inside the whole object's box, so its IoS is about 1 where its IoU is only its share
  of the object. IoU is there for functions whose shapes of one object differ more.

Matching is greedy, as non-maximum suppression is: the shape with the highest score (a shape
without one counts as 1) takes every shape that overlaps it by more than the threshold, and is
kept; the shapes it took are dropped (``nms``), or, with ``nmm``, the kept shape's box grows to
cover them where it is an unrotated rectangle and they are too (other types have no box to
grow: the kept shape stays as it is). Between equal scores the larger box goes first: a part
of an object cut off by a tile's edge must not take the whole object.

The overlaps are supervision's (``box_iou_batch``, with its IoU and IoS), measured only
between boxes that touch (found by a sweep along x); its own NMS and NMM compare every pair of
boxes (a matrix of all pairs: hundreds of MB for the thousands of shapes of a large frame) and
order equal scores arbitrarily, so the greedy loop is here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

import attrs
import numpy as np
from cvat_sdk import models

from .geometry import Box

__all__ = ["Found", "merge_duplicates"]


@attrs.frozen
class Found:
    """A shape found on a tile, in the frame's coordinates."""

    shape: models.LabeledShapeRequest
    tile: int
    """Which of the frame's tiles it was found on."""
    box: Box

    @property
    def score(self) -> float:
        score = getattr(self.shape, "score", None)
        return 1.0 if score is None else score

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)

    @property
    def growable(self) -> bool:
        """Whether ``nmm`` may join boxes into this shape: an unrotated rectangle."""
        return self.shape.type.value == "rectangle" and not (
            (getattr(self.shape, "rotation", None) or 0) % 360
        )


def _joined(kept: Found, taken: Sequence[Found]) -> models.LabeledShapeRequest:
    boxes = [kept.box, *(found.box for found in taken if found.growable)]
    shape = kept.shape
    shape.points = [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]
    return shape


def _neighbours(boxes: np.ndarray) -> list[np.ndarray]:
    """For each box, the others it intersects: a sweep along x, so that the cost grows with
    the pairs that touch, not with the square of the shapes (6,000 shapes on a large frame
    would need a 288 MB matrix of all pairs)."""
    order = np.argsort(boxes[:, 0], kind="stable")
    starts = boxes[order, 0]
    # In x order, box k can only touch the boxes that start before it ends.
    ends = np.searchsorted(starts, boxes[order, 2], side="left")
    touching: list[list[int]] = [[] for _ in range(len(boxes))]
    for k, i in enumerate(order):
        later = order[k + 1 : ends[k]]
        hit = later[(boxes[later, 1] < boxes[i, 3]) & (boxes[later, 3] > boxes[i, 1])]
        for j in hit:
            touching[i].append(int(j))
            touching[int(j)].append(int(i))
    return [np.array(sorted(t), dtype=int) for t in touching]


def _greedy(
    found: Sequence[Found],
    *,
    merge: Literal["nms", "nmm"],
    threshold: float,
    metric: Literal["ios", "iou"],
) -> list[tuple[int, models.LabeledShapeRequest]]:
    import supervision as sv

    overlap_metric = sv.OverlapMetric.IOS if metric == "ios" else sv.OverlapMetric.IOU
    boxes = np.array([f.box for f in found], dtype=np.float64).reshape(-1, 4)
    tiles = np.array([f.tile for f in found])
    neighbours = _neighbours(boxes)
    order = sorted(range(len(found)), key=lambda i: (-found[i].score, -found[i].area, i))
    done = np.zeros(len(found), dtype=bool)
    kept: list[tuple[int, models.LabeledShapeRequest]] = []
    for i in order:
        if done[i]:
            continue
        done[i] = True
        others = neighbours[i]
        others = others[(tiles[others] != tiles[i]) & ~done[others]]
        taken = others
        if len(others):
            overlaps = sv.box_iou_batch(
                boxes[i : i + 1], boxes[others], overlap_metric=overlap_metric
            )[0]
            taken = others[overlaps > threshold]
            done[taken] = True
        shape = found[i].shape
        if merge == "nmm" and found[i].growable and len(taken):
            shape = _joined(found[i], [found[j] for j in taken])
        kept.append((i, shape))
    return kept


def merge_duplicates(
    found: Sequence[Found],
    *,
    merge: Literal["nms", "nmm"],
    threshold: float,
    metric: Literal["ios", "iou"],
    class_agnostic: bool,
) -> list[models.LabeledShapeRequest]:
    """One shape per object (see the module's docstring), in the order they were found."""
    groups: defaultdict[int | None, list[int]] = defaultdict(list)
    for index, f in enumerate(found):
        groups[None if class_agnostic else f.shape.label_id].append(index)
    kept: list[tuple[int, models.LabeledShapeRequest]] = []
    for indices in groups.values():
        kept.extend(
            (indices[i], shape)
            for i, shape in _greedy(
                [found[i] for i in indices], merge=merge, threshold=threshold, metric=metric
            )
        )
    return [shape for _, shape in sorted(kept, key=lambda pair: pair[0])]
