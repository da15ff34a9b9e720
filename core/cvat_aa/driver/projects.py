"""Annotating several tasks, or every task of a project, as one run.

Each task goes through :func:`annotate_task` with the same function and executor (so a Ray
executor's actors load the function once for all of them), in task id order. Journals stay
per task; beside them, a small progress file lists the tasks a run has finished, so that
running it again after an interruption goes on with the task it stopped in instead of
annotating finished tasks a second time.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
from cvat_sdk.core import Client

from ..plugins import load_function
from ..frames import EmptySelectionError
from .task_run import AnnotationSummary, _options, annotate_task
from .journal import SCHEMA_VERSION, journal_key, private_directory
from .retry import RetryPolicy
from .server_url import normalize_server_url

__all__ = ["TasksSummary", "annotate_project", "annotate_tasks"]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class TasksSummary:
    """What a run over several tasks did: one summary per task, and the totals."""

    project_id: int | None
    """The project whose tasks these were, if the run was given one."""
    tasks: list[AnnotationSummary]
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
            f" {self.annotations} annotations in {self.elapsed_s:.1f} s"
            + (f" ({self.frames / self.elapsed_s:.1f} frames/s)" if self.elapsed_s > 0 else "")
        ]
        for task in self.tasks:
            lines.append(
                f"  task {task.task_id}: {task.frames} frames, {task.annotations} annotations"
                + (" (resumed)" if task.resumed else "")
                + (f", failed on {len(task.failed_frames)} frames" if task.failed_frames else "")
            )
        per_label = self.per_label
        width = max((len(name) for name in per_label), default=0)
        for name, count in sorted(per_label.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"  {name:<{width}}  {count}")
        for task_id, failed in self.failed_frames.items():
            lines.append(f"The function failed on {len(failed)} frames of task {task_id}:")
            lines.extend(f"  frame {f}: {why}" for f, why in sorted(failed.items()))
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

    def finish(self, task_id: int, summary: AnnotationSummary) -> None:
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
    options: Mapping[str, Any],
) -> TasksSummary:
    started = time.monotonic()
    ids = sorted(set(task_ids))
    loaded = load_function(function) if isinstance(function, str) else function
    parsed = _options(**{**_DEFAULTS, **options})
    persistent = (
        parsed.journal_dir is not None and parsed.journal_key is not None and not parsed.dry_run
    )
    key = journal_key(
        {
            "journal": SCHEMA_VERSION,
            "server": normalize_server_url(client.api_map.host),
            "targets": ["project", project_id] if project_id is not None else ["tasks", ids],
            "function": parsed.journal_key,
            **parsed.key_parts(),
        }
    )
    progress = _Progress.open(parsed.journal_dir if persistent else None, key)
    resume = options.get("resume")
    if resume and not progress.exists:
        raise ValueError(
            "there is no interrupted run of this function on these tasks to resume"
            " (with these parameters and options)"
        )
    if progress.done:
        logger.info("Resuming: %d of the tasks were finished before", len(progress.done))
    progress.save()

    summaries = [
        attrs.evolve(AnnotationSummary(**progress.done[i]), resumed=True)
        for i in ids
        if i in progress.done
    ]
    outside: list[EmptySelectionError] = []
    for task_id in (i for i in ids if i not in progress.done):
        logger.info("Annotating task %d", task_id)
        # A task that had not started has no journal: resuming is the progress file's job.
        try:
            summary = annotate_task(client, task_id, loaded, **{**options, "resume": None})
        except EmptySelectionError as ex:
            # Tasks differ in length: a selection need only match frames of some of them.
            logger.info("Task %d has no frame in the selection; it is left as it is", task_id)
            outside.append(ex)
            continue
        progress.finish(task_id, summary)
        summaries.append(summary)
    progress.delete()
    if outside and not summaries:
        raise outside[0] if len(outside) == 1 else EmptySelectionError(
            f"the frame selection {parsed.frames} matches no frame of any of the tasks"
            f" {', '.join(map(str, ids))}; choose frames that they have"
        )
    return TasksSummary(
        project_id=project_id,
        tasks=summaries,
        elapsed_s=round(time.monotonic() - started, 3),
        dry_run=parsed.dry_run,
    )


# annotate_task's keyword arguments and their defaults: what every task of the run is given.
_DEFAULTS: dict[str, Any] = {
    name: parameter.default
    for name, parameter in inspect.signature(annotate_task).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
}


def annotate_tasks(
    client: Client, task_ids: Iterable[int], function: Any, **options: Any
) -> TasksSummary:
    """Run ``function`` on each of the tasks, in id order, as :func:`annotate_task` would.

    ``options`` are :func:`annotate_task`'s keyword arguments and apply to every task; the
    function (and ``executor``) serve them all. A failure stops the run in the task it
    happened in, which is left as it was; tasks finished before keep their annotations. What
    the function raised on a frame is raised here, as :func:`annotate_task` raises it. With
    ``journal_dir`` and ``journal_key``, running the same call again skips the tasks that
    were finished and resumes the one that was interrupted; ``resume=True`` insists on that.
    """
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
    return _run(client, task_ids, function, None, options)


def annotate_project(
    client: Client, project_id: int, function: Any, **options: Any
) -> TasksSummary:
    """Like :func:`annotate_tasks`, for every task of a project (those it has when the run starts)."""
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
    retry = options.get("retry") or RetryPolicy()
    project = retry.call(
        lambda: client.projects.retrieve(project_id), what=f"reading project {project_id}"
    )
    tasks = retry.call(project.get_tasks, what=f"listing the tasks of project {project_id}")
    return _run(client, [t.id for t in tasks], function, project_id, options)
