"""``cvat-aa annotate --images``: run a function on local files, with no server.

The annotations go to ``--output`` (CVAT for images XML or COCO JSON) and, with
``--preview``, are drawn into a gallery. The task-run side of the command is ``annotate``.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack

import attrs
from cvat_sdk.core.helpers import DeferredTqdmProgressReporter

from ..export import FORMATS, format_for, write_annotations
from ..labels import LabelCatalog
from ..local import annotate_images, find_media
from ..plugins import hooks
from ..preview import PreviewWriter
from .errors import UsageError
from .options import load_from_args

__all__ = ["add_options", "check_task_run", "run"]

# Options of task runs that mean nothing when nothing is uploaded, and how to tell they were given.
_TASK_ONLY = (
    ("--clear-existing", lambda args: args.clear_existing),
    ("--allow-unmatched-labels", lambda args: args.allow_unmatched_labels),
    ("--dry-run", lambda args: args.dry_run),
    ("--resume", lambda args: getattr(args, "resume", False)),
    ("--no-journal", lambda args: getattr(args, "no_journal", False)),
    ("--journal-dir", lambda args: getattr(args, "journal_dir", None) is not None),
    ("--on-error skip", lambda args: getattr(args, "on_error", "stop") != "stop"),
)


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--images``, ``--output`` and ``--format``."""
    parser.add_argument(
        "--images",
        nargs="+",
        metavar="PATH",
        help="run on these images, videos, folders (their images) or quoted globs on this"
        " machine instead of a task; needs no server",
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="with --images: write the annotations to FILE (*.xml: CVAT for images 1.1,"
        " *.json: COCO 1.0)",
    )
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        help="the format of --output, when its extension does not say",
    )


def check_task_run(args: argparse.Namespace) -> None:
    """Refuse the options that only an ``--images`` run takes."""
    if args.output is not None or args.format is not None:
        raise UsageError(
            "--output and --format are for --images runs; a task or job run uploads its"
            " annotations to CVAT (add --dry-run --preview DIR to look at them first)"
        )


def _check(args: argparse.Namespace) -> str | None:
    given = [option for option, was_given in _TASK_ONLY if was_given(args)]
    if given:
        raise UsageError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to task and job"
            " runs; an --images run uploads nothing"
        )
    if args.output is None:
        if args.format is not None:
            raise UsageError("--format needs --output FILE")
        return None
    try:
        return format_for(args.output, args.format)
    except ValueError as ex:
        raise UsageError(str(ex)) from None


def run(args: argparse.Namespace) -> int:
    output_format = _check(args)
    # Find the files before loading the function: a wrong path needs no model.
    media = find_media(args.images)
    function, name, _ = load_from_args(args)
    labels = LabelCatalog.from_spec(
        hooks().spec(function).labels, conv_mask_to_poly=args.conv_mask_to_poly
    )
    pbar = DeferredTqdmProgressReporter(
        {"file": sys.stderr, "dynamic_ncols": True, "disable": None}
    )
    with ExitStack() as stack:
        preview = None
        if args.preview is not None:
            preview = stack.enter_context(
                PreviewWriter(args.preview, labels, title=f"{name} on {len(media)} files")
            )
        result = annotate_images(
            function,
            args.images,
            conf_threshold=args.conf_threshold,
            conv_mask_to_poly=args.conv_mask_to_poly,
            frames=args.frames,
            batch_size=args.batch_size,
            pbar=pbar,
            on_frame=preview.add if preview is not None else None,
        )
    result = attrs.evolve(result, function=name)
    if args.output is not None:
        write_annotations(args.output, result.annotations, format=output_format, task_name=name)

    if args.json:
        print(
            json.dumps(
                {
                    **result.to_dict(),
                    "output": args.output,
                    "format": output_format,
                    "preview": str(preview.index_path) if preview is not None else None,
                },
                indent=2,
            )
        )
        return 0
    print(result.format())
    if args.output is not None:
        print(f"Wrote {args.output} ({FORMATS[output_format]})")
    if preview is not None:
        print(f"Preview: {preview.index_path}")
    return 0
