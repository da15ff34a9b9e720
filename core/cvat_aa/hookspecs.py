"""The hooks through which plugins take part in a cvat-aa run.

Two kinds of plugin exist:

* **Functions** are registered under the entry-point group ``cvat_aa.functions``; the entry
  point's name is the name users type. A function is an object (or module) with ``spec`` and
  ``detect`` (detection and interaction functions) or ``spec``, ``init_tracking_state`` and
  ``track`` (tracking functions), or a factory ``create(**params)`` returning one. It need not
  know pluggy at all.
* **Hook plugins** are registered under the entry-point group ``cvat_aa.plugins`` and implement
  any of the hooks below with ``@cvat_aa.hookimpl``. They take part in every run: they can
  adjust a spec, post-process detections, observe progress, or add run options
  (``cvat_aa_run_options``) that turn on a *result stage* (``cvat_aa_result_stage``): what
  takes a run's results frame by frame, in order, across batches, and makes of them other
  annotations, such as CVAT tracks (see :mod:`cvat_aa.result_stages`).

The driver runs only the function the user named. It never broadcasts ``detect`` to every
installed plugin: each hook that calls a function (detection, interaction, tracking)
receives the function being run as its ``function`` argument, and cvat-aa's own implementation (registered first, so called last) is the one
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

    from .interface import (
        DetectionAnnotation,
        DetectionFunctionContext,
        DetectionFunctionSpec,
        InteractionFunctionContext,
        InteractionFunctionSpec,
        InteractionPrompts,
        InteractionResultShape,
        TrackableShape,
        TrackingFunctionContext,
        TrackingFunctionShapeContext,
        TrackingFunctionSpec,
    )
    from .result_stages import ResultStage, RunOption, StageRun

PROJECT_NAME = "cvat_aa"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec(firstresult=True)
def cvat_aa_spec(
    function: Any,
) -> DetectionFunctionSpec | InteractionFunctionSpec | TrackingFunctionSpec | None:
    """Return the spec of ``function``: its kind, and what it declares.

    :param function: the function being run (an object with ``spec`` and ``detect``, or with
        ``spec``, ``init_tracking_state`` and ``track``).
    :return: a ``DetectionFunctionSpec`` (the labels a detection function declares), an
        ``InteractionFunctionSpec`` (the prompts an interaction function needs) or a
        ``TrackingFunctionSpec`` (the shape types a tracking function follows); or ``None``.

    Called once per run (or per loaded function, for ``cvat-aa serve`` and the agent), before
    any image is read. cvat-aa's own implementation returns ``function.spec``. The first
    non-``None`` result is used, so an implementation that does not handle ``function`` must
    return ``None``. A wrapper (``wrapper=True``) may replace the spec, for example to declare
    an extra label that its ``cvat_aa_detect`` wrapper adds.

    The caller takes the function's kind from the spec's type and refuses any other type with
    ``BadFunctionError``. It validates a detection spec (label, sublabel and attribute ids)
    and raises ``BadFunctionError`` if it breaks the rules; it then matches the spec's labels
    to the task's labels by name.
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


@hookspec(firstresult=True)
def cvat_aa_preprocess_image(
    function: Any,
    context: InteractionFunctionContext | TrackingFunctionContext,
    image: PIL.Image.Image,
) -> Any:
    """Prepare an image for an interaction or tracking function, whatever the prompts or shapes.

    :param function: the interaction or tracking function being run.
    :param context: an ``InteractionFunctionContext`` or a ``TrackingFunctionContext``.
    :param image: the image, an RGB ``PIL.Image.Image`` in the original resolution.
    :return: the preprocessed image (``pp_image``), which the caller passes to
        ``cvat_aa_interact``, ``cvat_aa_init_tracking_state`` and ``cvat_aa_track``; or
        ``None`` to let the next implementation answer.

    Called once per image. cvat-aa's own implementation calls
    ``function.preprocess_image(context, image)`` when the function has it and returns
    ``image`` otherwise. The first non-``None`` result is used. An interactor caches the
    result (per task frame, for ``cvat-aa serve`` and the agent) and calls
    ``cvat_aa_interact`` on it again for the user's next click, so the result must not be
    changed by later calls.
    """


@hookspec(firstresult=True)
def cvat_aa_interact(
    function: Any,
    context: InteractionFunctionContext,
    pp_image: Any,
    prompts: InteractionPrompts,
) -> Sequence[InteractionResultShape] | None:
    """Find the object(s) the user's prompts point at, with an interaction function.

    :param function: the interaction function being run.
    :param context: an ``InteractionFunctionContext``.
    :param pp_image: what ``cvat_aa_preprocess_image`` returned for the image.
    :param prompts: the user's ``InteractionPrompts`` (positive and negative points, a
        bounding box), already checked against the function's spec.
    :return: the ``InteractionResultShape`` objects found; or ``None``.

    cvat-aa's own implementation calls ``function.detect(context, pp_image, prompts)``. The
    first non-``None`` result is used; wrappers may post-process it. The caller validates
    every shape (a shape type, points that fit it, finite, attributes that are
    ``InteractionResultAttributes`` members, a confidence from 0 to 1), fits it into the image
    and raises ``BadFunctionError`` for a violation, before anything is sent to CVAT.
    """


@hookspec(firstresult=True)
def cvat_aa_init_tracking_state(
    function: Any,
    context: TrackingFunctionShapeContext,
    pp_image: Any,
    shape: TrackableShape,
) -> Any:
    """Start tracking one shape, with a tracking function.

    :param function: the tracking function being run.
    :param context: a ``TrackingFunctionShapeContext`` whose ``original_shape_type`` is the
        shape's type.
    :param pp_image: what ``cvat_aa_preprocess_image`` returned for the image the shape is on.
    :param shape: the ``TrackableShape`` to follow; its type is one of the spec's
        ``supported_shape_types``.
    :return: the tracking state (any object the function needs on later frames); or ``None``.

    cvat-aa's own implementation calls ``function.init_tracking_state(context, pp_image,
    shape)``. The first non-``None`` result is used. The caller keeps the state in this process
    and hands out an opaque, unguessable id for it; the state is passed to ``cvat_aa_track``
    for the following images and dropped when it has not been used for hours.
    """


@hookspec(firstresult=True)
def cvat_aa_track(
    function: Any,
    context: TrackingFunctionShapeContext,
    pp_image: Any,
    state: Any,
) -> TrackableShape | None:
    """Find a tracked shape on a new image, with a tracking function.

    :param function: the tracking function being run.
    :param context: a ``TrackingFunctionShapeContext`` whose ``original_shape_type`` is the
        type of the shape the state was made for.
    :param pp_image: what ``cvat_aa_preprocess_image`` returned for the new image, which has
        the size of the image the state was made on.
    :param state: what ``cvat_aa_init_tracking_state`` returned; the function may change it.
    :return: the shape where the object is now, of the original shape's type; or ``None``
        when the object is lost.

    cvat-aa's own implementation calls ``function.track(context, pp_image, state)``. The first
    non-``None`` result is used, so ``None`` from every implementation means the object is
    lost. The caller validates the shape (its type is the original's, its points fit it and
    are finite) and fits it into the image, raising ``BadFunctionError`` for a violation.
    """


@hookspec
def cvat_aa_run_options() -> Sequence[RunOption]:
    """Declare the run options this hook plugin adds.

    :return: ``RunOption`` objects: each becomes a flag of ``cvat-aa annotate`` and
        ``cvat-aa annotate-files`` (its name with dashes: ``track_min_length`` is
        ``--track-min-length``) and a keyword of the Python entry points (``annotate_task``,
        ``annotate_job``, ``annotate_tasks``, ``annotate_project``, ``annotate_images``).

    Called when a command line is built and when a run starts. An option whose name is
    already taken (by cvat-aa or by another hook plugin) is left out with a warning naming
    the plugin, as is every option of a plugin whose implementation raises. A value the user
    gives is converted by the option's ``type`` (which raises ``ValueError`` to refuse it);
    values that differ from the default are part of the run's journal key, so a run with other
    values never resumes this one.
    """


@hookspec
def cvat_aa_result_stage(run: StageRun) -> ResultStage | None:
    """Take part in a run's results, as a result stage, or not.

    :param run: a ``StageRun``: the target, every run option's value for this run
        (``run.options``), the labels the results refer to, and the last frame of the task,
        job or video.
    :return: a ``ResultStage`` to take the run's results frame by frame, or ``None`` (the
        run's options do not ask for it).

    Called once per run (per task, in a run over several), after the function's spec was
    matched to the labels and before any frame is read. Every stage returned takes part, in
    the order of the plugins' registration: each is given what the one before gave back
    for the frames; the tracks of all go to the upload (or the output file). A stage's
    contract (frame order, determinism across batches, what a resumed run replays to it) is
    in :mod:`cvat_aa.result_stages`. Raise ``ValueError`` with a sentence for options that do
    not go together: the run ends before it starts, with that message (exit 2).
    """


@hookspec
def cvat_aa_wrap_function(function: Any, options: Mapping[str, Any]) -> Any:
    """Wrap a detection function for a run, or not.

    :param function: the detection function (an object with ``spec`` and ``detect`` or
        ``detect_batch``), built with its parameters; or what an earlier hook plugin's
        implementation returned for it.
    :param options: every declared run option (``cvat_aa_run_options``, of every hook
        plugin) by name, with its value for this run (the default where the user gave none).
    :return: a detection function to use instead (it may call ``function``, for example on
        tiles of each frame), or ``None`` to leave it as it is.

    Called once per loaded detection function, where it is loaded: for ``cvat-aa annotate``
    and ``annotate-files`` runs (in each Ray actor with ``--executor ray``), and for
    ``cvat-aa serve`` and ``cvat-aa agent run`` with the options they were started with (a
    run option is an option of those commands when it is declared with ``serve=True``). Every
    implementation is called, in the order of the plugins' registration, each on what the one
    before returned. What comes back is checked as a function is (``BadFunctionError``
    otherwise) and its results are validated as the function's are; the journal key holds the
    options, so a run with other values never resumes this one.
    """
