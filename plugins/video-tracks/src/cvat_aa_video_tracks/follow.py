"""Following the objects of one label with one of Roboflow's ``trackers``: the one module that
knows that library.

A tracker's ``update`` tells which detections continue which confirmed track (``tracker_id``),
but a detection that *starts* a track comes back with ``tracker_id == -1``: the tracker only
numbers a track on the frame after it began. An annotation must start where the object first
appears, so :class:`Follower` also watches ``tracker.tracks`` (the alive tracklets, documented
on ``trackers.core.base.BaseTracker`` with their ``tracker_id`` and ``get_state_bbox``): a
tracklet that was not there before was started by the unnumbered detection whose box it holds.

Objects are numbered here, not by the tracker, in the order their tracklets appear, so that the
numbers (and the track keys made from them) depend only on the detections: the same frames give
the same numbers, in one process or after a restart. Trackers are built with
``minimum_consecutive_frames=1`` (a tracklet is confirmed by its second detection), so that no
detection of an object is left unnumbered; short tracks are dropped by the stage instead, on
the whole track's length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import supervision as sv
import trackers

__all__ = ["Follower", "make_tracker"]

# trackers scales its lost-track buffer by frame_rate / 30: at 30 the buffer is in frames.
_FRAME_RATE = 30.0


def make_tracker(name: str, *, activation: float, iou: float | None, lost_frames: int) -> Any:
    """A fresh tracker: ``bytetrack``, ``sort``, ``ocsort`` or ``botsort``.

    Each instance numbers its tracklets from 0 and keeps no state elsewhere (trackers 2.6
    moved the id counter from the class to the instance), and none of these draws random
    numbers or reads the clock when no timestamps are given.
    """
    common: dict[str, Any] = {
        "lost_track_buffer": lost_frames,
        "frame_rate": _FRAME_RATE,
        "minimum_consecutive_frames": 1,
    }
    if name == "bytetrack":
        if iou is not None:
            common["minimum_iou_threshold"] = iou
        # Detections below the activation threshold only continue tracks (ByteTrack's second
        # association), which is what the option promises.
        return trackers.ByteTrackTracker(
            track_activation_threshold=activation, high_conf_det_threshold=activation, **common
        )
    if name == "sort":
        if iou is not None:
            common["minimum_iou_threshold"] = iou
        return trackers.SORTTracker(track_activation_threshold=activation, **common)
    if name == "ocsort":
        if iou is not None:
            common["minimum_iou_threshold"] = iou
        # OC-SORT has no separate activation threshold: below it, detections are not used.
        return trackers.OCSORTTracker(high_conf_det_threshold=activation, **common)
    if name == "botsort":
        if iou is not None:
            common["minimum_iou_threshold_first_assoc"] = iou
        # Camera-motion compensation needs the images, which a result stage never sees.
        return trackers.BoTSORTTracker(
            track_activation_threshold=activation,
            high_conf_det_threshold=activation,
            enable_cmc=False,
            **common,
        )
    raise ValueError(f"there is no tracker {name!r}: use bytetrack, sort, ocsort or botsort")


class Follower:
    """The objects of one label (and shape type), frame by frame.

    ``number`` is called for a new object's number, so that objects of one label share one
    numbering whatever trackers follow them.
    """

    def __init__(self, tracker: Any, number: Callable[[], int]) -> None:
        self._tracker = tracker
        self._number = number
        # Tracklet objects by id(), with their object numbers; holding the tracklet keeps its
        # id() from being reused while it is alive.
        self._alive: dict[int, tuple[Any, int]] = {}

    def update(
        self, boxes: np.ndarray, confidences: np.ndarray
    ) -> tuple[list[int | None], list[int]]:
        """The next frame's detections (``boxes`` x1, y1, x2, y2).

        Returns each detection's object number (None: the tracker took it into no track) and
        the numbers of the objects whose tracks ended on this frame (the tracker gave up
        looking for them), in increasing order.
        """
        count = len(boxes)
        detections = sv.Detections(
            xyxy=np.asarray(boxes, dtype=float).reshape(count, 4),
            confidence=np.asarray(confidences, dtype=float),
            data={"index": np.arange(count)},
        )
        result = self._tracker.update(detections)
        indices = [int(i) for i in result.data.get("index", ())]
        tracker_ids = [int(i) for i in result.tracker_id]
        pairs = list(zip(tracker_ids, indices, strict=True))
        confirmed = {tid: index for tid, index in pairs if tid != -1}
        unnumbered = [index for tid, index in pairs if tid == -1]

        numbers: list[int | None] = [None] * count
        alive: dict[int, tuple[Any, int]] = {}
        for tracklet in self._tracker.tracks:
            known = self._alive.get(id(tracklet))
            if tracklet.tracker_id in confirmed:
                index = confirmed[tracklet.tracker_id]
            elif known is None:
                index = _started_by(tracklet, boxes, unnumbered)
                unnumbered.remove(index)
            else:
                index = None
            number = known[1] if known is not None else self._number()
            alive[id(tracklet)] = (tracklet, number)
            if index is not None:
                numbers[index] = number
        ended = sorted(number for key, (_, number) in self._alive.items() if key not in alive)
        self._alive = alive
        return numbers, ended

    def alive(self) -> list[int]:
        """The numbers of the objects still followed, in increasing order."""
        return sorted(number for _, number in self._alive.values())


def _started_by(tracklet: Any, boxes: np.ndarray, candidates: list[int]) -> int:
    """Which unnumbered detection a new tracklet was made from: the one whose box it holds."""
    if not candidates:
        raise RuntimeError(
            f"{type(tracklet).__name__} started a track from no detection; this version of"
            " trackers is not one cvat-aa-video-tracks works with (install trackers 2.6.x)"
        )
    state = np.asarray(tracklet.get_state_bbox(), dtype=float)
    distances = [float(np.max(np.abs(boxes[i] - state))) for i in candidates]
    return candidates[int(np.argmin(distances))]
