"""The command-line flags of run options, and which command takes which.

Each flag here sets a field of :class:`~cvat_aa.pipeline.options.RunOptions`; which runs take
it is that field's own data (``Runs``), not decided here. ``cvat-aa annotate`` (runs on a
server) gets the flags of options that runs on a server take, ``cvat-aa annotate-files``
those that runs over files take, and each command *refuses* the other's flags with a sentence
that says where they belong, rather than argparse's "unrecognized arguments".

Adding a run option: a field in ``RunOptions``, then a :class:`Flag` in :data:`FLAGS`; the
commands that should take it take it, and :func:`options_from_args` passes it on.

Hook plugins add run options of their own (``cvat_aa_run_options``): both commands take
them, each plugin's in a group of its own; a flag that clashes with one the command already
has is left out with a warning.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..driver.journal import default_journal_dir
from ..export import FORMATS
from ..frames import FrameSelection
from ..pipeline.options import RunOptions, Runs, plugin_option_values
from ..plugins import hooks
from ..result_stages import RunOption
from . import label_map as label_map_options
from .errors import UsageError

__all__ = [
    "FLAGS",
    "Flag",
    "add_plugin_run_options",
    "add_run_options",
    "check_refused",
    "options_from_args",
    "plugin_options_for_serving",
]

logger = logging.getLogger(__name__)

_DEFAULTS = {f.name: f.default for f in attrs.fields(RunOptions)}


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def frame_selection(text: str) -> FrameSelection:
    """``--frames SPEC`` parsed, or argparse's error for it."""
    try:
        return FrameSelection.parse(text)
    except ValueError as ex:
        raise argparse.ArgumentTypeError(str(ex)) from None


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("cannot be negative")
    return value


class Flag:
    """A flag that sets one run option: ``Flag("batch_size", "--batch-size", **kwargs)`` with
    ``add_argument``'s keyword arguments, ``{default}`` in ``help`` standing for the option's
    default. A flag not given leaves the option at its default."""

    def __init__(self, option: str, *names: str, **kwargs: Any) -> None:
        self.option = option
        self.names = names
        self.kwargs = kwargs

    @property
    def options(self) -> tuple[str, ...]:
        return (self.option,)

    def add(self, group: Any) -> None:
        kwargs = dict(self.kwargs)
        kwargs["help"] = kwargs["help"].format(default=_DEFAULTS[self.option])
        group.add_argument(*self.names, dest=self.option, **kwargs)

    def flags_given(self, args: argparse.Namespace) -> list[str]:
        value = getattr(args, self.option, None)
        return [self.names[0]] if value not in (None, False) else []

    def values(self, args: argparse.Namespace) -> dict[str, Any]:
        value = getattr(args, self.option)
        return {} if value is None else {self.option: value}

    def arguments(self, name: str) -> int:
        """How many arguments the flag ``name`` takes."""
        return 0 if self.kwargs.get("action") in ("store_true", "store_false") else 1


@attrs.frozen
class _LabelMapFlags:
    """``--label-map`` and ``--label-map-file`` (see :mod:`.label_map`)."""

    options = ("label_map",)
    names = ("--label-map", "--label-map-file")

    def add(self, group: Any) -> None:
        label_map_options.add_options(group)

    def flags_given(self, args: argparse.Namespace) -> list[str]:
        return [
            name
            for name, value in zip(self.names, (args.label_map, args.label_map_file), strict=True)
            if value
        ]

    def values(self, args: argparse.Namespace) -> dict[str, Any]:
        mapping = label_map_options.from_args(args)
        return {} if mapping is None else {"label_map": mapping}

    def arguments(self, name: str) -> int:
        return 1


@attrs.frozen
class _JournalFlags:
    """``--resume``, ``--no-journal`` and ``--journal-dir``: whether and where the run keeps
    its journal (by default in ``$XDG_STATE_HOME/cvat-aa/journals``)."""

    options = ("journal_dir", "resume")
    names = ("--resume", "--no-journal", "--journal-dir")

    def add(self, group: Any) -> None:
        journal = group.add_mutually_exclusive_group()
        journal.add_argument(
            "--resume",
            action="store_true",
            help="continue an interrupted run (the default whenever a matching journal exists);"
            " fail if there is none",
        )
        journal.add_argument(
            "--no-journal",
            action="store_true",
            help="keep no journal: an interrupted run starts over",
        )
        group.add_argument(
            "--journal-dir",
            type=Path,
            metavar="DIR",
            help=f"where run journals are kept (default {default_journal_dir()})",
        )

    def flags_given(self, args: argparse.Namespace) -> list[str]:
        given = (args.resume, args.no_journal, args.journal_dir is not None)
        return [name for name, was in zip(self.names, given, strict=True) if was]

    def values(self, args: argparse.Namespace) -> dict[str, Any]:
        if args.no_journal:
            return {}
        return {
            "journal_dir": args.journal_dir or default_journal_dir(),
            "resume": True if args.resume else None,
        }

    def arguments(self, name: str) -> int:
        return 1 if name == "--journal-dir" else 0


FLAGS: Sequence[Flag | _LabelMapFlags | _JournalFlags] = (
    # What the function is asked for, and how its output is matched.
    Flag(
        "conf_threshold",
        "--conf-threshold",
        type=_threshold,
        metavar="X",
        help="confidence threshold, 0 to 1",
    ),
    Flag(
        "conv_mask_to_poly",
        "--conv-mask-to-poly",
        action="store_true",
        help="ask the function for polygons instead of masks",
    ),
    _LabelMapFlags(),
    Flag(
        "frames",
        "--frames",
        type=frame_selection,
        metavar="SPEC",
        help="only these frames (task frame numbers, or numbers across the files): numbers,"
        " ranges and stepped ranges, e.g. 0-99:5,120,200-210",
    ),
    Flag(
        "allow_unmatched_labels",
        "--allow-unmatched-labels",
        action="store_true",
        help="drop output for function labels, sublabels or attributes the task lacks",
    ),
    Flag(
        "clear_existing",
        "--clear-existing",
        action="store_true",
        help="replace the existing annotations of the processed frames instead of adding",
    ),
    # How the run goes.
    Flag(
        "batch_size",
        "--batch-size",
        type=positive,
        metavar="N",
        help="frames per call to the function (default {default})",
    ),
    Flag(
        "on_error",
        "--on-error",
        choices=["stop", "skip"],
        help="when the function raises on a frame (or a file cannot be read): stop the run"
        " (default; nothing stays uploaded or written), or skip it, go on, and list what was"
        " skipped at the end (exit 6)",
    ),
    Flag(
        "preview",
        "--preview",
        type=Path,
        metavar="DIR",
        help="draw the annotations onto the frames: PNG files and an index.html gallery in DIR",
    ),
    Flag(
        "prefetch",
        "--prefetch",
        type=positive,
        metavar="N",
        help="chunk or frame downloads to run ahead of the function (default {default})",
    ),
    Flag(
        "upload_frames",
        "--upload-frames",
        type=positive,
        metavar="N",
        help="upload every N frames while the run goes on (default {default})",
    ),
    Flag(
        "dry_run",
        "--dry-run",
        action="store_true",
        help="process the frames (and write --preview) but upload nothing",
    ),
    _JournalFlags(),
    # Where the results of a run over files go.
    Flag(
        "output",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the annotations to FILE (*.xml: CVAT for images 1.1, *.json: COCO 1.0)",
    ),
    Flag(
        "format",
        "--format",
        choices=sorted(FORMATS),
        help="the format of --output, when its extension does not say",
    ),
)
"""The flags of run options, in the order ``--help`` lists them."""


def _runs(flag: Flag | _LabelMapFlags | _JournalFlags) -> Runs:
    fields = attrs.fields_dict(RunOptions)
    kinds = {fields[name].metadata["runs"] for name in flag.options}
    assert len(kinds) == 1, f"{flag.names} set options of different runs"
    return kinds.pop()


_WHERE = {
    Runs.SERVER: "task and job runs (cvat-aa annotate); a run over files uploads nothing",
    Runs.FILES: "runs over files (cvat-aa annotate-files); a task or job run uploads its"
    " annotations to CVAT (add --dry-run --preview DIR to look at them first)",
}


class _Refuse(argparse.Action):
    """Takes a flag of the other command's runs, to say where it belongs (see
    :func:`check_refused`)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        refused = list(getattr(namespace, "refused_flags", None) or [])
        if option_string not in refused:
            refused.append(option_string)
        namespace.refused_flags = refused


def add_run_options(
    parser: argparse.ArgumentParser, runs: Runs, *, first: Callable[[Any], None] | None = None
) -> None:
    """Add the flags of the options that runs of the kind ``runs`` take, in a "run options"
    group (after what ``first`` adds to it), and refuse the others; then those of hook
    plugins."""
    group = parser.add_argument_group("run options")
    if first is not None:
        first(group)
    parser.set_defaults(refused_flags=[], refused_runs=~runs & Runs.BOTH)
    for flag in FLAGS:
        if _runs(flag) & runs:
            flag.add(group)
            continue
        for name in flag.names:
            parser.add_argument(
                name,
                action=_Refuse,
                nargs=flag.arguments(name),
                help=argparse.SUPPRESS,
                dest=f"refused_{name.lstrip('-').replace('-', '_')}",
            )
    add_plugin_run_options(parser)


def _plugin_option_type(option: RunOption) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return option.convert(text)
        except ValueError as ex:
            raise argparse.ArgumentTypeError(str(ex).removeprefix(f"{option.flag}: ")) from None

    return convert


def add_plugin_run_options(parser: argparse.ArgumentParser, *, serving: bool = False) -> None:
    """Add the flags of the run options hook plugins declare, a group per plugin (with
    ``serving``, for ``serve`` and ``agent run``: only those declared with ``serve=True``)."""
    groups: dict[str, Any] = {}
    for option in hooks().run_options():
        if serving and not option.serve:
            continue
        group = groups.get(option.plugin)
        if group is None:
            group = groups[option.plugin] = parser.add_argument_group(
                f"run options of hook plugin {option.plugin}"
            )
        kwargs: dict[str, Any] = {"dest": f"plugin_option_{option.name}", "default": None}
        if option.is_switch:
            kwargs["action"] = "store_true"
            kwargs["help"] = option.help
        else:
            kwargs["type"] = _plugin_option_type(option)
            kwargs["metavar"] = option.metavar or (
                "{" + ",".join(map(str, option.choices)) + "}" if option.choices else "X"
            )
            default = "" if option.default is None else f" (default {option.default})"
            kwargs["help"] = option.help + default
        try:
            group.add_argument(option.flag, **kwargs)
        except argparse.ArgumentError:
            logger.warning(
                "hook plugin %r declares %s, which cvat-aa's own options have; it is left out",
                option.plugin,
                option.flag,
            )


def plugin_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The hook plugins' run options the command line gave, by name."""
    return {
        name.removeprefix("plugin_option_"): value
        for name, value in vars(args).items()
        # 0 == False: a number option given as 0 is given.
        if name.startswith("plugin_option_") and value is not None and value is not False
    }


def plugin_options_for_serving(args: argparse.Namespace) -> dict[str, Any]:
    """The values of the hook plugins' options ``serve`` and ``agent run`` were given, as
    :meth:`~cvat_aa.plugins.Hooks.wrap_function` takes them; ``UsageError`` for a bad one."""
    try:
        return plugin_option_values(plugin_options_from_args(args), what="cvat-aa")
    except (TypeError, ValueError) as ex:
        raise UsageError(str(ex)) from None


def check_refused(args: argparse.Namespace) -> None:
    """Raise a :class:`UsageError` saying where they belong for the other command's flags."""
    refused = args.refused_flags
    if refused:
        verb = "applies" if len(refused) == 1 else "apply"
        raise UsageError(f"{' and '.join(refused)} {verb} only to {_WHERE[args.refused_runs]}")


def options_from_args(args: argparse.Namespace, runs: Runs) -> dict[str, Any]:
    """The run options the flags of runs of the kind ``runs`` give, as keywords for
    :meth:`RunOptions.for_runs` (options whose flags were not given keep their defaults)."""
    values: dict[str, Any] = {}
    for flag in FLAGS:
        if _runs(flag) & runs:
            values.update(flag.values(args))
    given = plugin_options_from_args(args)
    if given:
        values["plugin_options"] = plugin_option_values(given, what="cvat-aa")
    return values
