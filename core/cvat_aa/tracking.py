"""Running a tracking function: states kept here, opaque ids handed out, shapes validated.

A tracking function ("tracker") follows shapes from one image to the next: it makes a state
for each shape on a first image, then finds each shape again on later images from its state.
CVAT keeps only what it is given back, so the states stay in the process that made them and
CVAT gets an id for each. ``cvat-aa serve`` (CVAT's lambda manager), the agent (CVAT's queue)
and ``cvat-aa track`` (offline tracking over the frames of a task or a video) all do this, and
:class:`Tracker` is the one place that does it for them: it checks the shapes against the
spec, preprocesses each image once for all its shapes, calls the function through the hooks
and validates each shape it returns before anything leaves the process.

The rules mirror cvat-cli's agent driver (``agent_driver_tracking.py``): a state is dropped
after eight hours unused; its id is unguessable (``secrets.token_urlsafe``), and a state made
for one task (a *scope*) is refused for another, so an id that leaks shows nothing of a task
its holder cannot see; the image must keep the size of the one the state was made on. The
messages are the driver's. The number of states is also bounded (least recently used first
out), since a long-lived server would otherwise keep every state a user ever started.
A :class:`Tracker` may be called from several threads: the states have a lock, and so do the
function's calls.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import attrs
import PIL.Image

from .errors import BadFunctionError, BadRequestError
from .interface import (
    TrackableShape,
    TrackingFunctionContext,
    TrackingFunctionShapeContext,
    TrackingFunctionSpec,
    check_shape_points,
    function_kind,
    validate_trackable_shape,
)
from .plugins import call_function, hooks

__all__ = ["Tracker", "shape_json"]

logger = logging.getLogger(__name__)


class _Context(TrackingFunctionContext):
    """cvat-sdk's tracking context, which has nothing in it yet."""


@attrs.frozen(kw_only=True)
class _ShapeContext(TrackingFunctionShapeContext):
    original_shape_type: str


@attrs.define
class _State:
    inner: Any
    shape_type: str
    scope: Hashable
    image_size: tuple[int, int]
    used_at: float = attrs.field(factory=time.monotonic)


def _scope_name(scope: Hashable) -> str:
    if isinstance(scope, int) and not isinstance(scope, bool):
        return f"task #{scope}"
    return "no scope" if scope is None else repr(scope)


class Tracker:
    """A tracking function, ready to start and continue tracking shapes; thread-safe.

    ``function`` is already loaded. A state is kept while it is used at least every
    ``state_max_age_s`` seconds, and at most ``max_states`` states are kept (the least
    recently used go first). Raises :class:`BadFunctionError` if the function is not a
    tracking function.
    """

    def __init__(
        self, function: Any, *, state_max_age_s: float = 8 * 3600, max_states: int = 100_000
    ) -> None:
        spec = hooks().spec(function)
        if not isinstance(spec, TrackingFunctionSpec):
            raise BadFunctionError(
                f"the function is a {function_kind(spec)} function, not a tracking function"
            )
        self.function = function
        self.spec: TrackingFunctionSpec = spec
        self._state_max_age_s = state_max_age_s
        self._max_states = max_states
        self._states: OrderedDict[str, _State] = OrderedDict()
        self._states_lock = threading.Lock()
        self._calls = threading.Lock()

    def init_tracking(
        self, image: PIL.Image.Image, shapes: Sequence[TrackableShape], *, scope: Hashable = None
    ) -> list[str]:
        """Start tracking ``shapes`` on ``image``: one state id per shape, in order.

        ``scope`` (CVAT's task id, say) is what later calls must give to use the states.
        Raises :class:`BadRequestError` for a shape type the spec does not support or points
        that do not fit the shape's type.
        """
        for shape in shapes:
            _check_input(shape, self.spec)
        if not shapes:
            return []
        with self._calls:
            pp_image = self._preprocess(image)
            states = [
                call_function(
                    "init_tracking_state",
                    lambda shape=shape: hooks().init_tracking_state(
                        self.function,
                        _ShapeContext(original_shape_type=shape.type),
                        pp_image,
                        shape,
                    ),
                )
                for shape in shapes
            ]
        ids = []
        with self._states_lock:
            for shape, inner in zip(shapes, states, strict=True):
                state_id = secrets.token_urlsafe(24)
                self._states[state_id] = _State(inner, shape.type, scope, image.size)
                ids.append(state_id)
            self._prune()
        return ids

    def track(
        self, image: PIL.Image.Image, state_ids: Sequence[str], *, scope: Hashable = None
    ) -> list[TrackableShape | None]:
        """Where each state's shape is on ``image`` (None: lost), in the order of ``state_ids``.

        Raises :class:`BadRequestError` for an unknown or expired id, a state made under
        another ``scope``, or an image of another size than the state's first one;
        :class:`BadFunctionError` for a shape that breaks the protocol (of another type than
        the original, say); ``FunctionFailedError`` for what the function raised.
        """
        states = self._retrieve(state_ids, scope, image.size)
        if not states:
            return []
        width, height = image.size
        results: list[TrackableShape | None] = []
        with self._calls:
            pp_image = self._preprocess(image)
            for state in states:
                shape = call_function(
                    "track",
                    lambda state=state: hooks().track(
                        self.function,
                        _ShapeContext(original_shape_type=state.shape_type),
                        pp_image,
                        state.inner,
                    ),
                )
                if shape is not None:
                    shape = validate_trackable_shape(
                        shape, width, height, original_type=state.shape_type
                    )
                results.append(shape)
        return results

    def forget(self, state_ids: Iterable[str]) -> None:
        """Drop these states (unknown ids are ignored)."""
        with self._states_lock:
            for state_id in state_ids:
                self._states.pop(state_id, None)

    def _preprocess(self, image: PIL.Image.Image) -> Any:
        return call_function(
            "preprocess_image", lambda: hooks().preprocess_image(self.function, _Context(), image)
        )

    def _retrieve(
        self, state_ids: Sequence[str], scope: Hashable, size: tuple[int, int]
    ) -> list[_State]:
        with self._states_lock:
            self._prune()
            states = []
            for state_id in state_ids:
                state = self._states.get(state_id) if isinstance(state_id, str) else None
                if state is None:
                    raise BadRequestError(
                        f"Tracking state {state_id!r} not found - possibly expired"
                    )
                if state.scope != scope:
                    raise BadRequestError(
                        f"Tracking state {state_id!r} is not for {_scope_name(scope)}"
                    )
                if state.image_size != tuple(size):
                    raise BadRequestError(
                        "Image sizes of the start frame and the current frame are different"
                    )
                states.append(state)
            now = time.monotonic()
            for state_id, state in zip(state_ids, states, strict=True):
                state.used_at = now
                self._states.move_to_end(state_id)
            return states

    def _prune(self) -> None:
        cutoff = time.monotonic() - self._state_max_age_s
        while self._states and next(iter(self._states.values())).used_at < cutoff:
            self._states.popitem(last=False)
        while len(self._states) > self._max_states:
            self._states.popitem(last=False)


def _check_input(shape: Any, spec: TrackingFunctionSpec) -> None:
    """Raise BadRequestError for a shape to start tracking that the function cannot take."""
    shape_type = getattr(shape, "type", None)
    if shape_type not in spec.supported_shape_types:
        raise BadRequestError(f"Unsupported shape type {shape_type!r}")
    # The rules for the shapes functions return; a shape that breaks them is the caller's here.
    try:
        check_shape_points(shape_type, getattr(shape, "points", None) or [])
    except BadFunctionError as ex:
        reason = str(ex).removeprefix("function output ")
        raise BadRequestError(f"a shape to track is not valid: {reason}") from None


def shape_json(shape: TrackableShape | None) -> dict[str, Any] | None:
    """A tracked shape as CVAT receives it (``null`` where the object was lost), whether
    through ``cvat-aa serve`` or the agent."""
    return None if shape is None else {"type": shape.type, "points": list(shape.points)}
