"""The suite's own tools, without a server: the recorder's normalisation and the diff."""

from __future__ import annotations

import json
from pathlib import Path

import differential
from recorder import Normalizer


def test_ids_become_ordinals_per_kind_in_the_order_first_seen():
    normal = Normalizer(["http://127.0.0.1:9"], {"cvat-aa-it-abc-": "<prefix>-"}, ["s3cret"])

    body = normal.body(
        {
            "id": 57,
            "name": "cvat-aa-it-abc-job",
            "url": "http://127.0.0.1:9/api/tasks/57",
            "labels": [{"id": 900, "name": "car"}, {"id": 901, "name": "roof"}],
            "shapes": [{"id": 3, "label_id": 901, "created_date": "2026-01-02T03:04:05.1Z"}],
            "key": "anything",
            "note": "s3cret",
        },
        resource="task",
    )

    assert body == {
        "id": "<task#1>",
        "name": "<prefix>-job",
        "url": "<server>/api/tasks/<task#1>",
        "labels": [{"id": "<label#1>", "name": "car"}, {"id": "<label#2>", "name": "roof"}],
        "shapes": [{"id": "<shape#1>", "label_id": "<label#2>", "created_date": "<date>"}],
        "key": "<secret>",
        "note": "<secret>",
    }
    assert normal.body({"assignee": 37}, resource="job") == {"assignee": "<user#1>"}
    assert normal.body({"assignee": {"id": 37}}, resource="job") == {"assignee": {"id": "<user#1>"}}
    assert normal.path("/api/jobs/8/annotations/") == "/api/jobs/<job#1>/annotations/"
    assert normal.query("task_id=57&org=&page=1") == {"org": "", "page": "1", "task_id": "<task#1>"}


def write(folder: Path, scenario: str, records: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{scenario}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def record(response, *, path="/api/tasks/<task#1>", status=200, method="GET") -> dict:
    return {"method": method, "path": path, "query": {}, "status": status, "response": response}


def test_the_differential_check_reports_differences_and_skips_known_ones(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "s", [record({"group": 0, "shapes": [{"frame": 1}, {"frame": 0}]})])
    write(b, "s", [record({"group": None, "shapes": [{"frame": 0}, {"frame": 1}]})])
    known = tmp_path / "known.toml"
    known.write_text("")

    assert differential.main([str(a), str(b), "--known", str(known)]) == 1
    out = capsys.readouterr().out
    assert "GET /api/tasks/<task>\n  response.group  (1x in 1 scenarios)" in out
    assert "shapes" not in out, "annotation lists are compared as sets"

    known.write_text(
        '[[difference]]\nendpoint = "GET /api/tasks/*"\nfield = "response.group"\n'
        'reason = "explained"\n'
    )
    assert differential.main([str(a), str(b), "--known", str(known)]) == 0
    assert "0 unexplained and 1 known differences" in capsys.readouterr().out


def test_a_request_only_one_server_answered_is_a_difference(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write(a, "s", [record({}), record({}, path="/api/jobs", method="GET")])
    write(b, "s", [record({})])

    differences = differential.compare(a, b)

    assert [(d.endpoint, d.field) for d in differences] == [("GET /api/jobs", "requests")]


def test_a_lambda_requests_ids_and_traceback_are_normalised():
    normal = Normalizer(["http://127.0.0.1:9"], {"http://127.0.0.1:8070": "<nuclio>"}, [])

    body = normal.body(
        {
            "id": "action=autoannotate&target=task&target_id=57",
            "function": {"id": "f", "task": 57, "job": 8},
            "exc_info": 'Traceback (most recent call last):\n  File "views.py", line 1\n'
            "HTTPError: 500 Server Error: cvat-aa: boom for url: http://127.0.0.1:8070/x\n",
        },
        resource=None,
    )

    assert body == {
        "id": "action=autoannotate&target=task&target_id=<task#1>",
        "function": {"id": "f", "task": "<task#1>", "job": "<job#1>"},
        "exc_info": "HTTPError: 500 Server Error: cvat-aa: boom for url: <nuclio>/x",
    }


def test_lambda_request_polls_are_compared_by_their_last_answer(tmp_path):
    polls = "/api/lambda/requests/<rq>"
    a, b = tmp_path / "a", tmp_path / "b"
    write(
        a,
        "s",
        [record({"status": "started"}, path=polls), record({"status": "finished"}, path=polls)],
    )
    write(b, "s", [record({"status": "finished"}, path=polls)])

    assert differential.compare(a, b) == []
