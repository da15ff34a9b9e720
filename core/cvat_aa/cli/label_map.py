"""``--label-map`` and ``--label-map-file``: put a function's labels on task labels of other names.

``--label-map person=pedestrian`` (repeatable) covers labels; a JSON file takes the full form
of :class:`~cvat_aa.pipeline.label_mapping.LabelMap`, with skeleton points and attributes. Pairs
given on the command line win over the file's entries for the same labels. The map is checked
for its form here, before any model is loaded; whether its names fit the function and the task
is checked when the run starts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..pipeline.label_mapping import LabelMap
from .errors import UsageError

__all__ = ["add_options", "from_args"]


def _pair(text: str) -> tuple[str, str]:
    source, equals, target = text.partition("=")
    if not equals or not source or not target:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not FUNCTION_LABEL=TASK_LABEL (e.g. person=pedestrian)"
        )
    return source, target


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--label-map",
        action="append",
        type=_pair,
        default=[],
        metavar="FUNCTION_LABEL=TASK_LABEL",
        help="put the function's FUNCTION_LABEL annotations on the task's TASK_LABEL"
        " (repeatable); labels not named match by name",
    )
    parser.add_argument(
        "--label-map-file",
        type=Path,
        metavar="FILE",
        help='a JSON label map, e.g. {"person": {"name": "pedestrian", "sublabels": {"nose":'
        ' "head"}, "attributes": {"pose": "posture"}}, "car": null} (null leaves a label out)',
    )


def from_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The label map the options give, as a mapping (None without one)."""
    mapping: dict[str, Any] = {}
    path = args.label_map_file
    if path is not None:
        try:
            mapping = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as ex:
            raise UsageError(
                f"--label-map-file: cannot read {path} ({ex.strerror or ex}); give the path of a"
                " JSON file"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as ex:
            raise UsageError(
                f"--label-map-file: {path} is not valid JSON ({ex}); write the map as a JSON"
                ' object such as {"person": "pedestrian"}'
            ) from None
        if not isinstance(mapping, dict):
            raise UsageError(
                f"--label-map-file: {path} holds a JSON {type(mapping).__name__}; write the map"
                ' as a JSON object such as {"person": "pedestrian"}'
            )
    for source, target in args.label_map:
        entry = mapping.get(source)
        mapping[source] = {**entry, "name": target} if isinstance(entry, dict) else target
    if not mapping:
        return None
    try:
        LabelMap.parse(mapping)
    except ValueError as ex:
        raise UsageError(f"{ex}") from None
    return mapping
