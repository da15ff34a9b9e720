"""Annotating a task or a job: read frames, run the function, map labels, upload.

The pipeline streams: worker threads fetch and decode frames ahead of the function, the
function runs on batches, results are journaled and uploaded in pieces by a background
thread while detection goes on. See ``frames``, ``upload`` and ``journal``.
"""

from __future__ import annotations

import contextlib
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
from ..frames import Frame, FrameCallback, FrameSelection, batches
from ..pipeline.detection import FunctionFailedError, raising_as_the_function_did
from ..pipeline.executors import Executor, LocalExecutor
from ..pipeline.label_mapping import LabelMap, LabelMapper
from .journal import (
    SCHEMA_VERSION,
    AnnotationKey,
    Journal,
    annotation_extents,
    journal_key,
    list_journals,
)
from .memory import keep_large_buffers_unpooled
from .retry import RetryPolicy
from .run_lock import RunLock
from .server_url import normalize_server_url
from .task_frames import TaskFrames as FrameSource
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
    frames_resumed: int = 0
    """Frames a resumed run had finished before (included in ``frames``)."""
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def format(self) -> str:
        """A short human-readable report."""
        verb = "Processed (dry run, nothing uploaded)" if self.dry_run else "Annotated"
        # The rate is this run's: frames a resumed run had finished before took no time now.
        now = self.frames - self.frames_resumed
        lines = [
            f"{verb} {self.target} {self.target_id}: {self.frames} frames,"
            f" {self.annotations} annotations in {self.elapsed_s:.1f} s"
            + (f" ({now / self.elapsed_s:.1f} frames/s)" if self.elapsed_s > 0 else "")
            + (
                f" (resumed: {self.frames_resumed} frames were done before)"
                if self.resumed
                else ""
            )
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
    label_map: LabelMap | None
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
            "label_map": None if self.label_map is None else self.label_map.to_dict(),
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
        """A batch's (frame, annotations). When the function failed on a batch of several
        frames, they run again one by one to find the frame that fails: with on_error=skip,
        failed frames are recorded and the others kept; otherwise the first frame on which
        the function raises stops the run, named alone (the batch's failure stands if every
        frame succeeds alone, or if the function raised nothing: a Ray actor died, say)."""
        if not isinstance(outcome, BaseException):
            return list(zip(batch, outcome, strict=True))
        if not isinstance(outcome, FunctionFailedError):
            raise outcome
        if self.options.on_error != "skip":
            if len(batch) > 1 and outcome.original is not None:
                for _, single_outcome in self.executor.detect(
                    self.function, ([f] for f in batch), self._contexts
                ):
                    if isinstance(single_outcome, BaseException):
                        raise single_outcome
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
        todo = attrs.evolve(source, frames=[(i, n) for i, n in source.frames if i not in done])
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
                    tags, shapes = mapper.map_frame(
                        annotations, frame.index, frame_size=frame.image.size
                    )
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


def _identity_without_values(identity: str | None) -> Any:
    """The function's identity as a journal may show it: parameter names, not their values
    (a parameter may be an API key; values only go into the journal key's hash)."""
    if identity is None:
        return None
    try:
        data = json.loads(identity)
    except ValueError:
        return {"source": "?"}
    if isinstance(data, dict) and isinstance(data.get("parameters"), dict):
        data["parameters"] = sorted(data["parameters"])
    return data


def _warn_about_unfinished_runs(directory: Path, own: Path, server: str, task_id: int) -> None:
    """Say so when an earlier, unfinished run with other options left annotations in the task."""
    for info in list_journals(directory):
        if info.path == own or not info.compatible or not info.may_have_uploads:
            continue
        if info.server == server and info.task_id == task_id:
            logger.warning(
                "task %d still holds %d annotations uploaded by an unfinished run of %s (run %s,"
                " started %s, with other options than this one); 'cvat-aa runs rollback %s'"
                " removes them, 'cvat-aa runs list' shows all unfinished runs",
                task_id,
                sum(info.uploaded.values()),
                info.run.get("function_name", "?"),
                info.id,
                info.created_at,
                info.id,
            )


def clear_scope(
    journal: Journal, source: FrameSource
) -> tuple[set[AnnotationKey], list[AnnotationKey]]:
    """The baseline annotations that ``clear_existing`` removes, and the tracks it keeps.

    Only annotations on frames the run processed and finished are removed: a tag or shape
    whose frame is done; a track whose every frame (from its first shape to its last, or to
    the end of the task or job while it is not closed by an ``outside`` shape) is done or
    deleted. Annotations on frames outside the selection, outside the job, or on frames the
    function failed on are kept.
    """
    done = {f for f, status in journal.finished_frames().items() if status == "done"}
    first, last = source.span
    remove: set[AnnotationKey] = set()
    kept_tracks: list[AnnotationKey] = []
    for key, start, stop in journal.baseline_extents():
        if start is None:
            continue
        if key[0] != "track":
            if start in done:
                remove.add(key)
            continue
        stop = last if stop is None else stop
        if (
            first <= start
            and stop <= last
            and all(f in done or f in source.deleted for f in range(start, stop + 1))
        ):
            remove.add(key)
        elif any(f in done for f in range(max(start, first), min(stop, last) + 1)):
            kept_tracks.append(key)
    return remove, kept_tracks


@attrs.frozen
class RunStopped:
    """Attached to the exception that stopped a run (as ``cvat_aa_stopped``): what was undone
    and what a rerun does."""

    target: str
    removed: int
    """Annotations the run had uploaded and removed again."""
    left: int
    """Annotations the run had uploaded and could not remove (the server failed)."""
    frames_done: int
    """Frames finished and kept in the journal."""
    journal: Path | None
    """The journal a rerun resumes from; None when the run kept none."""


def _upload(
    run: _Run,
    target: AnnotationTarget,
    mapper: LabelMapper,
    source: FrameSource,
    journal: Journal,
    *,
    keep_journal: bool,
) -> None:
    """Process the frames and upload their annotations; on any failure remove what was
    uploaded, record what happened on the exception, and re-raise."""
    options = run.options
    retry = options.retry
    uploader = None
    try:
        run.hooks.run_started(
            {
                "target": target.kind,
                "target_id": target.id,
                "function": run.function_name,
                "frames": len(source),
            }
        )
        if not options.dry_run:
            if not journal.has_baseline():
                existing = retry.call(
                    target.get, what=f"reading the annotations of {target.describe()}"
                )
                journal.set_baseline(annotation_extents(existing))
            uploader = Uploader(target, journal, retry=retry, piece_frames=options.upload_frames)
            uploader.resolve_in_doubt()
            for frame, tags, shapes in journal.unqueued_results():
                uploader.add(frame, tags, shapes)
        run.process(mapper, source, journal, uploader)
        if uploader is not None:
            uploader.close()
            if options.clear_existing:
                # Only now: a run that fails leaves the old annotations in place.
                old, kept_tracks = clear_scope(journal, source)
                removed = retry.call(
                    lambda: target.delete(old),
                    what=f"removing the old annotations of {target.describe()}",
                )
                logger.info(
                    "Removed the %d annotations %s had before", len(removed), target.describe()
                )
                if kept_tracks:
                    logger.warning(
                        "Kept %d tracks of %s that extend over frames this run did not process",
                        len(kept_tracks),
                        target.describe(),
                    )
    except BaseException as ex:
        report = None
        if uploader is not None:
            uploader.abort()
            report = uploader.rollback()
        done = sum(1 for status in journal.finished_frames().values() if status == "done")
        with contextlib.suppress(AttributeError, TypeError):
            ex.cvat_aa_stopped = RunStopped(  # type: ignore[attr-defined]
                target=target.describe(),
                removed=report.removed if report else 0,
                left=report.left if report else 0,
                frames_done=done,
                journal=journal.path if keep_journal else None,
            )
        journal.close()
        raise


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
        label_map=options.label_map,
    )
    target = AnnotationTarget(client, target_kind, target_id)
    server = normalize_server_url(client.api_map.host)
    key_parts = {
        "journal": SCHEMA_VERSION,
        "server": server,
        "target": [target_kind, target_id],
        "function": options.journal_key,
        **options.key_parts(),
    }
    describe = {
        "server": server,
        "target": [target_kind, target_id],
        "task_id": task.id,
        "function_name": run.function_name,
        "function": _identity_without_values(options.journal_key),
        "options": options.key_parts(),
    }
    persistent = (
        options.journal_dir is not None and options.journal_key is not None and not options.dry_run
    )
    with contextlib.ExitStack() as cleanup:
        if not options.dry_run:
            cleanup.enter_context(
                RunLock.acquire(
                    server, task.id, what=target.describe(), function=run.function_name
                )
            )
        if persistent:
            journal_dir = options.journal_dir
        else:
            journal_dir = Path(
                cleanup.enter_context(tempfile.TemporaryDirectory(prefix="cvat-aa-run-"))
            )
        journal = Journal.open(journal_dir, journal_key(key_parts), describe=describe)
        logger.debug("Journal: %s (%s)", journal.path, "resumed" if journal.resumed else "new")
        if options.resume and not journal.resumed:
            journal.close(delete=True)
            raise ValueError(
                f"there is no interrupted run of this function on {target.describe()} to resume"
                " (with these parameters and options)"
            )
        if persistent:
            _warn_about_unfinished_runs(journal_dir, journal.path, server, task.id)
        finished = journal.finished_frames()
        frames_before = sum(1 for i, _ in source.frames if finished.get(i) == "done")
        _upload(run, target, mapper, source, journal, keep_journal=persistent)

        processed, by_id = journal.label_counts({i for i, _ in source.frames})
        failed = journal.failed_frames()
        resumed = journal.resumed
        journal.close(delete=True)
    names = {label.id: label.name for label in task_labels}
    per_label = Counter({names.get(i, str(i)): n for i, n in by_id.items()})
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
        frames_resumed=frames_before if resumed else 0,
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
    if kwargs["label_map"] is not None:
        kwargs["label_map"] = LabelMap.parse(kwargs["label_map"])
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
    label_map: LabelMap | Mapping[str, Any] | None = None,
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
    * ``label_map`` puts function labels on task labels of other names:
      ``{"person": "pedestrian"}``, or ``{"person": {"name": "pedestrian", "sublabels":
      {"nose": "head"}, "attributes": {"pose": "posture"}}}`` for skeleton points and
      attributes too; None leaves a label, sublabel or attribute out. What the map does not
      name matches by name. A name that is not the function's or the task's is a
      ``ValueError``;
    * shapes are clipped to their frame, and those left with no area or entirely outside it
      are left out (see the user guide); an inverted rectangle or a mask larger than the
      frame is a ``BadFunctionError``;
    * ``dry_run`` processes the frames and uploads nothing; ``on_frame(frame, tags, shapes)``
      sees every frame's annotations, mapped to the task's labels;
    * ``on_error="skip"`` records frames on which the function raises and goes on (they are
      listed in the summary's ``failed_frames``); the default stops the run and raises what
      the function raised, as cvat-sdk does (see below);
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

    When the function raises an exception on a frame, that exception is raised here, as
    cvat-sdk's ``annotate_task`` does, with a note (``add_note``) naming the frame; in a
    batch of several frames, the frames run again one by one to find which. What the function
    raises that is not an ``Exception`` (``SystemExit``, ``GeneratorExit``) is raised as a
    ``FunctionFailedError`` instead, caused by it: plugin code cannot end the caller's program.
    Otherwise raises ``BadFunctionError`` (the function broke its contract), ``ValueError``
    for bad arguments, ``NoDataError`` for a task without data, and cvat-sdk's API exceptions
    for server errors.
    """
    options = _options(
        **{k: v for k, v in locals().items() if k not in ("client", "task_id", "function")}
    )
    return raising_as_the_function_did(
        lambda: _annotate(client, function, target_kind="task", target_id=task_id, options=options)
    )


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
    label_map: LabelMap | Mapping[str, Any] | None = None,
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
    return raising_as_the_function_did(
        lambda: _annotate(client, function, target_kind="job", target_id=job_id, options=options)
    )
