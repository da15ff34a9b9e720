"""Running an interaction function: checked prompts in, validated shapes out.

CVAT calls an interaction function (an "interactor") each time a user clicks in its UI:
the same image, one more point each time. Three callers do this in cvat-aa, ``cvat-aa serve``
(CVAT's lambda manager), the agent (CVAT's queue) and tests or scripts in Python, and all three
must answer alike. :class:`Interactor` is that one place: it checks the prompts against the
function's spec, preprocesses the image once and keeps the result for the clicks that follow,
calls the function through the hooks, and validates what it returns before anything leaves
the process.

The rules mirror cvat-cli's agent driver (``agent_driver_interaction.py``), so a function
behaves the same under either: the prompt checks give its messages, and the preprocessed
images are kept in a least-recently-used cache whose entries expire after ten minutes unused.
Unlike cvat-cli's worker, which serves one request at a time in its own process, an
:class:`Interactor` may be called from several threads: the cache has a lock, and so do the
function's calls (a model is seldom safe to call from two threads at once).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import attrs
import PIL.Image

from .errors import BadFunctionError, BadRequestError
from .interface import (
    InteractionFunctionContext,
    InteractionFunctionSpec,
    InteractionPrompts,
    InteractionResultShape,
    function_kind,
    plain_number,
    validate_interaction_shape,
)
from .plugins import call_function, hooks

__all__ = ["Interactor", "Prompts", "check_prompts", "result_json"]

logger = logging.getLogger(__name__)

_Point = tuple[float, float]


def _point(value: Any) -> _Point:
    x, y = (float(plain_number(c)) for c in plain_number(value))
    return (x, y)


def _points(value: Any) -> tuple[_Point, ...]:
    return tuple(_point(p) for p in plain_number(value))


def _box(value: Any) -> tuple[_Point, _Point] | None:
    if value is None:
        return None
    top_left, bottom_right = plain_number(value)
    return (_point(top_left), _point(bottom_right))


@attrs.frozen(kw_only=True)
class Prompts(InteractionPrompts):
    """The prompts of one call: cvat-sdk's ``InteractionPrompts``, as plain tuples of floats."""

    pos_points: tuple[tuple[float, float], ...] = attrs.field(default=(), converter=_points)
    neg_points: tuple[tuple[float, float], ...] = attrs.field(default=(), converter=_points)
    bounding_box: tuple[tuple[float, float], tuple[float, float]] | None = attrs.field(
        default=None, converter=_box
    )

    @classmethod
    def from_request(cls, pos_points: Any, neg_points: Any = (), obj_bbox: Any = None) -> Prompts:
        """The prompts of a request from CVAT: lists of ``[x, y]``; ``obj_bbox`` is ``None``
        or ``[]`` for no box, else ``[[x1, y1], [x2, y2]]``.

        Raises :class:`BadRequestError` for anything else, or a coordinate that is not a
        finite number.
        """
        try:
            prompts = cls(
                pos_points=pos_points or (),
                neg_points=neg_points or (),
                bounding_box=obj_bbox or None,
            )
        except (TypeError, ValueError) as ex:
            raise BadRequestError(
                "points must be lists of [x, y] pairs and obj_bbox [[x1, y1], [x2, y2]] or"
                f" empty: {ex}"
            ) from ex
        coordinates = [c for p in (*prompts.pos_points, *prompts.neg_points) for c in p]
        if prompts.bounding_box is not None:
            coordinates += [c for p in prompts.bounding_box for c in p]
        if not all(math.isfinite(c) for c in coordinates):
            raise BadRequestError("points and obj_bbox must hold finite numbers")
        return prompts


def check_prompts(spec: InteractionFunctionSpec, prompts: InteractionPrompts) -> None:
    """Raise :class:`BadRequestError` if ``prompts`` do not fit what ``spec`` asks for.

    The rules and messages are cvat-cli's agent driver's.
    """
    if len(prompts.pos_points) < spec.min_pos_points:
        raise BadRequestError("not enough positive points")
    if spec.min_neg_points is None:
        if len(prompts.neg_points) > 0:
            raise BadRequestError("negative points are not supported")
    elif len(prompts.neg_points) < spec.min_neg_points:
        raise BadRequestError("not enough negative points")
    if spec.min_bounding_boxes is None and prompts.bounding_box is not None:
        raise BadRequestError("bounding boxes are not supported")
    if spec.min_bounding_boxes == 1 and prompts.bounding_box is None:
        raise BadRequestError("a bounding box is required")


class _Context(InteractionFunctionContext):
    """cvat-sdk's interaction context, which has nothing in it yet."""


@attrs.define
class _Preprocessed:
    pp_image: Any
    size: tuple[int, int]
    used_at: float = attrs.field(factory=time.monotonic)


class Interactor:
    """An interaction function, ready to be called with images and prompts; thread-safe.

    ``function`` is already loaded. Up to ``cache_entries`` preprocessed images are kept
    (least recently used first out), each for at most ``cache_max_age_s`` seconds unused.
    Raises :class:`BadFunctionError` if the function is not an interaction function.
    """

    def __init__(
        self, function: Any, *, cache_entries: int = 16, cache_max_age_s: float = 600.0
    ) -> None:
        spec = hooks().spec(function)
        if not isinstance(spec, InteractionFunctionSpec):
            raise BadFunctionError(
                f"the function is a {function_kind(spec)} function, not an interaction function"
            )
        self.function = function
        self.spec: InteractionFunctionSpec = spec
        self._cache_entries = cache_entries
        self._cache_max_age_s = cache_max_age_s
        self._cache: OrderedDict[Hashable, _Preprocessed] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._calls = threading.Lock()

    def interact(
        self,
        image: PIL.Image.Image | Callable[[], PIL.Image.Image],
        prompts: InteractionPrompts,
        *,
        cache_key: Hashable | None = None,
    ) -> list[InteractionResultShape]:
        """The shapes the function finds on ``image`` for ``prompts``, validated and fitted
        into the image.

        ``image`` may be a callable that returns the image: it is called only when no
        preprocessed image is cached under ``cache_key``. Raises :class:`BadRequestError` for
        prompts the spec does not allow, :class:`BadFunctionError` for a result that breaks
        the protocol, and ``FunctionFailedError`` for what the function raised.
        """
        check_prompts(self.spec, prompts)
        context = _Context()
        preprocessed = None if cache_key is None else self._cached(cache_key)
        if preprocessed is None:
            loaded = image if isinstance(image, PIL.Image.Image) else image()
            with self._calls:
                pp_image = call_function(
                    "preprocess_image",
                    lambda: hooks().preprocess_image(self.function, context, loaded),
                )
            preprocessed = _Preprocessed(pp_image, loaded.size)
            if cache_key is not None:
                self._store(cache_key, preprocessed)
        with self._calls:
            shapes = call_function(
                "detect",
                lambda: hooks().interact(self.function, context, preprocessed.pp_image, prompts),
            )
        return _validated(shapes, preprocessed.size)

    def _cached(self, key: Hashable) -> _Preprocessed | None:
        with self._cache_lock:
            self._prune()
            preprocessed = self._cache.get(key)
            if preprocessed is not None:
                preprocessed.used_at = time.monotonic()
                self._cache.move_to_end(key)
            return preprocessed

    def _store(self, key: Hashable, preprocessed: _Preprocessed) -> None:
        with self._cache_lock:
            self._cache[key] = preprocessed
            self._cache.move_to_end(key)
            self._prune()
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)

    def _prune(self) -> None:
        cutoff = time.monotonic() - self._cache_max_age_s
        while self._cache and next(iter(self._cache.values())).used_at < cutoff:
            self._cache.popitem(last=False)


def _validated(shapes: Any, size: tuple[int, int]) -> list[InteractionResultShape]:
    if shapes is None or not isinstance(shapes, Sequence) or isinstance(shapes, (str, bytes)):
        raise BadFunctionError(
            f"interaction function returned a {type(shapes).__name__}, not a list of"
            " InteractionResultShape objects"
        )
    width, height = size
    checked = []
    for shape in shapes:
        fitted = validate_interaction_shape(shape, width, height)
        if fitted is None:
            logger.debug("dropped a %s shape that lies outside the image", shape.type)
        else:
            checked.append(fitted)
    return checked


def result_json(shapes: Sequence[InteractionResultShape]) -> dict[str, Any]:
    """An interactor's answer as CVAT receives it, whether through ``cvat-aa serve`` or the
    agent: ``{"shapes": [...]}``, each shape as cvat-cli's agent sends it (``attrs.asdict``,
    the attributes as plain ``spec_id``/``value`` pairs, the numbers as the function gave them).
    """
    return {
        "shapes": [
            {
                "type": str(shape.type),
                "points": list(shape.points),
                "attributes": [
                    {"spec_id": int(a.spec_id), "value": a.value} for a in shape.attributes
                ],
            }
            for shape in shapes
        ]
    }
