"""The hooks through which plugins take part in a cvat-aa run.

Two kinds of plugin exist:

* **Functions** are registered under the entry-point group ``cvat_aa.functions``; the entry
  point's name is the name users type. A function is an object (or module) with ``spec`` and
  ``detect``, or a factory ``create(**params)`` returning one. It need not know pluggy at all.
* **Hook plugins** are registered under the entry-point group ``cvat_aa.plugins`` and implement
  any of the hooks below with ``@cvat_aa.hookimpl``. They take part in every run: they can
  adjust a spec, post-process detections, or observe progress.

The driver runs only the function the user named. It never broadcasts ``detect`` to every
installed plugin: each detection hook receives the function being run as its ``function``
argument, and cvat-aa's own implementation (registered first, so called last) is the one
that calls that function. A hook plugin that does not handle a call returns ``None``, or
wraps the call with ``wrapper=True`` and changes what the inner call returned.

Set ``CVAT_AA_TRACE_HOOKS=1`` to log every hook call and its result at DEBUG level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import PIL.Image

    from .interface import DetectionAnnotation, DetectionFunctionContext, DetectionFunctionSpec

PROJECT_NAME = "cvat_aa"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec(firstresult=True)
def cvat_aa_spec(function: Any) -> DetectionFunctionSpec | None:
    """Return the spec of ``function``: the labels it declares.

    :param function: the function being run (an object with ``spec`` and ``detect``).

    Called once per run, before any frame is read. cvat-aa's own implementation returns
    ``function.spec``. The first non-``None`` result is used, so an implementation that does
    not handle ``function`` must return ``None``. A wrapper (``wrapper=True``) may replace the
    spec, for example to declare an extra label that its ``cvat_aa_detect`` wrapper adds.

    The caller validates the result (label, sublabel and attribute ids) and raises
    ``BadFunctionError`` if it breaks the rules; it then matches the spec's labels to the
    task's labels by name.
    """


@hookspec(firstresult=True)
def cvat_aa_detect(
    function: Any,
    contexts: Sequence[DetectionFunctionContext],
    images: Sequence[PIL.Image.Image],
) -> Sequence[Sequence[DetectionAnnotation]] | None:
    """Detect objects on a batch of frames with ``function``.

    :param function: the function being run.
    :param contexts: one context per frame (frame name, confidence threshold,
        ``conv_mask_to_poly``).
    :param images: the frames, as RGB ``PIL.Image.Image`` objects in the original resolution,
        in the same order as ``contexts``.
    :return: one sequence of annotations per frame, in the same order, with labels and
        attributes referring to the spec's ids, frame 0, and no id or source.

    The driver calls this for every batch of frames (a batch may hold one frame). cvat-aa's own
    implementation calls ``function.detect_batch(contexts, images)`` when the function has it,
    and ``function.detect(context, image)`` for each frame otherwise. The first non-``None``
    result is used. Wrappers (``wrapper=True``) may post-process the result of the inner
    call, e.g. drop small boxes or add attributes; they must keep the result's shape.

    The caller validates every annotation, then maps it to the task's labels and frame numbers;
    a violation raises ``BadFunctionError`` and nothing from the run is uploaded.
    """


@hookspec
def cvat_aa_run_started(run: Mapping[str, Any]) -> None:
    """Observe the start of a run, after the spec was matched to the task.

    :param run: a read-only description of the run with keys ``target`` (``"task"``,
        ``"job"``, or ``"images"`` for a local run over files), ``target_id`` (``None`` for a
        local run), ``function`` (the function's name, or its class name when it was passed as
        an object) and ``frames`` (the number of frames to process; for a local run over
        videos, an estimate).

    Return values are ignored; an exception raised here ends the run before anything is
    uploaded.
    """


@hookspec
def cvat_aa_frames_done(frames: Sequence[int], annotations: int) -> None:
    """Observe progress: a batch of frames was detected, validated and mapped.

    :param frames: the task frame numbers of the batch, in order.
    :param annotations: how many annotations (tags and shapes) those frames produced.

    Return values are ignored.
    """


@hookspec
def cvat_aa_run_finished(summary: Mapping[str, Any]) -> None:
    """Observe the end of a successful run, after the annotations were uploaded (or, for a
    local run, produced).

    :param summary: the run's summary with keys ``target`` and ``target_id`` (as in
        ``cvat_aa_run_started``), ``frames`` (frames processed), ``annotations`` (total),
        ``per_label`` (a mapping of label name to count) and ``elapsed_s`` (seconds); task and
        job runs add ``task_id`` and more.

    Return values are ignored.
    """
