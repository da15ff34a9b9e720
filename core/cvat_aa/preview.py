"""Drawing annotations onto frames, and a gallery of the drawn frames to look through.

:func:`draw_annotations` draws a frame's tags and shapes onto a copy of its image: boxes
(rotated as CVAT rotates them, clockwise about their centre), polygons and masks with a
translucent fill, polylines, points, ellipses, cuboids, and skeletons with the edges their
label's svg defines (points only when it defines none); each shape is captioned with its
label's name and, where the function gave one, its score. Shapes that a result stage took into
tracks (``shown``) are drawn the same way, their caption (the track, ``#3``) after the
label's name, so that a gallery shows which object is which from frame to frame. Tags are listed in a banner across
the top. A label's colour is its own (a task's labels have one) or one picked from its name,
so it is the same in every preview.

:class:`PreviewWriter` writes each drawn frame as a PNG (``frames/``) with a thumbnail
(``thumbnails/``), and at the end an ``index.html`` gallery that links them, with each
frame's name and its annotation counts per label. Its :meth:`~PreviewWriter.add` has the
signature of the drivers' ``on_frame`` callback, so a run draws its frames as it goes.
:func:`check_preview_directory` tells before a run whether the gallery can be written.
"""

from __future__ import annotations

import html
import logging
import math
import os
import re
import tempfile
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import attrs
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
from cvat_sdk import models

from .frames import Frame
from .labels import LabelCatalog, LabelInfo, stable_color

__all__ = ["PreviewWriter", "check_preview_directory", "draw_annotations"]

logger = logging.getLogger(__name__)

_FILL_ALPHA = 70
_MASK_ALPHA = 120
_BANNER = (0, 0, 0, 170)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_Font = Any  # PIL's bitmap and FreeType fonts share no public base class


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _text_color(color: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def _font(size: int) -> _Font:
    try:
        return PIL.ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1 has only the small bitmap font
        return PIL.ImageFont.load_default()


def _type(shape: Any) -> str:
    return str(getattr(shape.type, "value", shape.type))


def _pairs(points: Sequence[float]) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in zip(points[::2], points[1::2])]


def _rotate(points: list[tuple[float, float]], degrees: float) -> list[tuple[float, float]]:
    """Rotate clockwise (on screen, y down) about the points' centre, as CVAT does."""
    if not degrees:
        return points
    cx = sum(x for x, _ in points) / len(points)
    cy = sum(y for _, y in points) / len(points)
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    return [
        (cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos)
        for x, y in points
    ]


def _box_corners(points: Sequence[float], rotation: float) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = (float(p) for p in points)
    return _rotate([(x1, y1), (x2, y1), (x2, y2), (x1, y2)], rotation)


def _ellipse_outline(points: Sequence[float], rotation: float) -> list[tuple[float, float]]:
    cx, cy, right, top = (float(p) for p in points)
    rx, ry = abs(right - cx), abs(cy - top)
    outline = [
        (cx + rx * math.cos(2 * math.pi * i / 48), cy + ry * math.sin(2 * math.pi * i / 48))
        for i in range(48)
    ]
    return _rotate(outline, rotation)


# CVAT's cuboid points: front face tl, bl, tr, br, then back face tl, bl, tr, br.
_CUBOID_EDGES = (
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 3),
    (4, 5),
    (4, 6),
    (5, 7),
    (6, 7),
    (0, 4),
    (1, 5),
    (2, 6),
    (3, 7),
)


@attrs.define
class _Canvas:
    """One frame being drawn: fills go on a translucent layer, lines and text on top."""

    base: PIL.Image.Image
    labels: LabelCatalog
    fills: PIL.Image.Image = attrs.field(init=False)
    captions: list[tuple[tuple[float, float], str, tuple[int, int, int]]] = attrs.Factory(list)
    lines: list[tuple[str, Any, tuple[int, int, int], bool]] = attrs.Factory(list)

    def __attrs_post_init__(self) -> None:
        self.fills = PIL.Image.new("RGBA", self.base.size, (0, 0, 0, 0))

    @property
    def line_width(self) -> int:
        return max(2, round(max(self.base.size) / 400))

    def label(self, label_id: int) -> LabelInfo:
        label = self.labels.get(label_id)
        return (
            label
            if label is not None
            else LabelInfo(label_id, str(label_id), color=stable_color(str(label_id)))
        )

    def caption(
        self, shape: Any, label: LabelInfo, anchor: tuple[float, float], track: str | None
    ) -> None:
        score = getattr(shape, "score", None)
        text = label.name if track is None else f"{label.name} {track}"
        if score is not None:
            text += f" {float(score):.2f}"
        self.captions.append((anchor, text, _rgb(label.color)))

    def fill(self, outline: list[tuple[float, float]], color: tuple[int, int, int]) -> None:
        if len(outline) >= 3:
            PIL.ImageDraw.Draw(self.fills).polygon(outline, fill=(*color, _FILL_ALPHA))

    def mask(self, points: Sequence[float], color: tuple[int, int, int]) -> None:
        # numpy (which cvat_sdk.masks imports) only for a preview with masks: see export.coco.
        import numpy as np
        from cvat_sdk.masks import decode_mask

        bitmap = decode_mask(points, image_width=self.base.width, image_height=self.base.height)
        alpha = PIL.Image.fromarray((bitmap * _MASK_ALPHA).astype(np.uint8), "L")
        self.fills.paste(PIL.Image.new("RGBA", self.base.size, (*color, 255)), (0, 0), alpha)

    def shape(self, shape: Any, track: str | None = None) -> None:
        """Draw ``shape``, captioned with its label and ``track``, if it is in one."""
        label = self.label(shape.label_id)
        color = _rgb(label.color)
        shape_type = _type(shape)
        points = [float(p) for p in getattr(shape, "points", None) or []]
        rotation = float(getattr(shape, "rotation", None) or 0)
        if shape_type == "rectangle":
            outline = _box_corners(points, rotation)
            self.lines.append(("closed", outline, color, False))
        elif shape_type == "ellipse":
            outline = _ellipse_outline(points, rotation)
            self.fill(outline, color)
            self.lines.append(("closed", outline, color, False))
        elif shape_type == "polygon":
            outline = _pairs(points)
            self.fill(outline, color)
            self.lines.append(("closed", outline, color, False))
        elif shape_type == "polyline":
            outline = _pairs(points)
            self.lines.append(("open", outline, color, False))
        elif shape_type == "points":
            outline = _pairs(points)
            self.lines.append(("points", outline, color, False))
        elif shape_type == "cuboid":
            outline = _pairs(points)
            for a, b in _CUBOID_EDGES:
                self.lines.append(("open", [outline[a], outline[b]], color, False))
        elif shape_type == "mask":
            self.mask(points, color)
            outline = [(points[-4], points[-3])]
        elif shape_type == "skeleton":
            outline = self.skeleton(shape, label, color)
        else:
            logger.debug("no drawing for shape type %r", shape_type)
            return
        if outline:
            anchor = (min(x for x, _ in outline), min(y for _, y in outline))
            self.caption(shape, label, anchor, track)

    def skeleton(
        self, shape: Any, label: LabelInfo, color: tuple[int, int, int]
    ) -> list[tuple[float, float]]:
        where: dict[int, tuple[float, float]] = {}
        for element in getattr(shape, "elements", None) or []:
            if getattr(element, "outside", False) or len(element.points) < 2:
                continue
            where[element.label_id] = (float(element.points[0]), float(element.points[1]))
        for a, b in label.edges():
            if a in where and b in where:
                self.lines.append(("open", [where[a], where[b]], color, False))
        for element in getattr(shape, "elements", None) or []:
            if element.label_id in where:
                sublabel = label.sublabel(element.label_id)
                point_color = _rgb(sublabel.color) if sublabel is not None else color
                hollow = bool(getattr(element, "occluded", False))
                self.lines.append(("points", [where[element.label_id]], point_color, hollow))
        return list(where.values())

    def render(self, tags: Sequence[Any]) -> PIL.Image.Image:
        image = PIL.Image.alpha_composite(self.base, self.fills)
        draw = PIL.ImageDraw.Draw(image)
        width = self.line_width
        for kind, outline, color, hollow in self.lines:
            if kind == "closed" and len(outline) >= 2:
                draw.line([*outline, outline[0]], fill=color, width=width, joint="curve")
            elif kind == "open" and len(outline) >= 2:
                draw.line(outline, fill=color, width=width, joint="curve")
            elif kind == "points":
                radius = width + 2
                for x, y in outline:
                    box = (x - radius, y - radius, x + radius, y + radius)
                    if hollow:
                        draw.ellipse(box, outline=color, width=max(1, width // 2 + 1))
                    else:
                        draw.ellipse(box, fill=color, outline=(0, 0, 0))
        font = _font(max(11, round(max(image.size) / 55)))
        for (x, y), text, color in self.captions:
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            height = bottom - top + 4
            y_text = y - height if y - height >= 0 else y
            x_text = min(max(0, x), max(0, image.width - (right - left) - 4))
            draw.rectangle((x_text, y_text, x_text + right - left + 4, y_text + height), fill=color)
            draw.text(
                (x_text + 2 - left, y_text + 2 - top), text, fill=_text_color(color), font=font
            )
        if tags:
            self.banner(image, tags, font)
        return image.convert("RGB")

    def banner(self, image: PIL.Image.Image, tags: Sequence[Any], font: _Font) -> None:
        texts = []
        for tag in tags:
            label = self.label(tag.label_id)
            values = []
            for value in getattr(tag, "attributes", None) or []:
                attribute = label.attribute(value.spec_id)
                values.append(f"{attribute.name if attribute else value.spec_id}={value.value}")
            texts.append(label.name + (f" ({', '.join(values)})" if values else ""))
        text = "tags: " + "; ".join(texts)
        draw = PIL.ImageDraw.Draw(image)
        left, top, _, bottom = draw.textbbox((0, 0), text, font=font)
        strip = PIL.Image.new("RGBA", (image.width, bottom - top + 8), _BANNER)
        image.alpha_composite(strip, (0, 0))
        PIL.ImageDraw.Draw(image).text((4 - left, 4 - top), text, fill=(255, 255, 255), font=font)


def draw_annotations(
    image: PIL.Image.Image,
    tags: Sequence[models.LabeledImageRequest],
    shapes: Sequence[models.LabeledShapeRequest],
    labels: LabelCatalog,
    *,
    shown: Sequence[tuple[str, models.LabeledShapeRequest]] = (),
) -> PIL.Image.Image:
    """A copy of ``image`` (RGB) with ``tags``, ``shapes`` and the shapes of tracks drawn on it.

    ``shown`` are (caption, shape) pairs: shapes of tracks on this frame, each captioned with
    its caption (``"#3"``) after its label's name. Label, sublabel and attribute ids refer to
    ``labels``. Shapes are drawn in the order given (lower ``z_order`` first), so later ones
    are on top.
    """
    canvas = _Canvas(image.convert("RGBA"), labels)
    captioned = [(None, shape) for shape in shapes] + list(shown)
    for track, shape in sorted(captioned, key=lambda p: getattr(p[1], "z_order", None) or 0):
        canvas.shape(shape, track)
    return canvas.render(tags)


@attrs.frozen
class _Entry:
    index: int
    name: str
    image: str
    thumbnail: str
    per_label: dict[str, int]


def _safe_name(index: int, name: str) -> str:
    """A file name for a frame: its number (which makes it unique) and what of its name is safe."""
    stem = _UNSAFE.sub("_", os.path.splitext(name)[0]).strip("_")[-80:]
    return f"{index:06d}_{stem}.png"


def check_preview_directory(directory: str | os.PathLike[str]) -> Path:
    """Check that a gallery can be written into ``directory``; return it as a ``Path``.

    The directory may not exist yet (it is created with its parents), but what would hold it
    must be a folder this process can write in. Raises ``ValueError`` saying what to change.
    Nothing is created.
    """
    path = Path(directory)
    for sub in (path, path / "frames", path / "thumbnails"):
        if sub.exists() and not sub.is_dir():
            raise ValueError(f"{os.fspath(sub)!r} is a file, not a folder; choose another folder")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"{os.fspath(path)!r} cannot be created: {os.fspath(existing)!r} is a file;"
            " choose another folder"
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as ex:
        raise ValueError(
            f"cannot write in {os.fspath(existing)!r} ({ex.strerror or ex}); choose another"
            " folder"
        ) from None
    return path


class PreviewWriter:
    """Draws frames into ``directory`` as they come, and writes the gallery at the end.

    Use it as a context manager, or call :meth:`close`: the gallery lists the frames added
    so far, so a run that fails still leaves a gallery of what it did. Files of the same
    names are overwritten; others in ``directory`` are left alone.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        labels: LabelCatalog,
        *,
        title: str = "cvat-aa preview",
        thumbnail_size: int = 320,
    ) -> None:
        self.directory = Path(directory)
        self.labels = labels
        self.title = title
        self.thumbnail_size = thumbnail_size
        self._entries: list[_Entry] = []
        (self.directory / "frames").mkdir(parents=True, exist_ok=True)
        (self.directory / "thumbnails").mkdir(exist_ok=True)

    @property
    def index_path(self) -> Path:
        return self.directory / "index.html"

    def add(
        self,
        frame: Frame,
        tags: Sequence[models.LabeledImageRequest],
        shapes: Sequence[models.LabeledShapeRequest],
        *,
        shown: Sequence[tuple[str, models.LabeledShapeRequest]] = (),
    ) -> Path:
        """Draw one frame's annotations and write its PNG and thumbnail; return the PNG's path.

        ``shown`` are shapes of tracks on the frame, with their captions (see
        :func:`draw_annotations`); the gallery counts them with the frame's shapes.
        """
        drawn = draw_annotations(frame.image, tags, shapes, self.labels, shown=shown)
        file_name = _safe_name(frame.index, frame.name)
        path = self.directory / "frames" / file_name
        drawn.save(path, compress_level=1)
        drawn.thumbnail((self.thumbnail_size, self.thumbnail_size))
        drawn.save(self.directory / "thumbnails" / file_name, compress_level=6)
        counts = Counter(
            self.labels.name(a.label_id) for a in (*tags, *shapes, *(s for _, s in shown))
        )
        self._entries.append(
            _Entry(
                frame.index,
                frame.name,
                f"frames/{file_name}",
                f"thumbnails/{file_name}",
                dict(counts),
            )
        )
        return path

    def close(self) -> Path:
        """Write ``index.html`` and return its path."""
        self.index_path.write_text(self._html(), encoding="utf-8")
        return self.index_path

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _html(self) -> str:
        e = html.escape
        total = sum(sum(entry.per_label.values()) for entry in self._entries)
        legend = "".join(
            f'<li><span class="swatch" style="background:{e(label.color)}"></span>'
            f"{e(label.name)}</li>"
            for label in self.labels
        )
        figures = []
        for entry in self._entries:
            count = sum(entry.per_label.values())
            details = ", ".join(f"{e(name)} {n}" for name, n in sorted(entry.per_label.items()))
            figures.append(
                f'<figure><a href="{urllib.parse.quote(entry.image)}">'
                f'<img src="{urllib.parse.quote(entry.thumbnail)}" loading="lazy"'
                f' alt="{e(entry.name)}"></a>'
                f"<figcaption><b>{entry.index}</b> {e(entry.name)}<br>"
                f"{count} annotation{'' if count == 1 else 's'}{': ' + details if details else ''}"
                "</figcaption></figure>"
            )
        return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{e(self.title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; background: #fafafa; }}
.gallery {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0; width: {self.thumbnail_size}px; background: #fff; padding: 6px;
  box-shadow: 0 1px 3px #0003; }}
figure img {{ max-width: 100%; display: block; }}
figcaption {{ font-size: 0.85em; overflow-wrap: anywhere; margin-top: 4px; }}
.legend {{ list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 12px; }}
.swatch {{ display: inline-block; width: 1em; height: 1em; margin-right: 4px;
  vertical-align: middle; }}
</style>
</head>
<body>
<h1>{e(self.title)}</h1>
<p>{len(self._entries)} frames, {total} annotations.</p>
<ul class="legend">{legend}</ul>
<div class="gallery">
{chr(10).join(figures)}
</div>
</body>
</html>
"""
