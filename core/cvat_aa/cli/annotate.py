"""``cvat-aa annotate``: run a function on CVAT tasks, a job or a project and upload the results.

With ``--images`` it runs on local files instead (see ``local_run``). ``--executor ray`` runs
the function on Ray actors (see ``pipeline.ray_executor``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any

import attrs
from cvat_sdk.api_client import exceptions as api_exceptions
from cvat_sdk.core import Client
from cvat_sdk.core.helpers import DeferredTqdmProgressReporter

from ..driver import FrameSelection, annotate_job, annotate_project, annotate_task, annotate_tasks
from ..pipeline.options import DEFAULT_BATCH_SIZE
from ..driver.journal import default_journal_dir, private_directory
from ..pipeline.label_mapping import LabelMismatchError
from ..driver.server_url import redact_url
from ..pipeline.ray_executor import RayExecutor
from ..labels import LabelCatalog
from ..pipeline.options import RunOptions
from ..plugins import find_function
from ..preview import PreviewWriter
from . import label_map as label_map_options
from . import local_run, login
from .errors import ExitCode, NotFoundError, UsageError
from .options import add_function_options, load_from_args

__all__ = ["register"]

logger = logging.getLogger(__name__)

DEFAULT_PREFETCH = attrs.fields(RunOptions).prefetch.default
DEFAULT_UPLOAD_FRAMES = attrs.fields(RunOptions).upload_frames.default


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _frames(text: str) -> FrameSelection:
    try:
        return FrameSelection.parse(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(str(ex)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("cannot be negative")
    return value


def _add_executor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="where the function runs: in this process (default), or on Ray actors"
        " (needs pip install 'cvat-aa[ray]')",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --executor ray: the Ray cluster to use (e.g. ray://head:10001, or auto);"
        " by default a local one is started for the run",
    )
    parser.add_argument(
        "--actors",
        type=_positive,
        metavar="N",
        help="with --executor ray: Ray actors to run the function on, each loading it once"
        " (default 2)",
    )
    parser.add_argument(
        "--gpus-per-actor",
        type=_non_negative,
        metavar="X",
        help="with --executor ray: GPUs each actor reserves; fractions share a GPU (default 0)",
    )


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "annotate",
        help="annotate CVAT tasks, a job or a project with a function",
        description="Run a function on the frames of CVAT tasks (or a job, or all tasks of a"
        " project) and upload the annotations, or on local images and videos (--images) and"
        " write them to a file. Server and authentication options are cvat-cli's.",
    )
    parser.add_argument(
        "task_ids",
        nargs="*",
        type=int,
        metavar="TASK_ID",
        help="the tasks to annotate, in id order",
    )
    parser.add_argument(
        "--job", type=int, metavar="JOB_ID", help="annotate this job instead of a task"
    )
    parser.add_argument(
        "--project",
        type=int,
        metavar="PROJECT_ID",
        help="annotate every task of this project, in id order",
    )
    local_run.add_options(parser)
    parser.add_argument(
        "--preview",
        metavar="DIR",
        help="draw the annotations onto the frames: PNG files and an index.html gallery in DIR",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="with a task or job: process the frames (and write --preview) but upload nothing",
    )
    add_function_options(parser, named_option=True)
    parser.add_argument(
        "--clear-existing",
        action="store_true",
        help="replace existing annotations instead of adding",
    )
    parser.add_argument(
        "--allow-unmatched-labels",
        action="store_true",
        help="drop output for function labels, sublabels or attributes the task lacks",
    )
    label_map_options.add_options(parser)
    parser.add_argument(
        "--conf-threshold", type=_threshold, metavar="X", help="confidence threshold, 0 to 1"
    )
    parser.add_argument(
        "--conv-mask-to-poly",
        action="store_true",
        help="ask the function for polygons instead of masks",
    )
    parser.add_argument(
        "--frames",
        type=_frames,
        metavar="SPEC",
        help="only these frames (task frame numbers, or an --images run's): numbers, ranges and"
        " stepped ranges, e.g. 0-99:5,120,200-210",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"frames per call to the function (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--prefetch",
        type=_positive,
        default=DEFAULT_PREFETCH,
        metavar="N",
        help=f"chunk or frame downloads to run ahead of the function (default {DEFAULT_PREFETCH})",
    )
    parser.add_argument(
        "--upload-frames",
        type=_positive,
        default=DEFAULT_UPLOAD_FRAMES,
        metavar="N",
        help=f"upload every N frames while the run goes on (default {DEFAULT_UPLOAD_FRAMES})",
    )
    parser.add_argument(
        "--on-error",
        choices=["stop", "skip"],
        default="stop",
        help="when the function raises on a frame (or, with --images, a file cannot be read):"
        " stop the run (default; nothing stays uploaded or written), or skip it, go on, and"
        " list what was skipped at the end (exit 6)",
    )
    journal = parser.add_mutually_exclusive_group()
    journal.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run (the default whenever a matching journal exists);"
        " fail if there is none",
    )
    journal.add_argument(
        "--no-journal", action="store_true", help="keep no journal: an interrupted run starts over"
    )
    parser.add_argument(
        "--journal-dir",
        type=Path,
        metavar="DIR",
        help=f"where run journals are kept (default {default_journal_dir()})",
    )
    _add_executor_options(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    login.add_server_options(parser)
    parser.set_defaults(run=run)


def _check_executor_options(args: argparse.Namespace) -> None:
    ray_only = [
        option
        for option, value in (
            ("--ray-address", args.ray_address),
            ("--actors", args.actors),
            ("--gpus-per-actor", args.gpus_per_actor),
        )
        if value is not None
    ]
    if ray_only and args.executor != "ray":
        verb = "needs" if len(ray_only) == 1 else "need"
        raise UsageError(f"{', '.join(ray_only)} {verb} --executor ray")
    if args.executor == "ray" and args.images is not None:
        raise UsageError("--executor ray runs tasks, jobs and projects; an --images run is local")


def _make_executor(args: argparse.Namespace) -> RayExecutor | None:
    if args.executor != "ray":
        return None
    source = args.function or args.function_module or str(args.function_file)
    try:
        return RayExecutor(
            source,
            dict(args.function_parameters),
            actors=args.actors or 2,
            gpus_per_actor=args.gpus_per_actor or 0,
            address=args.ray_address,
        )
    except ImportError as ex:
        raise UsageError(f"--executor ray: {ex}") from None


def run(args: argparse.Namespace) -> int:
    task_ids = args.task_ids or None
    if sum(given is not None for given in (task_ids, args.job, args.project, args.images)) != 1:
        raise UsageError(
            "give one of a TASK_ID, --job JOB_ID or --images PATH..., or several TASK_IDs or"
            " --project PROJECT_ID to annotate several tasks"
        )
    _check_executor_options(args)
    if args.images is not None:
        return local_run.run(args)
    local_run.check_task_run(args)
    if not args.no_journal and not args.dry_run:
        # Before any work: a journal directory that cannot be used would fail the run late.
        args.journal_dir = private_directory(args.journal_dir or default_journal_dir())
    several = args.project is not None or len(args.task_ids) > 1
    if several and args.preview is not None:
        raise UsageError("--preview works with one task or job; give one TASK_ID or --job")
    # A bad label map needs no model or server.
    label_map_options.from_args(args)
    # Load the function before connecting: a bad name or parameter needs no server.
    function, name, _ = load_from_args(args)
    executor = _make_executor(args)
    try:
        return _run_on_server(args, function, name, executor, several)
    finally:
        if executor is not None:
            executor.close()


def _run_on_server(
    args: argparse.Namespace, function: Any, name: str, executor: RayExecutor | None, several: bool
) -> int:
    journal_dir = None if args.no_journal else (args.journal_dir or default_journal_dir())

    client = login.log_in(args)
    with client:
        client.check_server_version(fail_if_unsupported=False)
        pbar = DeferredTqdmProgressReporter(
            {"file": sys.stderr, "dynamic_ncols": True, "disable": None}
        )
        options = dict(
            pbar=pbar,
            clear_existing=args.clear_existing,
            allow_unmatched_labels=args.allow_unmatched_labels,
            conf_threshold=args.conf_threshold,
            conv_mask_to_poly=args.conv_mask_to_poly,
            label_map=label_map_options.from_args(args),
            frames=args.frames,
            batch_size=args.batch_size,
            prefetch=args.prefetch,
            upload_frames=args.upload_frames,
            on_error=args.on_error,
            journal_dir=journal_dir,
            journal_key=_function_identity(args, name),
            resume=True if args.resume else None,
            executor=executor,
        )
        if args.project is not None:
            target = f"project {args.project}"
        elif args.job is not None:
            target = f"job {args.job}"
        else:
            target = (
                f"task {args.task_ids[0]}"
                if not several
                else (f"one of tasks {', '.join(map(str, args.task_ids))}")
            )
        preview = None
        try:
            if args.preview is not None:
                preview = _task_preview(client, args, target)
                options["on_frame"] = preview.add
            if args.project is not None:
                summary = annotate_project(
                    client, args.project, function, dry_run=args.dry_run, **options
                )
            elif several:
                summary = annotate_tasks(
                    client, args.task_ids, function, dry_run=args.dry_run, **options
                )
            elif args.job is not None:
                summary = annotate_job(client, args.job, function, dry_run=args.dry_run, **options)
            else:
                summary = annotate_task(
                    client, args.task_ids[0], function, dry_run=args.dry_run, **options
                )
        except LabelMismatchError as ex:
            raise ex.for_command_line() from None
        except api_exceptions.NotFoundException:
            raise NotFoundError(
                f"{target} was not found on {redact_url(client.api_map.host)}"
            ) from None
        finally:
            if preview is not None:
                preview.close()

    if args.json:
        print(
            json.dumps(
                {
                    "function": name,
                    **summary.to_dict(),
                    "preview": str(preview.index_path) if preview is not None else None,
                },
                indent=2,
            )
        )
    else:
        print(summary.format())
        if preview is not None:
            print(f"Preview: {preview.index_path}")
        host = redact_url(client.api_map.host)
        if args.project is not None and not args.dry_run:
            print(f"See the result in CVAT: {host}/projects/{args.project}")
        elif not several and not args.dry_run:
            print(f"See the result in CVAT: {host}/tasks/{summary.task_id}")
    return ExitCode.FUNCTION_FAILED if summary.failed_frames else ExitCode.OK


def _task_preview(client: Client, args: argparse.Namespace, target: str) -> PreviewWriter:
    """A preview of a task run: annotations arrive with task label ids, named by the task."""
    task_id = args.task_ids[0] if args.job is None else client.jobs.retrieve(args.job).task_id
    labels = LabelCatalog.from_task_labels(client.tasks.retrieve(task_id).get_labels())
    title = f"{target}{' (dry run)' if args.dry_run else ''}"
    return PreviewWriter(args.preview, labels, title=title)


def _function_identity(args: argparse.Namespace, name: str) -> dict[str, object]:
    """What identifies the function for the run journal: source, parameters, version."""
    identity: dict[str, object] = {"source": name, "parameters": dict(args.function_parameters)}
    if args.function is not None:
        entry = find_function(args.function)
        identity["distribution"] = [entry.distribution, entry.version]
    else:
        # A file's contents are its version; a module's are those of its source file.
        path = args.function_file
        if path is None:
            spec = importlib.util.find_spec(args.function_module)
            path = spec.origin if spec is not None and spec.has_location else None
        if path is not None:
            identity["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return identity
