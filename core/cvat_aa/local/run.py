"""Running a function on local images and videos, with no CVAT server.

The function's output is validated exactly as in a task run: the run matches the spec against
a "task" whose labels are the spec's own (same names, ids, types, sublabels and attributes)
with the driver's :class:`~cvat_aa.driver.label_mapping.LabelMapper`, so what passes here
passes on a task with those labels. The annotations keep the spec's ids; frames are numbered
across the inputs (see :mod:`cvat_aa.local.inputs`).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from cvat_sdk import models
from cvat_sdk.core.progress import NullProgressReporter, ProgressReporter

from ..annotations import AnnotationSet, FrameAnnotations
from ..driver.detection import detect_batch
from ..driver.annotate import DEFAULT_BATCH_SIZE
from ..driver.frames import FrameCallback, FrameSelection, batches
from ..driver.label_mapping import LabelMapper
from ..interface import FrameContext
from ..labels import LabelCatalog
from ..plugins import hooks, load_function
from .inputs import LocalFrames

__all__ = ["DEFAULT_BATCH_SIZE", "FrameCallback", "LocalResult", "annotate_images"]


@attrs.frozen(kw_only=True)
class LocalResult:
    """What a local run produced: the annotations of every frame, and how long it took."""

    function: str
    """The function's name (its class name when it was given as an object)."""
    annotations: AnnotationSet
    elapsed_s: float

    @property
    def frames(self) -> int:
        return len(self.annotations.frames)

    def to_dict(self) -> dict[str, Any]:
        """The summary (not the annotations) as plain data."""
        return {
            "function": self.function,
            "frames": self.frames,
            "annotations": self.annotations.count,
            "per_label": self.annotations.per_label(),
            "elapsed_s": self.elapsed_s,
        }

    def format(self) -> str:
        """A short human-readable report."""
        per_label = self.annotations.per_label()
        rate = f" ({self.frames / self.elapsed_s:.1f} frames/s)" if self.elapsed_s > 0 else ""
        lines = [
            (
                f"Ran {self.function} on {self.frames} frames: {self.annotations.count}"
                f" annotations in {self.elapsed_s:.1f} s{rate}"
            )
        ]
        width = max((len(name) for name in per_label), default=0)
        for name, count in sorted(per_label.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"  {name:<{width}}  {count}")
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


def annotate_images(
    function: Any,
    paths: Sequence[str | os.PathLike[str]],
    *,
    conf_threshold: float | None = None,
    conv_mask_to_poly: bool = False,
    frames: FrameSelection | str | Iterable[int] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    pbar: ProgressReporter | None = None,
    on_frame: FrameCallback | None = None,
) -> LocalResult:
    """Run ``function`` on images and videos on this machine and return the annotations.

    ``paths`` are folders (their images), image or video files, and globs; see
    :mod:`cvat_aa.local.inputs` for how they are read and how frames are numbered and named.
    ``function``, ``conf_threshold``, ``conv_mask_to_poly``, ``frames`` (frame numbers of
    this run) and ``batch_size`` mean what they mean for :func:`cvat_aa.annotate_task`.
    ``on_frame(frame, tags, shapes)`` sees every frame with its validated annotations, while
    the frame's image is still at hand (the preview uses it); images are not kept.

    The annotations refer to the spec's label, sublabel and attribute ids
    (``result.annotations.labels`` describes them), carry the frame number and the source
    ``"auto"``, and have been validated as a task run validates them.

    Raises ``ImageInputError`` (a ``ValueError``) when the inputs cannot be found or read,
    ``BadFunctionError`` when the function breaks its contract, ``FunctionFailedError`` when
    it raises on a frame, and ``ValueError`` for bad arguments. Nothing is returned from a
    failed run.
    """
    started = time.monotonic()
    if conf_threshold is not None and not 0 <= conf_threshold <= 1:
        raise ValueError("conf_threshold must be None or a number between 0 and 1")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    source = LocalFrames.find(paths, _selection(frames))
    loaded = load_function(function) if isinstance(function, str) else function
    spec = hooks().spec(loaded)
    catalog = LabelCatalog.from_spec(spec.labels, conv_mask_to_poly=conv_mask_to_poly)
    mapper = LabelMapper(
        spec.labels,
        _task_labels(spec.labels, catalog),
        allow_unmatched_labels=False,
        conv_mask_to_poly=conv_mask_to_poly,
    )
    pbar = pbar or NullProgressReporter()
    results: list[FrameAnnotations] = []
    name = _function_name(loaded, function)
    run_hooks = hooks()
    run_hooks.run_started(
        {
            "target": "images",
            "target_id": None,
            "function": name,
            "frames": source.estimated_count(),
        }
    )
    with pbar.task(total=source.estimated_count(), unit="frames"):
        for batch in batches(source.iter_frames(), batch_size):
            contexts = [
                FrameContext(
                    frame_name=f.name,
                    conf_threshold=conf_threshold,
                    conv_mask_to_poly=conv_mask_to_poly,
                )
                for f in batch
            ]
            detected = detect_batch(
                loaded, contexts, [f.image for f in batch], [(f.index, f.name) for f in batch]
            )
            count = 0
            for frame, annotations in zip(batch, detected, strict=True):
                tags, shapes = mapper.map_frame(annotations, frame.index)
                count += len(tags) + len(shapes)
                if on_frame is not None:
                    on_frame(frame, tags, shapes)
                results.append(
                    FrameAnnotations(
                        frame.index, frame.name, frame.image.width, frame.image.height, tags, shapes
                    )
                )
            run_hooks.frames_done([f.index for f in batch], count)
            pbar.advance(len(batch))
    result = LocalResult(
        function=name,
        annotations=AnnotationSet(catalog, results),
        elapsed_s=round(time.monotonic() - started, 3),
    )
    per_label = Counter(
        catalog.name(a.label_id) for frame in results for a in (*frame.tags, *frame.shapes)
    )
    run_hooks.run_finished(
        {
            "target": "images",
            "target_id": None,
            "frames": len(results),
            "annotations": sum(per_label.values()),
            "per_label": dict(per_label),
            "elapsed_s": result.elapsed_s,
        }
    )
    return result
