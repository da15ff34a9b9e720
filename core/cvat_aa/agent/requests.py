"""Serving a detector's requests through cvat-aa's pipeline.

Both kinds of detector request that CVAT queues are runs of the one pipeline
(``pipeline/run.py``) with a sink that keeps the results in memory instead of uploading them:
``annotate_task`` (a user ran the function on a whole task, or on a job) reads the task's
(or the job's) frames chunk by chunk with :class:`~cvat_aa.driver.task_frames.TaskFrames`, runs them in batches on the
agent's executor (here, or Ray actors) and maps and validates them with
:class:`~cvat_aa.pipeline.label_mapping.LabelMapper`, exactly as ``cvat-aa annotate`` would;
``annotate_frame`` (the UI's single-frame call) does the same with one frame, cut to the
request's region of interest. So everything the agent submits was validated first, and a
function that breaks the protocol fails the request without sending anything.

The request's ``mapping`` is CVAT's: labels, sublabels and attributes it leaves out are not
annotated (as in cvat-sdk's mapper, which cvat-cli's agent uses); it becomes a
:class:`~cvat_aa.pipeline.label_mapping.LabelMap` with the left-out names mapped to None.

Interactors' and trackers' requests are :mod:`.interactive`'s: they are no runs over frames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs
from cvat_sdk import Client, models

from ..driver.retry import RetryPolicy
from ..driver.task_frames import TaskFrames
from ..errors import UnservableRequestError
from ..frames import Frame
from ..labels import LabelCatalog
from ..pipeline.executors import Executor
from ..pipeline.label_mapping import LabelMap, LabelMapper
from ..pipeline.options import RunOptions, Runs
from ..pipeline.run import MappedFrame, Pipeline
from ..plugins import hooks

__all__ = ["RequestRunner", "UnservableRequestError", "label_map_of"]

logger = logging.getLogger(__name__)

CheckIn = Callable[[float], None]
"""Called between batches of a task request with the fraction done."""


def label_map_of(mapping: Mapping[str, Any], function_labels: Sequence[Any]) -> LabelMap:
    """A request's ``mapping`` as a label map that leaves out what the mapping leaves out."""

    def attributes(owner: Any, entry: Mapping[str, Any]) -> dict[str, str | None]:
        if "attributes" not in entry:
            return {}  # every attribute under its own name
        given = entry["attributes"] or {}
        return {a.name: given.get(a.name) for a in getattr(owner, "attributes", None) or []}

    labels: dict[str, Any] = {}
    for label in function_labels:
        entry = mapping.get(label.name)
        if entry is None:
            labels[label.name] = None
            continue
        value: dict[str, Any] = {
            "name": entry["name"],
            "attributes": attributes(label, entry),
        }
        if "sublabels" in entry:
            given = entry["sublabels"] or {}
            value["sublabels"] = {
                s.name: (
                    None
                    if s.name not in given
                    else {"name": given[s.name]["name"], "attributes": attributes(s, given[s.name])}
                )
                for s in getattr(label, "sublabels", None) or []
            }
        labels[label.name] = value
    return LabelMap.parse(labels)


@attrs.define
class _Collect:
    """The pipeline's sink for a request: keeps the results, reports progress."""

    total: int
    check_in: CheckIn | None = None
    tags: list[models.LabeledImageRequest] = attrs.Factory(list)
    shapes: list[models.LabeledShapeRequest] = attrs.Factory(list)
    done: int = 0

    def start(self) -> None:
        pass

    def add(self, frames: Sequence[MappedFrame]) -> None:
        for mapped in frames:
            self.tags.extend(mapped.tags)
            self.shapes.extend(mapped.shapes)
        self.done += len(frames)
        if self.check_in is not None:
            self.check_in(self.done / max(self.total, 1))

    def skip(self, skipped: Any) -> None:
        pass

    def finish(self) -> None:
        pass

    def abort(self, error: BaseException) -> None:
        pass


@attrs.define
class _RegionOfInterest:
    """A one-frame source whose frame is cut to ``roi`` (x1, y1, x2, y2), as CVAT asks."""

    frames: TaskFrames
    roi: Sequence[float] | None

    target = "task"

    @property
    def target_id(self) -> int:
        return self.frames.target_id

    @property
    def task_id(self) -> int:
        return self.frames.task_id

    def frame_count(self) -> int:
        return self.frames.frame_count()

    def read(self, options: RunOptions, on_unreadable: Any = None) -> Iterator[Frame]:
        for frame in self.frames.read(options, on_unreadable):
            if self.roi:
                xtl, ytl, xbr, ybr = self.roi
                width, height = frame.image.size
                if xbr > width or ybr > height:
                    raise UnservableRequestError("Invalid ROI")
                frame = attrs.evolve(frame, image=frame.image.crop((xtl, ytl, xbr, ybr)))
            yield frame

    def finished_reading(self, frames: int) -> None:
        pass


class RequestRunner:
    """Computes the results of a detector's requests with one loaded function on one
    executor."""

    def __init__(
        self,
        client: Client,
        executor: Executor,
        function: Any,
        *,
        name: str,
        batch_size: int,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.client = client
        self.executor = executor
        self.function = function
        self.name = name
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self.spec = executor.spec(function)

    def result(self, params: Mapping[str, Any], check_in: CheckIn | None) -> dict[str, Any]:
        """The body (without ``agent_id``) that completes the request ``params``."""
        kind = params.get("type")
        if kind == "annotate_task":
            return self._run(params, None, check_in)
        if kind == "annotate_frame":
            return self._run(params, int(params["frame"]), None)
        raise UnservableRequestError(f"unsupported type: {kind!r}")

    def _run(
        self, params: Mapping[str, Any], frame: int | None, check_in: CheckIn | None
    ) -> dict[str, Any]:
        task_id = int(params["task"])
        media: Any
        job_id = params.get("job")
        if frame is None and job_id is not None:
            # A job's request: only the job's frames (cvat-cli reads the whole task, and the
            # server keeps the job's part of the result).
            media = self.retry.call(
                lambda: self.client.jobs.retrieve(int(job_id)), what=f"reading job {job_id}"
            )
            frames = TaskFrames.for_job(media, retry=self.retry)
        else:
            media = self.retry.call(
                lambda: self.client.tasks.retrieve(task_id), what=f"reading task {task_id}"
            )
            frames = TaskFrames.for_task(media, retry=self.retry)
        if check_in is not None:
            check_in(0.0)
        source: Any = frames
        if frame is not None:
            chosen = [f for f in frames.frames if f[0] == frame]
            if not chosen:
                raise UnservableRequestError(f"Frame with index {frame} does not exist in the task")
            source = _RegionOfInterest(attrs.evolve(frames, frames=chosen), params.get("roi"))
        task_labels = self.retry.call(
            media.get_labels, what=f"reading the labels of {frames.describe()}"
        )
        conv_mask_to_poly = bool(params.get("conv_mask_to_poly", False))
        mapper = LabelMapper(
            self.spec.labels,
            task_labels,
            allow_unmatched_labels=False,
            conv_mask_to_poly=conv_mask_to_poly,
            label_map=label_map_of(params.get("mapping") or {}, self.spec.labels),
        )
        options = RunOptions.for_runs(
            Runs.SERVER,
            "agent",
            conf_threshold=params.get("threshold"),
            conv_mask_to_poly=conv_mask_to_poly,
            batch_size=self.batch_size,
            executor=self.executor,
            retry=self.retry,
        )
        sink = _Collect(source.frame_count(), check_in)
        Pipeline(
            source=source,
            executor=self.executor,
            function=self.function,
            name=self.name,
            mapper=mapper,
            labels=LabelCatalog.from_task_labels(task_labels),
            options=options,
            sinks=[sink],
            hooks=hooks(),
        ).run()
        return {"annotations": models.PatchedLabeledDataRequest(tags=sink.tags, shapes=sink.shapes)}
