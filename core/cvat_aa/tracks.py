"""Tracks from a tracking function over a run of frames: what they start from, how they are
followed frame by frame, and what a tracking run did.

``cvat-aa track`` runs a tracking function over the frames of a task or job
(``driver.track_run``) or of a video or images on disk (``local.track_video``). Both read
frames one at a time, in order, and both make tracks the same way, here:

* each **start shape** (a shape already in the task, or one from a file) begins one track on
  its own frame, with the start shape itself as the first keyframe;
* every later frame read is one :meth:`~cvat_aa.tracking.Tracker.track` call for all the
  objects still followed (the image is preprocessed once for all), and one keyframe per
  object;
* an object the function loses (it returns None) gets an ``outside`` keyframe on that frame,
  and its track ends there;
* a track still followed on the last frame read ends with an ``outside`` keyframe on the
  next frame, unless the last frame read is the last one there is: otherwise CVAT would
  show the object on every frame up to the end.

Only the tracks being followed are held in memory, never the frames. A track is handed on
(to be uploaded, or written) as soon as it ends, so a run that is stopped has handed on every
track it finished.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from cvat_sdk import models

from .errors import BadFunctionError, FunctionFailedError
from .frames import Frame
from .interface import TrackableShape, TrackingFunctionSpec, function_kind
from .labels import LabelCatalog
from .pipeline.summary import per_label_lines
from .plugins import hooks, load_function
from .tracking import Tracker

__all__ = [
    "StartShape",
    "TrackMade",
    "TrackSummary",
    "TrackedObject",
    "follow",
    "read_shapes_file",
    "start_shapes_from_entries",
    "tracker_for",
]

logger = logging.getLogger(__name__)

SOURCE = "auto"
"""The ``source`` of the tracks a run makes, as of the shapes a detection run makes."""


@attrs.frozen(kw_only=True)
class StartShape:
    """A shape a track starts from."""

    key: str
    """What identifies it across runs (the journal's key for its track): ``shape:<id>`` for a
    shape of the task, ``file:<n>`` for the n-th entry of a shapes file."""
    frame: int
    label_id: int
    type: str
    points: tuple[float, ...] = attrs.field(converter=tuple)
    rotation: float = 0.0
    z_order: int = 0
    group: int | None = None
    attributes: tuple[tuple[int, str], ...] = ()
    """(attribute id, value) pairs: the start shape's attribute values."""

    @classmethod
    def from_shape(cls, shape: Any) -> StartShape:
        """A shape as the server returns it (``models.LabeledShape``)."""
        return cls(
            key=f"shape:{shape.id}",
            frame=shape.frame,
            label_id=shape.label_id,
            type=str(getattr(shape.type, "value", shape.type)),
            points=[float(p) for p in shape.points],
            rotation=float(getattr(shape, "rotation", None) or 0),
            z_order=int(getattr(shape, "z_order", None) or 0),
            group=getattr(shape, "group", None) or None,
            attributes=tuple(
                (a.spec_id, str(a.value)) for a in getattr(shape, "attributes", None) or ()
            ),
        )

    def describe(self, labels: LabelCatalog) -> str:
        return f"the {self.type} of {labels.name(self.label_id)!r} on frame {self.frame}"


def read_shapes_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The start shapes a JSON file lists: ``[{"label": name, "frame": n, "type": "rectangle",
    "points": [x1, y1, x2, y2]}, ...]`` (``frame`` may be left out: the first frame tracked;
    ``rotation`` may be given for a rectangle or an ellipse).

    Raises ``ValueError`` that names the entry and what is wrong with it.
    """
    name = os.fspath(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as ex:
        raise ValueError(f"cannot read the shapes file {name!r}: {ex.strerror or ex}") from None
    except ValueError as ex:
        raise ValueError(f"the shapes file {name!r} is not JSON: {ex}") from None
    if not isinstance(data, list):
        data = None
    problem = _file_problem(data)
    if problem is not None:
        raise ValueError(f"the shapes file {name!r}: {problem}")
    return data


def _file_problem(data: list[Any] | None) -> str | None:
    """What is wrong with a shapes file's contents, or None."""
    if data is None:
        return (
            "must hold a list of shapes such as"
            ' [{"label": "car", "frame": 0, "type": "rectangle", "points": [10, 10, 50, 40]}]'
        )
    for number, entry in enumerate(data):
        where = f"shape {number}"
        if not isinstance(entry, dict):
            return f"{where} is not an object with label, frame, type and points"
        unknown = set(entry) - {"label", "frame", "type", "points", "rotation"}
        if unknown:
            return (
                f"{where} has unknown fields ({', '.join(sorted(unknown))}); a shape has label,"
                " frame, type, points and, optionally, rotation"
            )
        if not isinstance(entry.get("label"), str):
            return f"{where} needs a label name (a string)"
        if not isinstance(entry.get("type"), str):
            return f'{where} needs a type, such as "rectangle"'
        frame = entry.get("frame", 0)
        if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
            return f"{where}: frame must be a frame number (0 or more)"
        points = entry.get("points")
        if not isinstance(points, list) or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p)
            for p in points
        ):
            return f"{where}: points must be a list of numbers"
        rotation = entry.get("rotation", 0)
        if not isinstance(rotation, (int, float)) or isinstance(rotation, bool):
            return f"{where}: rotation must be a number of degrees"
    return None


def start_shapes_from_entries(
    entries: Sequence[Mapping[str, Any]], labels: LabelCatalog, *, first_frame: int
) -> list[StartShape]:
    """Start shapes from a shapes file's entries (see :func:`read_shapes_file`), their labels
    matched by name to ``labels``; an entry without a frame starts on ``first_frame``.

    Raises ``ValueError`` for a label ``labels`` lacks.
    """
    starts = []
    for number, entry in enumerate(entries):
        try:
            label = labels.named(entry["label"])
        except KeyError as ex:
            raise ValueError(f"shape {number} of the shapes file: {ex.args[0]}") from None
        starts.append(
            StartShape(
                key=f"file:{number}",
                frame=int(entry.get("frame", first_frame)),
                label_id=label.id,
                type=entry["type"],
                points=[float(p) for p in entry["points"]],
                rotation=float(entry.get("rotation", 0)),
            )
        )
    return starts


def tracker_for(function: Any) -> Tracker:
    """A :class:`Tracker` for ``function`` (a loaded function, or the name of an installed
    one, a module or a ``.py`` file).

    Raises :class:`BadFunctionError` saying what to use instead for a function of another
    kind.
    """
    if isinstance(function, str):
        function = load_function(function)
    spec = hooks().spec(function)
    if not isinstance(spec, TrackingFunctionSpec):
        kind = function_kind(spec)
        instead = {
            "detection": "'cvat-aa annotate' (or annotate_task) runs detection functions",
            "interaction": "interaction functions are used from CVAT's AI Tools through"
            " 'cvat-aa serve' or 'cvat-aa agent'",
        }.get(kind, "")
        raise BadFunctionError(
            f"the function is a {kind} function, not a tracking function (its spec is not a"
            f" TrackingFunctionSpec), so it cannot track objects; {instead}"
        )
    return Tracker(function)


def check_start_shapes(
    starts: Sequence[StartShape], spec: TrackingFunctionSpec, labels: LabelCatalog
) -> None:
    """Raise ``ValueError`` for a start shape of a type the function cannot track."""
    supported = sorted(spec.supported_shape_types)
    for start in starts:
        if start.type not in spec.supported_shape_types:
            raise ValueError(
                f"{start.describe(labels)} is a {start.type}, which the function cannot track"
                f" (it tracks {', '.join(supported) or 'nothing'})"
            )


@attrs.define
class TrackedObject:
    """One object's track as it is being built."""

    start: StartShape
    shapes: list[models.TrackedShapeRequest]
    lost: bool = False

    @property
    def last_frame(self) -> int:
        """The last frame the object is seen on."""
        return max(s.frame for s in self.shapes if not s.outside)

    def request(self, labels: LabelCatalog) -> models.LabeledTrackRequest:
        """The track, as CVAT takes it: the start shape's immutable attributes on the track,
        its mutable ones on the first keyframe (CVAT carries them on to the later ones)."""
        label = labels.get(self.start.label_id)
        track_attributes = []
        for spec_id, value in self.start.attributes:
            attribute = label.attribute(spec_id) if label is not None else None
            if attribute is not None and not attribute.mutable:
                track_attributes.append(models.AttributeValRequest(spec_id=spec_id, value=value))
        return models.LabeledTrackRequest(
            frame=self.start.frame,
            label_id=self.start.label_id,
            group=self.start.group or 0,
            source=SOURCE,
            attributes=track_attributes,
            shapes=self.shapes,
        )


def _keyframe(
    start: StartShape,
    frame: int,
    points: Sequence[float],
    *,
    outside: bool = False,
    attributes: Sequence[models.AttributeValRequest] = (),
) -> models.TrackedShapeRequest:
    return models.TrackedShapeRequest(
        type=start.type,
        frame=frame,
        points=[float(p) for p in points],
        outside=outside,
        occluded=False,
        z_order=start.z_order,
        rotation=start.rotation,
        attributes=list(attributes),
    )


def _first_keyframe(start: StartShape, labels: LabelCatalog) -> models.TrackedShapeRequest:
    label = labels.get(start.label_id)
    mutable = []
    for spec_id, value in start.attributes:
        attribute = label.attribute(spec_id) if label is not None else None
        if attribute is None or attribute.mutable:
            mutable.append(models.AttributeValRequest(spec_id=spec_id, value=value))
    return _keyframe(start, start.frame, start.points, attributes=mutable)


def _on_frame(frame: Frame, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)`` into the function, a failure of which names the frame."""
    try:
        return call(*args, **kwargs)
    except FunctionFailedError as failure:
        reason = failure.reason
        raise FunctionFailedError(
            f"the function failed on frame {frame.index} ({frame.name}): {reason}",
            [frame.index],
            reason,
            failure.original,
        ) from failure.original


@attrs.frozen
class TrackMade:
    """One track a run made, in short."""

    label: str
    first_frame: int
    last_frame: int
    """The last frame the object was seen on."""
    keyframes: int
    lost: bool

    def __str__(self) -> str:
        end = "lost" if self.lost else "followed"
        return (
            f"{self.label}: frames {self.first_frame}-{self.last_frame}, {self.keyframes}"
            f" keyframes ({end})"
        )


@attrs.define
class Following:
    """What :func:`follow` did."""

    frames: int = 0
    """Frames read (the start frames included)."""
    tracks: int = 0
    keyframes: int = 0
    lost: int = 0
    never_reached: list[StartShape] = attrs.Factory(list)
    """Start shapes on frames that were not read (not selected, or deleted)."""
    made: list[TrackMade] = attrs.Factory(list)


def follow(
    tracker: Tracker,
    frames: Iterable[Frame],
    starts: Sequence[StartShape],
    labels: LabelCatalog,
    *,
    last_frame: int | None,
    on_track: Callable[[TrackedObject], None],
    on_frame: Callable[[Frame], None] | None = None,
    scope: Any = None,
) -> Following:
    """Follow every start shape from its frame on through ``frames`` (in frame order), and
    hand each track to ``on_track`` as it ends.

    ``last_frame`` is the last frame there is (of the task, the job or the video; None: not
    known): a track followed to the last frame read ends with an ``outside`` keyframe on the
    next one only if that frame exists. Reading stops once no object is followed and none is
    left to start. Raises ``FunctionFailedError`` (naming the frame) for what the function
    raised, ``BadFunctionError`` for what it broke.
    """
    done = Following()
    pending: dict[int, list[StartShape]] = {}
    for start in starts:
        pending.setdefault(start.frame, []).append(start)
    live: dict[str, TrackedObject] = {}
    read_last: int | None = None

    def end(state_id: str) -> None:
        obj = live.pop(state_id)
        done.tracks += 1
        done.keyframes += len(obj.shapes)
        done.lost += obj.lost
        done.made.append(
            TrackMade(
                labels.name(obj.start.label_id),
                obj.start.frame,
                obj.last_frame,
                len(obj.shapes),
                obj.lost,
            )
        )
        on_track(obj)

    try:
        for frame in frames:
            if not live and not pending:
                break
            # Objects that started on a frame before this one, each start shape being skipped.
            for missed in sorted(f for f in pending if f < frame.index):
                done.never_reached.extend(pending.pop(missed))
            read_last = frame.index
            done.frames += 1
            if live:
                ids = list(live)
                found = _on_frame(frame, tracker.track, frame.image, ids, scope=scope)
                lost = []
                for state_id, shape in zip(ids, found, strict=True):
                    obj = live[state_id]
                    if shape is None:
                        last = obj.shapes[-1].points
                        obj.shapes.append(_keyframe(obj.start, frame.index, last, outside=True))
                        obj.lost = True
                        lost.append(state_id)
                    else:
                        obj.shapes.append(_keyframe(obj.start, frame.index, shape.points))
                tracker.forget(lost)
                for state_id in lost:
                    end(state_id)
            new = pending.pop(frame.index, [])
            if new:
                shapes = [TrackableShape(type=s.type, points=list(s.points)) for s in new]
                ids = _on_frame(frame, tracker.init_tracking, frame.image, shapes, scope=scope)
                for state_id, start in zip(ids, new, strict=True):
                    live[state_id] = TrackedObject(start, [_first_keyframe(start, labels)])
            if on_frame is not None:
                on_frame(frame)
        # Past the last frame read: close what is still followed, unless the frames end here.
        for state_id, obj in list(live.items()):
            after = (read_last if read_last is not None else obj.start.frame) + 1
            if last_frame is None or after <= last_frame:
                obj.shapes.append(_keyframe(obj.start, after, obj.shapes[-1].points, outside=True))
            end(state_id)
    finally:
        tracker.forget(list(live))
    for missed in pending.values():
        done.never_reached.extend(missed)
    for start in done.never_reached:
        logger.warning(
            "No track starts from %s: that frame was not tracked (it is not among the frames"
            " selected, or it was deleted)",
            start.describe(labels),
        )
    return done


@attrs.frozen(kw_only=True)
class TrackSummary:
    """What a tracking run did."""

    target: str
    """``"task"``, ``"job"``, or ``"video"`` for a run over files."""
    target_id: int | None = None
    task_id: int | None = None
    function: str | None = None
    frames: int
    """Frames read and tracked on."""
    tracks: int
    """Tracks made (and uploaded, unless ``dry_run``), those a resumed run had uploaded
    before included."""
    keyframes: int
    """Keyframes of the tracks made in this run."""
    lost: int
    """Tracks that ended because the function lost the object."""
    per_label: dict[str, int]
    """Tracks made in this run per label name."""
    elapsed_s: float
    resumed: bool = False
    tracks_resumed: int = 0
    """Tracks a resumed run had uploaded before (included in ``tracks``)."""
    replaced: int = 0
    """Start shapes removed because their tracks replace them (``replace_start_shapes``)."""
    dry_run: bool = False
    output: Path | None = None
    """The file a run over files wrote the tracks to, if any."""
    made: tuple[TrackMade, ...] = attrs.field(default=(), converter=tuple)
    """The tracks made in this run, in the order they ended."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "target_id": self.target_id,
            "task_id": self.task_id,
            "function": self.function,
            "frames": self.frames,
            "tracks": self.tracks,
            "keyframes": self.keyframes,
            "lost": self.lost,
            "per_label": dict(self.per_label),
            "elapsed_s": self.elapsed_s,
            "resumed": self.resumed,
            "tracks_resumed": self.tracks_resumed,
            "replaced": self.replaced,
            "dry_run": self.dry_run,
            "output": None if self.output is None else str(self.output),
            "made": [attrs.asdict(made) for made in self.made],
        }

    def headline(self) -> str:
        rate = f" ({self.frames / self.elapsed_s:.1f} frames/s)" if self.elapsed_s > 0 else ""
        lost = f", {self.lost} lost on the way" if self.lost else ""
        if self.replaced:
            lost += f", {self.replaced} start shapes replaced"
        if self.target_id is None:
            where = "the files"
            verb = "Tracked"
        else:
            where = f"{self.target} {self.target_id}"
            verb = "Tracked (dry run, nothing uploaded)" if self.dry_run else "Tracked"
        return (
            f"{verb} {self.tracks} objects on {where}: {self.frames} frames,"
            f" {self.keyframes} keyframes{lost} in {self.elapsed_s:.1f} s{rate}"
            + (
                f" (resumed: {self.tracks_resumed} tracks were uploaded before)"
                if self.resumed
                else ""
            )
        )

    def format(self) -> str:
        """A short report; a dry run lists the tracks it would have uploaded."""
        lines = [self.headline(), *per_label_lines(self.per_label)]
        if self.dry_run:
            lines.append("Would upload:" if self.made else "Would upload no track.")
            lines.extend(f"  {made}" for made in self.made)
        return "\n".join(lines)
