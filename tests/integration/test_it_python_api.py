"""cvat_aa.annotate_task and annotate_job on the server under test, read back exactly."""

from __future__ import annotations

import cvat_aa
import pytest
from cvat_sdk import models
from readback import (
    assert_annotations,
    by_source,
    expected_annotations,
    only_frames,
    server_annotations,
)

NOTHING = {"tags": [], "shapes": [], "tracks": []}


def seed_manual(client, task_id: int, frames: range) -> None:
    """One manual car box per frame and a manual 'night' tag on every other frame."""
    labels = {label.name: label.id for label in client.tasks.retrieve(task_id).get_labels()}
    client.tasks.retrieve(task_id).set_annotations(
        models.LabeledDataRequest(
            shapes=[
                models.LabeledShapeRequest(
                    type="rectangle",
                    frame=f,
                    label_id=labels["car"],
                    points=[1.0, 1.0, 9.0, 9.0],
                    source="manual",
                )
                for f in frames
            ],
            tags=[
                models.LabeledImageRequest(frame=f, label_id=labels["night"], source="manual")
                for f in frames
                if f % 2 == 0
            ],
        )
    )


def test_every_annotation_type_is_uploaded_by_plugin_name(client, workspace, installed_plugin):
    task = workspace.create_task("every-type", frames=6)

    summary = cvat_aa.annotate_task(client, task, installed_plugin)

    assert summary.frames == 6
    assert_annotations(server_annotations(client, task), expected_annotations(range(6)))


def test_a_job_run_annotates_only_the_jobs_frames(client, workspace, installed_plugin):
    task = workspace.create_task("job", frames=10, segment_size=4)
    jobs = sorted(client.tasks.retrieve(task).get_jobs(), key=lambda j: j.start_frame)
    assert [(j.start_frame, j.stop_frame) for j in jobs] == [(0, 3), (4, 7), (8, 9)]

    cvat_aa.annotate_job(client, jobs[1].id, installed_plugin)

    assert_annotations(server_annotations(client, task), expected_annotations(range(4, 8)))


def test_clearing_a_frame_selection_keeps_manual_annotations_outside_it(
    client, workspace, installed_plugin
):
    task = workspace.create_task("frames-clear", frames=6)
    seed_manual(client, task, range(6))
    manual_before = server_annotations(client, task)

    cvat_aa.annotate_task(client, task, installed_plugin, frames="2-3", clear_existing=True)

    after = server_annotations(client, task)
    assert_annotations(by_source(after, "manual"), only_frames(manual_before, [0, 1, 4, 5]))
    assert_annotations(by_source(after, "auto"), expected_annotations([2, 3]))


def test_without_clearing_manual_annotations_stay_beside_the_new_ones(
    client, workspace, installed_plugin
):
    task = workspace.create_task("keep", frames=3)
    seed_manual(client, task, range(3))
    manual_before = server_annotations(client, task)

    cvat_aa.annotate_task(client, task, installed_plugin)

    after = server_annotations(client, task)
    assert_annotations(by_source(after, "manual"), manual_before)
    assert_annotations(by_source(after, "auto"), expected_annotations(range(3)))


def test_the_confidence_threshold_reaches_the_function(client, workspace, installed_plugin):
    task = workspace.create_task("threshold", frames=4)

    cvat_aa.annotate_task(client, task, installed_plugin, conf_threshold=0.5)

    expected = expected_annotations(range(4), conf_threshold=0.5)
    assert_annotations(server_annotations(client, task), expected)
    assert {s["label"] for s in expected["shapes"]}.isdisjoint({"spot", "lane"})


def test_a_dry_run_uploads_nothing(client, workspace, installed_plugin):
    task = workspace.create_task("dry-run", frames=4)

    summary = cvat_aa.annotate_task(client, task, installed_plugin, dry_run=True)

    assert summary.annotations == sum(len(v) for v in expected_annotations(range(4)).values())
    assert_annotations(server_annotations(client, task), NOTHING)


def test_skipping_failed_frames_uploads_the_others(client, workspace, installed_plugin):
    task = workspace.create_task("skip", frames=5)
    function = cvat_aa.load_function(installed_plugin, fail_on="1,3")

    summary = cvat_aa.annotate_task(client, task, function, on_error="skip", batch_size=2)

    assert sorted(summary.failed_frames) == [1, 3]
    assert_annotations(server_annotations(client, task), expected_annotations([0, 2, 4]))


def test_a_failed_run_leaves_the_task_as_it_was(client, workspace, installed_plugin):
    task = workspace.create_task("fail", frames=6)
    seed_manual(client, task, range(6))
    before = server_annotations(client, task)
    function = cvat_aa.load_function(installed_plugin, fail_on="4")

    with pytest.raises(RuntimeError, match="cannot read frame 4"):
        cvat_aa.annotate_task(
            client, task, function, batch_size=1, upload_frames=1, clear_existing=True
        )

    assert_annotations(server_annotations(client, task), before)


def test_a_video_task_is_annotated_whatever_its_pixels(client, workspace, installed_plugin):
    task = workspace.create_task("video", frames=8, video=True)
    assert client.tasks.retrieve(task).size == 8

    summary = cvat_aa.annotate_task(client, task, installed_plugin)

    assert summary.frames == 8
    assert_annotations(server_annotations(client, task), expected_annotations(range(8)))


def test_a_project_run_annotates_each_of_its_tasks(client, workspace, installed_plugin):
    project = workspace.create_project("project")
    images = workspace.create_task("project-images", frames=3, project_id=project)
    video = workspace.create_task("project-video", frames=4, video=True, project_id=project)

    summary = cvat_aa.annotate_project(client, project, installed_plugin)

    assert sorted(t.target_id for t in summary.tasks) == sorted([images, video])
    assert_annotations(server_annotations(client, images), expected_annotations(range(3)))
    assert_annotations(server_annotations(client, video), expected_annotations(range(4)))
