"""Nothing the user owns is lost or duplicated, on the server under test.

CVAT numbers tags, shapes and tracks in separate sequences, so the ids of a task's tags,
shapes and tracks collide as a rule: each scenario here relies on that (as
tests/test_data_safety.py does against cvat-aa's test server), and on how the server scopes
a job's annotations (a track crossing a job boundary belongs to both jobs).
"""

from __future__ import annotations

import cvat_aa
import pytest
from cvat_sdk import models
from readback import assert_annotations, by_source, expected_annotations, server_annotations


def seed(client, task_id: int, *, tags=(), shapes=(), tracks=()) -> dict[str, list]:
    """Manual tags ('night'), boxes and box tracks ((frame, outside) keyframes) on the task."""
    labels = {x.name: x.id for x in client.tasks.retrieve(task_id).get_labels()}
    client.tasks.retrieve(task_id).set_annotations(
        models.LabeledDataRequest(
            tags=[
                models.LabeledImageRequest(frame=f, label_id=labels["night"], source="manual")
                for f in tags
            ],
            shapes=[
                models.LabeledShapeRequest(
                    type="rectangle",
                    frame=f,
                    label_id=labels["car"],
                    points=[1.0, 1.0, 9.0, 9.0],
                    source="manual",
                )
                for f in shapes
            ],
            tracks=[
                models.LabeledTrackRequest(
                    frame=keyframes[0][0],
                    label_id=labels["car"],
                    source="manual",
                    shapes=[
                        models.TrackedShapeRequest(
                            type="rectangle", frame=f, points=[2.0, 2.0, 8.0, 8.0], outside=out
                        )
                        for f, out in keyframes
                    ],
                )
                for keyframes in tracks
            ],
        )
    )
    return by_source(server_annotations(client, task_id), "manual")


def manual(client, task_id: int) -> dict[str, list]:
    return by_source(server_annotations(client, task_id), "manual")


def auto(client, task_id: int) -> dict[str, list]:
    return by_source(server_annotations(client, task_id), "auto")


def track_starts(annotations: dict[str, list]) -> list[int]:
    return sorted(t["frame"] for t in annotations["tracks"])


def cars(frames) -> dict[str, list]:
    return expected_annotations(frames, only="car")


def test_clearing_a_task_of_tags_keeps_new_shapes_whose_ids_are_the_tags(
    client, workspace, installed_plugin
):
    task = workspace.create_task("safety-tags", frames=6)
    seed(client, task, tags=range(6))
    function = cvat_aa.load_function(installed_plugin, only="car")

    cvat_aa.annotate_task(client, task, function, clear_existing=True)

    assert_annotations(server_annotations(client, task), cars(range(6)))


def test_a_failed_tag_run_keeps_the_users_shapes_with_the_same_ids(
    client, workspace, installed_plugin
):
    task = workspace.create_task("safety-failed-tags", frames=8)
    before = seed(client, task, shapes=range(4))
    function = cvat_aa.load_function(installed_plugin, only="night", fail_on="6")

    with pytest.raises(RuntimeError, match="cannot read frame 6"):
        cvat_aa.annotate_task(client, task, function, batch_size=1, upload_frames=2)

    assert_annotations(server_annotations(client, task), before)


def test_clearing_a_job_replaces_its_track_and_keeps_the_other_jobs(
    client, workspace, installed_plugin
):
    task = workspace.create_task("safety-job-tracks", frames=6, segment_size=3)
    seed(client, task, tracks=[[(0, False), (2, True)], [(3, False), (5, True)]])
    first = min(client.tasks.retrieve(task).get_jobs(), key=lambda j: j.start_frame)
    function = cvat_aa.load_function(installed_plugin, only="car")

    cvat_aa.annotate_job(client, first.id, function, clear_existing=True)

    assert_annotations(auto(client, task), cars(range(3)))
    assert track_starts(manual(client, task)) == [3]


def test_clearing_frames_removes_only_tracks_that_end_within_them(
    client, workspace, installed_plugin
):
    task = workspace.create_task("safety-frame-tracks", frames=10)
    seed(
        client,
        task,
        tracks=[[(2, False), (4, False), (5, True)], [(3, False), (7, True)], [(4, False)]],
    )
    function = cvat_aa.load_function(installed_plugin, only="car")

    cvat_aa.annotate_task(client, task, function, frames="2-5", clear_existing=True)

    assert track_starts(manual(client, task)) == [3, 4]
    assert_annotations(auto(client, task), cars(range(2, 6)))


def test_clearing_a_job_keeps_a_track_that_crosses_into_another_job(
    client, workspace, installed_plugin
):
    task = workspace.create_task("safety-crossing-track", frames=8, segment_size=4)
    seed(client, task, tracks=[[(2, False), (6, True)]], shapes=[1, 5])
    second = max(client.tasks.retrieve(task).get_jobs(), key=lambda j: j.start_frame)
    function = cvat_aa.load_function(installed_plugin, only="car")

    cvat_aa.annotate_job(client, second.id, function, clear_existing=True)

    left = manual(client, task)
    assert track_starts(left) == [2]
    assert sorted(s["frame"] for s in left["shapes"]) == [1]
    assert_annotations(auto(client, task), cars(range(4, 8)))
