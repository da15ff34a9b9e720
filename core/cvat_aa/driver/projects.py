"""Annotating several tasks, or every task of a project, as one run.

Each task is run as :func:`~.task_run.annotate_task` runs it, with the same options, function
and executor (so a Ray executor's actors load the function once for all of them), in task id
order. Journals stay
per task; beside them, a small progress file lists the tasks a run has finished, so that
running it again after an interruption goes on with the task it stopped in instead of
annotating finished tasks a second time.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
from cvat_sdk.core import Client

from ..frames import EmptySelectionError
from ..pipeline.detection import raising_as_the_function_did
from ..pipeline.executors import LocalExecutor
from ..pipeline.options import RunOptions, Runs
from ..pipeline.run import function_name
from ..pipeline.summary import RunSummary, per_label_lines
from .journal import SCHEMA_VERSION, journal_key, private_directory
from .permission_check import check_may_annotate
from .retry import RetryPolicy
from .server_url import normalize_server_url
from .task_run import run_on_server

__all__ = ["TasksSummary", "annotate_project", "annotate_tasks"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class TasksSummary:
    """What a run over several tasks did: one summary per task, and the totals."""

    project_id: int | None
    """The project whose tasks these were, if the run was given one."""
    tasks: list[RunSummary]
    """Per task, in the order they ran (tasks a resumed run had finished come first)."""
    elapsed_s: float
    dry_run: bool = False

    @property
    def frames(self) -> int:
        return sum(t.frames for t in self.tasks)

    @property
    def annotations(self) -> int:
        return sum(t.annotations for t in self.tasks)

    @property
    def tracks(self) -> int:
        """Tracks among the annotations (made by a result stage, such as video tracks)."""
        return sum(t.tracks for t in self.tasks)

    @property
    def per_label(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for task in self.tasks:
            total.update(task.per_label)
        return dict(total)

    @property
    def failed_frames(self) -> dict[int, dict[int, str]]:
        """Per task id, the frames the function failed on (only with ``on_error="skip"``)."""
        return {t.task_id: t.failed_frames for t in self.tasks if t.failed_frames}

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "frames": self.frames,
            "annotations": self.annotations,
            "tracks": self.tracks,
            "per_label": self.per_label,
            "elapsed_s": self.elapsed_s,
            "failed_frames": self.failed_frames,
            "dry_run": self.dry_run,
            "tasks": [t.to_dict() for t in self.tasks],
        }

    def format(self) -> str:
        """A short human-readable report: a line per task, then the totals per label."""
        verb = "Processed (dry run, nothing uploaded)" if self.dry_run else "Annotated"
        what = f"project {self.project_id}" if self.project_id is not None else "tasks"
        lines = [
            f"{verb} {what}: {len(self.tasks)} tasks, {self.frames} frames,"
            f" {self.annotations} annotations"
            + (f" ({self.tracks} of them tracks)" if self.tracks else "")
            + f" in {self.elapsed_s:.1f} s"
            + (f" ({self.frames / self.elapsed_s:.1f} frames/s)" if self.elapsed_s > 0 else "")
        ]
        for task in self.tasks:
            lines.append(
                f"  task {task.task_id}: {task.frames} frames, {task.annotations} annotations"
                + (f" ({task.tracks} of them tracks)" if task.tracks else "")
                + (" (resumed)" if task.resumed else "")
                + (f", failed on {len(task.failed_frames)} frames" if task.failed_frames else "")
            )
        lines.extend(per_label_lines(self.per_label))
        for task in self.tasks:
            skipped = task.skipped_lines()
            if skipped:
                lines.append(f"In task {task.task_id}:")
                lines.extend(skipped)
        return "\n".join(lines)


@attrs.define
class _Progress:
    """The tasks a journaled multi-task run has finished, with their summaries."""

    path: Path | None
    done: dict[int, dict[str, Any]]

    @classmethod
    def open(cls, directory: Path | None, key: str) -> _Progress:
        if directory is None:
            return cls(None, {})
        path = directory / f"{key}.tasks.json"
        done: dict[int, dict[str, Any]] = {}
        if path.exists():
            done = {int(k): v for k, v in json.loads(path.read_text())["done"].items()}
        return cls(path, done)

    @property
    def exists(self) -> bool:
        return self.path is not None and self.path.exists()

    def save(self) -> None:
        if self.path is not None:
            private_directory(self.path.parent)
            temporary = self.path.with_suffix(".tmp")
            temporary.unlink(missing_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(json.dumps({"done": self.done}))
            temporary.replace(self.path)

    def finish(self, task_id: int, summary: RunSummary) -> None:
        self.done[task_id] = summary.to_dict()
        self.save()

    def delete(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def _run(
    client: Client,
    task_ids: Iterable[int],
    function: Any,
    project_id: int | None,
    options: RunOptions,
) -> TasksSummary:
    started = time.monotonic()
    ids = sorted(set(task_ids))
    if options.preview is not None:
        raise ValueError(
            "a preview draws one task or job: give it to annotate_task or annotate_job"
        )
    if not options.dry_run:
        # Every task first, so that a task the user may not change stops the run before any
        # other task is annotated or the function is even loaded.
        retry = options.retry or RetryPolicy()
        for task_id in ids:
            check_may_annotate(client, "task", task_id, retry=retry)
    # One executor, with the function loaded once, for every task.
    executor = options.executor or LocalExecutor()
    loaded = executor.load(function, options.plugin_options)
    # A task that had not started has no journal: resuming is the progress file's job.
    per_task = attrs.evolve(
        options,
        executor=executor,
        resume=None,
        function_name=options.function_name or function_name(function),
    )
    persistent = (
        options.journal_dir is not None and options.journal_key is not None and not options.dry_run
    )
    key = journal_key(
        {
            "journal": SCHEMA_VERSION,
            "server": normalize_server_url(client.api_map.host),
            "targets": ["project", project_id] if project_id is not None else ["tasks", ids],
            "function": options.journal_key,
            **options.key_parts(),
        }
    )
    progress = _Progress.open(options.journal_dir if persistent else None, key)
    if options.resume and not progress.exists:
        raise ValueError(
            "there is no interrupted run of this function on these tasks to resume"
            " (with these parameters and options)"
        )
    if progress.done:
        logger.info("Resuming: %d of the tasks were finished before", len(progress.done))
    progress.save()

    summaries = [
        attrs.evolve(RunSummary.from_dict(progress.done[i]), resumed=True)
        for i in ids
        if i in progress.done
    ]
    outside: list[EmptySelectionError] = []
    for task_id in (i for i in ids if i not in progress.done):
        logger.info("Annotating task %d", task_id)
        try:
            summary = run_on_server(
                client,
                loaded,
                kind="task",
                target_id=task_id,
                options=per_task,
                permission_checked=True,
                loaded=True,
            )
        except EmptySelectionError as ex:
            # Tasks differ in length: a selection need only match frames of some of them.
            logger.info("Task %d has no frame in the selection; it is left as it is", task_id)
            outside.append(ex)
            continue
        progress.finish(task_id, summary)
        summaries.append(summary)
    progress.delete()
    if outside and not summaries:
        raise (
            outside[0]
            if len(outside) == 1
            else EmptySelectionError(
                f"the frame selection {options.frames} matches no frame of any of the tasks"
                f" {', '.join(map(str, ids))}; choose frames that they have"
            )
        )
    return TasksSummary(
        project_id=project_id,
        tasks=summaries,
        elapsed_s=round(time.monotonic() - started, 3),
        dry_run=options.dry_run,
    )


def annotate_tasks(
    client: Client, task_ids: Iterable[int], function: Any, **options: Any
) -> TasksSummary:
    """Run ``function`` on each of the tasks, in id order, as :func:`annotate_task` would.

    ``options`` are :func:`annotate_task`'s keyword arguments (the
    :class:`~cvat_aa.pipeline.options.RunOptions` of runs on a server, but ``preview``) and
    apply to every task; the function (and ``executor``) serve them all. A failure stops the
    run in the task it happened in, which is left as it was; tasks finished before keep their
    annotations. What the function raised on a frame is raised here, as :func:`annotate_task`
    raises it. With ``journal_dir`` and ``journal_key``, running the same call again skips
    the tasks that were finished and resumes the one that was interrupted; ``resume=True``
    insists on that.
    """
    run_options = RunOptions.for_runs(Runs.SERVER, "annotate_tasks", **options)
    return raising_as_the_function_did(lambda: _run(client, task_ids, function, None, run_options))


def annotate_project(
    client: Client, project_id: int, function: Any, **options: Any
) -> TasksSummary:
    """Like :func:`annotate_tasks`, for every task of a project (those it has when the run starts)."""
    run_options = RunOptions.for_runs(Runs.SERVER, "annotate_project", **options)
    retry = run_options.retry or RetryPolicy()
    project = retry.call(
        lambda: client.projects.retrieve(project_id), what=f"reading project {project_id}"
    )
    tasks = retry.call(project.get_tasks, what=f"listing the tasks of project {project_id}")
    return raising_as_the_function_did(
        lambda: _run(client, [t.id for t in tasks], function, project_id, run_options)
    )
