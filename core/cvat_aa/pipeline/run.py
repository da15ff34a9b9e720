"""The loop every run goes through: source -> executor -> validate and map -> sinks.

A *source* yields frames (a task's or job's from a server: :class:`~cvat_aa.driver.task_frames.
TaskFrames`; files on disk: :class:`~cvat_aa.local.inputs.LocalFrames`). The *executor* runs the
function on batches of them, here or on Ray actors. The :class:`~.label_mapping.LabelMapper`
validates what the function returned, fits shapes into their frame and maps labels. *Sinks*
take each batch's results: the upload with its journal (task runs), an annotation file (runs
over files), the preview, the caller's ``on_frame``.

What is the same for every run lives here, once: the observer hooks (``run_started``,
``frames_done``, ``run_finished``), ``on_error="skip"``/``"stop"``, running a failed batch
again frame by frame to find the frame that fails, the progress bar and the summary. When a
run fails, every sink is told to undo what it did (remove the uploads, discard the file)
before the error goes on to the caller.

Between the mapping and the sinks, the *result stages* of hook plugins, when a run's options
ask for them (:mod:`cvat_aa.result_stages`), take the frames' results in order and give back
what stays per frame and the tracks they finished; the sinks get both. A resumed run gives
the stages the results of the frames it had finished first (``replay``), so that what they
hold across frames is what it was when the run was killed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import attrs
from cvat_sdk import models

from ..frames import Frame, batches
from ..interface import FrameContext
from ..labels import LabelCatalog
from ..plugins import Hooks
from ..plugins import hooks as plugin_hooks
from ..result_stages import FrameResult, StageChain, StageRun, StageTrack
from .detection import FunctionFailedError
from .executors import Executor, Outcome, function_name
from .label_mapping import LabelMapper
from .options import RunOptions
from .summary import RunSummary, Skipped

__all__ = [
    "MappedFrame",
    "Pipeline",
    "Sink",
    "Source",
    "Tally",
    "function_name",
    "result_stages",
]

logger = logging.getLogger(__name__)

OnSkipped = Callable[[Skipped], None]


class Source(Protocol):
    """Where a run's frames come from."""

    target: str
    """``"task"``, ``"job"`` or ``"images"`` (files)."""
    target_id: int | None
    task_id: int | None

    def frame_count(self) -> int | None:
        """How many frames :meth:`read` yields (an estimate, or None, where the source cannot
        tell before reading: videos that do not state their length)."""
        ...

    def read(self, options: RunOptions, on_unreadable: OnSkipped | None) -> Iterator[Frame]:
        """Yield the frames in order. A frame that cannot be read raises, or, with
        ``on_unreadable``, goes there and the run goes on."""
        ...

    def finished_reading(self, frames: int) -> None:
        """Raise if the run read no frame (``frames``, annotated or skipped) where it had to
        read one to learn that its selection matches none."""
        ...


@attrs.frozen
class MappedFrame:
    """A frame with its validated annotations, mapped to the output's labels."""

    frame: Frame
    tags: list[models.LabeledImageRequest]
    shapes: list[models.LabeledShapeRequest]
    """What stays on the frame as tags and shapes (after the result stages, if any)."""
    shown: Sequence[tuple[str, models.LabeledShapeRequest]] = ()
    """Shapes the result stages took into tracks on this frame, with a caption each."""
    detected: FrameResult | None = None
    """With result stages: the frame's results as the function gave them (mapped), which the
    journal keeps so that a resumed run gives them to the stages again."""

    @property
    def count(self) -> int:
        return len(self.tags) + len(self.shapes)


class Sink(Protocol):
    """Where results go. Every method may raise, which ends the run."""

    def start(self) -> None:
        """Before the first frame."""
        ...

    def add(self, frames: Sequence[MappedFrame]) -> None:
        """One batch's results, in frame order."""
        ...

    def skip(self, skipped: Skipped) -> None:
        """A frame (or file) left out with ``on_error="skip"``."""
        ...

    def add_tracks(self, tracks: Sequence[StageTrack]) -> None:
        """Tracks the result stages finished."""
        ...

    def replay(self, frames: Sequence[FrameResult], tracks: Sequence[StageTrack]) -> None:
        """What the result stages gave again for frames an interrupted run had finished (a
        resumed run replays them): a sink sends on what the run had not sent yet."""
        ...

    def finish(self) -> None:
        """The run succeeded: complete what was done (send the last upload, write the file)."""
        ...

    def abort(self, error: BaseException) -> None:
        """The run failed with ``error`` (called even if :meth:`start` was not): undo what was
        done, as far as it can be. ``error`` is raised to the caller afterwards."""
        ...


@attrs.define
class Tally:
    """What a run has done: counts, not annotations."""

    frames: int = 0
    by_label: Counter[int] = attrs.Factory(Counter)
    """Annotations (tags, shapes and tracks) per output label id."""
    skipped: list[Skipped] = attrs.Factory(list)
    tracks: int = 0

    def add(self, done: Sequence[MappedFrame | FrameResult]) -> None:
        """Count the annotations of these frames (and, for a :class:`MappedFrame`, the frames)."""
        for mapped in done:
            self.frames += isinstance(mapped, MappedFrame)
            self.by_label.update(a.label_id for a in (*mapped.tags, *mapped.shapes))

    def add_tracks(self, tracks: Sequence[StageTrack]) -> None:
        self.tracks += len(tracks)
        self.by_label.update(t.track.label_id for t in tracks)


@attrs.define
class Pipeline:
    """One run: ``source`` through ``function`` on ``executor``, ``mapper``, then ``sinks``."""

    source: Source
    executor: Executor
    function: Any
    """The function, as ``executor.load`` returned it."""
    name: str
    mapper: LabelMapper
    labels: LabelCatalog
    """The labels the mapped annotations refer to (to name them in the summary)."""
    options: RunOptions
    sinks: Sequence[Sink]
    hooks: Hooks
    before: Tally = attrs.Factory(Tally)
    """What a resumed run had done before (its frames are not in ``source``)."""
    resumed: bool = False
    stages: StageChain = attrs.Factory(StageChain)
    """The result stages hook plugins take part with (none by default)."""
    replay: Callable[[], Iterable[FrameResult]] | None = None
    """With stages, on a resumed run: the results of the frames the interrupted run had
    finished, in frame order, which the stages are given again first."""

    def _contexts(self, batch: list[Frame]) -> list[FrameContext]:
        return [
            FrameContext(
                frame_name=f.name,
                conf_threshold=self.options.conf_threshold,
                conv_mask_to_poly=self.options.conv_mask_to_poly,
            )
            for f in batch
        ]

    def _skip(self, tally: Tally, skipped: Skipped) -> None:
        logger.warning("Skipped %s", skipped)
        tally.skipped.append(skipped)
        for sink in self.sinks:
            sink.skip(skipped)

    def _detected(
        self, batch: list[Frame], outcome: Outcome, tally: Tally
    ) -> list[tuple[Frame, Any]]:
        """A batch's (frame, annotations).

        When the function failed on a batch of several frames, they run again one by one to
        find the frame that fails: with on_error="skip", failed frames are skipped and the
        others kept; otherwise the first frame on which the function raises stops the run,
        named alone. The batch's failure stands if every frame succeeds alone, or if the
        function raised nothing (a Ray actor died, say: running its frames again one by one
        would only kill more actors).
        """
        if not isinstance(outcome, BaseException):
            return list(zip(batch, outcome, strict=True))
        if not isinstance(outcome, FunctionFailedError):
            raise outcome
        if self.options.on_error != "skip":
            if len(batch) > 1 and outcome.original is not None:
                for _, single in self.executor.detect(
                    self.function, ([f] for f in batch), self._contexts
                ):
                    if isinstance(single, BaseException):
                        raise single
            raise outcome
        if len(batch) == 1:
            frame = batch[0]
            self._skip(tally, Skipped.function_failed(frame.index, frame.name, outcome.reason))
            return []
        return [
            pair
            for single_batch, single in self.executor.detect(
                self.function, ([f] for f in batch), self._contexts
            )
            for pair in self._detected(single_batch, single, tally)
        ]

    def _map(self, frame: Frame, annotations: Any) -> MappedFrame:
        tags, shapes = self.mapper.map_frame(annotations, frame.index, frame_size=frame.image.size)
        return MappedFrame(frame, tags, shapes)

    def _staged(self, done: list[MappedFrame]) -> tuple[list[MappedFrame], list[StageTrack]]:
        """``done`` through the result stages, if any: what stays per frame, and tracks."""
        if not self.stages:
            return done, []
        detected = [FrameResult(m.frame.index, m.frame.image.size, m.tags, m.shapes) for m in done]
        results, tracks = self.stages.add(detected)
        staged = [
            MappedFrame(m.frame, list(r.tags), list(r.shapes), shown=tuple(r.shown), detected=d)
            for m, r, d in zip(done, results, detected, strict=True)
        ]
        return staged, tracks

    def _add_tracks(self, tracks: Sequence[StageTrack], tally: Tally) -> None:
        if tracks:
            for sink in self.sinks:
                sink.add_tracks(tracks)
            tally.add_tracks(tracks)

    def _replay(self) -> None:
        """Give the stages again what an interrupted run had given them (see ``replay``);
        what they give back is counted as done before, and sent on where it was not yet."""
        if self.replay is None or not self.stages:
            return
        for batch in batches(self.replay(), 64):
            results, tracks = self.stages.add(batch)
            for sink in self.sinks:
                sink.replay(results, tracks)
            self.before.add(results)
            self.before.add_tracks(tracks)

    def _process(self, tally: Tally) -> None:
        options = self.options
        pbar = options.pbar

        def unreadable(skipped: Skipped) -> None:
            self._skip(tally, skipped)
            if skipped.frame is not None:
                pbar.advance(1)

        with pbar.task(total=_total(self.source.frame_count(), self.before), unit="frames"):
            pbar.advance(self.before.frames + len(self.before.skipped))
            frames = self.source.read(options, unreadable if options.on_error == "skip" else None)
            outcomes = self.executor.detect(
                self.function, batches(frames, options.batch_size), self._contexts
            )
            for batch, outcome in outcomes:
                done, tracks = self._staged(
                    [
                        self._map(frame, annotations)
                        for frame, annotations in self._detected(batch, outcome, tally)
                    ]
                )
                for sink in self.sinks:
                    sink.add(done)
                tally.add(done)
                self._add_tracks(tracks, tally)
                self.hooks.frames_done(
                    [f.index for f in batch], sum(m.count for m in done) + len(tracks)
                )
                pbar.advance(len(batch))
                # Let this batch's images go before the next batch is read: the loop would
                # keep them until the next one is complete (a batch more of frames at peak).
                del batch, outcome, done
        self.source.finished_reading(tally.frames + len(tally.skipped))
        if self.stages:
            self._add_tracks(self.stages.finish(), tally)

    def run(self, *, started: float | None = None) -> RunSummary:
        """Run, and return the summary (the time counts from ``started``, a
        ``time.monotonic()``, when given). On failure, every sink is told to undo what it
        did, and the error is raised."""
        started = time.monotonic() if started is None else started
        tally = Tally()
        try:
            self.hooks.run_started(
                {
                    "target": self.source.target,
                    "target_id": self.source.target_id,
                    "function": self.name,
                    "frames": _total(self.source.frame_count(), self.before),
                }
            )
            for sink in self.sinks:
                sink.start()
            self._replay()
            self._process(tally)
            for sink in self.sinks:
                sink.finish()
        except BaseException as error:
            for sink in reversed(self.sinks):
                # One sink failing to undo must not keep the others from undoing.
                with contextlib.suppress(Exception):
                    sink.abort(error)
            raise
        by_label = self.before.by_label + tally.by_label
        per_label = {self.labels.name(i): n for i, n in by_label.items()}
        summary = RunSummary(
            target=self.source.target,
            target_id=self.source.target_id,
            task_id=self.source.task_id,
            function=self.name,
            frames=self.before.frames + tally.frames,
            annotations=sum(per_label.values()),
            per_label=per_label,
            tracks=self.before.tracks + tally.tracks,
            elapsed_s=round(time.monotonic() - started, 3),
            skipped=(*self.before.skipped, *tally.skipped),
            resumed=self.resumed,
            frames_resumed=self.before.frames if self.resumed else 0,
            dry_run=self.options.dry_run,
            output=self.options.output,
            preview=None if self.options.preview is None else self.options.preview / "index.html",
        )
        self.hooks.run_finished(summary.to_dict())
        return summary


def result_stages(
    options: RunOptions,
    labels: LabelCatalog,
    *,
    target: str,
    target_id: int | None,
    stop: int | None,
) -> StageChain:
    """The result stages hook plugins take part in a run with, given its options (none when
    no plugin's options ask for one). ``stop`` is the last frame of the target (None where it
    is not known before reading). Raises ``ValueError`` for options that do not go together."""
    hooks = plugin_hooks()
    values = hooks.option_values(options.plugin_options)
    if not values:
        return StageChain()
    return hooks.result_stages(
        StageRun(target=target, target_id=target_id, options=values, labels=labels, stop_frame=stop)
    )


def _total(count: int | None, before: Tally) -> int | None:
    return None if count is None else count + before.frames + len(before.skipped)
