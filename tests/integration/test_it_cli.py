"""`cvat-aa annotate` as a user runs it (a subprocess), against the server under test.

The password reaches the CLI through ``PASS`` (``--auth USER``), never its command line. Exit
codes are those of docs/cli.md.
"""

from __future__ import annotations

import json
import os
import signal
import time

from cvat_sdk import models
from readback import (
    assert_annotations,
    by_source,
    expected_annotations,
    only_frames,
    server_annotations,
)

NOTHING = {"tags": [], "shapes": [], "tracks": []}


def seed_manual_boxes(client, task_id: int, frames) -> None:
    car = next(x.id for x in client.tasks.retrieve(task_id).get_labels() if x.name == "car")
    client.tasks.retrieve(task_id).set_annotations(
        models.LabeledDataRequest(
            shapes=[
                models.LabeledShapeRequest(
                    type="rectangle",
                    frame=f,
                    label_id=car,
                    points=[1.0, 1.0, 9.0, 9.0],
                    source="manual",
                )
                for f in frames
            ]
        )
    )


def test_a_task_is_annotated_by_plugin_name(cvat_aa_cli, client, workspace):
    task = workspace.create_task("cli-task", frames=5)

    result = cvat_aa_cli("annotate", str(task), "--function", "it_every_shape", "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["target"], summary["target_id"], summary["frames"]) == ("task", task, 5)
    assert_annotations(server_annotations(client, task), expected_annotations(range(5)))


def test_a_job_is_annotated(cvat_aa_cli, client, workspace):
    task = workspace.create_task("cli-job", frames=7, segment_size=3)
    last = max(client.tasks.retrieve(task).get_jobs(), key=lambda j: j.start_frame)

    result = cvat_aa_cli("annotate", "--job", str(last.id), "--function", "it_every_shape")

    assert result.returncode == 0, result.stderr
    assert_annotations(server_annotations(client, task), expected_annotations([6]))


def test_a_project_is_annotated_task_by_task(cvat_aa_cli, client, workspace):
    project = workspace.create_project("cli-project")
    images = workspace.create_task("cli-project-images", frames=3, project_id=project)
    video = workspace.create_task("cli-project-video", frames=5, video=True, project_id=project)

    result = cvat_aa_cli(
        "annotate", "--project", str(project), "--function", "it_every_shape", "--json"
    )

    assert result.returncode == 0, result.stderr
    assert sorted(t["target_id"] for t in json.loads(result.stdout)["tasks"]) == sorted(
        [images, video]
    )
    assert_annotations(server_annotations(client, images), expected_annotations(range(3)))
    assert_annotations(server_annotations(client, video), expected_annotations(range(5)))


def test_clearing_selected_frames_keeps_the_users_annotations_elsewhere(
    cvat_aa_cli, client, workspace
):
    task = workspace.create_task("cli-clear", frames=6)
    seed_manual_boxes(client, task, range(6))
    manual = server_annotations(client, task)

    result = cvat_aa_cli(
        "annotate",
        str(task),
        "--function",
        "it_every_shape",
        "--frames",
        "1,3-4",
        "--clear-existing",
    )

    assert result.returncode == 0, result.stderr
    after = server_annotations(client, task)
    assert_annotations(by_source(after, "manual"), only_frames(manual, [0, 2, 5]))
    assert_annotations(by_source(after, "auto"), expected_annotations([1, 3, 4]))


def test_the_confidence_threshold_and_parameters_reach_the_function(cvat_aa_cli, client, workspace):
    task = workspace.create_task("cli-threshold", frames=3)

    result = cvat_aa_cli(
        "annotate",
        str(task),
        "--function",
        "it_every_shape",
        "--conf-threshold",
        "0.5",
        "-p",
        "only=str:car,spot,night",
    )

    assert result.returncode == 0, result.stderr
    expected = expected_annotations(range(3), only="car,spot,night", conf_threshold=0.5)
    assert_annotations(server_annotations(client, task), expected)


def test_a_dry_run_uploads_nothing(cvat_aa_cli, client, workspace):
    task = workspace.create_task("cli-dry-run", frames=3)

    result = cvat_aa_cli("annotate", str(task), "--function", "it_every_shape", "--dry-run")

    assert result.returncode == 0, result.stderr
    assert_annotations(server_annotations(client, task), NOTHING)


def test_skipped_frames_are_listed_and_exit_6(cvat_aa_cli, client, workspace):
    task = workspace.create_task("cli-skip", frames=4)

    result = cvat_aa_cli(
        "annotate",
        str(task),
        "--function",
        "it_every_shape",
        "-p",
        "fail_on=str:2",
        "--on-error",
        "skip",
        "--json",
    )

    assert result.returncode == 6, result.stderr
    assert list(json.loads(result.stdout)["failed_frames"]) == ["2"]
    assert_annotations(server_annotations(client, task), expected_annotations([0, 1, 3]))


def test_a_run_killed_with_sigkill_resumes_without_duplicates_or_loss(
    cvat_aa_cli, client, workspace, tmp_path
):
    task = workspace.create_task("cli-resume", frames=12)
    seed_manual_boxes(client, task, [0, 11])
    manual = server_annotations(client, task)
    journals = tmp_path / "journals"
    args = (
        "annotate",
        str(task),
        "--function",
        "it_every_shape",
        "-p",
        "delay=float:0.4",
        "--batch-size",
        "1",
        "--upload-frames",
        "2",
        "--journal-dir",
        str(journals),
    )

    running = cvat_aa_cli(*args, background=True)
    deadline = time.monotonic() + 120
    # Kill it once part of its annotations are on the server, not all.
    while time.monotonic() < deadline and running.poll() is None:
        uploaded = by_source(server_annotations(client, task), "auto")["shapes"]
        if len({s["frame"] for s in uploaded}) >= 4:
            break
        time.sleep(0.3)
    assert running.poll() is None, "the run ended before it could be killed"
    os.kill(running.pid, signal.SIGKILL)
    running.communicate()
    partial = {s["frame"] for s in by_source(server_annotations(client, task), "auto")["shapes"]}
    assert 0 < len(partial) < 12

    result = cvat_aa_cli(*args, "--resume")

    assert result.returncode == 0, result.stderr
    after = server_annotations(client, task)
    assert_annotations(by_source(after, "manual"), manual)
    assert_annotations(by_source(after, "auto"), expected_annotations(range(12)))


def test_wrong_credentials_exit_3_without_a_traceback(cvat_aa_cli, target, client, workspace):
    from target import Account

    task = workspace.create_task("cli-wrong-password", frames=2)

    result = cvat_aa_cli(
        "annotate",
        str(task),
        "--function",
        "it_every_shape",
        account=Account(target.account.username, password="not-the-password"),
    )

    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert_annotations(server_annotations(client, task), NOTHING)


def test_a_missing_task_exits_4(cvat_aa_cli, workspace):
    result = cvat_aa_cli("annotate", "2147483000", "--function", "it_every_shape")

    assert result.returncode == 4, result.stderr
    assert "task 2147483000 was not found" in result.stderr
