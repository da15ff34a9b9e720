"""What the tests of cvat-aa-video-tracks share: labels, shapes, a synthetic scene with known
identities, and CVAT's reading of a rectangle track (what it shows on each frame)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import attrs
import numpy as np
from cvat_aa.labels import AttributeInfo, LabelCatalog, LabelInfo
from cvat_aa.result_stages import FrameResult, StageRun, StageTrack
from cvat_aa_video_tracks import cvat_aa_result_stage
from cvat_sdk import models

WIDTH, HEIGHT = 640, 480
CAR, PERSON, POSE = 1, 2, 3
COLOR, MOVING = 10, 11
HEAD, HAND = 31, 32

LABELS = LabelCatalog(
    (
        LabelInfo(
            id=CAR,
            name="car",
            type="any",
            attributes=(
                AttributeInfo(id=COLOR, name="color", input_type="text", mutable=False),
                AttributeInfo(id=MOVING, name="moving", input_type="checkbox", mutable=True),
            ),
        ),
        LabelInfo(id=PERSON, name="person", type="any"),
        LabelInfo(
            id=POSE,
            name="pose",
            type="skeleton",
            sublabels=(
                LabelInfo(id=HEAD, name="head", type="points"),
                LabelInfo(id=HAND, name="hand", type="points"),
            ),
        ),
    )
)


def stage_for(*, stop_frame: int | None = None, **options):
    """A stage for a task run with ``tracks`` on and the other options as given."""
    run = StageRun(
        target="task",
        target_id=1,
        options={"tracks": True, **options},
        labels=LABELS,
        stop_frame=stop_frame,
    )
    stage = cvat_aa_result_stage(run=run)
    assert stage is not None
    return stage


def shape(shape_type: str, label_id: int, frame: int, points: Sequence[float], **fields):
    """A shape as the pipeline hands it to a stage: mapped, on its frame, with a source."""
    return models.LabeledShapeRequest(
        type=shape_type,
        label_id=label_id,
        frame=frame,
        points=[float(p) for p in points],
        source="auto",
        **fields,
    )


def rectangle(frame: int, box: Sequence[float], label_id: int = CAR, **fields):
    return shape("rectangle", label_id, frame, box, **fields)


def frame_result(frame: int, shapes: Iterable = (), tags: Iterable = ()) -> FrameResult:
    return FrameResult(frame, (WIDTH, HEIGHT), tags=list(tags), shapes=list(shapes))


def run_stage(stage, frames: Sequence[FrameResult], batch: int | None = None):
    """Every output frame and every track of ``frames`` given in batches of ``batch``."""
    batch = batch or max(len(frames), 1)
    outputs, tracks = [], []
    for start in range(0, len(frames), batch):
        output = stage.add(frames[start : start + batch])
        assert [f.frame for f in output.frames] == [f.frame for f in frames[start : start + batch]]
        outputs.extend(output.frames)
        tracks.extend(output.tracks)
    tracks.extend(stage.finish())
    return outputs, tracks


def as_data(tracks: Sequence[StageTrack]) -> list[tuple[str, dict]]:
    """Tracks as plain data, to compare runs."""
    return [(t.key, t.track.to_dict()) for t in tracks]


def _angle_difference(right: float, left: float) -> float:
    difference = ((right - left + 180) % 360) - 180
    if abs(difference) >= 180:
        difference = 360 - abs(difference) * -1 if difference > 0 else 1
    return difference


def cvat_shows(track: models.LabeledTrackRequest, end_frame: int) -> dict[int, tuple]:
    """What CVAT shows of a rectangle track on each frame before ``end_frame``: (points,
    rotation) by frame; written after ``TrackManager.get_interpolated_shapes`` (CVAT's
    ``cvat/apps/dataset_manager/annotation.py``): linear between keyframes unless the earlier
    one is outside, the last visible keyframe carried on to the end."""
    keyframes = sorted(track.shapes, key=lambda s: s.frame)
    shown: dict[int, tuple] = {}
    for before, after in zip(keyframes, keyframes[1:] + [None], strict=True):
        if before.outside:
            continue
        stop = end_frame if after is None else after.frame
        for frame in range(before.frame, min(stop, end_frame)):
            if after is None or frame == before.frame:
                shown[frame] = (list(before.points), before.rotation)
                continue
            offset = (frame - before.frame) / (after.frame - before.frame)
            points = [
                a + (b - a) * offset for a, b in zip(before.points, after.points, strict=True)
            ]
            turn = _angle_difference(after.rotation, before.rotation)
            shown[frame] = (points, (before.rotation + turn * offset + 360) % 360)
    return shown


@attrs.frozen
class Walker:
    """One object of the synthetic scene: where its box is on each frame it is in view."""

    identity: int
    first: int
    last: int
    path: Callable[[int], tuple[float, float]]
    """Frame -> the box's centre."""
    size: tuple[float, float] = (40.0, 40.0)

    def box(self, frame: int) -> tuple[float, float, float, float]:
        x, y = self.path(frame)
        w, h = self.size
        return (x - w / 2, y - h / 2, x + w / 2, y + h / 2)


def _circle(frame: int) -> tuple[float, float]:
    angle = frame / 100 * 2 * math.pi
    return (460 + 110 * math.cos(angle), 260 + 80 * math.sin(angle))


APART = (
    Walker(1, 0, 99, lambda f: (30 + 5.5 * f, 60)),  # straight, across the whole video
    Walker(2, 0, 99, _circle),  # round and round: curved
    Walker(3, 20, 70, lambda f: (100 + 4 * (f - 20), 250 + 3 * (f - 20))),  # enters and leaves
)
"""Objects whose paths never meet."""

CROSSING = (
    *APART,
    Walker(4, 10, 89, lambda f: (80 + 6 * (f - 10), 420)),  # left to right
    Walker(5, 10, 89, lambda f: (560 - 6 * (f - 10), 414)),  # right to left, behind it mid-way
    Walker(6, 40, 99, lambda f: (600 - 4 * (f - 40), 185)),  # through the circling one's path
)
"""The same, two more that cross on almost the same line (around frame 50; where the later one
is mostly behind the other, the detector does not see it), and one that crosses the circling
one's path while it goes round (around frame 75)."""


@attrs.frozen
class Scene:
    frames: list[FrameResult]
    truth: list[dict[int, tuple[float, ...]]]
    """Each frame's true boxes by identity."""


def scene(walkers: Sequence[Walker], *, frames: int = 100, seed: int = 0) -> Scene:
    """Detections of ``walkers``: boxes off by a pixel or two, each missed at random one time
    in 25 and always when mostly hidden by an earlier walker, and a false detection on one
    frame in twelve."""
    rng = np.random.default_rng(seed)
    results, truth = [], []
    for frame in range(frames):
        true = {w.identity: w.box(frame) for w in walkers if w.first <= frame <= w.last}
        shapes = []
        for identity, box in true.items():
            if rng.random() < 0.04 or _hidden(identity, true):
                continue
            noisy = np.asarray(box) + rng.normal(0, 1.0, 4)
            shapes.append(rectangle(frame, noisy, score=float(rng.uniform(0.6, 1.0))))
        if frame % 12 == 5:
            x, y = rng.uniform(50, 550), rng.uniform(50, 400)
            shapes.append(rectangle(frame, (x, y, x + 30, y + 30), score=0.7))
        results.append(frame_result(frame, shapes))
        truth.append(true)
    return Scene(results, truth)


def _hidden(identity: int, true: dict[int, tuple[float, ...]]) -> bool:
    from trackers.eval import box_ioa

    mine = np.array([true[identity]])
    return any(
        box_ioa(mine, np.array([box]))[0, 0] > 0.5
        for other, box in true.items()
        if other < identity
    )


def mot_figures(scene_: Scene, tracks: Sequence[StageTrack]) -> dict:
    """CLEAR MOT figures of what CVAT shows of ``tracks`` against the scene's true boxes."""
    from trackers.eval import box_iou, compute_clear_metrics

    shown = {t.key: cvat_shows(t.track, len(scene_.frames)) for t in tracks}
    numbers = {key: number for number, key in enumerate(sorted(shown))}
    gt_ids, tracker_ids, similarities = [], [], []
    for frame, true in enumerate(scene_.truth):
        ids = sorted(true)
        on_frame = [key for key in sorted(shown) if frame in shown[key]]
        true_boxes = np.array([true[i] for i in ids], dtype=float).reshape(-1, 4)
        boxes = np.array([shown[k][frame][0] for k in on_frame], dtype=float).reshape(-1, 4)
        gt_ids.append(np.array(ids, dtype=int))
        tracker_ids.append(np.array([numbers[k] for k in on_frame], dtype=int))
        similarities.append(box_iou(true_boxes, boxes))
    return compute_clear_metrics(gt_ids, tracker_ids, similarities)
