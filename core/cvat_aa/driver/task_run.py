"""A run on a task or a job: its frames from the server, through the pipeline, uploaded with a
journal.

The pipeline (:mod:`cvat_aa.pipeline.run`) does what every run does; this module adds what a
run on a server needs around it: the per-task run lock, the journal (so that a killed run
resumes where it stopped and a failed one is undone), and :class:`UploadSink`, which uploads
results in pieces by a background thread while detection goes on (see ``upload``), removes
them again if the run fails, and clears the old annotations (``clear_existing``) only once
everything new is uploaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import attrs
from cvat_sdk.core import Client
from cvat_sdk.core.progress import ProgressReporter
from cvat_sdk.core.proxies.jobs import Job
from cvat_sdk.core.proxies.tasks import Task

from ..labels import LabelCatalog
from ..pipeline.detection import raising_as_the_function_did
from ..pipeline.executors import LocalExecutor
from ..pipeline.label_mapping import LabelMapper
from ..pipeline.options import RunOptions, Runs
from ..pipeline.run import MappedFrame, Pipeline, Sink, Tally, function_name, result_stages
from ..pipeline.sinks import CallbackSink, PreviewSink
from ..pipeline.summary import RunSummary, Skipped
from ..plugins import hooks
from ..result_stages import FrameResult, StageTrack
from .journal import (
    SCHEMA_VERSION,
    AnnotationKey,
    Journal,
    annotation_extents,
    journal_key,
    list_journals,
)
from .memory import keep_large_buffers_unpooled
from .permission_check import check_may_annotate
from .retry import RetryPolicy
from .run_lock import RunLock
from .server_url import normalize_server_url
from .task_frames import TaskFrames
from .upload import AnnotationTarget, Uploader, refuse_overlapping_jobs

__all__ = [
    "AnnotationSummary",
    "RunStopped",
    "UploadSink",
    "annotate_job",
    "annotate_task",
    "clear_scope",
    "run_on_server",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

AnnotationSummary = RunSummary
"""What a task or job run did (the name cvat-aa's API has always had for it)."""


def identity_without_values(identity: str | None) -> Any:
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


def warn_about_unfinished_runs(directory: Path, own: Path, server: str, task_id: int) -> None:
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
    journal: Journal, source: TaskFrames
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
    clearing: bool = False
    """Every new annotation was uploaded and is kept: the run stopped while removing the old
    ones (``clear_existing``), which a rerun finishes."""


def _in_background(call: Callable[[], T], *, name: str) -> Future[T]:
    """``call()`` in a thread of its own (``name``); its result or exception in the future."""
    future: Future[T] = Future()

    def work() -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(call())
            except BaseException as ex:  # handed to the thread that asks for the result
                future.set_exception(ex)

    threading.Thread(target=work, name=name, daemon=True).start()
    return future


@attrs.define
class UploadSink:
    """Journals every frame's results and uploads them to the task or job.

    Nothing is uploaded with ``dry_run`` (the journal still records the frames). If the run
    fails, what it uploaded is removed again and the exception says so (:class:`RunStopped`);
    the journal stays for a rerun to resume from. ``clear_existing`` removes the old
    annotations of the processed frames only after every new one was uploaded.
    """

    target: AnnotationTarget
    source: TaskFrames
    journal: Journal
    options: RunOptions
    retry: RetryPolicy
    keep_journal: bool
    staged: bool = False
    """The run has result stages: what a killed run had not uploaded comes back through
    :meth:`replay`, not from the journal's frames."""
    _uploader: Uploader | None = None
    _baseline: Future[dict[str, Any]] | None = None
    """The baseline being read, until the uploader starts."""
    _clearing: bool = False
    _unqueued: set[int] = attrs.Factory(set)
    _uploaded_tracks: set[str] = attrs.Factory(set)

    def start(self) -> None:
        if self.options.dry_run:
            return
        if self.journal.has_baseline():
            self._start_uploader()
            return
        # The baseline is read while the first frames are downloaded and detected: the run
        # needs it only before its first upload (see _start_uploader). It is read here, inside
        # the run lock, so no other run of this machine uploads to the task meanwhile.
        target = self.target
        self._baseline = _in_background(
            lambda: self.retry.call(
                target.get_raw, what=f"reading the annotations of {target.describe()}"
            ),
            name="cvat-aa-baseline",
        )

    def _start_uploader(self) -> None:
        """Record the baseline if it was being read, then start uploading (and settle what a
        killed run left in doubt)."""
        journal = self.journal
        if self._baseline is not None:
            existing, self._baseline = self._baseline.result(), None
            journal.set_baseline(annotation_extents(existing))
        self._uploader = Uploader(
            self.target, journal, retry=self.retry, piece_frames=self.options.upload_frames
        )
        self._uploader.resolve_in_doubt()
        if self.staged:
            self._unqueued = journal.unqueued_frames()
            self._uploaded_tracks = journal.uploaded_starts()
            return
        for frame, tags, shapes in journal.unqueued_results():
            self._uploader.add(frame, tags, shapes)

    def add(self, frames: Sequence[MappedFrame]) -> None:
        # Before the frames are journaled: a run whose baseline could not be read has no
        # finished frames either.
        if self._baseline is not None:
            self._start_uploader()
        self.journal.record_frames((m.frame.index, m.tags, m.shapes, m.detected) for m in frames)
        if self._uploader is not None:
            for mapped in frames:
                self._uploader.add(mapped.frame.index, mapped.tags, mapped.shapes)

    def add_tracks(self, tracks: Sequence[StageTrack]) -> None:
        if self._baseline is not None:
            self._start_uploader()
        if self._uploader is not None:
            self._uploader.add_tracks(
                [((t.key, t.track.frame, t.track.label_id), t.track) for t in tracks]
            )

    def replay(self, frames: Sequence[FrameResult], tracks: Sequence[StageTrack]) -> None:
        # What the killed run had uploaded is not sent again: its frames' pieces and its
        # tracks, by key, are in the journal (pieces in doubt were settled by start()).
        if self._baseline is not None:
            self._start_uploader()
        if self._uploader is None:
            return
        for result in frames:
            if result.frame in self._unqueued:
                self._uploader.add(result.frame, result.tags, result.shapes)
        self.add_tracks([t for t in tracks if t.key not in self._uploaded_tracks])

    def skip(self, skipped: Skipped) -> None:
        assert skipped.frame is not None  # a server's frames are never skipped unread
        self.journal.record_failure(skipped.frame, skipped.function_error or skipped.reason)

    def finish(self) -> None:
        if self._baseline is not None:
            self._start_uploader()
        if self._uploader is not None:
            old: set[AnnotationKey] = set()
            kept_tracks: list[AnnotationKey] = []
            current = None
            if self.options.clear_existing:
                # Every frame is journaled by now, so what to remove is known; the annotations
                # it is removed with are read while the last pieces are sent. Nothing is
                # removed before every piece is uploaded.
                old, kept_tracks = clear_scope(self.journal, self.source)
                if old:
                    current = _in_background(self.target.get_raw, name="cvat-aa-clear")
            self._uploader.close()
            if self.options.clear_existing:
                self._clearing = True
                self._clear(old, kept_tracks, current)
        self.journal.close(delete=True)

    def _clear(
        self,
        old: set[AnnotationKey],
        kept_tracks: list[AnnotationKey],
        current: Future[dict[str, Any]] | None,
    ) -> None:
        target = self.target
        # A read that failed is made again by delete(), with retries.
        read = current.result() if current is not None and current.exception() is None else None
        removed = self.retry.call(
            lambda: target.delete(old, current=read),
            what=f"removing the old annotations of {target.describe()}",
        )
        logger.info("Removed the %d annotations %s had before", len(removed), target.describe())
        if kept_tracks:
            logger.warning(
                "Kept %d tracks of %s that extend over frames this run did not process",
                len(kept_tracks),
                target.describe(),
            )

    def abort(self, error: BaseException) -> None:
        report = None
        # A baseline still being read is dropped: nothing was uploaded before it was recorded.
        self._baseline = None
        # Once every new annotation is uploaded, a failure to remove the old ones must not
        # take the new ones away too: the task would lose both. A rerun finishes the clearing.
        if self._uploader is not None and not self._clearing:
            self._uploader.abort()
            report = self._uploader.rollback()
        done = sum(1 for status in self.journal.finished_frames().values() if status == "done")
        with contextlib.suppress(AttributeError, TypeError):
            error.cvat_aa_stopped = RunStopped(  # type: ignore[attr-defined]
                target=self.target.describe(),
                removed=report.removed if report else 0,
                left=report.left if report else 0,
                frames_done=done,
                journal=self.journal.path if self.keep_journal else None,
                clearing=self._clearing,
            )
        self.journal.close()


def _done_before(journal: Journal, source: TaskFrames, *, staged: bool) -> Tally:
    """What the interrupted run that ``journal`` continues had done on ``source`` (with result
    stages, its annotations are counted as the stages give them again: see ``Pipeline``)."""
    finished = journal.finished_frames()
    done = {i for i, _ in source.frames if finished.get(i) == "done"}
    frames, by_label = journal.label_counts(done)
    names = dict(source.frames)
    return Tally(
        frames=frames,
        by_label=Counter() if staged else by_label,
        skipped=[
            Skipped.function_failed(frame, names.get(frame, str(frame)), why)
            for frame, why in sorted(journal.failed_frames().items())
        ],
    )


def run_on_server(
    client: Client,
    function: Any,
    *,
    kind: str,
    target_id: int,
    options: RunOptions,
    permission_checked: bool = False,
    loaded: bool = False,
) -> RunSummary:
    """Run ``function`` on a task or job (``kind``), with ``options``; raise what failed it
    (a failure of the function as a ``FunctionFailedError``).

    ``loaded``: ``function`` is what ``options.executor`` loaded for these options already (a
    run over several tasks loads it once for all).

    Unless ``permission_checked`` (a run over several tasks checks them all first), a run that
    uploads first makes sure the user may change the annotations (:mod:`.permission_check`).
    """
    started = time.monotonic()
    keep_large_buffers_unpooled()
    executor = options.executor or LocalExecutor()
    retry = options.retry or RetryPolicy()

    # A job run reads only through the job: its assignee may not be allowed to read the task.
    media: Task | Job
    if kind == "job":
        media = retry.call(lambda: client.jobs.retrieve(target_id), what=f"reading job {target_id}")
    else:
        media = retry.call(
            lambda: client.tasks.retrieve(target_id), what=f"reading task {target_id}"
        )
    # The permission check, the frame list and the labels are independent requests: sent
    # together, a run waits for the slowest instead of their sum. The check's answer is looked
    # at first, so a user who may not annotate hears that, whatever else failed.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="cvat-aa-start") as pool:
        checked = (
            pool.submit(check_may_annotate, client, kind, target_id, retry=retry)
            if not options.dry_run and not permission_checked
            else None
        )
        frames = pool.submit(
            TaskFrames.for_job if isinstance(media, Job) else TaskFrames.for_task,
            media,
            selection=options.frames,
            retry=retry,
        )
        read_labels = pool.submit(
            retry.call, media.get_labels, what=f"reading the labels of {kind} {target_id}"
        )
        if checked is not None:
            checked.result()
        source = frames.result()
        task_labels = read_labels.result()
    function_loaded = function if loaded else executor.load(function, options.plugin_options)
    mapper = LabelMapper(
        executor.spec(function_loaded, options.function_name or function_name(function)).labels,
        task_labels,
        allow_unmatched_labels=options.allow_unmatched_labels,
        conv_mask_to_poly=options.conv_mask_to_poly,
        label_map=options.label_map,
    )
    labels = LabelCatalog.from_task_labels(task_labels)
    name = options.function_name or function_name(function)
    target = AnnotationTarget(client, kind, target_id)
    stages = result_stages(options, labels, target=kind, target_id=target_id, stop=source.span[1])
    if stages and kind == "task" and not options.dry_run:
        refuse_overlapping_jobs(target, retry)
    server = normalize_server_url(client.api_map.host)
    key_parts = {
        "journal": SCHEMA_VERSION,
        "server": server,
        "target": [kind, target_id],
        "function": options.journal_key,
        **options.key_parts(),
    }
    describe = {
        "server": server,
        "target": [kind, target_id],
        "task_id": source.task_id,
        "function_name": name,
        "function": identity_without_values(options.journal_key),
        "options": options.key_parts(),
    }
    persistent = (
        options.journal_dir is not None and options.journal_key is not None and not options.dry_run
    )
    with contextlib.ExitStack() as cleanup:
        if not options.dry_run:
            cleanup.enter_context(
                RunLock.acquire(server, source.task_id, what=target.describe(), function=name)
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
            warn_about_unfinished_runs(journal_dir, journal.path, server, source.task_id)
        before = _done_before(journal, source, staged=bool(stages))
        if journal.resumed and journal.finished_frames():
            logger.info(
                "Resuming: %d of %d frames were finished before",
                before.frames + len(before.skipped),
                len(source),
            )
        sinks: list[Sink] = []
        if options.on_frame is not None:
            sinks.append(CallbackSink(options.on_frame))
        if options.preview is not None:
            title = f"{target.describe()}{' (dry run)' if options.dry_run else ''}"
            sinks.append(PreviewSink(options.preview, labels, title))
        # Last: it finishes (uploads the rest, clears) only once every other sink has.
        sinks.append(
            UploadSink(
                target,
                source,
                journal,
                options,
                retry,
                keep_journal=persistent,
                staged=bool(stages),
            )
        )
        pipeline = Pipeline(
            source=source.without(journal.finished_frames()),
            executor=executor,
            function=function_loaded,
            name=name,
            mapper=mapper,
            labels=labels,
            options=options,
            sinks=sinks,
            hooks=hooks(),
            before=before,
            resumed=journal.resumed,
            stages=stages,
            replay=journal.detected_results if journal.resumed else None,
        )
        return pipeline.run(started=started)


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
    **options: Any,
) -> RunSummary:
    """Run ``function`` on a task's frames and upload the annotations to the task.

    Keyword-compatible with ``cvat_sdk.auto_annotation.annotate_task`` 2.80: the same
    arguments mean the same things, and the same protocol violations raise
    ``BadFunctionError``. Beyond it:

    * ``function`` may also be the name of an installed function plugin (or a module name, or
      a path to a ``.py`` file), loaded without parameters (by the ``executor``: a
      ``RayExecutor`` loads it only in its actors);
    * video tasks are supported;
    * ``options`` are the other :class:`~cvat_aa.pipeline.options.RunOptions` of runs on a
      server, which documents each: ``frames``, ``batch_size``, ``label_map``, ``on_error``,
      ``dry_run``, ``on_frame``, ``preview``, ``journal_dir`` and ``journal_key`` (resuming),
      ``retry``, ``executor``... An unknown keyword, or one that only runs over files take,
      is a ``TypeError``;
    * shapes are clipped to their frame, and those left with no area or entirely outside it
      are left out (see the user guide); an inverted rectangle or a mask larger than the
      frame is a ``BadFunctionError``;
    * the return value is a :class:`~cvat_aa.pipeline.summary.RunSummary`.

    Annotations are uploaded in pieces of whole frames while detection goes on. If the run
    fails, what it uploaded is removed again, so the task is left as it was; with
    ``clear_existing`` the old annotations of the processed frames are removed only after all
    new ones are uploaded.

    When the function raises an exception on a frame, that exception is raised here, as
    cvat-sdk's ``annotate_task`` does, with a note (``add_note``) naming the frame; in a
    batch of several frames, the frames run again one by one to find which. What the function
    raises that is not an ``Exception`` (``SystemExit``, ``GeneratorExit``) is raised as a
    ``FunctionFailedError`` instead, caused by it: plugin code cannot end the caller's program.
    Otherwise raises ``BadFunctionError`` (the function broke its contract), ``ValueError``
    for bad arguments, ``NoDataError`` for a task without data, and cvat-sdk's API exceptions
    for server errors.
    """
    run_options = RunOptions.for_runs(
        Runs.SERVER,
        "annotate_task",
        pbar=pbar,
        clear_existing=clear_existing,
        allow_unmatched_labels=allow_unmatched_labels,
        conf_threshold=conf_threshold,
        conv_mask_to_poly=conv_mask_to_poly,
        **options,
    )
    return raising_as_the_function_did(
        lambda: run_on_server(client, function, kind="task", target_id=task_id, options=run_options)
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
    **options: Any,
) -> RunSummary:
    """Like :func:`annotate_task`, for the frames of one job.

    ``frames`` numbers are task frame numbers; ``clear_existing`` replaces only annotations on
    the job's frames.
    """
    run_options = RunOptions.for_runs(
        Runs.SERVER,
        "annotate_job",
        pbar=pbar,
        clear_existing=clear_existing,
        allow_unmatched_labels=allow_unmatched_labels,
        conf_threshold=conf_threshold,
        conv_mask_to_poly=conv_mask_to_poly,
        **options,
    )
    return raising_as_the_function_did(
        lambda: run_on_server(client, function, kind="job", target_id=job_id, options=run_options)
    )
