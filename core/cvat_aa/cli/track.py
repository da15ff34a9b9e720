"""``cvat-aa track``: run a tracking function over the frames of a task, a job, or a video or
images on disk, from start shapes, and upload (or write) the tracks.

On a server (``--task`` or ``--job``) the tracks are uploaded with the journal, lock and
rollback every run on a server has (:mod:`cvat_aa.driver.track_run`); on files (``--video`` or
``--images``) they are written to ``--output`` as CVAT for video XML
(:mod:`cvat_aa.local.track_video`). The function is loaded only once the options, the shapes
file and the output are checked: a mistake there must not cost a model load.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cvat_sdk.api_client import exceptions as api_exceptions
from cvat_sdk.core.helpers import DeferredTqdmProgressReporter

from ..driver.journal import default_journal_dir, private_directory
from ..driver.server_url import redact_url
from ..driver.track_run import track_job, track_task
from ..local.track_video import check_track_output, track_files
from ..tracks import read_shapes_file
from . import login
from .errors import ExitCode, NotFoundError, UsageError
from .options import (
    add_parameter_option,
    function_identity,
    load_from_args,
    use_function_source,
)
from .run_options import frame_selection, positive

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "track",
        help="follow shapes through the frames of a task, a job or a video with a tracking"
        " function, and upload (or write) the tracks",
        description="Run a tracking function over the frames of a CVAT task or job and upload"
        " one track per start shape (the shapes already on the first frame, or those of"
        " --shapes-file), or over a video or images on this machine and write the tracks to a"
        " CVAT for video XML file. The start shapes are never changed.",
    )
    parser.add_argument(
        "function",
        metavar="FUNCTION",
        help="a tracking function: an installed one (see 'functions list'), a module name or a"
        " .py path",
    )
    add_parameter_option(parser)
    where = parser.add_argument_group("what to track on (one of)")
    where.add_argument("--task", type=int, metavar="ID", help="the frames of this task")
    where.add_argument("--job", type=int, metavar="ID", help="the frames of this job")
    where.add_argument("--video", type=Path, metavar="FILE", help="a video on this machine")
    where.add_argument(
        "--images", type=Path, metavar="DIR", help="the images of a folder on this machine"
    )
    run = parser.add_argument_group("run options")
    run.add_argument(
        "--frames",
        type=frame_selection,
        metavar="SPEC",
        help="track over these frames only (task frame numbers, or numbers in the video), e.g."
        " 100-199; each frame is a keyframe",
    )
    run.add_argument(
        "--shapes-file",
        type=Path,
        metavar="FILE",
        help='start from the shapes of this JSON file: [{"label": "car", "frame": 0, "type":'
        ' "rectangle", "points": [x1, y1, x2, y2]}, ...] (needed with --video and --images)',
    )
    run.add_argument(
        "--start-frames",
        choices=["first", "all"],
        default="first",
        help="which of the task's shapes start tracks: those on the first frame tracked"
        " (default), or those on every frame tracked, each from its own frame",
    )
    run.add_argument(
        "--labels",
        metavar="NAMES",
        help="only start shapes with these labels (comma-separated names)",
    )
    run.add_argument(
        "--replace-start-shapes",
        action="store_true",
        help="once every track is uploaded, remove the shapes the tracks started from (each"
        " track begins with its shape); no other annotation is touched",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="track, and print what would be uploaded, but upload nothing",
    )
    run.add_argument(
        "--upload-tracks",
        type=positive,
        metavar="N",
        default=50,
        help="upload every N finished tracks while the run goes on (default 50)",
    )
    journal = run.add_mutually_exclusive_group()
    journal.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run (the default whenever a matching journal exists);"
        " fail if there is none",
    )
    journal.add_argument(
        "--no-journal", action="store_true", help="keep no journal: an interrupted run starts over"
    )
    run.add_argument(
        "--journal-dir",
        type=Path,
        metavar="DIR",
        help=f"where run journals are kept (default {default_journal_dir()})",
    )
    run.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="with --video or --images: write the tracks to FILE: *.xml for CVAT for video 1.1"
        " (CVAT imports it), *.json for plain JSON",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    login.add_server_options(parser)
    parser.set_defaults(run=run_track)


def _check(args: argparse.Namespace) -> bool:
    """Check the options; return whether the run is on files."""
    targets = [
        name
        for name, value in (
            ("--task", args.task),
            ("--job", args.job),
            ("--video", args.video),
            ("--images", args.images),
        )
        if value is not None
    ]
    if len(targets) != 1:
        raise UsageError("give one of --task ID, --job ID, --video FILE or --images DIR")
    on_files = args.video is not None or args.images is not None
    if on_files:
        server_only = [
            flag
            for flag, given in (
                ("--start-frames", args.start_frames != "first"),
                ("--dry-run", args.dry_run),
                ("--replace-start-shapes", args.replace_start_shapes),
                ("--resume", args.resume),
                ("--no-journal", args.no_journal),
                ("--journal-dir", args.journal_dir is not None),
            )
            if given
        ]
        if server_only:
            raise UsageError(
                f"{' and '.join(server_only)} apply only to tracking on a task or job;"
                " tracking on files writes --output"
            )
        if args.shapes_file is None:
            raise UsageError(
                "tracking on a video or images needs --shapes-file FILE with the shapes to"
                " start from"
            )
        media = args.video if args.video is not None else args.images
        if not media.exists():
            raise UsageError(f"{media} does not exist")
        if args.output is not None:
            try:
                check_track_output(args.output)
            except ValueError as ex:
                raise UsageError(f"--output: {ex}") from None
    elif args.output is not None:
        raise UsageError(
            "--output applies only to tracking on files (--video or --images); on a task or"
            " job the tracks are uploaded (add --dry-run to look first)"
        )
    return on_files


def run_track(args: argparse.Namespace) -> int:
    on_files = _check(args)
    shapes = None
    if args.shapes_file is not None:
        try:
            shapes = read_shapes_file(args.shapes_file)
        except ValueError as ex:
            raise UsageError(f"--shapes-file: {ex}") from None
    labels = None
    if args.labels is not None:
        labels = [name.strip() for name in args.labels.split(",") if name.strip()]
    journal_dir = None
    if not on_files and not args.no_journal and not args.dry_run:
        # Before any work: a journal directory that cannot be used would fail the run late.
        journal_dir = private_directory(args.journal_dir or default_journal_dir())
    source = args.function
    use_function_source(args)
    function, name, _ = load_from_args(args)
    pbar = DeferredTqdmProgressReporter(
        {"file": sys.stderr, "dynamic_ncols": True, "disable": None}
    )
    if on_files:
        assert shapes is not None
        if labels is not None:
            shapes = [entry for entry in shapes if entry["label"] in labels]
        media = args.video if args.video is not None else args.images
        summary = track_files(
            function,
            [media],
            shapes,
            output=args.output,
            frames=args.frames,
            function_name=name,
            task_name=Path(media).name,
            pbar=pbar,
        )
        return _report(args, summary)
    options: dict[str, Any] = {
        "frames": args.frames,
        "start_shapes": shapes,
        "start_frames": args.start_frames,
        "labels": labels,
        "dry_run": args.dry_run,
        "replace_start_shapes": args.replace_start_shapes,
        "upload_tracks": args.upload_tracks,
        "function_name": name,
        "pbar": pbar,
    }
    if journal_dir is not None:
        options["journal_dir"] = journal_dir
        options["journal_key"] = function_identity(args, source)
        options["resume"] = True if args.resume else None
    client = login.log_in(args)
    with client:
        client.check_server_version(fail_if_unsupported=False)
        try:
            if args.job is not None:
                summary = track_job(client, args.job, function, **options)
            else:
                summary = track_task(client, args.task, function, **options)
        except api_exceptions.NotFoundException:
            what = f"job {args.job}" if args.job is not None else f"task {args.task}"
            raise NotFoundError(
                f"{what} was not found on {redact_url(client.api_map.host)}"
            ) from None
        host = redact_url(client.api_map.host)
    code = _report(args, summary)
    if not args.json and not args.dry_run:
        if args.job is not None:
            print(f"See the result in CVAT: {host}/tasks/{summary.task_id}/jobs/{args.job}")
        else:
            print(f"See the result in CVAT: {host}/tasks/{summary.task_id}")
    return code


def _report(args: argparse.Namespace, summary: Any) -> int:
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(summary.format())
        if summary.output is not None:
            kind = "JSON" if summary.output.suffix.lower() == ".json" else "CVAT for video 1.1"
            print(f"Wrote {summary.output} ({kind})")
    return ExitCode.OK
