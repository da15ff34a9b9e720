"""A run over images and videos on this machine, with no CVAT server.

The frames come from :class:`~cvat_aa.local.inputs.LocalFrames` and go through the same
pipeline as a task run's (:mod:`cvat_aa.pipeline.run`), on any executor (Ray's too). The
function's output is validated exactly as in a task run: the pipeline maps it onto a "task"
whose labels are the spec's own (same names, ids, types, sublabels and attributes), so what
passes here passes on a task with those labels. The annotations keep the spec's ids; frames
are numbered across the inputs (see :mod:`cvat_aa.local.inputs`).

A run streams: each frame is read, annotated, written to the output file (see
:mod:`cvat_aa.export.streaming`) and forgotten, so memory does not grow with the number of
frames. The annotations are kept in memory only when the caller asks for them (by default, when
there is no output file). With ``on_error="skip"``, a frame the function fails on and a file
that cannot be read are left out and listed in the result, as a task run lists failed frames.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from ..annotations import AnnotationSet
from ..export import check_output, format_for
from ..labels import LabelCatalog
from ..pipeline.executors import LocalExecutor
from ..pipeline.label_mapping import LabelMapper, spec_as_task_labels
from ..pipeline.options import DEFAULT_BATCH_SIZE, RunOptions, Runs
from ..pipeline.run import Pipeline, Sink, function_name, result_stages
from ..pipeline.sinks import CallbackSink, ExportSink, KeepSink, PreviewSink
from ..pipeline.summary import RunSummary, Skipped
from ..plugins import hooks
from ..preview import check_preview_directory
from .inputs import LocalFrames

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "LocalResult",
    "Skipped",
    "annotate_images",
    "check_outputs",
    "run_on_files",
]


@attrs.frozen(kw_only=True)
class LocalResult:
    """What a run over files did (its :class:`RunSummary`), and what it produced: the labels
    its annotations refer to and, when kept, the annotations."""

    summary: RunSummary
    labels: LabelCatalog
    """The labels the annotations refer to (the spec's, under their mapped names)."""
    annotations: AnnotationSet | None = None
    """Every frame's annotations, when the run kept them (``keep_annotations``)."""

    @property
    def function(self) -> str:
        """The function's name (its class name when it was given as an object)."""
        return self.summary.function or ""

    @property
    def frames(self) -> int:
        """Frames annotated (skipped ones not included)."""
        return self.summary.frames

    @property
    def annotation_count(self) -> int:
        """Tags and shapes on all frames."""
        return self.summary.annotations

    @property
    def per_label(self) -> dict[str, int]:
        """Tags and shapes per label name."""
        return self.summary.per_label

    @property
    def elapsed_s(self) -> float:
        return self.summary.elapsed_s

    @property
    def skipped(self) -> tuple[Skipped, ...]:
        """Frames and files left out with ``on_error="skip"``, with why, in the order met."""
        return self.summary.skipped

    @property
    def output(self) -> Path | None:
        """The file the annotations were written to, if any."""
        return self.summary.output

    def to_dict(self) -> dict[str, Any]:
        """The summary (not the annotations) as plain data."""
        return self.summary.to_dict()

    def format(self) -> str:
        """A short human-readable report."""
        return self.summary.format()


def check_outputs(options: RunOptions) -> str | None:
    """Check, before any work, that the output and the preview can be written; return the
    output's format. Raises ``ValueError`` saying what to change."""
    if options.preview is not None:
        check_preview_directory(options.preview)
    if options.output is None:
        return None
    return check_output(options.output, options.format)


def run_on_files(function: Any, source: LocalFrames, options: RunOptions) -> LocalResult:
    """Run ``function`` on the frames of ``source``, with ``options`` (see
    :func:`annotate_images`), once :func:`check_outputs` and the source's
    ``check_selection`` have passed."""
    started = time.monotonic()
    executor = options.executor or LocalExecutor()
    loaded = executor.load(function, options.plugin_options)
    spec = executor.spec(loaded, options.function_name or function_name(function))
    name = options.function_name or function_name(function)
    # With a label map, the output's labels are the spec's under their mapped names.
    labels = spec.labels if options.label_map is None else options.label_map.rename(spec.labels)
    catalog = LabelCatalog.from_spec(labels, conv_mask_to_poly=options.conv_mask_to_poly)
    mapper = LabelMapper(
        spec.labels,
        spec_as_task_labels(labels, [info.type for info in catalog]),
        allow_unmatched_labels=False,
        conv_mask_to_poly=options.conv_mask_to_poly,
        label_map=options.label_map,
    )

    stages = result_stages(options, catalog, target="images", target_id=None, stop=None)
    sinks: list[Sink] = []
    if options.on_frame is not None:
        sinks.append(CallbackSink(options.on_frame))
    if options.preview is not None:
        sinks.append(PreviewSink(options.preview, catalog, f"{name} on {len(source.media)} files"))
    if options.output is not None:
        output_format = format_for(options.output, options.format)
        sinks.append(
            ExportSink(
                options.output,
                catalog,
                output_format,
                options.task_name or name,
                tracks=bool(stages),
            )
        )
    keep = options.output is None if options.keep_annotations is None else options.keep_annotations
    kept = KeepSink(catalog) if keep else None
    if kept is not None:
        sinks.append(kept)
    summary = Pipeline(
        source=source,
        executor=executor,
        function=loaded,
        name=name,
        mapper=mapper,
        labels=catalog,
        options=options,
        sinks=sinks,
        hooks=hooks(),
        stages=stages,
    ).run(started=started)
    return LocalResult(
        summary=summary,
        labels=catalog,
        annotations=kept.annotations() if kept is not None else None,
    )


def annotate_images(
    function: Any, paths: Sequence[str | os.PathLike[str]], **options: Any
) -> LocalResult:
    """Run ``function`` on images and videos on this machine; write or return the annotations.

    ``paths`` are folders (their images), image or video files, and globs; see
    :mod:`cvat_aa.local.inputs` for how they are read and how frames are numbered and named.
    ``options`` are the :class:`~cvat_aa.pipeline.options.RunOptions` of runs over files,
    which documents each; they mean what they mean for :func:`cvat_aa.annotate_task`
    (``frames`` are frame numbers of this run, ``executor`` may be a ``RayExecutor``), and:

    * ``output`` is a file to write the annotations to, frame by frame as they are done, in
      ``format`` (``"cvat"`` or ``"coco"``; by default the one the extension names; see
      :mod:`cvat_aa.export`), with ``task_name`` (by default the function's name) where the
      format names a task. The file appears when the run ends well: a failed run leaves none.
    * ``keep_annotations`` keeps every frame's annotations in memory, in
      ``result.annotations``; by default they are kept only when there is no ``output`` (a
      long video's would not fit).
    * ``on_frame(frame, tags, shapes)`` sees every frame with its validated annotations,
      while the frame's image is still at hand; images are not kept.
    * ``label_map`` renames the function's labels, sublabels and attributes in the output, or
      leaves them out.
    * ``on_error="skip"`` leaves out, and lists in ``result.skipped`` with why, the frames on
      which the function raises and the images and videos (or the rest of a video) that
      cannot be read; they are not in the output. The default, ``"stop"``, ends the run at
      the first.

    The annotations refer to the spec's label, sublabel and attribute ids
    (``result.labels`` describes them), carry the frame number and the source ``"auto"``, and
    have been validated as a task run validates them.

    Raises ``ImageInputError`` (a ``ValueError``) when the inputs cannot be found or read,
    ``EmptySelectionError`` (a ``ValueError``) when ``frames`` matches no frame of the inputs,
    ``BadFunctionError`` when the function breaks its contract, ``FunctionFailedError`` when
    it raises on a frame, ``ValueError`` for bad arguments or an output that cannot be
    written (checked before any work), and ``TypeError`` for an option that is no option of
    runs over files. Nothing is returned from a failed run.
    """
    run_options = RunOptions.for_runs(Runs.FILES, "annotate_images", **options)
    # Where the results go, and which frames there are, before the function is loaded: a bad
    # path or selection must not cost a model load, let alone a run.
    check_outputs(run_options)
    source = LocalFrames.find(paths, run_options.frames)
    source.check_selection()
    return run_on_files(function, source, run_options)
