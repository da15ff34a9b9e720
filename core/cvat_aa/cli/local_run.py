"""``cvat-aa annotate --images``: run a function on local files, with no server.

The annotations go to ``--output`` (CVAT for images XML or COCO JSON), written frame by frame
as the run goes (the file appears whole when it ends), and, with ``--preview``, are drawn into a
gallery. Where they go is checked before the function is loaded, in task runs too: a bad path
must not cost a model load, let alone a run. The task-run side of the command is ``annotate``.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack

from cvat_sdk.core.helpers import DeferredTqdmProgressReporter

from ..pipeline.label_mapping import LabelMap
from ..export import FORMATS, check_output
from ..labels import LabelCatalog
from ..local import LocalFrames, annotate_images
from ..plugins import hooks
from ..preview import PreviewWriter, check_preview_directory
from . import label_map as label_map_options
from .errors import ExitCode, UsageError
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
    """Refuse the options that only an ``--images`` run takes, and a ``--preview`` directory
    that cannot be written."""
    if args.output is not None or args.format is not None:
        raise UsageError(
            "--output and --format are for --images runs; a task or job run uploads its"
            " annotations to CVAT (add --dry-run --preview DIR to look at them first)"
        )
    _check_preview(args)


def _check_preview(args: argparse.Namespace) -> None:
    if args.preview is not None:
        try:
            check_preview_directory(args.preview)
        except ValueError as ex:
            raise UsageError(f"--preview: {ex}") from None


def _check(args: argparse.Namespace) -> str | None:
    given = [option for option, was_given in _TASK_ONLY if was_given(args)]
    if given:
        raise UsageError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to task and job"
            " runs; an --images run uploads nothing"
        )
    _check_preview(args)
    if args.output is None:
        if args.format is not None:
            raise UsageError("--format needs --output FILE")
        return None
    try:
        return check_output(args.output, args.format)
    except ValueError as ex:
        raise UsageError(f"--output: {ex}") from None


def run(args: argparse.Namespace) -> int:
    output_format = _check(args)
    # Find the files, and the frames --frames selects, before loading the function: a wrong
    # path or selection needs no model.
    source = LocalFrames.find(args.images, args.frames)
    source.check_selection()
    media = source.media
    label_map = label_map_options.from_args(args)
    function, name, _ = load_from_args(args)
    spec_labels = hooks().spec(function).labels
    if label_map is not None:
        spec_labels = LabelMap.parse(label_map).rename(spec_labels)
    labels = LabelCatalog.from_spec(spec_labels, conv_mask_to_poly=args.conv_mask_to_poly)
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
            label_map=label_map,
            frames=args.frames,
            batch_size=args.batch_size,
            on_error=args.on_error,
            output=args.output,
            format=output_format,
            task_name=name,
            keep_annotations=False,
            pbar=pbar,
            on_frame=preview.add if preview is not None else None,
            function_name=name,
        )
    code = ExitCode.FUNCTION_FAILED if result.skipped else ExitCode.OK

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
        return code
    print(result.format())
    if args.output is not None:
        print(f"Wrote {args.output} ({FORMATS[output_format]})")
    if preview is not None:
        print(f"Preview: {preview.index_path}")
    return code
