"""cvat-cli 2.80, run as a subprocess against the test server."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from cvat_aa_testing import TestServer


def test_task_ls_prints_the_task_ids(
    cvat_server: TestServer, cvat_cli, image_files: list[Path]
) -> None:
    task_ids = [cvat_server.create_task(name, images=image_files) for name in ("a", "b")]
    result = cvat_cli("task", "ls")
    assert sorted(int(line) for line in result.stdout.split()) == task_ids


def test_task_ls_json_prints_the_tasks(
    cvat_server: TestServer, cvat_cli, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("a", images=image_files)
    tasks = json.loads(cvat_cli("task", "ls", "--json").stdout)
    assert [(t["id"], t["name"], t["size"]) for t in tasks] == [(task_id, "a", 5)]


def test_task_create_uploads_files_and_prints_the_id(
    cvat_server: TestServer, cvat_cli, image_files: list[Path]
) -> None:
    labels = json.dumps([{"name": "cat", "type": "rectangle"}, {"name": "dog"}])
    result = cvat_cli(
        "task",
        "create",
        "pets",
        "local",
        *map(str, image_files),
        "--labels",
        labels,
        "--chunk_size",
        "2",
        "--segment_size",
        "3",
        "--completion_verification_period",
        "0.1",
    )
    task_id = int(result.stdout.split()[-1])
    task = cvat_server.task(task_id)
    assert (task["name"], task["size"], task["data_chunk_size"], task["segment_size"]) == (
        "pets",
        5,
        2,
        3,
    )
    assert [label["name"] for label in cvat_server.labels(task_id)] == ["cat", "dog"]
    assert len(cvat_server.jobs(task_id)) == 2


def test_task_auto_annotate_runs_a_function_file(
    cvat_server: TestServer, cvat_cli, image_files: list[Path], tmp_path: Path
) -> None:
    task_id = cvat_server.create_task(
        "t", images=image_files, labels=[{"name": "cat", "type": "rectangle"}]
    )
    function_file = tmp_path / "whole_image.py"
    function_file.write_text(
        textwrap.dedent(
            """
            import cvat_sdk.auto_annotation as cvataa

            spec = cvataa.DetectionFunctionSpec(labels=[cvataa.label_spec("cat", 0, type="rectangle")])

            def detect(context, image):
                return [cvataa.rectangle(0, [0, 0, image.width, image.height])]
            """
        )
    )
    cvat_cli("task", "auto-annotate", str(task_id), "--function-file", str(function_file))
    shapes = cvat_server.annotations(task_id)["shapes"]
    assert [(s["frame"], s["points"]) for s in shapes] == [
        (i, [0.0, 0.0, 64.0 + i, 48.0]) for i in range(5)
    ]


def test_task_delete_removes_tasks_and_ignores_missing_ones(
    cvat_server: TestServer, cvat_cli, image_files: list[Path]
) -> None:
    kept, removed = (
        cvat_server.create_task(name, images=image_files) for name in ("kept", "removed")
    )
    result = cvat_cli("task", "delete", str(removed), "4242")
    assert result.returncode == 0
    assert cvat_server.task_ids() == [kept]
