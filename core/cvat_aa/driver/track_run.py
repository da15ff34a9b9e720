"""Offline tracking on a task or a job: a tracking function run over its frames from the
shapes already there (or given in a file), the result uploaded as CVAT tracks.

The tracks are made as :mod:`cvat_aa.tracks` makes them; this module adds what a run on a
server needs, as a detection run (``task_run``) has it:

* the user's shapes are read, never changed: a track starts on a start shape's frame
  beside it;
* the per-task run lock (``run_lock``): a second run on the task is refused while one is live;
* the journal and the journaled :class:`~.upload.Uploader`: tracks are uploaded in pieces as
  they end, each piece journaled (by the start shapes of its tracks, with their keyframes)
  before and after it is sent, so a retried request or a lost reply never makes a track
  twice;
* a run that fails removes the tracks it uploaded (the exception carries
  :class:`~.task_run.RunStopped`); a run that was killed resumes from its journal, tracking
  again only the objects whose tracks it had not uploaded, each from its start, so it ends
  with the tracks an uninterrupted run leaves.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cvat_sdk import models
from cvat_sdk.core import Client
from cvat_sdk.core.progress import ProgressReporter
from cvat_sdk.core.proxies.jobs import Job
from cvat_sdk.core.proxies.tasks import Task

from ..frames import FrameSelection
from ..labels import LabelCatalog
from ..pipeline.detection import raising_as_the_function_did
from ..pipeline.run import function_name as name_of_function
from ..tracks import (
    StartShape,
    TrackedObject,
    TrackSummary,
    check_start_shapes,
    follow,
    start_shapes_from_entries,
    tracker_for,
)
from .journal import SCHEMA_VERSION, Journal, annotation_extents
from .journal import journal_key as make_journal_key
from .memory import keep_large_buffers_unpooled
from .permission_check import check_may_annotate
from .retry import RetryPolicy
from .run_lock import RunLock
from .server_url import normalize_server_url
from .task_frames import TaskFrames
from .task_run import RunStopped, identity_without_values, warn_about_unfinished_runs
from .upload import AnnotationTarget, Uploader, refuse_overlapping_jobs

__all__ = ["TrackSummary", "track_job", "track_task"]

logger = logging.getLogger(__name__)

START_FRAMES = ("first", "all")


def _start_shapes(
    data: models.LabeledData,
    source: TaskFrames,
    tracker_types: Iterable[str],
    labels: LabelCatalog,
    *,
    start_frames: str,
    label_names: Sequence[str] | None,
) -> list[StartShape]:
    """The target's shapes that tracks start from: of a type the function tracks, on the
    first frame selected (``start_frames="first"``) or on any (``"all"``), with one of
    ``label_names`` (None: any)."""
    selected = {index for index, _ in source.frames}
    first = source.frames[0][0]
    types = set(tracker_types)
    wanted = None if label_names is None else set(label_names)
    starts = []
    for shape in data.shapes:
        shape_type = str(getattr(shape.type, "value", shape.type))
        if shape_type not in types:
            continue
        if (start_frames == "first" and shape.frame != first) or shape.frame not in selected:
            continue
        if wanted is not None and labels.name(shape.label_id) not in wanted:
            continue
        starts.append(StartShape.from_shape(shape))
    return sorted(starts, key=lambda s: (s.frame, s.key))


def _check_label_names(names: Sequence[str] | None, labels: LabelCatalog, what: str) -> None:
    for name in names or ():
        try:
            labels.named(name)
        except KeyError as ex:
            raise ValueError(f"labels: {ex.args[0]} in {what}") from None


class _TrackUploads:
    """Hands each finished track to the uploader (or, in a dry run, only counts it)."""

    def __init__(self, uploader: Uploader | None, labels: LabelCatalog) -> None:
        self.uploader = uploader
        self.labels = labels
        self.per_label: Counter[str] = Counter()

    def __call__(self, obj: TrackedObject) -> None:
        self.per_label[self.labels.name(obj.start.label_id)] += 1
        if self.uploader is not None:
            start = obj.start
            self.uploader.add_tracks(
                [((start.key, start.frame, start.label_id), obj.request(self.labels))]
            )


def track_on_server(
    client: Client,
    function: Any,
    *,
    kind: str,
    target_id: int,
    frames: FrameSelection | str | Iterable[int] | None = None,
    start_shapes: Sequence[Mapping[str, Any]] | None = None,
    start_frames: str = "first",
    labels: Sequence[str] | None = None,
    dry_run: bool = False,
    journal_dir: Path | None = None,
    journal_key: Any = None,
    resume: bool | None = None,
    retry: RetryPolicy | None = None,
    replace_start_shapes: bool = False,
    upload_tracks: int = 50,
    prefetch: int = 4,
    function_name: str | None = None,
    pbar: ProgressReporter | None = None,
) -> TrackSummary:
    """Track on a task or job (``kind``); see :func:`track_task`."""
    started = time.monotonic()
    keep_large_buffers_unpooled()
    retry = retry or RetryPolicy()
    if start_frames not in START_FRAMES:
        raise ValueError(f"start_frames must be 'first' or 'all', not {start_frames!r}")
    if upload_tracks < 1:
        raise ValueError("upload_tracks must be at least 1")
    if replace_start_shapes and start_shapes is not None:
        raise ValueError(
            "replace_start_shapes removes the task's shapes that tracks start from; shapes"
            " given in a file are not in the task, so there is nothing to replace"
        )
    selection = FrameSelection.of(frames)
    if labels is not None:
        labels = [labels] if isinstance(labels, str) else list(labels)
    if isinstance(journal_key, Mapping):
        journal_key = json.dumps(journal_key, sort_keys=True, default=str)

    media: Task | Job
    if kind == "job":
        media = retry.call(lambda: client.jobs.retrieve(target_id), what=f"reading job {target_id}")
    else:
        media = retry.call(
            lambda: client.tasks.retrieve(target_id), what=f"reading task {target_id}"
        )
    if not dry_run:
        check_may_annotate(client, kind, target_id, retry=retry)
    tracker = tracker_for(function)
    if isinstance(media, Job):
        source = TaskFrames.for_job(media, selection=selection, retry=retry)
    else:
        source = TaskFrames.for_task(media, selection=selection, retry=retry)
    task_labels = retry.call(media.get_labels, what=f"reading the labels of {kind} {target_id}")
    catalog = LabelCatalog.from_task_labels(task_labels)
    target = AnnotationTarget(client, kind, target_id)
    _check_label_names(labels, catalog, target.describe())
    if not dry_run:
        refuse_overlapping_jobs(target, retry, advice="--job (track_job)")

    existing = retry.call(target.get, what=f"reading the annotations of {target.describe()}")
    first = source.frames[0][0]
    if start_shapes is not None:
        starts = start_shapes_from_entries(start_shapes, catalog, first_frame=first)
        if labels is not None:
            starts = [s for s in starts if catalog.name(s.label_id) in labels]
        check_start_shapes(starts, tracker.spec, catalog)
        selected = {index for index, _ in source.frames}
        for start in starts:
            if start.frame not in selected:
                raise ValueError(
                    f"{start.describe(catalog)} ({start.key.replace(':', ' shape ')}) is not on"
                    f" a frame tracked ({source.describe()}"
                    f"{'' if selection is None else f', frames {selection}'}, deleted frames"
                    " left out); change its frame or --frames"
                )
        where = "given"
    else:
        starts = _start_shapes(
            existing,
            source,
            tracker.spec.supported_shape_types,
            catalog,
            start_frames=start_frames,
            label_names=labels,
        )
        where = f"on frame {first}" if start_frames == "first" else "on the frames selected"
    kinds = " or ".join(sorted(tracker.spec.supported_shape_types))
    no_start = ValueError(
        f"there is no shape to start tracking from ({kinds} shapes {where} of"
        f" {target.describe()}{'' if labels is None else ' with the labels given'}); draw"
        " them in CVAT, choose other frames, or give them in a shapes file"
    )
    if not starts and dry_run:
        raise no_start

    name = function_name or name_of_function(function)
    server = normalize_server_url(client.api_map.host)
    run_parts = {
        "frames": None if selection is None else str(selection.parts),
        "start_frames": start_frames,
        "labels": None if labels is None else sorted(labels),
        "start_shapes": None
        if start_shapes is None
        else hashlib.sha256(json.dumps(list(start_shapes), sort_keys=True).encode()).hexdigest(),
        "replace_start_shapes": replace_start_shapes,
    }
    key_parts = {
        "journal": SCHEMA_VERSION,
        "run": "track",
        "server": server,
        "target": [kind, target_id],
        "function": journal_key,
        **run_parts,
    }
    describe = {
        "server": server,
        "target": [kind, target_id],
        "task_id": source.task_id,
        "function_name": name,
        "function": identity_without_values(journal_key),
        "run": "track",
        "options": run_parts,
    }
    persistent = journal_dir is not None and journal_key is not None and not dry_run
    uploads = _TrackUploads(None, catalog)
    resumed_tracks = 0
    resumed = False
    replacing = False
    replaced = 0
    with contextlib.ExitStack() as cleanup:
        uploader: Uploader | None = None
        journal: Journal | None = None
        if not dry_run:
            cleanup.enter_context(
                RunLock.acquire(server, source.task_id, what=target.describe(), function=name)
            )
            directory = (
                Path(journal_dir)
                if persistent
                else Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="cvat-aa-")))
            )
            journal = Journal.open(directory, make_journal_key(key_parts), describe=describe)
            resumed = journal.resumed
            if resume and not resumed:
                journal.close(delete=True)
                raise ValueError(
                    f"there is no interrupted tracking run of this function on"
                    f" {target.describe()} to resume (with these parameters and options)"
                )
            if not starts and not resumed:
                # A resumed run may have replaced its start shapes already: it finishes.
                journal.close(delete=True)
                raise no_start
            if persistent:
                warn_about_unfinished_runs(directory, journal.path, server, source.task_id)
            if not journal.has_baseline():
                # Read again under the lock: a run that ended since must be in the baseline.
                baseline = retry.call(
                    target.get_raw, what=f"reading the annotations of {target.describe()}"
                )
                journal.set_baseline(annotation_extents(baseline))
            uploader = Uploader(target, journal, retry=retry, piece_tracks=upload_tracks)
            uploads.uploader = uploader
        try:
            if uploader is not None and journal is not None:
                uploader.resolve_in_doubt()
                done = journal.uploaded_starts()
                resumed_tracks = len(done)
                if resumed_tracks:
                    logger.info("Resuming: %d tracks were uploaded before", resumed_tracks)
                starts = [s for s in starts if s.key not in done]
            frames_to_read = source
            if starts:
                begin = min(s.frame for s in starts)
                frames_to_read = source.without({i for i, _ in source.frames if i < begin})
            else:
                frames_to_read = source.without({i for i, _ in source.frames})
            progress = (
                contextlib.nullcontext()
                if pbar is None
                else pbar.task(total=len(frames_to_read), desc="Tracking", unit="frames")
            )
            with progress:
                following = follow(
                    tracker,
                    frames_to_read.iter_frames(prefetch=prefetch),
                    starts,
                    catalog,
                    last_frame=source.span[1],
                    on_track=uploads,
                    on_frame=None if pbar is None else (lambda _frame: pbar.advance(1)),
                )
            if uploader is not None:
                uploader.close()
            if replace_start_shapes and journal is not None:
                replacing = True
                replaced = _replace_start_shapes(target, journal, retry)
        except BaseException as error:
            report = None
            # Once every track is uploaded, a failure to remove the start shapes must not take
            # the tracks away too; a rerun finishes the replacing.
            if uploader is not None and not replacing:
                uploader.abort()
                report = uploader.rollback()
            # A rolled-back run leaves nothing a rerun could reuse (its tracks are tracked
            # again from their start): its journal goes, unless a rerun must finish something.
            keep = persistent and (replacing or (report is not None and report.left > 0))
            with contextlib.suppress(AttributeError, TypeError):
                error.cvat_aa_stopped = RunStopped(  # type: ignore[attr-defined]
                    target=target.describe(),
                    removed=report.removed if report else 0,
                    left=report.left if report else 0,
                    frames_done=0,
                    journal=journal.path if journal is not None and keep else None,
                    clearing=replacing,
                )
            if journal is not None:
                journal.close(delete=not keep)
            raise
        if journal is not None:
            journal.close(delete=True)
    return TrackSummary(
        target=kind,
        target_id=target_id,
        task_id=source.task_id,
        function=name,
        frames=following.frames,
        tracks=following.tracks + resumed_tracks,
        keyframes=following.keyframes,
        lost=following.lost,
        made=following.made,
        per_label=dict(uploads.per_label),
        elapsed_s=time.monotonic() - started,
        resumed=resumed,
        tracks_resumed=resumed_tracks,
        replaced=replaced,
        dry_run=dry_run,
    )


def _replace_start_shapes(target: AnnotationTarget, journal: Journal, retry: RetryPolicy) -> int:
    """Remove the start shapes of the tracks the run uploaded (all of them, by now); return
    how many were still there. Nothing else is removed: only shapes that started a track."""
    used = {
        ("shape", int(start.split(":", 1)[1]))
        for start in journal.uploaded_starts()
        if start.startswith("shape:")
    }
    removed = retry.call(
        lambda: target.delete(used), what=f"removing the start shapes of {target.describe()}"
    )
    logger.info("Removed the %d start shapes that the tracks replace", len(removed))
    return len(removed)


def track_task(client: Client, task_id: int, function: Any, **options: Any) -> TrackSummary:
    """Run a tracking ``function`` over a task's frames and upload one CVAT track per start
    shape.

    ``function`` is a loaded tracking function (its spec a ``TrackingFunctionSpec``), or the
    name of an installed one (or a module name, or a path to a ``.py`` file). Tracks start
    from:

    * by default, the task's shapes of a type the function tracks
      (``spec.supported_shape_types``) on the first frame of ``frames``; with
      ``start_frames="all"``, those on any frame of ``frames``, each on its own frame;
    * or ``start_shapes``, given as ``[{"label": name, "frame": n, "type": "rectangle",
      "points": [...]}, ...]`` (a shapes file's contents, see the user guide), their labels
      matched by name to the task's.

    The keywords (``options``):

    * ``frames``: the frames tracked over (as ``annotate_task``'s: a ``FrameSelection``, a
      string such as ``"10-99"``, or frame numbers); every frame selected is one keyframe of
      each object followed;
    * ``start_shapes``, ``start_frames`` (``"first"`` or ``"all"``) as above, and ``labels``
      (names): only start shapes with those labels;
    * ``dry_run``: track, upload nothing (no lock is taken, no journal kept);
    * ``replace_start_shapes``: once every track is uploaded, remove the task's shapes that
      the tracks started from (each track begins with its start shape, so nothing is lost);
      no other shape is removed, and if the removal fails the tracks stay and a rerun with
      the journal finishes it;
    * ``journal_dir`` and ``journal_key`` (what identifies the function: its name,
      parameters, version): keep a journal there, so that a killed run resumes;
      ``resume=True`` fails when there is nothing to resume;
    * ``retry`` (a ``RetryPolicy``), ``upload_tracks`` (tracks per upload, default 50),
      ``prefetch`` (frame downloads ahead, default 4), ``function_name`` (for messages and
      the journal), ``pbar`` (a cvat-sdk ``ProgressReporter``).

    The start shapes are never changed: each track starts on its shape's frame, beside it.
    A track ends with an ``outside`` keyframe where the function loses the object, or on
    the frame after the last one selected (unless that is the end of the task).

    Tracks are uploaded as they end, with a journal: a retried request or a lost reply never
    makes a track twice; a failed run removes the tracks it uploaded; a killed run that is
    run again resumes, tracking again only the objects it had not uploaded. A run on a task
    another run is writing to raises ``RunInProgressError``. A task whose jobs share frames
    (CVAT's ``overlap``) is refused with ``ValueError`` unless ``dry_run``: CVAT keeps a track
    there once per job and answers with one copy, so a failed run could not remove the
    others; track its jobs with :func:`track_job`.

    Raises the function's own exception (with a note naming the frame) when it raises,
    ``BadFunctionError`` for a function that is not a tracking function or breaks the
    protocol, ``ValueError`` for bad arguments or when there is no shape to start from,
    ``TypeError`` for an unknown keyword, and cvat-sdk's API exceptions for server errors.
    Returns a :class:`TrackSummary`.
    """
    return raising_as_the_function_did(
        lambda: track_on_server(client, function, kind="task", target_id=task_id, **options)
    )


def track_job(client: Client, job_id: int, function: Any, **options: Any) -> TrackSummary:
    """Like :func:`track_task`, over the frames of one job (``frames`` are task frame
    numbers), from the job's shapes; the tracks go to the job."""
    return raising_as_the_function_did(
        lambda: track_on_server(client, function, kind="job", target_id=job_id, **options)
    )
