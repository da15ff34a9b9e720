"""Running a function on local images and videos, with no CVAT server.

The function's output is validated exactly as in a task run: the run matches the spec against
a "task" whose labels are the spec's own (same names, ids, types, sublabels and attributes)
with the driver's :class:`~cvat_aa.driver.label_mapping.LabelMapper`, so what passes here
passes on a task with those labels. The annotations keep the spec's ids; frames are numbered
across the inputs (see :mod:`cvat_aa.local.inputs`).

A run streams: each frame is read, annotated, written to the output file (see
:mod:`cvat_aa.export.streaming`) and forgotten, so memory does not grow with the number of
frames. The annotations are kept in memory only when the caller asks for them (by default, when
there is no output file). With ``on_error="skip"``, a frame the function fails on and a file
that cannot be read are left out and listed in the result, as a task run lists failed frames.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from cvat_sdk import models
from cvat_sdk.core.progress import NullProgressReporter, ProgressReporter

from ..annotations import AnnotationSet, FrameAnnotations
from ..driver.task_run import DEFAULT_BATCH_SIZE
from ..frames import Frame, FrameCallback, FrameSelection, batches
from ..pipeline.detection import FunctionFailedError
from ..pipeline.executors import LocalExecutor
from ..pipeline.label_mapping import LabelMap, LabelMapper
from ..export import check_output, open_writer
from ..interface import FrameContext
from ..labels import LabelCatalog
from ..plugins import hooks, load_function
from .inputs import LocalFrames, Skipped

__all__ = ["DEFAULT_BATCH_SIZE", "FrameCallback", "LocalResult", "Skipped", "annotate_images"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class LocalResult:
    """What a local run did: how many frames and annotations, per label, what it skipped, and
    where it wrote them."""

    function: str
    """The function's name (its class name when it was given as an object)."""
    labels: LabelCatalog
    """The labels the annotations refer to (the spec's, under their mapped names)."""
    frames: int
    """Frames annotated (skipped ones not included)."""
    annotation_count: int
    """Tags and shapes on all frames."""
    per_label: dict[str, int]
    """Tags and shapes per label name."""
    elapsed_s: float
    skipped: tuple[Skipped, ...] = ()
    """Frames and files left out with ``on_error="skip"``, with why, in the order met."""
    output: Path | None = None
    """The file the annotations were written to, if any."""
    annotations: AnnotationSet | None = None
    """Every frame's annotations, when the run kept them (``keep_annotations``)."""

    def to_dict(self) -> dict[str, Any]:
        """The summary (not the annotations) as plain data."""
        return {
            "function": self.function,
            "frames": self.frames,
            "annotations": self.annotation_count,
            "per_label": dict(self.per_label),
            "elapsed_s": self.elapsed_s,
            "skipped": [
                {"frame": s.frame, "name": s.name, "reason": s.reason} for s in self.skipped
            ],
        }

    def format(self) -> str:
        """A short human-readable report."""
        rate = f" ({self.frames / self.elapsed_s:.1f} frames/s)" if self.elapsed_s > 0 else ""
        lines = [
            (
                f"Ran {self.function} on {self.frames} frames: {self.annotation_count}"
                f" annotations in {self.elapsed_s:.1f} s{rate}"
            )
        ]
        width = max((len(name) for name in self.per_label), default=0)
        for name, count in sorted(self.per_label.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"  {name:<{width}}  {count}")
        if self.skipped:
            files = sum(1 for s in self.skipped if s.frame is None)
            counts = [
                f"{n} {noun}{'' if n == 1 else 's'}"
                for n, noun in ((len(self.skipped) - files, "frame"), (files, "file"))
                if n
            ]
            lines.append(f"Skipped {' and '.join(counts)} (left out of the output):")
            lines.extend(f"  {skipped}" for skipped in self.skipped)
        return "\n".join(lines)


@attrs.frozen
class _SpecLabelAsTaskLabel:
    """A spec label in the shape cvat-sdk's mapper expects of a task label."""

    id: int
    name: str
    type: str
    attributes: Sequence[models.AttributeRequest]
    sublabels: Sequence[_SpecLabelAsTaskLabel]


def _task_labels(spec_labels: Sequence[Any], catalog: LabelCatalog) -> list[_SpecLabelAsTaskLabel]:
    def convert(label: Any, label_type: str) -> _SpecLabelAsTaskLabel:
        return _SpecLabelAsTaskLabel(
            id=label.id,
            name=label.name,
            type=label_type,
            attributes=list(getattr(label, "attributes", None) or []),
            sublabels=[convert(s, "points") for s in getattr(label, "sublabels", None) or []],
        )

    return [convert(label, info.type) for label, info in zip(spec_labels, catalog, strict=True)]


def _function_name(function: Any, given: Any) -> str:
    if isinstance(given, str):
        return given
    return getattr(function, "__name__", None) or type(function).__name__


def _selection(frames: FrameSelection | str | Iterable[int] | None) -> FrameSelection | None:
    if frames is None or isinstance(frames, FrameSelection):
        return frames
    if isinstance(frames, str):
        return FrameSelection.parse(frames)
    return FrameSelection(tuple((int(f), int(f), 1) for f in frames))


@attrs.define
class _Tally:
    """What a run has done so far: counts, not annotations."""

    catalog: LabelCatalog
    frames: int = 0
    per_label: Counter[str] = attrs.Factory(Counter)
    skipped: list[Skipped] = attrs.Factory(list)

    def add(self, tags: Sequence[Any], shapes: Sequence[Any]) -> None:
        self.frames += 1
        self.per_label.update(self.catalog.name(a.label_id) for a in (*tags, *shapes))

    def skip(self, skipped: Skipped) -> None:
        logger.warning("Skipped %s", skipped)
        self.skipped.append(skipped)


def _detected(
    executor: LocalExecutor,
    function: Any,
    contexts: Callable[[list[Frame]], list[FrameContext]],
    batch: list[Frame],
    outcome: list[Any] | BaseException,
    on_error: str,
    tally: _Tally,
) -> list[tuple[Frame, Any]]:
    """A batch's (frame, annotations), as a task run finds them: when the function failed on
    a batch of several frames, they run again one by one to find the frame that fails. With
    on_error="skip" failed frames are left out and the others kept; otherwise the first one
    that fails alone stops the run, named alone (the batch's failure stands if none does)."""
    if not isinstance(outcome, BaseException):
        return list(zip(batch, outcome, strict=True))
    if not isinstance(outcome, FunctionFailedError):
        raise outcome
    if len(batch) == 1:
        if on_error != "skip":
            raise outcome
        tally.skip(Skipped(batch[0].index, batch[0].name, f"the function failed: {outcome.reason}"))
        return []
    pairs = [
        pair
        for single, single_outcome in executor.detect(function, ([f] for f in batch), contexts)
        for pair in _detected(executor, function, contexts, single, single_outcome, on_error, tally)
    ]
    if on_error != "skip" and len(pairs) == len(batch):
        raise outcome
    return pairs


def annotate_images(
    function: Any,
    paths: Sequence[str | os.PathLike[str]],
    *,
    conf_threshold: float | None = None,
    conv_mask_to_poly: bool = False,
    label_map: LabelMap | Mapping[str, Any] | None = None,
    frames: FrameSelection | str | Iterable[int] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_error: str = "stop",
    output: str | os.PathLike[str] | None = None,
    format: str | None = None,
    task_name: str | None = None,
    keep_annotations: bool | None = None,
    pbar: ProgressReporter | None = None,
    on_frame: FrameCallback | None = None,
) -> LocalResult:
    """Run ``function`` on images and videos on this machine; write or return the annotations.

    ``paths`` are folders (their images), image or video files, and globs; see
    :mod:`cvat_aa.local.inputs` for how they are read and how frames are numbered and named.
    ``function``, ``conf_threshold``, ``conv_mask_to_poly``, ``frames`` (frame numbers of
    this run) and ``batch_size`` mean what they mean for :func:`cvat_aa.annotate_task`.
    ``on_frame(frame, tags, shapes)`` sees every frame with its validated annotations, while
    the frame's image is still at hand (the preview uses it); images are not kept.
    ``label_map`` (as for :func:`cvat_aa.annotate_task`) renames the function's labels,
    sublabels and attributes in the output, or leaves them out.

    ``output`` is a file to write the annotations to, frame by frame as they are done, in
    ``format`` (``"cvat"`` or ``"coco"``; by default the one the extension names; see
    :mod:`cvat_aa.export`), with ``task_name`` (by default the function's name) where the
    format names a task. The file appears when the run ends well: a failed run leaves none.
    ``keep_annotations`` keeps every frame's annotations in memory, in ``result.annotations``;
    by default they are kept only when there is no ``output`` (a long video's would not fit).

    ``on_error="skip"`` leaves out, and lists in ``result.skipped`` with why, the frames on
    which the function raises and the images and videos (or the rest of a video) that cannot
    be read; they are not in the output. The default, ``"stop"``, ends the run at the first.

    The annotations refer to the spec's label, sublabel and attribute ids
    (``result.labels`` describes them), carry the frame number and the source ``"auto"``, and
    have been validated as a task run validates them.

    Raises ``ImageInputError`` (a ``ValueError``) when the inputs cannot be found or read,
    ``EmptySelectionError`` (a ``ValueError``) when ``frames`` matches no frame of the inputs,
    ``BadFunctionError`` when the function breaks its contract, ``FunctionFailedError`` when
    it raises on a frame, and ``ValueError`` for bad arguments or an output that cannot be
    written (checked before any work). Nothing is returned from a failed run.
    """
    started = time.monotonic()
    if conf_threshold is not None and not 0 <= conf_threshold <= 1:
        raise ValueError("conf_threshold must be None or a number between 0 and 1")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if on_error not in ("stop", "skip"):
        raise ValueError("on_error must be 'stop' or 'skip'")
    output_format = check_output(output, format) if output is not None else None
    if keep_annotations is None:
        keep_annotations = output is None
    source = LocalFrames.find(paths, _selection(frames))
    total = source.count()
    source.check_selection(total)
    loaded = load_function(function) if isinstance(function, str) else function
    spec = hooks().spec(loaded)
    parsed_map = LabelMap.parse(label_map) if label_map is not None else None
    # With a label map, the output's labels are the spec's under their mapped names.
    output_labels = parsed_map.rename(spec.labels) if parsed_map is not None else spec.labels
    catalog = LabelCatalog.from_spec(output_labels, conv_mask_to_poly=conv_mask_to_poly)
    mapper = LabelMapper(
        spec.labels,
        _task_labels(output_labels, catalog),
        allow_unmatched_labels=False,
        conv_mask_to_poly=conv_mask_to_poly,
        label_map=parsed_map,
    )
    pbar = pbar or NullProgressReporter()
    kept: list[FrameAnnotations] = []
    tally = _Tally(catalog)
    name = _function_name(loaded, function)
    run_hooks = hooks()
    estimated = source.estimated_count()
    run_hooks.run_started(
        {"target": "images", "target_id": None, "function": name, "frames": estimated}
    )

    def contexts(batch: list[Frame]) -> list[FrameContext]:
        return [
            FrameContext(
                frame_name=f.name,
                conf_threshold=conf_threshold,
                conv_mask_to_poly=conv_mask_to_poly,
            )
            for f in batch
        ]

    def unreadable(skipped: Skipped) -> None:
        tally.skip(skipped)
        if skipped.frame is not None:
            pbar.advance(1)

    executor = LocalExecutor()
    writer = None
    if output is not None:
        writer = open_writer(output, catalog, format=output_format, task_name=task_name or name)
    with writer if writer is not None else contextlib.nullcontext():
        with pbar.task(total=estimated, unit="frames"):
            read = source.iter_frames(unreadable if on_error == "skip" else None)
            for batch, outcome in executor.detect(loaded, batches(read, batch_size), contexts):
                count = 0
                for frame, annotations in _detected(
                    executor, loaded, contexts, batch, outcome, on_error, tally
                ):
                    tags, shapes = mapper.map_frame(
                        annotations, frame.index, frame_size=frame.image.size
                    )
                    count += len(tags) + len(shapes)
                    tally.add(tags, shapes)
                    if on_frame is not None:
                        on_frame(frame, tags, shapes)
                    done = FrameAnnotations(
                        frame.index, frame.name, frame.image.width, frame.image.height, tags, shapes
                    )
                    if writer is not None:
                        writer.add(done)
                    if keep_annotations:
                        kept.append(done)
                run_hooks.frames_done([f.index for f in batch], count)
                pbar.advance(len(batch))
        if source.selection is not None and not tally.frames and not tally.skipped:
            # The videos did not say how long they are, so this could not be told before.
            raise source.selection.no_frame_error(
                "the inputs", 0, max(source.frames_read - 1, 0)
            )
    result = LocalResult(
        function=name,
        labels=catalog,
        frames=tally.frames,
        annotation_count=sum(tally.per_label.values()),
        per_label=dict(tally.per_label),
        elapsed_s=round(time.monotonic() - started, 3),
        skipped=tuple(tally.skipped),
        output=Path(output) if output is not None else None,
        annotations=AnnotationSet(catalog, kept) if keep_annotations else None,
    )
    run_hooks.run_finished(
        {
            "target": "images",
            "target_id": None,
            "frames": result.frames,
            "annotations": result.annotation_count,
            "per_label": result.per_label,
            "elapsed_s": result.elapsed_s,
        }
    )
    return result
