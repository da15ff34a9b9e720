"""A detection function that runs another on overlapping tiles of each frame.

A detector shrinks its input to the size it was trained on (640 pixels across, often), so an
object of 15 pixels in a 4000-pixel frame becomes 2 pixels and is lost. Run on tiles of that
size, the detector sees the object at its real size (this is SAHI: "slicing aided hyper
inference"). :class:`SlicedDetection` does it for any detection function, as a detection
function itself, so it fits wherever one does: it cuts the tiles (``tiles``), runs the
function on them in batches, puts what it finds back in the frame (``geometry``) and makes one
shape of each object found on several tiles (``merge``).

The inner function is called through cvat-aa's hooks (``hooks().detect``), as the pipeline
would call it, so that other hook plugins that wrap detection still see it (on each tile).
Nothing is validated here: cvat-aa validates the frame's results as it validates any
function's, and what the inner function raises passes through unchanged, for the pipeline to
report with the frame.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any, Literal

import attrs
import PIL.Image
from cvat_aa.interface import DetectionAnnotation, DetectionFunctionContext, FrameContext
from cvat_aa.pipeline.options import DEFAULT_BATCH_SIZE
from cvat_aa.plugins import hooks
from cvat_sdk import models

from .geometry import bounding_box, shape_to_frame
from .merge import Found, merge_duplicates
from .options import SliceSettings
from .tiles import Tile, frame_tiles

__all__ = ["SlicedDetection"]

logger = logging.getLogger(__name__)


class SlicedDetection:
    """``function`` run on overlapping ``tile`` x ``tile`` tiles of each frame.

    ``overlap`` is the fraction of a tile its neighbours cover (0 to 0.9); ``whole_frame``
    also runs the function on the whole frame shrunk to about the tile's size; shapes from
    different tiles whose boxes overlap by more than ``match_threshold`` (measured by
    ``match_metric``, ``"ios"`` or ``"iou"``) are one object, merged by ``merge`` (``"nms"``
    or ``"nmm"``), per label unless ``class_agnostic``; the function is given ``batch_size``
    tiles at a time. Raises ``ValueError`` naming a bad setting.
    """

    def __init__(
        self,
        function: Any,
        *,
        tile: int,
        overlap: float = 0.2,
        whole_frame: bool = False,
        merge: Literal["nms", "nmm"] = "nms",
        match_threshold: float = 0.5,
        match_metric: Literal["ios", "iou"] = "ios",
        class_agnostic: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.function = function
        self.settings = SliceSettings(
            tile=tile,
            overlap=overlap,
            whole_frame=whole_frame,
            merge=merge,
            match_threshold=match_threshold,
            match_metric=match_metric,
            class_agnostic=class_agnostic,
            batch_size=batch_size,
        )

    @classmethod
    def from_settings(cls, function: Any, settings: SliceSettings) -> SlicedDetection:
        """``function`` sliced as ``settings`` say."""
        return cls(function, **attrs.asdict(settings))

    def __repr__(self) -> str:
        return f"SlicedDetection({self.function!r}, tile={self.settings.tile})"

    @property
    def spec(self) -> Any:
        """The inner function's spec: tiles find what the function finds."""
        return hooks().spec(self.function)

    def detect(
        self, context: DetectionFunctionContext, image: PIL.Image.Image
    ) -> list[DetectionAnnotation]:
        """What :meth:`detect_batch` finds on one frame."""
        return self.detect_batch([context], [image])[0]

    def detect_batch(
        self,
        contexts: Sequence[DetectionFunctionContext],
        images: Sequence[PIL.Image.Image],
    ) -> list[list[DetectionAnnotation]]:
        """For each frame, what the function finds on its tiles, in the frame's coordinates,
        each object once."""
        settings = self.settings
        work = [
            (frame, tile)
            for frame, image in enumerate(images)
            for tile in frame_tiles(
                *image.size,
                tile=settings.tile,
                overlap=settings.overlap,
                whole_frame=settings.whole_frame,
            )
        ]
        # Each tile's context is its frame's: the same name, threshold and mask conversion.
        tile_contexts = [
            FrameContext(
                frame_name=context.frame_name,
                conf_threshold=getattr(context, "conf_threshold", None),
                conv_mask_to_poly=getattr(context, "conv_mask_to_poly", False),
            )
            for context in contexts
        ]
        per_tile: list[Sequence[Any]] = []
        for start in range(0, len(work), settings.batch_size):
            batch = work[start : start + settings.batch_size]
            # Cut batch by batch: a frame's tiles together are as large as the frame.
            per_tile.extend(
                hooks().detect(
                    self.function,
                    [tile_contexts[frame] for frame, _ in batch],
                    [tile.cut(images[frame]) for frame, tile in batch],
                )
            )
        per_frame: list[list[tuple[Tile, Sequence[Any]]]] = [[] for _ in images]
        for (frame, tile), results in zip(work, per_tile, strict=True):
            per_frame[frame].append((tile, results))
        return [self._frame_result(tiles) for tiles in per_frame]

    def _frame_result(self, tiles: list[tuple[Tile, Sequence[Any]]]) -> list[DetectionAnnotation]:
        settings = self.settings
        tags: dict[int, models.LabeledImageRequest] = {}
        shapes: list[Found] = []
        others: list[Any] = []
        # Group ids are the function's per call: group 1 of one tile is not group 1 of another.
        groups: dict[tuple[int, int], int] = {}

        def regrouped(annotation: Any, index: int) -> Any:
            group = getattr(annotation, "group", None)
            if group:
                annotation.group = groups.setdefault((index, group), len(groups) + 1)
            return annotation

        for index, (tile, results) in enumerate(tiles):
            for annotation in results:
                if isinstance(annotation, models.LabeledImageRequest):
                    # A tag says something of the frame; the first tile to say it is enough.
                    if annotation.label_id not in tags:
                        tags[annotation.label_id] = regrouped(copy.deepcopy(annotation), index)
                elif isinstance(annotation, models.LabeledShapeRequest):
                    shape = regrouped(shape_to_frame(annotation, tile), index)
                    shapes.append(Found(shape, index, bounding_box(shape)))
                else:
                    # Not an annotation: cvat-aa's validation says so, naming the function.
                    others.append(annotation)
        kept = merge_duplicates(
            shapes,
            merge=settings.merge,
            threshold=settings.match_threshold,
            metric=settings.match_metric,
            class_agnostic=settings.class_agnostic,
        )
        logger.debug(
            "%d tiles: %d shapes, %d after merging duplicates", len(tiles), len(shapes), len(kept)
        )
        return [*tags.values(), *kept, *others]
