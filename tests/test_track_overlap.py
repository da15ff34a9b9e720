"""Tracking a task whose jobs share frames (CVAT's ``overlap``) is refused; its jobs are not.

CVAT stores what is sent to such a task on a shared frame once per job and answers with one
copy, so a failed run's rollback would leave the other copies of its tracks in the task (the
integration scenarios saw it on CVAT 2.73). A job run writes to its job only, and undoes
cleanly.
"""

from __future__ import annotations

import cvat_aa
import pytest
from cvat_aa_testing import TestServer
from track_scene import ColourTracker, box, frames

LABELS = [{"name": "car", "type": "rectangle"}]


def overlapping_task(server: TestServer, white: int | None = None) -> int:
    """10 frames, jobs 0-4, 3-7 and 6-9; frame ``white`` makes the tracker fail."""
    images = frames(10)
    if white is not None:
        images[white].putpixel((0, 0), (255, 255, 255))
    task = server.create_task("overlap", images=images, labels=LABELS, segment_size=5, overlap=2)
    car = server.label_id(task, "car")
    server.set_annotations(
        task,
        {
            "shapes": [
                {"type": "rectangle", "frame": n, "label_id": car, "points": box(0, n)}
                for n in (0, 3)
            ]
        },
    )
    return task


def test_tracking_a_task_whose_jobs_share_frames_is_refused_before_anything_is_uploaded(
    cvat_server, cvat_client
):
    task = overlapping_task(cvat_server)
    before = cvat_server.annotations(task)

    with pytest.raises(ValueError, match=r"jobs that share frames \(frames 3-4.*--job"):
        cvat_aa.track_task(cvat_client, task, ColourTracker())

    assert cvat_server.annotations(task) == before


def test_a_dry_run_on_such_a_task_still_says_what_it_would_upload(cvat_server, cvat_client):
    task = overlapping_task(cvat_server)

    summary = cvat_aa.track_task(cvat_client, task, ColourTracker(), dry_run=True)

    assert (summary.tracks, summary.frames) == (1, 10)


def test_a_job_of_such_a_task_is_tracked_and_a_failed_job_run_leaves_it_as_it_was(
    cvat_server, cvat_client
):
    task = overlapping_task(cvat_server, white=6)
    first, middle, _ = sorted(cvat_server.jobs(task), key=lambda j: j["start_frame"])
    before = cvat_server.annotations(task)

    cvat_aa.track_job(cvat_client, first["id"], ColourTracker())
    [track] = cvat_server.annotations(task)["tracks"]
    # The task shows the job's track ending where the next job's own frames begin.
    assert [(s["frame"], s["outside"]) for s in track["shapes"]] == [
        *((n, False) for n in range(5)),
        (5, True),
    ]
    with pytest.raises(RuntimeError, match="out of memory"):
        cvat_aa.track_job(cvat_client, middle["id"], ColourTracker(), upload_tracks=1)

    assert len(cvat_server.annotations(task)["tracks"]) == 1
    assert cvat_server.annotations(task)["shapes"] == before["shapes"]
