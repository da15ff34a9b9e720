"""``cvat-aa functions list`` and ``cvat-aa functions show``.

Both show each function's kind (detection, interaction or tracking). ``list`` never builds a
function: a factory whose return annotation does not say what it makes is of unknown kind
there ("?", or null in JSON), and ``show``, which builds it, tells.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cvat_sdk import models

from ..interface import InteractionFunctionSpec, TrackingFunctionSpec, function_kind
from ..plugins import discover_functions, hooks
from .errors import UsageError
from .options import add_function_options, load_from_args

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("functions", help="list installed functions and show their specs")
    sub = parser.add_subparsers(dest="functions_command", metavar="COMMAND", required=True)

    list_parser = sub.add_parser("list", help="list the installed function plugins")
    list_parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    list_parser.set_defaults(run=run_list)

    show_parser = sub.add_parser(
        "show",
        help="show a function's kind and spec: labels and attributes, the prompts it needs, or"
        " the shapes it tracks",
    )
    show_parser.add_argument(
        "name", nargs="?", metavar="NAME", help="the function's name (see 'functions list')"
    )
    add_function_options(show_parser, named_option=False)
    show_parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    show_parser.set_defaults(run=run_show)


def run_list(args: argparse.Namespace) -> int:
    entries = discover_functions()
    rows = [
        {
            "name": e.name,
            "distribution": e.distribution,
            "version": e.version,
            "summary": e.summary,
            "status": e.status,
            "error": e.error,
            "kind": e.kind,
        }
        for e in entries
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No function plugins are installed. Install one with pip (see docs/user-guide.md).")
        return 0
    table = [("NAME", "KIND", "DISTRIBUTION", "STATUS", "SUMMARY")] + [
        (
            r["name"],
            r["kind"] or "?",
            f"{r['distribution']} {r['version']}" if r["distribution"] else "-",
            r["status"],
            (f"{r['error']}" if r["error"] else r["summary"] or ""),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return 0


def _label_dict(label: models.PatchedLabelRequest) -> dict[str, Any]:
    data = label.to_dict()
    data.setdefault("type", "any")
    return data


def _format_attributes(attributes: list[dict[str, Any]], indent: str) -> list[str]:
    lines = []
    for attr in attributes:
        values = f" {attr['values']}" if attr.get("values") else ""
        lines.append(f"{indent}@{attr['name']} ({attr['input_type']}){values}  id={attr['id']}")
    return lines


def spec_fields(spec: Any) -> dict[str, Any]:
    """What ``show --json`` says of a spec: its kind and what it declares."""
    kind = function_kind(spec)
    if isinstance(spec, InteractionFunctionSpec):
        return {
            "kind": kind,
            "min_pos_points": spec.min_pos_points,
            "min_neg_points": spec.min_neg_points,
            "min_bounding_boxes": spec.min_bounding_boxes,
        }
    if isinstance(spec, TrackingFunctionSpec):
        return {"kind": kind, "supported_shape_types": sorted(spec.supported_shape_types)}
    return {"kind": kind, "labels": [_label_dict(label) for label in spec.labels]}


def _format_prompts(fields: dict[str, Any]) -> list[str]:
    negative = fields["min_neg_points"]
    boxes = {None: "not allowed", 0: "optional", 1: "required"}[fields["min_bounding_boxes"]]
    return [
        "prompts:",
        f"  positive points: at least {fields['min_pos_points']}",
        "  negative points: " + ("not allowed" if negative is None else f"at least {negative}"),
        f"  bounding box: {boxes}",
    ]


def format_spec(name: str, fields: dict[str, Any], params: list[dict[str, Any]]) -> str:
    lines = [name, f"kind: {fields['kind']}"]
    if params:
        lines.append("parameters:")
        for p in params:
            kind = f": {p['type']}" if p["type"] else ""
            default = (
                " (required)" if p["required"] else (f" = {p['default']}" if p["default"] else "")
            )
            lines.append(f"  {p['name']}{kind}{default}")
    if fields["kind"] == "interaction":
        lines.extend(_format_prompts(fields))
        return "\n".join(lines)
    if fields["kind"] == "tracking":
        lines.append(f"tracks: {', '.join(fields['supported_shape_types'])}")
        return "\n".join(lines)
    labels = fields["labels"]
    lines.append(f"labels ({len(labels)}):")
    for label in labels:
        lines.append(f"  {label['name']}  [{label['type']}]  id={label['id']}")
        lines.extend(_format_attributes(label.get("attributes", []), "      "))
        for sublabel in label.get("sublabels", []):
            lines.append(
                f"    - {sublabel['name']}  [{sublabel.get('type', 'any')}]  id={sublabel['id']}"
            )
            lines.extend(_format_attributes(sublabel.get("attributes", []), "        "))
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.function_module is None and args.function_file is None):
        raise UsageError("give a function NAME, or one of --function-module/--function-file")
    function, name, parameters = load_from_args(args, args.name)
    fields = spec_fields(hooks().spec(function))
    if args.json:
        print(json.dumps({"name": name, "parameters": parameters, **fields}, indent=2))
    else:
        print(format_spec(name, fields, parameters))
    return 0
