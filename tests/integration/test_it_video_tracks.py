"""Detections become CVAT tracks (the ``video-tracks`` hook plugin, ``--tracks``) on the server
under test.

The scene is test_it_track's: squares on known paths, ``SEGMENT`` frames a job, so every track
crosses a job boundary and CVAT keeps it as one track per job. The detector
(cvat_aa_it_squares.py) boxes each square; the plugin links the boxes into tracks. What is
checked is what a user sees: on every frame, the box CVAT shows (its interpolation between the
keyframes the server answers with, ``readback.shown_boxes``) against the true one; a killed
run resumed, a failed run, and a second run with ``--clear-existing`` against an
uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from cvat_sdk.api_client.exceptions import ApiException
from test_it_track import (
    FRAMES,
    GONE,
    JOBS,
    TOLERANCE,
    assert_each_job_holds_its_part,
    assert_follows_the_scene,
    draw_boxes,
    everything,
    jobs_of,
    keyframes_by_label,
    path,
    scene_task,
    task_tracks,
    user_shapes,
)
from track_scene import box, off_by

SQUARES = str(Path(__file__).parent / "cvat_aa_it_squares.py")
#: The suite's plugins and the hook plugin under test.
WITH_TRACKS = {"CVAT_AA_LOAD_PLUGINS": "it_every_shape,it_frame_code,video-tracks"}


def annotate(cvat_aa_cli, task: int, *args: str, **kwargs):
    return cvat_aa_cli(
        "annotate",
        str(task),
        "--function-file",
        SQUARES,
        "--tracks",
        *args,
        env={**WITH_TRACKS, **kwargs.pop("env", {})},
        **kwargs,
    )


def test_the_tracks_show_each_square_on_every_frame_with_keyframes_where_motion_needs_them(
    cvat_aa_cli, client, workspace
):
    task = scene_task(workspace, "tracks")
    assert [(j.start_frame, j.stop_frame) for j in jobs_of(client, task)] == JOBS

    result = annotate(cvat_aa_cli, task, "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["frames"], summary["tracks"]) == (FRAMES, 2)
    assert summary["per_label"] == {"car": 1, "cyclist": 1}
    assert everything(client, task)["shapes"] == [], "every box went into a track"
    assert_follows_the_scene(client, task)
    assert_each_job_holds_its_part(client, task)
    # Both squares move in straight lines: CVAT's interpolation needs few keyframes.
    visible = [s for t in task_tracks(client, task) for s in t["shapes"] if not s["outside"]]
    assert len(visible) < FRAMES + GONE


def test_cvats_own_export_shows_each_square_where_it_is_on_frames_without_keyframes(
    cvat_aa_cli, client, workspace, tmp_path
):
    # What CVAT itself makes of the tracks, not a reading of its interpolation: its "CVAT for
    # video 1.1" export has a box on every frame a track shows, interpolated between keyframes.
    task = scene_task(workspace, "tracks-export")
    assert annotate(cvat_aa_cli, task).returncode == 0

    archive = tmp_path / "export.zip"
    try:
        client.tasks.retrieve(task).export_dataset(
            "CVAT for video 1.1", archive, include_images=False
        )
    except ApiException as ex:
        # cvat-aa's test server exports no datasets, and ../shared/real-cvat runs CVAT 2.73
        # with upstream datumaro instead of CVAT's fork, whose exports fail (its README): the
        # interpolation is then read from the keyframes the server answers with (the test
        # above) alone.
        pytest.skip(f"this server cannot export datasets ({ex.status} {ex.reason})")
    with zipfile.ZipFile(archive) as files:
        root = ET.fromstring(files.read("annotations.xml"))
    shown: dict[tuple[str, int], list[list[float]]] = {}
    interpolated = 0
    for track in root.iter("track"):
        for element in track.iter("box"):
            if element.get("outside") == "1":
                continue
            frame = int(element.get("frame"))
            shown.setdefault((track.get("label"), frame), []).append(
                [float(element.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")]
            )
            interpolated += element.get("keyframe") == "0"
    assert interpolated > 0, "every frame is a keyframe: nothing was interpolated"
    for n in range(FRAMES):
        assert [off_by(b, box(0, n, path)) <= TOLERANCE for b in shown[("car", n)]] == [True]
        if n < GONE:
            cyclist = shown[("cyclist", n)]
            assert [off_by(b, box(1, n, path)) <= TOLERANCE for b in cyclist] == [True]
        else:
            assert ("cyclist", n) not in shown


def test_every_frame_is_a_keyframe_when_asked(cvat_aa_cli, client, workspace):
    task = scene_task(workspace, "tracks-all")

    result = annotate(cvat_aa_cli, task, "--keyframes", "all")

    assert result.returncode == 0, result.stderr
    visible = sorted(
        s["frame"] for t in task_tracks(client, task) for s in t["shapes"] if not s["outside"]
    )
    # Each job's part of a track starts with a keyframe of its own where CVAT cut it.
    assert set(visible) == set(range(FRAMES))
    assert_follows_the_scene(client, task)


def test_a_dry_run_uploads_nothing_and_counts_the_tracks(cvat_aa_cli, client, workspace):
    task = scene_task(workspace, "tracks-dry")
    before = everything(client, task)

    result = annotate(cvat_aa_cli, task, "--dry-run", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tracks"] == 2
    assert everything(client, task) == before


def test_a_failed_run_removes_every_part_of_its_tracks_and_keeps_the_users_boxes(
    cvat_aa_cli, client, workspace
):
    task = scene_task(workspace, "tracks-failed", white=9)
    users = draw_boxes(client, task, (0, 0, "car"))
    before = everything(client, task)

    # The cyclist's track ends (the square leaves on frame GONE) and is uploaded before the
    # detector fails on frame 9.
    result = annotate(
        cvat_aa_cli,
        task,
        "--batch-size",
        "1",
        "--upload-frames",
        "1",
        "--track-lost-frames",
        "0",
        "--no-journal",
    )

    assert result.returncode == 6, result.stderr
    assert "frame 9" in result.stderr
    assert everything(client, task) == before
    assert user_shapes(client, task) == users


def test_clear_existing_replaces_the_tracks_of_an_earlier_run(cvat_aa_cli, client, workspace):
    task = scene_task(workspace, "tracks-twice")
    assert annotate(cvat_aa_cli, task).returncode == 0
    first = keyframes_by_label(client, task)

    result = annotate(cvat_aa_cli, task, "--clear-existing")

    assert result.returncode == 0, result.stderr
    assert keyframes_by_label(client, task) == first
    assert_follows_the_scene(client, task)


def test_a_run_killed_with_sigkill_resumes_to_the_tracks_of_an_uninterrupted_run(
    cvat_aa_cli, client, workspace, tmp_path
):
    uninterrupted = scene_task(workspace, "tracks-uninterrupted")
    args = ("--batch-size", "1", "--upload-frames", "1", "--track-lost-frames", "0")
    assert annotate(cvat_aa_cli, uninterrupted, *args).returncode == 0
    task = scene_task(workspace, "tracks-killed")
    journals = ("--journal-dir", str(tmp_path / "journals"))
    running = annotate(
        cvat_aa_cli, task, *args, *journals, background=True, env={"SQUARES_DELAY": "1.0"}
    )
    # Killed once the cyclist's track (two parts: it crosses a job boundary) is uploaded.
    deadline = time.monotonic() + 120
    while len(task_tracks(client, task)) < 2 and time.monotonic() < deadline:
        assert running.poll() is None, running.communicate()
        time.sleep(0.1)
    os.kill(running.pid, signal.SIGKILL)
    running.communicate()
    assert len(task_tracks(client, task)) < len(task_tracks(client, uninterrupted))

    result = annotate(cvat_aa_cli, task, *args, *journals, "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["resumed"] and summary["tracks"] == 2
    assert keyframes_by_label(client, task) == keyframes_by_label(client, uninterrupted)
    assert_follows_the_scene(client, task)


@pytest.mark.parametrize("overlap", [2])
def test_a_task_whose_jobs_share_frames_is_refused_and_its_jobs_get_tracks(
    cvat_aa_cli, client, workspace, overlap
):
    task = scene_task(workspace, "tracks-overlap", overlap=overlap)
    before = everything(client, task)

    refused = annotate(cvat_aa_cli, task)

    assert refused.returncode == 2, refused.stderr
    assert "jobs that share frames" in refused.stderr and "--job" in refused.stderr
    assert everything(client, task) == before
    first_job = jobs_of(client, task)[0]
    result = cvat_aa_cli(
        "annotate",
        "--job",
        str(first_job.id),
        "--function-file",
        SQUARES,
        "--tracks",
        env=WITH_TRACKS,
    )
    assert result.returncode == 0, result.stderr
    assert len(task_tracks(client, task)) == 2
