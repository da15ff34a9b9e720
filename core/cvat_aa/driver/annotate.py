"""Annotating a task or a job: read frames, run the function, map labels, upload."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs
from cvat_sdk import models
from cvat_sdk.api_client.exceptions import ApiTypeError, ApiValueError
from cvat_sdk.core import Client
from cvat_sdk.core.progress import NullProgressReporter, ProgressReporter

from ..interface import BadFunctionError, FrameContext
from ..plugins import Hooks, hooks, load_function
from .frames import Frame, FrameSelection, FrameSource
from .label_mapping import LabelMapper
from .upload import AnnotationTarget, Uploader

__all__ = ["AnnotationSummary", "FunctionFailedError", "annotate_job", "annotate_task"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8


class FunctionFailedError(RuntimeError):
    """The function raised an exception on a frame; nothing was uploaded."""

    def __init__(self, message: str, frames: Sequence[int]) -> None:
        super().__init__(message)
        self.frames = list(frames)


@attrs.frozen(kw_only=True)
class AnnotationSummary:
    """What a run did."""

    target: str
    """``"task"`` or ``"job"``."""
    target_id: int
    task_id: int
    frames: int
    """Frames processed."""
    annotations: int
    """Tags and shapes uploaded."""
    per_label: dict[str, int]
    """Annotations uploaded per task label name."""
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def format(self) -> str:
        """A short human-readable report."""
        lines = [
            f"Annotated {self.target} {self.target_id}: {self.frames} frames,"
            f" {self.annotations} annotations in {self.elapsed_s:.1f} s"
            + (f" ({self.frames / self.elapsed_s:.1f} frames/s)" if self.elapsed_s > 0 else "")
        ]
        width = max((len(name) for name in self.per_label), default=0)
        for name, count in sorted(self.per_label.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"  {name:<{width}}  {count}")
        return "\n".join(lines)


def _selection(frames: FrameSelection | str | Iterable[int] | None) -> FrameSelection | None:
    if frames is None or isinstance(frames, FrameSelection):
        return frames
    if isinstance(frames, str):
        return FrameSelection.parse(frames)
    return FrameSelection(tuple((int(f), int(f), 1) for f in frames))


def _batches(frames: Iterator[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _where(batch: Sequence[Frame]) -> str:
    frames = ", ".join(f"{f.index} ({f.name})" for f in batch)
    return f"frame{'s' if len(batch) > 1 else ''} {frames}"


def _function_name(function: Any, given: Any) -> str:
    if isinstance(given, str):
        return given
    return getattr(function, "__name__", None) or type(function).__name__


@attrs.define
class _Run:
    client: Client
    function: Any
    function_name: str
    hooks: Hooks
    conf_threshold: float | None
    conv_mask_to_poly: bool
    allow_unmatched_labels: bool
    batch_size: int
    pbar: ProgressReporter

    def detect(
        self, mapper: LabelMapper, source: FrameSource, target: AnnotationTarget, uploader: Uploader
    ) -> Counter[str]:
        per_label: Counter[str] = Counter()
        self.hooks.run_started(
            {
                "target": target.kind,
                "target_id": target.id,
                "function": self.function_name,
                "frames": len(source),
            }
        )
        with self.pbar.task(total=len(source), unit="frames"):
            for batch in _batches(source.iter_frames(), self.batch_size):
                contexts = [
                    FrameContext(
                        frame_name=f.name,
                        conf_threshold=self.conf_threshold,
                        conv_mask_to_poly=self.conv_mask_to_poly,
                    )
                    for f in batch
                ]
                try:
                    results = self.hooks.detect(self.function, contexts, [f.image for f in batch])
                except BadFunctionError:
                    raise
                except (ApiTypeError, ApiValueError) as ex:
                    # cvat-sdk's models refused a value the function gave them.
                    raise BadFunctionError(
                        f"the function built an invalid annotation on {_where(batch)}: {ex}"
                    ) from ex
                except Exception as ex:
                    raise FunctionFailedError(
                        f"the function failed on {_where(batch)}:"
                        f" {type(ex).__name__}: {ex}",
                        [f.index for f in batch],
                    ) from ex
                if results is None or len(results) != len(batch):
                    raise BadFunctionError(
                        f"detection returned {'nothing' if results is None else len(results)}"
                        f" results for a batch of {len(batch)} frames"
                    )
                count = 0
                for frame, annotations in zip(batch, results, strict=True):
                    frame_tags, frame_shapes = mapper.map_frame(annotations, frame.index)
                    uploader.add(frame_tags, frame_shapes)
                    for annotation in (*frame_tags, *frame_shapes):
                        per_label[mapper.label_name(annotation.label_id)] += 1
                    count += len(frame_tags) + len(frame_shapes)
                self.hooks.frames_done([f.index for f in batch], count)
                self.pbar.advance(len(batch))
        return per_label

    def execute(
        self,
        mapper: LabelMapper,
        source: FrameSource,
        target: AnnotationTarget,
        *,
        clear_existing: bool,
    ) -> Counter[str]:
        """Detect and upload; on any failure, remove what was uploaded and re-raise."""
        old_ids: list[int] = []
        if clear_existing:
            old = target.get()
            old_ids = [a.id for a in (*old.tags, *old.shapes, *old.tracks)]
        uploader = Uploader(target)
        try:
            per_label = self.detect(mapper, source, target, uploader)
            uploader.close()
        except BaseException:
            uploader.abort()
            uploader.rollback()
            raise
        if old_ids:
            # Only now: a run that fails leaves the old annotations in place.
            logger.info("Removing the %d annotations %s had before", len(old_ids), target.describe())
            target.delete(old_ids)
        return per_label


def _prepare(
    client: Client,
    function: Any,
    *,
    conf_threshold: float | None,
    conv_mask_to_poly: bool,
    allow_unmatched_labels: bool,
    batch_size: int,
    pbar: ProgressReporter | None,
) -> _Run:
    if conf_threshold is not None and not 0 <= conf_threshold <= 1:
        raise ValueError("conf_threshold must be None or a number between 0 and 1")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    loaded = load_function(function) if isinstance(function, str) else function
    return _Run(
        client=client,
        function=loaded,
        function_name=_function_name(loaded, function),
        hooks=hooks(),
        conf_threshold=conf_threshold,
        conv_mask_to_poly=conv_mask_to_poly,
        allow_unmatched_labels=allow_unmatched_labels,
        batch_size=batch_size,
        pbar=pbar or NullProgressReporter(),
    )


def _mapper(run: _Run, task_labels: Sequence[models.Label]) -> LabelMapper:
    spec = run.hooks.spec(run.function)
    return LabelMapper(
        spec.labels,
        task_labels,
        allow_unmatched_labels=run.allow_unmatched_labels,
        conv_mask_to_poly=run.conv_mask_to_poly,
    )


def annotate_task(
    client: Client,
    task_id: int,
    function: Any,
    *,
    pbar: ProgressReporter | None = None,
    clear_existing: bool = False,
    allow_unmatched_labels: bool = False,
    conf_threshold: float | None = None,
    conv_mask_to_poly: bool = False,
    frames: FrameSelection | str | Iterable[int] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> AnnotationSummary:
    """Run ``function`` on a task's frames and upload the annotations to the task.

    Keyword-compatible with ``cvat_sdk.auto_annotation.annotate_task`` 2.80: the same
    arguments mean the same things, and the same protocol violations raise
    ``BadFunctionError`` before anything is uploaded. Beyond it:

    * ``function`` may also be the name of an installed function plugin (or a module name, or
      a path to a ``.py`` file), loaded without parameters;
    * video tasks are supported;
    * ``frames`` selects frames: a ``FrameSelection``, a string such as ``"0-99:5,120"``, or
      an iterable of frame numbers; deleted frames are always skipped;
    * ``batch_size`` frames are passed to the function at a time (through ``detect_batch``
      when the function has it);
    * the return value is an :class:`AnnotationSummary`.

    Raises ``BadFunctionError`` (the function broke its contract), ``FunctionFailedError``
    (it raised on a frame), ``ValueError`` for bad arguments, ``NoDataError`` for a task
    without data, and cvat-sdk's API exceptions for server errors.

    Annotations are uploaded in pieces of whole frames while detection goes on. If the run
    fails, what it uploaded is removed again, so the task is left as it was; with
    ``clear_existing`` the old annotations are removed only after all new ones are uploaded.
    """
    started = time.monotonic()
    run = _prepare(
        client,
        function,
        conf_threshold=conf_threshold,
        conv_mask_to_poly=conv_mask_to_poly,
        allow_unmatched_labels=allow_unmatched_labels,
        batch_size=batch_size,
        pbar=pbar,
    )
    task = client.tasks.retrieve(task_id)
    source = FrameSource.for_task(task, selection=_selection(frames))
    mapper = _mapper(run, task.get_labels())
    per_label = run.execute(
        mapper, source, AnnotationTarget(client, "task", task_id), clear_existing=clear_existing
    )
    return _finish(run, "task", task_id, task_id, len(source), per_label, started)


def annotate_job(
    client: Client,
    job_id: int,
    function: Any,
    *,
    pbar: ProgressReporter | None = None,
    clear_existing: bool = False,
    allow_unmatched_labels: bool = False,
    conf_threshold: float | None = None,
    conv_mask_to_poly: bool = False,
    frames: FrameSelection | str | Iterable[int] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> AnnotationSummary:
    """Like :func:`annotate_task`, for the frames of one job.

    ``frames`` numbers are task frame numbers; ``clear_existing`` replaces only the job's
    annotations.
    """
    started = time.monotonic()
    run = _prepare(
        client,
        function,
        conf_threshold=conf_threshold,
        conv_mask_to_poly=conv_mask_to_poly,
        allow_unmatched_labels=allow_unmatched_labels,
        batch_size=batch_size,
        pbar=pbar,
    )
    job = client.jobs.retrieve(job_id)
    task = client.tasks.retrieve(job.task_id)
    source = FrameSource.for_task(
        task, frame_range=(job.start_frame, job.stop_frame), selection=_selection(frames)
    )
    mapper = _mapper(run, task.get_labels())
    per_label = run.execute(
        mapper, source, AnnotationTarget(client, "job", job_id), clear_existing=clear_existing
    )
    return _finish(run, "job", job_id, task.id, len(source), per_label, started)


def _finish(
    run: _Run,
    target: str,
    target_id: int,
    task_id: int,
    frames: int,
    per_label: Counter[str],
    started: float,
) -> AnnotationSummary:
    summary = AnnotationSummary(
        target=target,
        target_id=target_id,
        task_id=task_id,
        frames=frames,
        annotations=sum(per_label.values()),
        per_label=dict(per_label),
        elapsed_s=round(time.monotonic() - started, 3),
    )
    run.hooks.run_finished(summary.to_dict())
    return summary
