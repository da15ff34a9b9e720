"""``cvat-aa annotate-files``: run a function on images and videos on this machine, with no
server.

The annotations go to ``--output`` (CVAT for images XML or COCO JSON), written frame by frame
as the run goes (the file appears whole when it ends), and, with ``--preview``, are drawn into a
gallery. The command takes the flags of the run options that runs over files take (see
:mod:`.run_options`). Where the results go, and which frames there are, is checked before the
function is loaded: a bad path must not cost a model load, let alone a run.

``cvat-aa annotate --images PATH...`` is the deprecated spelling of this command: its
arguments come here (see :mod:`.annotate`), ``--images`` being this parser's hidden way of
naming the paths.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cvat_sdk.core.helpers import DeferredTqdmProgressReporter

from ..export import FORMATS, check_output, format_for
from ..local import LocalFrames
from ..local.run import run_on_files
from ..pipeline.executors import detection_spec
from ..pipeline.options import RunOptions, Runs
from ..plugins import hooks
from ..preview import check_preview_directory
from .errors import ExitCode, UsageError
from .options import add_executor_options, add_function_options, function_for_run
from .run_options import add_run_options, check_refused, options_from_args

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "annotate-files",
        help="annotate images and videos on this machine (no server) and write the"
        " annotations to a file",
        description="Run a function on images and videos on this machine and write the"
        " annotations to a file CVAT imports (--output), or draw them (--preview). Needs no"
        " server.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="images, videos, folders (their images) or quoted globs such as 'photos/**/*.jpg'",
    )
    # ``annotate --images PATH...``, the old spelling, comes here as this.
    parser.add_argument("--images", nargs="+", metavar="PATH", help=argparse.SUPPRESS)
    add_function_options(parser, named_option=True)
    add_run_options(parser, Runs.FILES)
    add_executor_options(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(run=run)
    return parser


def _check_outputs(args: argparse.Namespace) -> None:
    """Check where the results go, with messages that name the flags."""
    if args.preview is not None:
        try:
            check_preview_directory(args.preview)
        except ValueError as ex:
            raise UsageError(f"--preview: {ex}") from None
    if args.output is None:
        if args.format is not None:
            raise UsageError("--format needs --output FILE")
        return
    try:
        check_output(args.output, args.format)
    except ValueError as ex:
        raise UsageError(f"--output: {ex}") from None


def run(args: argparse.Namespace) -> int:
    check_refused(args)
    if args.images is not None and args.paths:
        raise UsageError(
            "annotate --images runs on files only: give one of a TASK_ID, --job JOB_ID or"
            " --project PROJECT_ID to annotate a task, or the files to cvat-aa annotate-files"
        )
    paths = args.paths or args.images
    if not paths:
        raise UsageError("give the images, videos, folders or globs to annotate")
    _check_outputs(args)
    options: dict[str, Any] = options_from_args(args, Runs.FILES)
    # The files, and the frames --frames selects, before the function: a wrong path or
    # selection needs no model.
    source = LocalFrames.find(paths, args.frames)
    source.check_selection()
    function, name, executor = function_for_run(args)
    if executor is None:  # built here: an interaction or tracking function is refused now
        detection_spec(hooks().spec(function), name)
    options.update(
        function_name=name,
        task_name=name,
        keep_annotations=False,
        pbar=DeferredTqdmProgressReporter(
            {"file": sys.stderr, "dynamic_ncols": True, "disable": None}
        ),
    )
    if executor is not None:
        options["executor"] = executor
    run_options = RunOptions.for_runs(Runs.FILES, "annotate-files", **options)
    try:
        result = run_on_files(function, source, run_options)
    finally:
        if executor is not None:
            executor.close()
    code = ExitCode.FUNCTION_FAILED if result.skipped else ExitCode.OK
    output_format = None if args.output is None else format_for(args.output, args.format)

    if args.json:
        print(json.dumps({**result.to_dict(), "format": output_format}, indent=2))
        return code
    print(result.format())
    if output_format is not None:
        print(f"Wrote {args.output} ({FORMATS[output_format]})")
    if result.summary.preview is not None:
        print(f"Preview: {result.summary.preview}")
    return code
