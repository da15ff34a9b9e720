"""Every option of a run, defined once: its default, its check, which runs take it, and
whether it changes the results.

:class:`RunOptions` is what the pipeline carries from the entry points (``annotate_task``,
``annotate_job``, ``annotate_tasks``, ``annotate_project``, ``annotate_images`` and the CLI)
to its stages. Each field says, in its metadata:

* ``runs``: the runs it applies to (:class:`Runs`): those on a CVAT server (tasks, jobs,
  projects), those over files on disk, or both. The entry points refuse an option their runs
  do not take, and the CLI offers each command only the flags of its runs;
* ``changes_results``: whether two runs that differ in it produce different annotations. Those
  options are part of a journal's key, so that a run never resumes one made with other values.

Adding an option is one field here (with its default, check and metadata) plus its flag in
:mod:`cvat_aa.cli.run_options`; see "Adding a run option" in docs/contributing.md.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from cvat_sdk.core.progress import NullProgressReporter, ProgressReporter

from ..frames import FrameCallback, FrameSelection
from .label_mapping import LabelMap

if TYPE_CHECKING:
    from ..driver.retry import RetryPolicy
    from .executors import Executor

__all__ = ["DEFAULT_BATCH_SIZE", "RunOptions", "Runs"]

DEFAULT_BATCH_SIZE = 8


class Runs(enum.Flag):
    """The kinds of run an option applies to."""

    SERVER = enum.auto()
    """Tasks, jobs and projects on a CVAT server: results are uploaded."""
    FILES = enum.auto()
    """Images and videos on disk: results go to a file, or back to the caller."""
    BOTH = SERVER | FILES

    def describe(self) -> str:
        return {
            Runs.SERVER: "runs on a CVAT server (tasks, jobs, projects)",
            Runs.FILES: "runs over files (images and videos on disk)",
        }.get(self, "every run")


def _option(
    default: Any = attrs.NOTHING,
    *,
    runs: Runs,
    changes_results: bool = False,
    journal: Callable[[Any], Any] | None = None,
    converter: Callable[[Any], Any] | None = None,
    validator: Callable[[Any, attrs.Attribute, Any], None] | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A field of :class:`RunOptions`; ``journal`` turns its value into what a journal key
    holds (only for options that change the results)."""
    return attrs.field(
        default=attrs.Factory(factory) if factory is not None else default,
        converter=converter,
        validator=validator,
        metadata={"runs": runs, "changes_results": changes_results, "journal": journal},
    )


def _at_least_one(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number, at least 1 (got {value!r})")


def _threshold(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1
    ):
        raise ValueError("conf_threshold must be None or a number between 0 and 1")


def _on_error(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in ("stop", "skip"):
        raise ValueError(f"on_error must be 'stop' or 'skip' (got {value!r})")


def plugin_option_values(given: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """The values of hook plugins' run options among keyword arguments ``given``, converted,
    without those equal to their defaults.

    Raises ``TypeError`` for a keyword that is no run option of an installed hook plugin (as
    Python does for an unknown keyword) and ``ValueError`` for a value the option refuses.
    """
    from ..plugins import hooks  # the plugin manager imports the pipeline

    declared = {option.name: option for option in hooks().run_options()}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TypeError(
            f"{what}() got unexpected keyword arguments: {', '.join(unknown)}"
            if len(unknown) > 1
            else f"{what}() got an unexpected keyword argument {unknown[0]!r}"
        )
    values = {}
    for name, value in given.items():
        converted = declared[name].convert(value)
        if converted != declared[name].default:
            values[name] = converted
    return values


def _optional_path(value: Any) -> Path | None:
    return None if value is None else Path(value)


def _label_map(value: LabelMap | Mapping[str, Any] | None) -> LabelMap | None:
    return None if value is None else LabelMap.parse(value)


def _journal_key(value: str | Mapping[str, Any] | None) -> str | None:
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _pbar(value: ProgressReporter | None) -> ProgressReporter:
    return NullProgressReporter() if value is None else value


@attrs.frozen(kw_only=True)
class RunOptions:
    """How a run goes. Build one with :meth:`for_runs` from an entry point's keywords."""

    # --- what the function is asked for, and how its output is matched (results change) ----

    conf_threshold: float | None = _option(
        None, runs=Runs.BOTH, changes_results=True, validator=_threshold
    )
    """Passed to the function, which returns only objects at least that confident (0 to 1)."""
    conv_mask_to_poly: bool = _option(False, runs=Runs.BOTH, changes_results=True)
    """Ask the function for polygons instead of masks."""
    label_map: LabelMap | None = _option(
        None,
        runs=Runs.BOTH,
        changes_results=True,
        converter=_label_map,
        journal=lambda value: value.to_dict(),
    )
    """Puts function labels (and sublabels and attributes) on task labels of other names;
    in a run over files, renames them in the output. See :class:`LabelMap`."""
    frames: FrameSelection | None = _option(
        None,
        runs=Runs.BOTH,
        changes_results=True,
        converter=FrameSelection.of,
        journal=lambda value: value.parts,
    )
    """Only these frames: a ``FrameSelection``, a string such as ``"0-99:5,120"``, or frame
    numbers. Task frame numbers on a server (deleted frames are always skipped); numbers
    across the files of a run over files."""
    allow_unmatched_labels: bool = _option(False, runs=Runs.SERVER, changes_results=True)
    """Drop output for function labels, sublabels or attributes the task lacks, instead of
    failing."""
    clear_existing: bool = _option(False, runs=Runs.SERVER, changes_results=True)
    """Replace the annotations of the frames the run processed, once all new ones are
    uploaded."""
    plugin_options: Mapping[str, Any] = _option(
        runs=Runs.BOTH,
        changes_results=True,
        factory=dict,
        converter=lambda value: dict(sorted(dict(value or {}).items())),
    )
    """The values of the run options hook plugins declare (``cvat_aa_run_options``) that
    differ from their defaults, by name. The entry points take them as keywords of their own
    (``tracks=True``); :meth:`for_runs` puts them here."""

    # --- how the run goes ---------------------------------------------------------------------

    batch_size: int = _option(DEFAULT_BATCH_SIZE, runs=Runs.BOTH, validator=_at_least_one)
    """Frames passed to the function at a time (through ``detect_batch`` when it has one)."""
    on_error: str = _option("stop", runs=Runs.BOTH, validator=_on_error)
    """``"stop"``: the first frame the function raises on ends the run (and undoes it);
    ``"skip"``: such frames, and files that cannot be read, are left out and listed in the
    summary."""
    function_name: str | None = _option(None, runs=Runs.BOTH)
    """How messages, observer hooks and the summary name the function (default: the name or
    path it was given as, or its object's name)."""
    executor: Executor | None = _option(None, runs=Runs.BOTH)
    """Where the function runs (default: in this process; see ``RayExecutor``)."""
    pbar: ProgressReporter = _option(None, runs=Runs.BOTH, converter=_pbar)
    """cvat-sdk's progress reporter, advanced frame by frame."""
    on_frame: FrameCallback | None = _option(None, runs=Runs.BOTH)
    """Called with each frame and its validated annotations (tags, shapes), while its image is
    at hand."""
    preview: Path | None = _option(None, runs=Runs.BOTH, converter=_optional_path)
    """A folder to draw the annotations into: PNG files and an ``index.html`` gallery."""

    # --- runs on a server ---------------------------------------------------------------------

    prefetch: int = _option(4, runs=Runs.SERVER, validator=_at_least_one)
    """Chunk (or video frame) downloads that run ahead of the function."""
    upload_frames: int = _option(200, runs=Runs.SERVER, validator=_at_least_one)
    """Upload every this many frames (or 2,000 annotations) while the run goes on."""
    dry_run: bool = _option(False, runs=Runs.SERVER)
    """Process the frames but upload nothing (and keep no journal)."""
    journal_dir: Path | None = _option(None, runs=Runs.SERVER, converter=_optional_path)
    """Where the run's journal is kept, with ``journal_key``, so that a killed run resumes."""
    journal_key: str | None = _option(None, runs=Runs.SERVER, converter=_journal_key)
    """What identifies the function and its parameters (a string, or a mapping)."""
    resume: bool | None = _option(None, runs=Runs.SERVER)
    """``True``: fail unless there is an interrupted run to resume (by default, one is
    resumed whenever its journal is found)."""
    retry: RetryPolicy | None = _option(None, runs=Runs.SERVER)
    """How transient network and server failures are retried (default: ``RetryPolicy()``)."""

    # --- runs over files ----------------------------------------------------------------------

    output: Path | None = _option(None, runs=Runs.FILES, converter=_optional_path)
    """A file to write the annotations to, frame by frame; it appears when the run ends well."""
    format: str | None = _option(None, runs=Runs.FILES)
    """The format of ``output``: ``"cvat"`` or ``"coco"`` (default: what its extension says)."""
    task_name: str | None = _option(None, runs=Runs.FILES)
    """The task name in ``output``, where the format names one (default: the function's)."""
    keep_annotations: bool | None = _option(None, runs=Runs.FILES)
    """Keep every frame's annotations in memory, for the result (default: when there is no
    ``output``)."""

    @classmethod
    def fields_for(cls, runs: Runs) -> list[attrs.Attribute]:
        """The options that runs of the kind ``runs`` take."""
        return [f for f in attrs.fields(cls) if f.metadata["runs"] & runs]

    @classmethod
    def for_runs(cls, runs: Runs, what: str, /, **options: Any) -> RunOptions:
        """Options from an entry point's keyword arguments.

        ``what`` names the entry point, for messages. Keywords that are no field are the run
        options of hook plugins (into ``plugin_options``). Raises ``TypeError`` for a keyword
        that is no option, or one that runs of the kind ``runs`` do not take (as Python does
        for an unknown keyword), and ``ValueError`` for a value that is out of range.
        """
        known = {f.name: f for f in attrs.fields(cls)}
        options = dict(options)
        declared = set(options) - set(known)
        if declared:
            options["plugin_options"] = plugin_option_values(
                {name: options.pop(name) for name in declared}, what=what
            )
        elsewhere = sorted(name for name in options if not known[name].metadata["runs"] & runs)
        if elsewhere:
            kind = known[elsewhere[0]].metadata["runs"]
            raise TypeError(
                f"{what}() does not take {', '.join(elsewhere)}: "
                f"{'it applies' if len(elsewhere) == 1 else 'they apply'} only to"
                f" {kind.describe()}"
            )
        return cls(**options)

    def key_parts(self) -> dict[str, Any]:
        """The options that change a run's results, as a journal key holds them."""
        parts = {}
        for field in attrs.fields(type(self)):
            if field.metadata["changes_results"]:
                value = getattr(self, field.name)
                if field.name == "plugin_options" and not value:
                    # Keys of runs without them stay what they were before hook plugins
                    # had options: an interrupted run still resumes after an upgrade.
                    continue
                journal = field.metadata["journal"]
                parts[field.name] = journal(value) if journal and value is not None else value
        return parts
