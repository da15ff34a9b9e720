"""Where the tiles of a frame lie, and how a tile's coordinates map back to the frame's.

Tiles are squares of the tile size that overlap their neighbours by a fraction of it; the
last row and column are moved back to end at the frame's edge, so every tile is whole and
lies inside the frame (they overlap their neighbour more). A frame smaller than a tile, in
either direction, is not padded: its tile is as wide or as tall as the frame, since padding
would show the detector an edge that is not there. An object no wider and no taller than the
overlap is therefore whole in at least one tile.

The whole frame, shrunk to about the tile's size (its aspect kept), is an extra tile whose
coordinates are scaled back up: it finds the objects too large for a tile.
"""

from __future__ import annotations

import attrs
import PIL.Image

__all__ = ["Tile", "frame_tiles"]


@attrs.frozen
class Tile:
    """A part of a frame as the function sees it: frame pixels ``x``..``x + width`` and
    ``y``..``y + height``, shrunk to ``size`` (the same size for a cut tile)."""

    x: int
    y: int
    width: int
    height: int
    size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """Frame pixels per tile pixel, across and down."""
        return self.width / self.size[0], self.height / self.size[1]

    @property
    def shrunk(self) -> bool:
        """Whether this is the whole frame, shrunk."""
        return self.size != (self.width, self.height)

    def cut(self, image: PIL.Image.Image) -> PIL.Image.Image:
        """The tile's image, as the function is given it."""
        if self.shrunk:
            return image.resize(self.size, PIL.Image.Resampling.BILINEAR)
        return image.crop((self.x, self.y, self.x + self.width, self.y + self.height))

    def to_frame(self, x: float, y: float) -> tuple[float, float]:
        """A point of the tile, in the frame."""
        scale_x, scale_y = self.scale
        return self.x + x * scale_x, self.y + y * scale_y


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    return [*range(0, length - tile, step), length - tile]


def frame_tiles(
    width: int, height: int, *, tile: int, overlap: float, whole_frame: bool
) -> list[Tile]:
    """The tiles of a ``width`` x ``height`` frame, the shrunk whole frame first when asked
    for and when the frame is larger than one tile."""
    step = max(1, tile - round(tile * overlap))
    tiles = [
        Tile(x, y, min(tile, width), min(tile, height), (min(tile, width), min(tile, height)))
        for y in _starts(height, tile, step)
        for x in _starts(width, tile, step)
    ]
    if whole_frame and len(tiles) > 1:
        shrink = tile / max(width, height)
        size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        tiles.insert(0, Tile(0, 0, width, height, size))
    return tiles
