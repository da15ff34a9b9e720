"""Serving an interactor's or a tracker's requests: one frame each, for a person waiting in
CVAT's UI.

CVAT's UI calls an interactor (AI Tools → Interactors) each time the user clicks: an
``interact`` request carries the frame, the positive and negative points, the box the user
drew if any, and the region of interest; the answer is the shapes found there (a mask or a
polygon, usually). A tracker (AI Tools → Trackers) is called with ``init_tracking`` (shapes on
the frame the user starts from) and answers one opaque state id per shape; then with ``track``
and those ids, once for each next frame the user moves to, and answers the shapes there with
the same ids. The states live in the agent's process, so a tracker is served by one agent
that keeps running: after a restart, the states it gave are unknown and tracking starts over.

The protocol is cvat-cli 2.80's (``agent_driver_interaction.py`` and
``agent_driver_tracking.py``), field for field: the preprocessed image is cached under
(task, frame, region of interest), and the frame is read from the server only when the cache
has nothing for it (a user clicks many times on one frame); a state belongs to the task it was
made on, and is refused on any other (ids are unguessable, but a leaked one must not show
another task); bad requests fail with cvat-cli's messages. The computing itself (prompts
checked, preprocessing cached, results validated, states kept and expired) is the core's
:class:`~cvat_aa.interaction.Interactor` and :class:`~cvat_aa.tracking.Tracker`, which
``cvat-aa serve`` uses too.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import PIL.Image
from cvat_sdk import Client

from ..driver.retry import RetryPolicy
from ..errors import BadRequestError, FunctionFailedError, UnservableRequestError
from ..interaction import Interactor, Prompts, result_json
from ..interface import TrackableShape
from ..tracking import Tracker, shape_json

__all__ = ["InteractionRunner", "TrackingRunner", "read_frame"]

logger = logging.getLogger(__name__)


def read_frame(
    client: Client, task_id: int, frame: int, *, retry: RetryPolicy | None = None
) -> PIL.Image.Image:
    """Frame ``frame`` of task ``task_id``, in its original quality, as an RGB image.

    One frame is read, not its chunk: a person is waiting. Raises :class:`BadRequestError`
    (cvat-cli's message) for a frame the task does not have, or has deleted.
    """
    retry = retry or RetryPolicy()
    task = retry.call(lambda: client.tasks.retrieve(task_id), what=f"reading task {task_id}")
    meta = retry.call(task.get_meta, what=f"reading the frame list of task {task_id}")
    size = getattr(task, "size", None) or 0
    if not 0 <= frame < size or frame in set(meta.deleted_frames or []):
        raise BadRequestError(f"Frame with index {frame} does not exist in the task")
    data = retry.call(
        lambda: task.get_frame(frame, quality="original").read(),
        what=f"downloading frame {frame} of task {task_id}",
    )
    image = PIL.Image.open(io.BytesIO(data))
    image.load()
    # Functions get RGB images, as the detection pipeline gives them.
    return image if image.mode == "RGB" else image.convert("RGB")


def _crop(image: PIL.Image.Image, roi: Any) -> PIL.Image.Image:
    """The request's region of interest (x1, y1, x2, y2) of ``image``, as cvat-cli cuts it."""
    if not roi:
        return image
    xtl, ytl, xbr, ybr = roi
    width, height = image.size
    if xbr > width or ybr > height:
        raise BadRequestError("Invalid ROI")
    return image.crop((xtl, ytl, xbr, ybr))


@contextmanager
def _on_frame(task_id: int, frame: int) -> Iterator[None]:
    """The function's failure, told with the frame it failed on (as a detector's is)."""
    try:
        yield
    except FunctionFailedError as ex:
        where = str(ex).removeprefix("the function failed")
        raise FunctionFailedError(
            f"the function failed on frame {frame} of task {task_id}{where}",
            [frame],
            ex.reason,
            ex.original,
        ) from ex


def _type_of(params: Mapping[str, Any], served: tuple[str, ...]) -> str:
    ar_type = params.get("type")
    if ar_type not in served:
        raise UnservableRequestError(f"unsupported type: {ar_type!r}")
    return str(ar_type)


class InteractionRunner:
    """Answers an interactor's ``interact`` requests with one loaded function."""

    def __init__(
        self,
        client: Client,
        interactor: Interactor,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.client = client
        self.interactor = interactor
        self.spec = interactor.spec
        self.retry = retry or RetryPolicy()

    def result(
        self, params: Mapping[str, Any], check_in: Callable[..., Any] | None = None
    ) -> dict[str, Any]:
        """The body (without ``agent_id``) that completes the request ``params``."""
        _type_of(params, ("interact",))
        task_id, frame = int(params["task"]), int(params["frame"])
        roi = params.get("roi")
        prompts = Prompts.from_request(
            params.get("pos_points") or [],
            params.get("neg_points") or [],
            params.get("obj_bbox") or None,
        )

        def image() -> PIL.Image.Image:
            logger.debug("Nothing cached for frame %d of task %d: reading it", frame, task_id)
            return _crop(read_frame(self.client, task_id, frame, retry=self.retry), roi)

        # cvat-cli's key: the same frame cut the same way is preprocessed once.
        cache_key = (params["task"], params["frame"], tuple(roi or ()))
        with _on_frame(task_id, frame):
            shapes = self.interactor.interact(image, prompts, cache_key=cache_key)
        return result_json(shapes)


class TrackingRunner:
    """Answers a tracker's ``init_tracking`` and ``track`` requests with one loaded function;
    the states stay in this process, each for the task it was made on."""

    def __init__(
        self,
        client: Client,
        tracker: Tracker,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.client = client
        self.tracker = tracker
        self.spec = tracker.spec
        self.retry = retry or RetryPolicy()

    def result(
        self, params: Mapping[str, Any], check_in: Callable[..., Any] | None = None
    ) -> dict[str, Any]:
        """The body (without ``agent_id``) that completes the request ``params``."""
        ar_type = _type_of(params, ("init_tracking", "track"))
        task_id, frame = int(params["task"]), int(params["frame"])
        scope = task_id  # a state is for the task it was made on ("task #5" in messages)
        if ar_type == "init_tracking":
            shapes = [
                TrackableShape(type=shape["type"], points=shape.get("points") or [])
                for shape in params.get("shapes") or []
            ]
            image = read_frame(self.client, task_id, frame, retry=self.retry)
            with _on_frame(task_id, frame):
                states = self.tracker.init_tracking(image, shapes, scope=scope)
            return {"states": list(states)}
        states = list(params.get("states") or [])
        image = read_frame(self.client, task_id, frame, retry=self.retry)
        with _on_frame(task_id, frame):
            tracked = self.tracker.track(image, states, scope=scope)
        return {
            "states": states,
            "shapes": [shape_json(shape) for shape in tracked],
        }
