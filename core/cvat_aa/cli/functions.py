"""``cvat-aa functions list`` and ``cvat-aa functions show``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cvat_sdk import models

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

    show_parser = sub.add_parser("show", help="show a function's spec: labels and attributes")
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
        }
        for e in entries
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No function plugins are installed. Install one with pip (see docs/user-guide.md).")
        return 0
    table = [("NAME", "DISTRIBUTION", "STATUS", "SUMMARY")] + [
        (
            r["name"],
            f"{r['distribution']} {r['version']}" if r["distribution"] else "-",
            r["status"],
            (f"{r['error']}" if r["error"] else r["summary"] or ""),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
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


def format_spec(name: str, labels: list[dict[str, Any]], params: list[dict[str, Any]]) -> str:
    lines = [name]
    if params:
        lines.append("parameters:")
        for p in params:
            kind = f": {p['type']}" if p["type"] else ""
            default = (
                " (required)" if p["required"] else (f" = {p['default']}" if p["default"] else "")
            )
            lines.append(f"  {p['name']}{kind}{default}")
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
    labels = [_label_dict(label) for label in hooks().spec(function).labels]
    if args.json:
        print(json.dumps({"name": name, "parameters": parameters, "labels": labels}, indent=2))
    else:
        print(format_spec(name, labels, parameters))
    return 0
