"""Annotating a task or a job: read frames, run the function, map labels, upload.

The pipeline streams: worker threads fetch and decode frames ahead of the function, the
function runs on batches, results are journaled and uploaded in pieces by a background
thread while detection goes on. See ``frames``, ``upload`` and ``journal``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from cvat_sdk.core import Client
from cvat_sdk.core.progress import NullProgressReporter, ProgressReporter

from ..interface import FrameContext
from ..plugins import Hooks, hooks, load_function
from .detection import Executor, FunctionFailedError, LocalExecutor
from .frames import Frame, FrameCallback, FrameSelection, FrameSource, batches
from .journal import Journal, journal_key
from .label_mapping import LabelMapper
from .memory import keep_large_buffers_unpooled
from .retry import RetryPolicy
from .upload import AnnotationTarget, Uploader

__all__ = ["AnnotationSummary", "annotate_job", "annotate_task"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8
DEFAULT_PREFETCH = 4
DEFAULT_UPLOAD_FRAMES = 200


@attrs.frozen(kw_only=True)
class AnnotationSummary:
    """What a run did."""

    target: str
    """``"task"`` or ``"job"``."""
    target_id: int
    task_id: int
    frames: int
    """Frames processed (including frames a resumed run had finished before)."""
    annotations: int
    """Tags and shapes produced (and uploaded, unless ``dry_run``)."""
    per_label: dict[str, int]
    """Annotations per task label name."""
    elapsed_s: float
    failed_frames: dict[int, str] = attrs.field(factory=dict)
    """Frames the function failed on, with why (only with ``on_error="skip"``)."""
    resumed: bool = False
    """Whether the run continued an interrupted one."""
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def format(self) -> str:
        """A short human-readable report."""
        verb = "Processed (dry run, nothing uploaded)" if self.dry_run else "Annotated"
        lines = [
            f"{verb} {self.target} {self.target_id}: {self.frames} frames,"
            f" {self.annotations} annotations in {self.elapsed_s:.1f} s"
            + (f" ({self.frames / self.elapsed_s:.1f} frames/s)" if self.elapsed_s > 0 else "")
            + (" (resumed)" if self.resumed else "")
        ]
        width = max((len(name) for name in self.per_label), default=0)
        for name, count in sorted(self.per_label.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"  {name:<{width}}  {count}")
        if self.failed_frames:
            lines.append(f"The function failed on {len(self.failed_frames)} frames:")
            lines.extend(f"  frame {f}: {why}" for f, why in sorted(self.failed_frames.items()))
        return "\n".join(lines)


def _selection(frames: FrameSelection | str | Iterable[int] | None) -> FrameSelection | None:
    if frames is None or isinstance(frames, FrameSelection):
        return frames
    if isinstance(frames, str):
        return FrameSelection.parse(frames)
    return FrameSelection(tuple((int(f), int(f), 1) for f in frames))


def _function_name(function: Any, given: Any) -> str:
    if isinstance(given, str):
        return given
    return getattr(function, "__name__", None) or type(function).__name__


@attrs.frozen(kw_only=True)
class _Options:
    pbar: ProgressReporter
    clear_existing: bool
    allow_unmatched_labels: bool
    conf_threshold: float | None
    conv_mask_to_poly: bool
    frames: FrameSelection | None
    batch_size: int
    prefetch: int
    upload_frames: int
    dry_run: bool
    on_frame: FrameCallback | None
    on_error: str
    journal_dir: Path | None
    journal_key: str | None
    resume: bool | None
    retry: RetryPolicy
    executor: Executor | None

    def key_parts(self) -> dict[str, Any]:
        """The options that change a run's results, for the journal key."""
        return {
            "clear_existing": self.clear_existing,
            "allow_unmatched_labels": self.allow_unmatched_labels,
            "conf_threshold": self.conf_threshold,
            "conv_mask_to_poly": self.conv_mask_to_poly,
            "frames": None if self.frames is None else self.frames.parts,
        }


@attrs.define
class _Run:
    client: Client
    function: Any
    function_name: str
    hooks: Hooks
    options: _Options
    executor: Executor

    def _contexts(self, batch: Sequence[Frame]) -> list[FrameContext]:
        return [
            FrameContext(
                frame_name=f.name,
                conf_threshold=self.options.conf_threshold,
                conv_mask_to_poly=self.options.conv_mask_to_poly,
            )
            for f in batch
        ]

    def _detect_or_skip(
        self, batch: list[Frame], outcome: list[Any] | BaseException, journal: Journal
    ) -> list[tuple[Frame, Any]]:
        """A batch's (frame, annotations); with on_error=skip, isolate and record failed frames."""
        if not isinstance(outcome, BaseException):
            return list(zip(batch, outcome, strict=True))
        if not isinstance(outcome, FunctionFailedError) or self.options.on_error != "skip":
            raise outcome
        if len(batch) == 1:
            why = outcome.reason
            logger.warning(
                "The function failed on frame %d (%s): %s", batch[0].index, batch[0].name, why
            )
            journal.record_failure(batch[0].index, why)
            return []
        return [
            pair
            for single, single_outcome in self.executor.detect(
                self.function, ([f] for f in batch), self._contexts
            )
            for pair in self._detect_or_skip(single, single_outcome, journal)
        ]

    def process(
        self,
        mapper: LabelMapper,
        source: FrameSource,
        journal: Journal,
        uploader: Uploader | None,
    ) -> None:
        done = journal.finished_frames()
        todo = FrameSource(
            task=source.task,
            frames=[(i, n) for i, n in source.frames if i not in done],
            chunk_size=source.chunk_size,
            is_video=source.is_video,
            retry=source.retry,
        )
        if done:
            logger.info(
                "Resuming: %d of %d frames were finished before",
                len(source) - len(todo),
                len(source),
            )
        with self.options.pbar.task(total=len(source), unit="frames"):
            self.options.pbar.advance(len(source) - len(todo))
            frames = todo.iter_frames(
                prefetch=self.options.prefetch, decode_ahead=max(8, 2 * self.options.batch_size)
            )
            outcomes = self.executor.detect(
                self.function, batches(frames, self.options.batch_size), self._contexts
            )
            for batch, outcome in outcomes:
                mapped = []
                count = 0
                for frame, annotations in self._detect_or_skip(batch, outcome, journal):
                    tags, shapes = mapper.map_frame(annotations, frame.index)
                    mapped.append((frame, tags, shapes))
                    count += len(tags) + len(shapes)
                journal.record_frames((f.index, t, s) for f, t, s in mapped)
                for frame, tags, shapes in mapped:
                    if self.options.on_frame is not None:
                        self.options.on_frame(frame, tags, shapes)
                    if uploader is not None:
                        uploader.add(frame.index, tags, shapes)
                self.hooks.frames_done([f.index for f in batch], count)
                self.options.pbar.advance(len(batch))


def _annotate(
    client: Client,
    function: Any,
    *,
    target_kind: str,
    target_id: int,
    options: _Options,
) -> AnnotationSummary:
    started = time.monotonic()
    if options.conf_threshold is not None and not 0 <= options.conf_threshold <= 1:
        raise ValueError("conf_threshold must be None or a number between 0 and 1")
    if min(options.batch_size, options.prefetch, options.upload_frames) < 1:
        raise ValueError("batch_size, prefetch and upload_frames must be at least 1")
    if options.on_error not in ("stop", "skip"):
        raise ValueError("on_error must be 'stop' or 'skip'")
    keep_large_buffers_unpooled()
    loaded = load_function(function) if isinstance(function, str) else function
    run = _Run(
        client,
        loaded,
        _function_name(loaded, function),
        hooks(),
        options,
        options.executor or LocalExecutor(),
    )
    retry = options.retry

    if target_kind == "job":
        job = retry.call(lambda: client.jobs.retrieve(target_id), what=f"reading job {target_id}")
        task = retry.call(
            lambda: client.tasks.retrieve(job.task_id), what=f"reading task {job.task_id}"
        )
        frame_range: tuple[int, int] | None = (job.start_frame, job.stop_frame)
    else:
        task = retry.call(
            lambda: client.tasks.retrieve(target_id), what=f"reading task {target_id}"
        )
        frame_range = None
    source = FrameSource.for_task(
        task, frame_range=frame_range, selection=options.frames, retry=retry
    )
    task_labels = retry.call(task.get_labels, what=f"reading the labels of task {task.id}")
    spec = run.hooks.spec(run.function)
    mapper = LabelMapper(
        spec.labels,
        task_labels,
        allow_unmatched_labels=options.allow_unmatched_labels,
        conv_mask_to_poly=options.conv_mask_to_poly,
    )
    target = AnnotationTarget(client, target_kind, target_id)

    key_parts = {
        "server": client.api_map.host,
        "target": [target_kind, target_id],
        "function": options.journal_key,
        **options.key_parts(),
    }
    persistent = (
        options.journal_dir is not None and options.journal_key is not None and not options.dry_run
    )
    scratch = None if persistent else tempfile.TemporaryDirectory(prefix="cvat-aa-run-")
    journal = Journal.open(
        Path(options.journal_dir if persistent else scratch.name),
        journal_key(key_parts),
        describe={**key_parts, "function_name": run.function_name},
    )
    logger.debug("Journal: %s (%s)", journal.path, "resumed" if journal.resumed else "new")
    if options.resume and not journal.resumed:
        journal.close(delete=True)
        raise ValueError(
            f"there is no interrupted run of this function on {target.describe()} to resume"
            " (with these parameters and options)"
        )
    uploader = None
    try:
        run.hooks.run_started(
            {
                "target": target_kind,
                "target_id": target_id,
                "function": run.function_name,
                "frames": len(source),
            }
        )
        if not options.dry_run:
            if not journal.has_baseline():
                existing = retry.call(
                    target.get, what=f"reading the annotations of {target.describe()}"
                )
                journal.set_baseline(
                    a.id for a in (*existing.tags, *existing.shapes, *existing.tracks)
                )
            uploader = Uploader(target, journal, retry=retry, piece_frames=options.upload_frames)
            uploader.resolve_in_doubt()
            for frame, tags, shapes in journal.unqueued_results():
                uploader.add(frame, tags, shapes)
        run.process(mapper, source, journal, uploader)
        if uploader is not None:
            uploader.close()
            if options.clear_existing:
                # Only now: a run that fails leaves the old annotations in place.
                old = journal.baseline()
                removed = retry.call(
                    lambda: target.delete(sorted(old)),
                    what=f"removing the old annotations of {target.describe()}",
                )
                logger.info(
                    "Removed the %d annotations %s had before", len(removed), target.describe()
                )
    except BaseException:
        if uploader is not None:
            uploader.abort()
            uploader.rollback()
        journal.close()
        if scratch is not None:
            scratch.cleanup()
        raise

    processed, by_id = journal.label_counts({i for i, _ in source.frames})
    names = {label.id: label.name for label in task_labels}
    per_label = Counter({names.get(i, str(i)): n for i, n in by_id.items()})
    failed = journal.failed_frames()
    resumed = journal.resumed
    journal.close(delete=True)
    if scratch is not None:
        scratch.cleanup()
    summary = AnnotationSummary(
        target=target_kind,
        target_id=target_id,
        task_id=task.id,
        frames=processed,
        annotations=sum(per_label.values()),
        per_label=dict(per_label),
        elapsed_s=round(time.monotonic() - started, 3),
        failed_frames=failed,
        resumed=resumed,
        dry_run=options.dry_run,
    )
    run.hooks.run_finished(summary.to_dict())
    return summary


def _options(**kwargs: Any) -> _Options:
    kwargs["pbar"] = kwargs["pbar"] or NullProgressReporter()
    kwargs["frames"] = _selection(kwargs["frames"])
    kwargs["retry"] = kwargs["retry"] or RetryPolicy()
    if kwargs["journal_dir"] is not None:
        kwargs["journal_dir"] = Path(kwargs["journal_dir"])
    if isinstance(kwargs["journal_key"], Mapping):
        kwargs["journal_key"] = json.dumps(kwargs["journal_key"], sort_keys=True, default=str)
    return _Options(**kwargs)


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
    prefetch: int = DEFAULT_PREFETCH,
    upload_frames: int = DEFAULT_UPLOAD_FRAMES,
    dry_run: bool = False,
    on_frame: FrameCallback | None = None,
    on_error: str = "stop",
    journal_dir: str | Path | None = None,
    journal_key: str | Mapping[str, Any] | None = None,
    resume: bool | None = None,
    retry: RetryPolicy | None = None,
    executor: Executor | None = None,
) -> AnnotationSummary:
    """Run ``function`` on a task's frames and upload the annotations to the task.

    Keyword-compatible with ``cvat_sdk.auto_annotation.annotate_task`` 2.80: the same
    arguments mean the same things, and the same protocol violations raise
    ``BadFunctionError``. Beyond it:

    * ``function`` may also be the name of an installed function plugin (or a module name, or
      a path to a ``.py`` file), loaded without parameters;
    * video tasks are supported;
    * ``frames`` selects frames: a ``FrameSelection``, a string such as ``"0-99:5,120"``, or
      an iterable of frame numbers; deleted frames are always skipped;
    * ``batch_size`` frames are passed to the function at a time (through ``detect_batch``
      when it has one); ``prefetch`` chunk (or frame) requests run ahead of the function;
    * annotations are uploaded every ``upload_frames`` frames (or 2,000 annotations);
    * ``dry_run`` processes the frames and uploads nothing; ``on_frame(frame, tags, shapes)``
      sees every frame's annotations, mapped to the task's labels;
    * ``on_error="skip"`` records frames on which the function raises and goes on (they are
      listed in the summary's ``failed_frames``); the default stops the run;
    * with ``journal_dir`` and a ``journal_key`` (what identifies the function and its
      parameters), the run is journaled there and a run with the same key, target and
      options resumes where an interrupted one stopped; ``resume=True`` insists on that;
    * transient network and server failures are retried (``retry``);
    * ``executor`` runs the function (default: in this process, batch after batch); the
      driver keeps mapping, validation, journaling and uploads to itself;
    * the return value is an :class:`AnnotationSummary`.

    Annotations are uploaded in pieces of whole frames while detection goes on. If the run
    fails, what it uploaded is removed again, so the task is left as it was; with
    ``clear_existing`` the old annotations are removed only after all new ones are uploaded.

    Raises ``BadFunctionError`` (the function broke its contract), ``FunctionFailedError``
    (it raised on a frame), ``ValueError`` for bad arguments, ``NoDataError`` for a task
    without data, and cvat-sdk's API exceptions for server errors.
    """
    options = _options(
        **{k: v for k, v in locals().items() if k not in ("client", "task_id", "function")}
    )
    return _annotate(client, function, target_kind="task", target_id=task_id, options=options)


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
    prefetch: int = DEFAULT_PREFETCH,
    upload_frames: int = DEFAULT_UPLOAD_FRAMES,
    dry_run: bool = False,
    on_frame: FrameCallback | None = None,
    on_error: str = "stop",
    journal_dir: str | Path | None = None,
    journal_key: str | Mapping[str, Any] | None = None,
    resume: bool | None = None,
    retry: RetryPolicy | None = None,
    executor: Executor | None = None,
) -> AnnotationSummary:
    """Like :func:`annotate_task`, for the frames of one job.

    ``frames`` numbers are task frame numbers; ``clear_existing`` replaces only the job's
    annotations.
    """
    options = _options(
        **{k: v for k, v in locals().items() if k not in ("client", "job_id", "function")}
    )
    return _annotate(client, function, target_kind="job", target_id=job_id, options=options)
