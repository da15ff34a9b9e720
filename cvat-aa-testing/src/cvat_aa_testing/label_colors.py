"""The colour real CVAT gives a label created without one.

CVAT 2.73 (``get_label_color`` in ``cvat/apps/dataset_manager/formats/utils.py``) does not
pick from a rotating palette: a label's colour follows from its name. Common names (COCO,
PASCAL VOC, ImageNet...) have a predefined colour (``cvat_predefined_colors/``, copied from
CVAT); any other name is hashed into a colour. Only when that colour is already taken by a
label it must differ from is it tinted or shaded. Same rule here, so a task made on the test
server shows the same colours as on a real CVAT (tests and previews compare them).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import operator
import re
import unicodedata
from collections.abc import Iterable, Iterator
from importlib import resources

RGB = tuple[int, int, int]


def label_color(name: str, colors_in_use: Iterable[str]) -> str:
    """The ``#rrggbb`` colour CVAT gives a new label ``name`` beside ``colors_in_use``.

    ``colors_in_use`` are the colours it must differ from, as CVAT chooses them: when a task
    or project is created, those of the labels listed before it at the same level (top-level
    labels, or the sublabels of one skeleton); when labels are added later, those of all the
    labels it already has, sublabels included.
    """
    predefined = _predefined_colors()
    taken = {_rgb(color) for color in colors_in_use if color}
    normalized = _normalize(name)
    color = predefined.get(normalized)
    if color is None:
        name_hash = int.from_bytes(
            hashlib.blake2s(normalized.encode(), digest_size=3).digest(), "big"
        )
        color = _color_from_index(name_hash)
    if color in taken:
        color = _another_color(color, set(predefined.values()) | taken)
    return "#{:02x}{:02x}{:02x}".format(*color)


@functools.cache
def _predefined_colors() -> dict[str, RGB]:
    text = (
        resources.files(__package__)
        .joinpath("cvat_predefined_colors", "predefined_colors.txt")
        .read_text()
    )
    colors = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            _, name, rgb = line.split(":")
            red, green, blue = (int(c) for c in rgb.split(","))
            colors[name] = (red, green, blue)
    return colors


def _normalize(name: str) -> str:
    # datumaro's make_file_name (ASCII, lower case, runs of spaces and dashes as one dash),
    # then dashes as underscores.
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text).replace("-", "_")


def _rgb(color: str) -> RGB:
    hex_digits = color.lstrip("#")
    return (int(hex_digits[0:2], 16), int(hex_digits[2:4], 16), int(hex_digits[4:6], 16))


def _color_from_index(index: int) -> RGB:
    # The bits of the index spread over the three channels, most significant bit first.
    color = [0, 0, 0]
    for bit in range(7, -1, -1):
        for channel in range(3):
            color[channel] |= ((index >> channel) & 1) << bit
        index >>= 3
    return (color[0], color[1], color[2])


def _another_color(color: RGB, used: set[RGB]) -> RGB:
    """A tint or shade of ``color`` that is not used, else a colour between used ones."""

    def tints_and_shades() -> Iterator[RGB]:
        for target, factor in itertools.product((255, 0), range(1, 10)):
            red, green, blue = (int(c + (target - c) * factor / 10) for c in color)
            yield (red, green, blue)

    for candidate in tints_and_shades():
        if candidate not in used:
            return candidate

    def middle_of_widest_gap(channel: int) -> int:
        ordered = sorted(used, key=operator.itemgetter(channel))
        low, high = max(
            itertools.pairwise(ordered), key=lambda pair: pair[1][channel] - pair[0][channel]
        )
        return (low[channel] + high[channel]) // 2

    return (middle_of_widest_gap(0), middle_of_widest_gap(1), middle_of_widest_gap(2))
