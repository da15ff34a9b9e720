"""Several tasks, or a whole project, as one run (with the local executor)."""

from __future__ import annotations

import json
import subprocess
import sys

import cvat_aa
import PIL.Image
import pytest
from cvat_aa_testing import TestServer

LABELS = [{"name": "car", "type": "rectangle"}]


class Boxes:
    """Boxes every frame; can raise on frames of a given size (so, of a given task)."""

    def __init__(self, fail_width: int | None = None):
        self.spec = cvat_aa.DetectionFunctionSpec(
            labels=[cvat_aa.label_spec("car", 0, type="rectangle")]
        )
        self.fail_width = fail_width
        self.widths: list[int] = []

    def detect(self, context, image):
        if image.width == self.fail_width:
            raise RuntimeError("model exploded")
        self.widths.append(image.width)
        return [cvat_aa.rectangle(0, [0, 0, image.width, image.height])]


@pytest.fixture
def project(cvat_server: TestServer) -> tuple[int, list[int]]:
    """A project of three tasks of 2, 3 and 4 frames, 40, 50 and 60 pixels wide."""
    project_id = cvat_server.create_project("p", labels=LABELS)
    tasks = [
        cvat_server.create_task(
            f"t{i}",
            images=[PIL.Image.new("RGB", (40 + 10 * i, 30))] * (2 + i),
            project_id=project_id,
        )
        for i in range(3)
    ]
    return project_id, tasks


def shape_count(server: TestServer, task_id: int) -> int:
    return len(server.annotations(task_id)["shapes"])


def test_a_project_run_annotates_every_task_in_order_with_one_summary(
    cvat_server, cvat_client, project
):
    project_id, tasks = project
    function = Boxes()
    summary = cvat_aa.annotate_project(cvat_client, project_id, function)
    assert function.widths == [40] * 2 + [50] * 3 + [60] * 4
    assert [t.task_id for t in summary.tasks] == tasks
    assert (summary.project_id, summary.frames, summary.annotations, summary.per_label) == (
        project_id,
        9,
        9,
        {"car": 9},
    )
    assert [shape_count(cvat_server, t) for t in tasks] == [2, 3, 4]
    assert summary.format().startswith(
        f"Annotated project {project_id}: 3 tasks, 9 frames, 9 annotations"
    )


def test_tasks_run_in_id_order_whatever_order_they_are_given_in(cvat_server, cvat_client, project):
    _, tasks = project
    function = Boxes()
    summary = cvat_aa.annotate_tasks(cvat_client, [tasks[2], tasks[0]], function)
    assert [t.task_id for t in summary.tasks] == [tasks[0], tasks[2]]
    assert function.widths == [40] * 2 + [60] * 4
    assert shape_count(cvat_server, tasks[1]) == 0


def test_an_interrupted_run_goes_on_without_annotating_finished_tasks_again(
    cvat_server, cvat_client, project, tmp_path
):
    project_id, tasks = project
    journal = {"journal_dir": tmp_path, "journal_key": "boxes v1"}
    with pytest.raises(RuntimeError, match="model exploded"):
        cvat_aa.annotate_project(cvat_client, project_id, Boxes(fail_width=50), **journal)
    assert [shape_count(cvat_server, t) for t in tasks] == [2, 0, 0]

    function = Boxes()
    summary = cvat_aa.annotate_project(cvat_client, project_id, function, resume=True, **journal)
    assert function.widths == [50] * 3 + [60] * 4
    assert [shape_count(cvat_server, t) for t in tasks] == [2, 3, 4]
    # The first task was finished before; the second continues its own journal.
    assert [(t.task_id, t.resumed) for t in summary.tasks] == [
        (tasks[0], True),
        (tasks[1], True),
        (tasks[2], False),
    ]
    assert summary.annotations == 9
    assert list(tmp_path.glob("*.tasks.json")) == []


def test_resume_without_an_interrupted_run_is_an_error(cvat_client, project, tmp_path):
    with pytest.raises(ValueError, match="no interrupted run"):
        cvat_aa.annotate_project(
            cvat_client, project[0], Boxes(), resume=True, journal_dir=tmp_path, journal_key="boxes"
        )


FUNCTION = """
import cvat_aa
spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])
def detect(context, image):
    return [cvat_aa.rectangle(0, [0, 0, image.width, image.height])]
"""


def cli(server: TestServer, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    function = tmp_path / "boxes.py"
    function.write_text(FUNCTION)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cvat_aa",
            "annotate",
            *args,
            "--function-file",
            str(function),
            *server.cli_args(),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_annotates_a_project(cvat_server, project, tmp_path):
    project_id, tasks = project
    result = cli(cvat_server, tmp_path, "--project", str(project_id), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [t["task_id"] for t in summary["tasks"]] == tasks
    assert (summary["project_id"], summary["frames"], summary["annotations"]) == (project_id, 9, 9)
    assert [shape_count(cvat_server, t) for t in tasks] == [2, 3, 4]


def test_the_cli_annotates_several_tasks_with_one_summary(cvat_server, project, tmp_path):
    _, tasks = project
    result = cli(cvat_server, tmp_path, str(tasks[1]), str(tasks[2]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Annotated tasks: 2 tasks, 7 frames, 7 annotations")
    assert f"task {tasks[1]}: 3 frames, 3 annotations" in result.stdout
    assert [shape_count(cvat_server, t) for t in tasks] == [0, 3, 4]


def test_the_cli_reports_a_missing_project_with_exit_4(cvat_server, tmp_path):
    result = cli(cvat_server, tmp_path, "--project", "999")
    assert result.returncode == 4
    assert "project 999 was not found" in result.stderr
