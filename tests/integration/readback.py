"""Annotations in a form two servers agree on: label and attribute names instead of ids,
sorted, without ids or dates, numbers rounded.

:func:`server_annotations` reads a task's annotations back from the server;
:func:`expected_annotations` says what cvat_aa_it_functions uploads for given frames. Tests
compare the two exactly. :func:`complete_annotations` keeps every field the server answers with
(score, group, z_order, occluded...), for comparisons that must miss nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import cvat_aa_it_functions as functions
from cvat_sdk import Client
from workspace import LABELS

#: A task without annotations, as server_annotations gives it.
NOTHING: dict[str, list] = {"tags": [], "shapes": [], "tracks": []}

#: The default value of each attribute, per label name.
DEFAULT_ATTRIBUTES = {
    label["name"]: {a["name"]: a["default_value"] for a in label.get("attributes", [])}
    for label in LABELS
}


def _number(value: Any) -> Any:
    return round(float(value), 2) if isinstance(value, (int, float)) else value


def _attributes(values: Iterable[Any], names: dict[Any, str], label: str) -> dict[str, str]:
    # Real CVAT answers with every attribute of the label, the ones an annotation was given
    # and the defaults of the others; so the defaults are filled in here, on both sides, and
    # a server that leaves them out is caught by the differential check instead.
    given = {names[a["spec_id"]]: a["value"] for a in values}
    return {**DEFAULT_ATTRIBUTES.get(label, {}), **given}


def _shape(shape: dict[str, Any], labels: dict[int, str], specs: dict[int, str]) -> dict:
    normal = {
        "frame": shape["frame"],
        "label": labels[shape["label_id"]],
        "type": shape["type"],
        "points": [_number(p) for p in shape.get("points") or []],
        "rotation": _number(shape.get("rotation") or 0),
        "attributes": _attributes(shape.get("attributes") or [], specs, labels[shape["label_id"]]),
        "source": shape.get("source"),
    }
    if shape.get("outside"):
        normal["outside"] = True
    if shape.get("elements"):
        normal["elements"] = sorted(
            (_shape(e, labels, specs) for e in shape["elements"]), key=lambda e: e["label"]
        )
        for element in normal["elements"]:
            element.pop("frame")
            element.pop("source")
    return normal


def _sorted(items: Iterable[dict]) -> list[dict]:
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def normalize(
    data: dict[str, Any], labels: dict[int, str], specs: dict[int, str]
) -> dict[str, list]:
    """Annotations (LabeledData as a dict) with names for ids, sorted, ids and dates left out."""
    return {
        "tags": _sorted(
            {
                "frame": t["frame"],
                "label": labels[t["label_id"]],
                "attributes": _attributes(t.get("attributes") or [], specs, labels[t["label_id"]]),
                "source": t.get("source"),
            }
            for t in data.get("tags", [])
        ),
        "shapes": _sorted(_shape(s, labels, specs) for s in data.get("shapes", [])),
        "tracks": _sorted(
            {
                "frame": t["frame"],
                "label": labels[t["label_id"]],
                "source": t.get("source"),
                "shapes": [
                    {
                        "frame": s["frame"],
                        "points": [_number(p) for p in s["points"]],
                        "outside": bool(s.get("outside")),
                    }
                    for s in sorted(t["shapes"], key=lambda s: s["frame"])
                ],
            }
            for t in data.get("tracks", [])
        ),
    }


def _complete(item: dict[str, Any], labels: dict[int, str], specs: dict[int, str]) -> dict:
    normal = {key: value for key, value in item.items() if key != "id"}
    label = labels[item["label_id"]]
    normal["label_id"] = label
    normal["attributes"] = _attributes(item.get("attributes") or [], specs, label)
    for key in ("points", "rotation", "score"):
        if key in normal:
            normal[key] = (
                [_number(p) for p in normal[key]] if key == "points" else _number(normal[key])
            )
    # A shape's answer holds "elements": [] unless it is a skeleton; a lambda call's does not.
    elements = normal.pop("elements", None)
    if elements:
        normal["elements"] = sorted(
            (_complete(e, labels, specs) for e in elements), key=lambda e: e["label_id"]
        )
    if "shapes" in normal:  # a track's
        normal["shapes"] = [
            {key: value for key, value in shape.items() if key != "id"}
            for shape in normal["shapes"]
        ]
    return normal


def complete(
    data: dict[str, Any], labels: dict[int, str], specs: dict[int, str]
) -> dict[str, list]:
    """Annotations (LabeledData as a dict) with every field but ids: names for label and
    attribute ids, attribute defaults filled in, sorted."""
    return {
        kind: _sorted(_complete(item, labels, specs) for item in data.get(kind, []))
        for kind in ("tags", "shapes", "tracks")
    }


def complete_annotations(client: Client, task_id: int) -> dict[str, list]:
    """A task's annotations as :func:`complete` gives them."""
    labels, specs = task_names(client, task_id)
    data = client.tasks.retrieve(task_id).get_annotations().to_dict()
    return complete(data, labels, specs)


def task_names(client: Client, task_id: int) -> tuple[dict[int, str], dict[int, str]]:
    """The task's label names and attribute names by id (sublabels and theirs included)."""
    labels: dict[int, str] = {}
    specs: dict[int, str] = {}

    def add(label: Any) -> None:
        labels[label.id] = label.name
        for attribute in label.attributes or []:
            specs[attribute.id] = attribute.name
        for sublabel in getattr(label, "sublabels", None) or []:
            add(sublabel)

    for label in client.tasks.retrieve(task_id).get_labels():
        add(label)
    return labels, specs


def server_annotations(client: Client, task_id: int) -> dict[str, list]:
    labels, specs = task_names(client, task_id)
    data = client.tasks.retrieve(task_id).get_annotations().to_dict()
    return normalize(data, labels, specs)


def expected_annotations(
    frames: Iterable[int], *, only: str = "", conf_threshold: float | None = None
) -> dict[str, list]:
    """What cvat_aa_it_functions' function uploads on these frames, normalised."""
    function = functions.create(only=only)
    labels: dict[int, str] = {}
    # Attribute ids are the function's own per label: keyed by (label id, attribute id).
    specs: dict[tuple[int, int], str] = {}
    for label in functions.SPEC.labels:
        labels[label.id] = label.name
        for attribute in getattr(label, "attributes", None) or []:
            specs[(label.id, attribute.id)] = attribute.name
    # Sublabel ids are the function's own per skeleton; the suite's skeleton is the only one.
    sublabels = {s.id: s.name for s in functions.SPEC.labels[functions.PERSON].sublabels}

    class Context:
        frame_name = ""
        conf_threshold = None
        conv_mask_to_poly = False

    data: dict[str, list] = {"tags": [], "shapes": [], "tracks": []}
    context = Context()
    context.conf_threshold = conf_threshold
    for frame in frames:
        context.frame_name = f"frame_{frame:06d}.png"
        for annotation in function.detect(context, None):
            item = annotation.to_dict()
            item["frame"] = frame
            item["source"] = "auto"
            for attribute in item.get("attributes", []):
                attribute["spec_id"] = (item["label_id"], attribute["spec_id"])
            if "type" in item:
                item.setdefault("rotation", 0)
                for element in item.get("elements", []):
                    element["label_id"] = ("sub", element["label_id"])
                data["shapes"].append(item)
            else:
                data["tags"].append(item)
    names = {**labels, **{("sub", k): v for k, v in sublabels.items()}}
    return normalize(data, names, specs)


def only_frames(annotations: dict[str, list], frames: Iterable[int]) -> dict[str, list]:
    keep = set(frames)
    return {kind: [a for a in items if a["frame"] in keep] for kind, items in annotations.items()}


def by_source(annotations: dict[str, list], source: str) -> dict[str, list]:
    return {
        kind: [a for a in items if a.get("source") == source] for kind, items in annotations.items()
    }


def describe_difference(actual: dict[str, list], expected: dict[str, list]) -> str:
    """The annotations only one side has, one per line: an assertion message."""
    lines = []
    for kind in sorted(set(actual) | set(expected)):
        have = [json.dumps(a, sort_keys=True) for a in actual.get(kind, [])]
        want = [json.dumps(a, sort_keys=True) for a in expected.get(kind, [])]
        lines += [f"unexpected {kind}: {a}" for a in have if a not in want]
        lines += [f"missing {kind}: {a}" for a in want if a not in have]
        if not lines and have != want:
            lines.append(f"{kind}: the same items, counted differently")
    return "\n".join(lines)


def assert_annotations(actual: dict[str, list], expected: dict[str, list]) -> None:
    assert actual == expected, describe_difference(actual, expected)


def shown_boxes(
    tracks: Iterable[dict[str, Any]], label_id: int, frame: int, *, last_frame: int | None = None
) -> list[list[float]]:
    """The boxes that tracks (answers' dicts) of ``label_id`` show on ``frame``, as CVAT
    interpolates them: from a visible keyframe, linearly towards the next keyframe (an
    ``outside`` one included), hidden from an ``outside`` keyframe on, and the last keyframe's
    box to the end (``last_frame``, when given). A track CVAT cut at a job boundary is
    several tracks here, as the server gives them."""
    boxes = []
    for track in tracks:
        if track["label_id"] != label_id:
            continue
        shapes = sorted(track["shapes"], key=lambda s: s["frame"])
        before = [s for s in shapes if s["frame"] <= frame]
        after = [s for s in shapes if s["frame"] > frame]
        if not before or before[-1]["outside"]:
            continue
        if last_frame is not None and frame > last_frame:
            continue
        start = before[-1]
        if start["frame"] == frame or not after:
            boxes.append([float(p) for p in start["points"]])
            continue
        end = after[0]
        offset = (frame - start["frame"]) / (end["frame"] - start["frame"])
        boxes.append(
            [a + (b - a) * offset for a, b in zip(start["points"], end["points"], strict=True)]
        )
    return boxes
