"""``cvat-aa annotate``: run a function on CVAT tasks, a job or a project and upload the results.

The command takes the flags of the run options that runs on a server take (see
:mod:`.run_options`); runs over files on disk are ``cvat-aa annotate-files``
(:mod:`.annotate_files`). ``annotate --images PATH...``, the old spelling of the latter, still
works: its arguments go to that command's parser, with a one-line notice. ``--executor ray``
runs the function on Ray actors (see ``pipeline.ray_executor``), which alone build it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from cvat_sdk.api_client import exceptions as api_exceptions
from cvat_sdk.core.helpers import DeferredTqdmProgressReporter

from ..driver import annotate_job, annotate_project, annotate_task, annotate_tasks
from ..driver.journal import private_directory
from ..driver.server_url import redact_url
from ..pipeline.executors import detection_spec
from ..pipeline.label_mapping import LabelMismatchError
from ..pipeline.options import Runs
from ..plugins import hooks
from ..preview import check_preview_directory
from . import annotate_files, login
from .errors import ExitCode, NotFoundError, UsageError
from .options import (
    add_executor_options,
    add_function_options,
    function_for_run,
    function_identity,
)
from .run_options import add_run_options, check_refused, options_from_args

__all__ = ["register"]

logger = logging.getLogger(__name__)

DEPRECATED_IMAGES = (
    "cvat-aa: 'annotate --images PATH...' is deprecated; use 'cvat-aa annotate-files PATH...'"
)


class _AnnotateParser(argparse.ArgumentParser):
    """The parser of ``annotate``: arguments with ``--images`` are the deprecated spelling of
    ``annotate-files``, and go to that command's parser (``files_parser``)."""

    files_parser: argparse.ArgumentParser

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is not None and any(a == "--images" or a.startswith("--images=") for a in args):
            print(DEPRECATED_IMAGES, file=sys.stderr)
            return self.files_parser.parse_known_args(args, namespace)
        return super().parse_known_args(args, namespace)


def _add_targets(group: Any) -> None:
    group.add_argument(
        "task_ids",
        nargs="*",
        type=int,
        metavar="TASK_ID",
        help="the tasks to annotate, in id order",
    )
    group.add_argument(
        "--job", type=int, metavar="JOB_ID", help="annotate this job instead of a task"
    )
    group.add_argument(
        "--project",
        type=int,
        metavar="PROJECT_ID",
        help="annotate every task of this project, in id order",
    )


def register(commands: argparse._SubParsersAction) -> None:
    """Register ``annotate`` and, beside it, ``annotate-files``."""
    parser = commands.add_parser(
        "annotate",
        help="annotate CVAT tasks, a job or a project with a function",
        description="Run a function on the frames of CVAT tasks (or a job, or all tasks of a"
        " project) and upload the annotations. Server and authentication options are"
        " cvat-cli's. For images and videos on this machine, see 'cvat-aa annotate-files'.",
    )
    # Its own class, for the deprecated --images (add_parser builds the subcommands' class).
    parser.__class__ = _AnnotateParser
    _add_targets(parser.add_argument_group("what to annotate"))
    add_function_options(parser, named_option=True)
    add_run_options(parser, Runs.SERVER)
    add_executor_options(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    login.add_server_options(parser)
    parser.set_defaults(run=run)
    parser.files_parser = annotate_files.register(commands)


def run(args: argparse.Namespace) -> int:
    check_refused(args)
    several = args.project is not None or len(args.task_ids) > 1
    if sum((bool(args.task_ids), args.job is not None, args.project is not None)) != 1:
        raise UsageError(
            "give one of a TASK_ID, --job JOB_ID or --project PROJECT_ID, or several TASK_IDs"
            " (to annotate images and videos on this machine: cvat-aa annotate-files PATH...)"
        )
    options = options_from_args(args, Runs.SERVER)
    if several and args.preview is not None:
        raise UsageError("--preview works with one task or job; give one TASK_ID or --job")
    if args.preview is not None:
        try:
            check_preview_directory(args.preview)
        except ValueError as ex:
            raise UsageError(f"--preview: {ex}") from None
    if options.get("journal_dir") is not None and not args.dry_run:
        # Before any work: a journal directory that cannot be used would fail the run late.
        options["journal_dir"] = private_directory(options["journal_dir"])
    # Before connecting: a bad function name or parameter needs no server.
    function, name, executor = function_for_run(args)
    if executor is None:  # built here: an interaction or tracking function is refused now
        detection_spec(hooks().spec(function), name)
    options.update(function_name=name, journal_key=function_identity(args, name))
    if executor is not None:
        options["executor"] = executor
    try:
        return _run_on_server(args, function, options, several)
    finally:
        if executor is not None:
            executor.close()


def _target(args: argparse.Namespace, several: bool) -> str:
    if args.project is not None:
        return f"project {args.project}"
    if args.job is not None:
        return f"job {args.job}"
    if several:
        return f"one of tasks {', '.join(map(str, args.task_ids))}"
    return f"task {args.task_ids[0]}"


def _run_on_server(
    args: argparse.Namespace, function: Any, options: dict[str, Any], several: bool
) -> int:
    client = login.log_in(args)
    with client:
        client.check_server_version(fail_if_unsupported=False)
        options["pbar"] = DeferredTqdmProgressReporter(
            {"file": sys.stderr, "dynamic_ncols": True, "disable": None}
        )
        try:
            if args.project is not None:
                summary: Any = annotate_project(client, args.project, function, **options)
            elif several:
                summary = annotate_tasks(client, args.task_ids, function, **options)
            elif args.job is not None:
                summary = annotate_job(client, args.job, function, **options)
            else:
                summary = annotate_task(client, args.task_ids[0], function, **options)
        except LabelMismatchError as ex:
            raise ex.for_command_line() from None
        except api_exceptions.NotFoundException:
            raise NotFoundError(
                f"{_target(args, several)} was not found on {redact_url(client.api_map.host)}"
            ) from None

    if args.json:
        data = {"function": options["function_name"], "preview": None, **summary.to_dict()}
        print(json.dumps(data, indent=2))
    else:
        print(summary.format())
        preview = getattr(summary, "preview", None)
        if preview is not None:
            print(f"Preview: {preview}")
        host = redact_url(client.api_map.host)
        if args.project is not None and not args.dry_run:
            print(f"See the result in CVAT: {host}/projects/{args.project}")
        elif args.job is not None and not args.dry_run:
            # The job's page: its assignee may not be allowed to open the task's.
            print(f"See the result in CVAT: {host}/tasks/{summary.task_id}/jobs/{args.job}")
        elif not several and not args.dry_run:
            print(f"See the result in CVAT: {host}/tasks/{summary.task_id}")
    return ExitCode.FUNCTION_FAILED if summary.failed_frames else ExitCode.OK
