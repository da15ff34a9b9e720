"""The labels that name annotations: names, types, attributes, skeleton edges and colours.

Exporters and the preview work with annotations whose ``label_id``, sublabel ids and attribute
``spec_id`` refer to one set of labels: a function's spec (a local run) or a task's labels
(a task run). :class:`LabelCatalog` holds either in one shape, built with
:meth:`LabelCatalog.from_spec` or :meth:`LabelCatalog.from_task_labels`.

Skeleton edges come from the label's ``svg``, as CVAT stores it: each ``<circle>`` is a node
with ``data-node-id`` and either ``data-label-id`` (CVAT writes this) or ``data-label-name``
(what a function's spec can give, since it does not know the task's ids), and each ``<line>``
joins ``data-node-from`` to ``data-node-to``. When the svg has lines but no circles, node
``n`` is the ``n``-th sublabel (counting from 1).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "AttributeInfo",
    "LabelCatalog",
    "LabelInfo",
    "rename_skeleton_nodes",
    "skeleton_edges",
    "stable_color",
]

# CVAT's default label colours, so that a preview looks like the task in CVAT.
_PALETTE = (
    "#33ddff", "#fa3253", "#34d1b7", "#ff007c", "#ff6037", "#ddff33", "#24b353", "#b83df5",
    "#66ff66", "#32b7fa", "#ffcc33", "#83e070", "#fafa37", "#5986b3", "#8c78f0", "#ff6a4d",
    "#f078f0", "#2a7dd1", "#b25050", "#cc3366", "#cc9933", "#aaf0d1", "#ff00cc", "#3df53d",
)  # fmt: skip

_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_SVG_ELEMENT = re.compile(r"<(circle|line)\b([^>]*)>", re.IGNORECASE)
_SVG_ATTRIBUTE = re.compile(r"([\w:-]+)\s*=\s*\"([^\"]*)\"")


def _text(value: Any) -> str:
    """A model field as a string: cvat-sdk's enums (input types) carry it in ``value``."""
    return str(getattr(value, "value", value))


def stable_color(name: str) -> str:
    """A colour for a label name that is the same in every run and on every machine."""
    digest = hashlib.sha256(name.encode()).digest()
    return _PALETTE[int.from_bytes(digest[:4], "big") % len(_PALETTE)]


@attrs.frozen
class AttributeInfo:
    """One attribute of a label."""

    id: int
    name: str
    input_type: str
    """``select``, ``radio``, ``checkbox``, ``number`` or ``text``."""
    values: tuple[str, ...] = ()
    default_value: str = ""
    mutable: bool = False

    @classmethod
    def from_model(cls, attribute: Any) -> AttributeInfo:
        values = tuple(str(v) for v in getattr(attribute, "values", None) or ())
        default = getattr(attribute, "default_value", None)
        if default is None:
            default = values[0] if values else ""
        return cls(
            id=int(attribute.id),
            name=str(attribute.name),
            input_type=_text(attribute.input_type),
            values=values,
            default_value=str(default),
            mutable=bool(getattr(attribute, "mutable", False)),
        )


@attrs.frozen
class LabelInfo:
    """A label (or a skeleton's sublabel) and what annotations with it can carry."""

    id: int
    name: str
    type: str = "any"
    color: str = ""
    """``#rrggbb``: the label's own colour, or a stable one chosen from its name."""
    attributes: tuple[AttributeInfo, ...] = ()
    sublabels: tuple[LabelInfo, ...] = ()
    svg: str = ""

    @classmethod
    def from_model(cls, label: Any, *, type_override: str | None = None) -> LabelInfo:
        name = str(label.name)
        color = getattr(label, "color", None) or ""
        return cls(
            id=int(label.id),
            name=name,
            type=type_override or _text(getattr(label, "type", None) or "any"),
            color=color if _HEX_COLOR.match(color) else stable_color(name),
            attributes=tuple(
                AttributeInfo.from_model(a) for a in getattr(label, "attributes", None) or ()
            ),
            sublabels=tuple(
                cls.from_model(s, type_override="points")
                for s in getattr(label, "sublabels", None) or ()
            ),
            svg=getattr(label, "svg", None) or "",
        )

    def attribute(self, attribute_id: int) -> AttributeInfo | None:
        return next((a for a in self.attributes if a.id == attribute_id), None)

    def attribute_named(self, name: str) -> AttributeInfo | None:
        return next((a for a in self.attributes if a.name == name), None)

    def sublabel(self, sublabel_id: int) -> LabelInfo | None:
        return next((s for s in self.sublabels if s.id == sublabel_id), None)

    def sublabel_named(self, name: str) -> LabelInfo | None:
        return next((s for s in self.sublabels if s.name == name), None)

    def edges(self) -> list[tuple[int, int]]:
        """The skeleton's edges as pairs of sublabel ids (empty without an svg)."""
        return skeleton_edges(self.svg, self.sublabels)


def skeleton_edges(svg: str, sublabels: Sequence[LabelInfo]) -> list[tuple[int, int]]:
    """Parse the edges of a CVAT skeleton svg into pairs of sublabel ids.

    Edges that refer to unknown nodes or sublabels are left out.
    """
    by_id = {s.id: s for s in sublabels}
    by_name = {s.name: s for s in sublabels}
    nodes: dict[str, int] = {}
    lines: list[tuple[str, str]] = []
    for tag, raw in _SVG_ELEMENT.findall(svg or ""):
        attributes = dict(_SVG_ATTRIBUTE.findall(raw))
        if tag.lower() == "circle" and "data-node-id" in attributes:
            sublabel = None
            if attributes.get("data-label-id", "").lstrip("-").isdigit():
                sublabel = by_id.get(int(attributes["data-label-id"]))
            if sublabel is None:
                sublabel = by_name.get(attributes.get("data-label-name", ""))
            if sublabel is not None:
                nodes[attributes["data-node-id"]] = sublabel.id
        elif tag.lower() == "line" and {"data-node-from", "data-node-to"} <= attributes.keys():
            lines.append((attributes["data-node-from"], attributes["data-node-to"]))
    if not nodes:
        nodes = {str(position): s.id for position, s in enumerate(sublabels, start=1)}
    edges = []
    for start, end in lines:
        if start in nodes and end in nodes and nodes[start] != nodes[end]:
            edges.append((nodes[start], nodes[end]))
    return edges


def rename_skeleton_nodes(
    svg: str, sublabels: Sequence[tuple[int, str]], names: Mapping[str, str | None]
) -> str:
    """A skeleton svg for the same sublabels under new ``names`` (None: the sublabel is gone).

    ``sublabels`` are the (id, name) pairs the svg was written for. Circles that name their
    sublabel get the new name. An svg without circles refers to sublabels by position, which
    leaving one out would shift, so circles naming the remaining sublabels are added to it.
    """
    circles = [m for m in _SVG_ELEMENT.finditer(svg or "") if m.group(1).lower() == "circle"]
    if not circles:
        added = "".join(
            f'<circle data-node-id="{position}" data-label-id="{sublabel_id}"'
            f' data-label-name="{new}"></circle>'
            for position, (sublabel_id, name) in enumerate(sublabels, start=1)
            if (new := names.get(name, name)) is not None
        )
        return (svg or "") + added

    def renamed(match: re.Match[str]) -> str:
        new = names.get(match.group(1), match.group(1))
        return f'data-label-name="{new if new is not None else ""}"'

    return re.sub(r'data-label-name="([^"]*)"', renamed, svg)


@attrs.frozen
class LabelCatalog:
    """The labels of a spec or of a task, looked up by id or by name."""

    labels: tuple[LabelInfo, ...]

    @classmethod
    def from_spec(cls, labels: Sequence[Any], *, conv_mask_to_poly: bool = False) -> LabelCatalog:
        """The labels of a function's spec (``spec.labels``).

        With ``conv_mask_to_poly`` a ``mask`` label becomes a ``polygon`` label, since that is
        what the function outputs then.
        """
        infos = []
        for label in labels:
            label_type = _text(getattr(label, "type", None) or "any")
            override = "polygon" if conv_mask_to_poly and label_type == "mask" else None
            infos.append(LabelInfo.from_model(label, type_override=override))
        return cls(tuple(infos))

    @classmethod
    def from_task_labels(cls, labels: Sequence[Any]) -> LabelCatalog:
        """A task's labels as ``task.get_labels()`` returns them.

        Sublabels listed on their own (with a parent) are left out: they are read from their
        skeleton.
        """
        return cls(
            tuple(
                LabelInfo.from_model(label)
                for label in labels
                if getattr(label, "parent_id", None) is None
                and not getattr(label, "has_parent", False)
            )
        )

    def __iter__(self) -> Iterator[LabelInfo]:
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, label_id: int) -> LabelInfo | None:
        return next((label for label in self.labels if label.id == label_id), None)

    def named(self, name: str) -> LabelInfo:
        """The label called ``name``; ``KeyError`` with the known names if there is none."""
        for label in self.labels:
            if label.name == name:
                return label
        known = ", ".join(repr(label.name) for label in self.labels) or "none"
        raise KeyError(f"there is no label named {name!r} (labels: {known})")

    def name(self, label_id: int) -> str:
        """The label's name, or its id as text for an unknown id."""
        label = self.get(label_id)
        return label.name if label is not None else str(label_id)
