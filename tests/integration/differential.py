"""Compare two recordings of the integration suite, one per CVAT server.

    python tests/integration/differential.py RECORDING_A RECORDING_B [--known FILE] [--all]

Each recording is a folder of ``<scenario>.jsonl`` files written by :mod:`recorder`. In each
scenario both files hold the same requests, in the same order, so they are paired by
(method, path, query) in order of appearance. The tool prints every difference between paired
requests (status, request body, response body) and every request only one side made, grouped
by endpoint and field, with an example of both values and the scenarios that saw it.

Before comparing, what is not a difference of behaviour is set aside: the polls of a
background request are compared by their last answer only (how many polls it took is a matter
of speed), annotation lists (tags, shapes, tracks, their elements and attributes) are compared
as sets (CVAT does not define their order), and annotation ids are compared by kind only (the
order in which they were first seen follows the order of those lists).

Differences listed in the known-differences file (``known_differences.toml`` beside this file
by default: an endpoint pattern, a field pattern, optionally a scenario pattern, and the
reason, per entry) are counted but not
printed (``--all`` prints them, with their reasons). The exit status is 1 when an unexplained
difference remains, 0 when none does.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

KNOWN_DIFFERENCES = Path(__file__).with_name("known_differences.toml")
_ORDINAL = re.compile(r"<([a-z_.]+)#\d+>")
ABSENT = "<absent>"


@attrs.frozen
class Difference:
    endpoint: str  # "GET /api/tasks/<task>"
    field: str  # "status", "response.results[].color", "request.shapes[].group", "requests"
    a: Any
    b: Any
    scenario: str


@attrs.frozen
class Known:
    endpoint: str
    field: str
    reason: str
    scenario: str = "*"

    def explains(self, difference: Difference) -> bool:
        return (
            fnmatch.fnmatchcase(difference.endpoint, self.endpoint)
            and fnmatch.fnmatchcase(difference.field, self.field)
            and fnmatch.fnmatchcase(difference.scenario, self.scenario)
        )


def load_known(path: Path) -> list[Known]:
    if not path.exists():
        return []
    with path.open("rb") as file:
        entries = tomllib.load(file).get("difference", [])
    return [Known(e["endpoint"], e["field"], e["reason"], e.get("scenario", "*")) for e in entries]


def endpoint_of(record: dict[str, Any]) -> str:
    """The request's method and path, its ids as kinds: ``PATCH /api/tasks/<task>/annotations/``."""
    path = _ORDINAL.sub(r"<\1>", record["path"])
    return f"{record['method']} {path}"


_ANNOTATION_LISTS = {"tags", "shapes", "tracks", "elements", "attributes"}
_ANNOTATION_ID = re.compile(r"^<(shape|tag|track|track\.shapes)#\d+>$")


def canonical(value: Any, key: str | None = None) -> Any:
    """``value`` with annotation lists sorted by content and annotation ids by kind only."""
    if isinstance(value, dict):
        return {k: canonical(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [canonical(v) for v in value]
        if key in _ANNOTATION_LISTS:
            items.sort(key=_identity)
        return items
    if isinstance(value, str) and _ANNOTATION_ID.match(value):
        return _ORDINAL.sub(r"<\1>", value)
    return value


def _identity(item: Any) -> str:
    """What sorts an annotation (or attribute) among its kind: where and what it is, leaving
    out what a server may add to it (default attributes, scores), so that the same
    annotations line up and a difference in them shows once, where it is."""
    if isinstance(item, dict):
        item = {k: item.get(k) for k in _IDENTITY_FIELDS if k in item}
    return json.dumps(item, sort_keys=True)


_IDENTITY_FIELDS = ("frame", "label_id", "type", "points", "source", "rotation", "spec_id")


#: Where clients poll background requests: the data and export ones, and the lambda ones.
_POLLED = ("/api/requests/", "/api/lambda/requests/")


def _is_poll(record: dict[str, Any]) -> bool:
    return record["method"] == "GET" and record["path"].startswith(_POLLED)


def _last_polls_only(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last: dict[tuple, int] = {}
    for index, record in enumerate(records):
        if _is_poll(record):
            last[(record["path"], json.dumps(record["query"], sort_keys=True))] = index
    return [
        record
        for index, record in enumerate(records)
        if not _is_poll(record) or index in last.values()
    ]


def read_recording(folder: Path) -> dict[str, list[dict[str, Any]]]:
    recording = {}
    for path in sorted(folder.glob("*.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for record in records:
            for part in ("request", "response"):
                record[part] = canonical(record.get(part))
        recording[path.stem] = _last_polls_only(records)
    return recording


def compare_values(a: Any, b: Any, field: str) -> Iterator[tuple[str, Any, Any]]:
    """(field path, value in a, value in b) for each place where a and b differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from compare_values(a.get(key, ABSENT), b.get(key, ABSENT), f"{field}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{field}[].length", len(a), len(b)
        for item_a, item_b in zip(a, b):
            yield from compare_values(item_a, item_b, f"{field}[]")
    elif a != b or type(a) is not type(b):
        yield field, a, b


def compare_scenario(
    name: str, a: list[dict[str, Any]], b: list[dict[str, Any]]
) -> Iterator[Difference]:
    def keyed(records: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
        groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            key = (record["method"], record["path"], json.dumps(record["query"], sort_keys=True))
            groups[key].append(record)
        return groups

    groups_a, groups_b = keyed(a), keyed(b)
    for key in sorted(set(groups_a) | set(groups_b)):
        side_a, side_b = groups_a.get(key, []), groups_b.get(key, [])
        endpoint = endpoint_of((side_a or side_b)[0])
        if len(side_a) != len(side_b):
            query = json.loads(key[2])
            yield Difference(
                endpoint, "requests", f"{len(side_a)}x {query}", f"{len(side_b)}x {query}", name
            )
        for record_a, record_b in zip(side_a, side_b):
            for part in ("status", "request", "response"):
                for field, value_a, value_b in compare_values(
                    record_a.get(part), record_b.get(part), part
                ):
                    yield Difference(endpoint, field, value_a, value_b, name)


def compare(folder_a: Path, folder_b: Path) -> list[Difference]:
    recording_a, recording_b = read_recording(folder_a), read_recording(folder_b)
    differences = []
    for scenario in sorted(set(recording_a) | set(recording_b)):
        if scenario not in recording_a or scenario not in recording_b:
            differences.append(
                Difference(
                    "-",
                    "scenario",
                    "recorded" if scenario in recording_a else ABSENT,
                    "recorded" if scenario in recording_b else ABSENT,
                    scenario,
                )
            )
            continue
        differences.extend(compare_scenario(scenario, recording_a[scenario], recording_b[scenario]))
    return differences


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def report(
    differences: list[Difference], known: list[Known], *, show_known: bool, names: tuple[str, str]
) -> tuple[str, int]:
    """The printed report, and how many groups of differences are unexplained."""
    groups: dict[tuple[str, str], list[Difference]] = defaultdict(list)
    for difference in differences:
        groups[(difference.endpoint, difference.field)].append(difference)
    lines: list[str] = []
    unexplained = explained = 0
    by_endpoint: dict[str, list[str]] = defaultdict(list)
    for (endpoint, field), items in sorted(groups.items()):
        reason = next((k.reason for k in known if k.explains(items[0])), None)
        if reason is None:
            unexplained += 1
        else:
            explained += 1
            if not show_known:
                continue
        scenarios = sorted({d.scenario for d in items})
        values = sorted({(_short(d.a), _short(d.b)) for d in items})
        text = [f"  {field}  ({len(items)}x in {len(scenarios)} scenarios)"]
        for value_a, value_b in values[:3]:
            text.append(f"      {names[0]}: {value_a}")
            text.append(f"      {names[1]}: {value_b}")
        if len(values) > 3:
            text.append(f"      ... and {len(values) - 3} other pairs of values")
        text.append(f"      e.g. in {scenarios[0]}")
        if reason is not None:
            text.append(f"      known: {reason}")
        by_endpoint[endpoint].extend(text)
    for endpoint, text in sorted(by_endpoint.items()):
        lines.append(endpoint)
        lines.extend(text)
    lines.append(
        f"{unexplained} unexplained and {explained} known differences"
        f" ({len(differences)} occurrences in all)"
    )
    return "\n".join(lines), unexplained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recording_a", type=Path)
    parser.add_argument("recording_b", type=Path)
    parser.add_argument("--known", type=Path, default=KNOWN_DIFFERENCES)
    parser.add_argument("--all", action="store_true", help="also print the known differences")
    args = parser.parse_args(argv)
    for folder in (args.recording_a, args.recording_b):
        if not folder.is_dir() or not any(folder.glob("*.jsonl")):
            parser.error(f"{folder} holds no recording (*.jsonl)")
    differences = compare(args.recording_a, args.recording_b)
    text, unexplained = report(
        differences,
        load_known(args.known),
        show_known=args.all,
        names=(args.recording_a.name, args.recording_b.name),
    )
    print(text)
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
