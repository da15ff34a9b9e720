"""`cvat-aa track` and ``cvat_aa.track_task``/``track_job`` on the server under test.

The scene is tests/track_scene.py's: coloured squares on known paths over black frames, and
its colour tracker (the module is also a function file). The tasks have jobs of
``SEGMENT`` frames, so every track here crosses a job boundary, and CVAT keeps such a track
as one track per job (cut at the boundary; the task's annotations show each part ending
with an ``outside`` keyframe where the next job begins). The scenarios therefore check what
a user sees: on every frame, the boxes CVAT shows (its interpolation between keyframes,
:func:`readback.shown_boxes`) against the true ones, and each job's parts on their own.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import cvat_aa
import numpy as np
import PIL.Image
import pytest
from cvat_sdk import models
from readback import shown_boxes
from track_scene import ColourTracker, box, frames, off_by

SCENE = str(Path(__file__).parent.parent / "track_scene.py")
LABELS = [
    {
        "name": "car",
        "type": "rectangle",
        "attributes": [
            {
                "name": "color",
                "input_type": "select",
                "mutable": False,
                "values": ["red", "green"],
                "default_value": "red",
            },
        ],
    },
    {"name": "cyclist", "type": "rectangle"},
]
FRAMES = 12
SEGMENT = 5
#: The jobs' frames with ``SEGMENT`` frames a job.
JOBS = [(0, 4), (5, 9), (10, 11)]
#: The cyclist's square leaves the picture on this frame.
GONE = 7
TOLERANCE = 1.0


def path(k: int, n: int) -> tuple[int, int] | None:
    """Square 0 (the car) moves right and down through the whole task; square 1 (the
    cyclist) moves left and is gone from frame ``GONE`` on."""
    if k == 0:
        return (4 + 3 * n, 6 + 2 * n)
    return None if n >= GONE else (80 - 2 * n, 40)


def scene_task(workspace, what: str, *, white: int | None = None, overlap: int = 0) -> int:
    """A task of the scene, ``SEGMENT`` frames a job, consecutive jobs sharing ``overlap``
    frames; on frame ``white`` the top-left pixel is white, which makes the colour tracker
    fail there."""
    images = frames(FRAMES, 2, path)
    if white is not None:
        images[white].putpixel((0, 0), (255, 255, 255))
    return workspace.create_task(
        what, images=images, labels=LABELS, segment_size=SEGMENT, overlap=overlap
    )


def label_ids(client, task_id: int) -> dict[str, int]:
    return {label.name: label.id for label in client.tasks.retrieve(task_id).get_labels()}


def draw_boxes(client, task_id: int, *starts: tuple[int, int, str]) -> list[dict]:
    """The user's boxes, (square, frame, label) each, on the square's true box (a car's with
    its colour, green, which its tracks take); returns the task's shapes."""
    ids = label_ids(client, task_id)
    [colour] = [
        a.id
        for label in client.tasks.retrieve(task_id).get_labels()
        if label.name == "car"
        for a in label.attributes
    ]
    client.tasks.retrieve(task_id).update_annotations(
        models.PatchedLabeledDataRequest(
            shapes=[
                models.LabeledShapeRequest(
                    type="rectangle",
                    frame=n,
                    label_id=ids[label],
                    points=box(k, n, path),
                    source="manual",
                    attributes=[models.AttributeValRequest(spec_id=colour, value="green")]
                    if label == "car"
                    else [],
                )
                for k, n, label in starts
            ]
        )
    )
    return user_shapes(client, task_id)


def user_shapes(client, task_id: int) -> list[dict]:
    data = client.tasks.retrieve(task_id).get_annotations().to_dict()
    return sorted(data["shapes"], key=lambda s: s["id"])


def everything(client, task_id: int) -> dict[str, list]:
    """The task's tags, shapes and tracks, ids included, as the server answers."""
    data = client.tasks.retrieve(task_id).get_annotations().to_dict()
    return {
        kind: sorted(data[kind], key=lambda a: a["id"]) for kind in ("tags", "shapes", "tracks")
    }


def task_tracks(client, task_id: int) -> list[dict]:
    return client.tasks.retrieve(task_id).get_annotations().to_dict()["tracks"]


def jobs_of(client, task_id: int) -> list:
    return sorted(client.tasks.retrieve(task_id).get_jobs(), key=lambda j: j.start_frame)


def shown_error(tracks: list[dict], label_id: int, k: int, frame_range, **shown) -> list[str]:
    """Where the boxes CVAT shows for ``label_id`` differ from square ``k``'s true boxes:
    a box too far, two boxes, or a box where there is no square (or none where there is)."""
    problems = []
    for n in frame_range:
        boxes = shown_boxes(tracks, label_id, n, **shown)
        truth = path(k, n)
        if truth is None:
            if boxes:
                problems.append(f"frame {n}: {boxes} shown, the square is gone")
        elif len(boxes) != 1:
            problems.append(f"frame {n}: {len(boxes)} boxes shown, not one")
        elif off_by(boxes[0], box(k, n, path)) > TOLERANCE:
            problems.append(f"frame {n}: {boxes[0]} shown, the square is at {box(k, n, path)}")
    return problems


def assert_follows_the_scene(client, task_id: int, *, last: int = FRAMES - 1) -> None:
    """The task's tracks show the car on frames 0..last, the cyclist until it leaves."""
    ids = label_ids(client, task_id)
    tracks = task_tracks(client, task_id)
    assert shown_error(tracks, ids["car"], 0, range(last + 1)) == []
    assert shown_error(tracks, ids["cyclist"], 1, range(last + 1)) == []
    assert {t["source"] for t in tracks} == {"auto"}


def assert_each_job_holds_its_part(
    client, task_id: int, tracked=range(FRAMES), *, cyclist: bool = True
) -> None:
    """Each job's annotations hold the parts of the tracks on its frames (those ``tracked``
    of them), on the true path (the cyclist's too, unless not ``cyclist``), and show nothing
    on its other frames."""
    ids = label_ids(client, task_id)
    for job in jobs_of(client, task_id):
        tracks = client.jobs.retrieve(job.id).get_annotations().to_dict()["tracks"]
        for shape in (s for t in tracks for s in t["shapes"]):
            assert job.start_frame <= shape["frame"] <= job.stop_frame + 1, (job.id, shape)
        frames_of_job = [n for n in range(job.start_frame, job.stop_frame + 1) if n in tracked]
        for n in range(job.start_frame, job.stop_frame + 1):
            if n not in tracked:
                assert shown_boxes(tracks, ids["car"], n) == [], (job.id, n)
        assert shown_error(tracks, ids["car"], 0, frames_of_job, last_frame=job.stop_frame) == []
        if cyclist:
            on_job = shown_error(
                tracks, ids["cyclist"], 1, frames_of_job, last_frame=job.stop_frame
            )
            assert on_job == []


# --- a whole task ----------------------------------------------------------------------------


def test_tracks_follow_the_squares_across_job_boundaries(cvat_aa_cli, client, workspace):
    task = scene_task(workspace, "track-cli")
    assert [(j.start_frame, j.stop_frame) for j in jobs_of(client, task)] == JOBS
    users = draw_boxes(client, task, (0, 0, "car"), (1, 0, "cyclist"))

    result = cvat_aa_cli("track", SCENE, "--task", str(task), "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["tracks"], summary["frames"], summary["lost"]) == (2, FRAMES, 1)
    assert summary["keyframes"] == FRAMES + GONE + 1
    assert_follows_the_scene(client, task)
    assert_each_job_holds_its_part(client, task)
    assert user_shapes(client, task) == users


def test_the_cyclist_track_ends_with_an_outside_keyframe_where_it_leaves(
    cvat_aa_cli, client, workspace
):
    task = scene_task(workspace, "track-outside")
    draw_boxes(client, task, (1, 0, "cyclist"))

    result = cvat_aa_cli("track", SCENE, "--task", str(task))

    assert result.returncode == 0, result.stderr
    keyframes = {}
    for track in task_tracks(client, task):
        for shape in track["shapes"]:
            # Where a part ends at a job boundary and the next begins, the visible one counts.
            keyframes[shape["frame"]] = keyframes.get(shape["frame"], True) and shape["outside"]
    assert keyframes == {**{n: False for n in range(GONE)}, GONE: True}


def test_a_stepped_range_is_interpolated_by_cvat_onto_the_frames_between(
    client, workspace, monkeypatch
):
    monkeypatch.setenv("CVAT_AA_LOAD_PLUGINS", "")
    task = scene_task(workspace, "track-stepped")
    users = draw_boxes(client, task, (0, 0, "car"))

    summary = cvat_aa.track_task(client, task, ColourTracker(), frames="0-10:2")

    assert (summary.tracks, summary.frames, summary.keyframes) == (1, 6, 7)
    car = label_ids(client, task)["car"]
    tracks = task_tracks(client, task)
    # The car moves at a steady speed: CVAT's interpolation is right on the odd frames, the
    # boundary between the first two jobs (frame 5, between keyframes 4 and 6) included.
    assert shown_error(tracks, car, 0, range(11)) == []
    # The frames tracked end before the task does: the track ends on the next frame.
    assert shown_boxes(tracks, car, 11) == []
    assert user_shapes(client, task) == users


@pytest.mark.parametrize("frames", ["0-4", "0-5", "3-8", "4-11", "1-10:3"])
def test_a_range_is_shown_on_its_frames_and_nowhere_else(client, workspace, monkeypatch, frames):
    monkeypatch.setenv("CVAT_AA_LOAD_PLUGINS", "")
    first, last, step = _range(frames)
    task = scene_task(workspace, f"track-range-{frames}")
    users = draw_boxes(client, task, (0, first, "car"), (1, first, "cyclist"))

    summary = cvat_aa.track_task(client, task, ColourTracker(), frames=frames)

    assert summary.tracks == 2
    ids = label_ids(client, task)
    tracks = task_tracks(client, task)
    assert shown_error(tracks, ids["car"], 0, range(first, last + 1)) == []
    if step == 1:
        assert shown_error(tracks, ids["cyclist"], 1, range(first, last + 1)) == []
    for n in [*range(first), *range(last + 1, FRAMES)]:
        assert shown_boxes(tracks, ids["car"], n) == shown_boxes(tracks, ids["cyclist"], n) == []
    assert_each_job_holds_its_part(client, task, range(first, last + 1), cyclist=step == 1)
    assert user_shapes(client, task) == users


def _range(spec: str) -> tuple[int, int, int]:
    """(first, last, step) of the frames a ``first-stop[:step]`` selection selects."""
    span, _, step = spec.partition(":")
    first, stop = (int(x) for x in span.split("-"))
    step_n = int(step or 1)
    return first, first + (stop - first) // step_n * step_n, step_n


def test_with_start_frames_all_a_box_in_a_later_job_starts_its_track_there(
    cvat_aa_cli, client, workspace
):
    task = scene_task(workspace, "track-start-all")
    users = draw_boxes(client, task, (0, 0, "car"), (1, 5, "cyclist"))

    result = cvat_aa_cli("track", SCENE, "--task", str(task), "--start-frames", "all")

    assert result.returncode == 0, result.stderr
    ids = label_ids(client, task)
    tracks = task_tracks(client, task)
    assert shown_error(tracks, ids["car"], 0, range(FRAMES)) == []
    assert shown_error(tracks, ids["cyclist"], 1, range(5, FRAMES)) == []
    for n in range(5):
        assert shown_boxes(tracks, ids["cyclist"], n) == []
    assert user_shapes(client, task) == users


def test_replacing_the_start_shapes_removes_them_and_nothing_else(cvat_aa_cli, client, workspace):
    task = scene_task(workspace, "track-replace")
    users = draw_boxes(client, task, (0, 0, "car"), (1, 0, "cyclist"), (0, 6, "car"))

    result = cvat_aa_cli("track", SCENE, "--task", str(task), "--replace-start-shapes")

    assert result.returncode == 0, result.stderr
    assert user_shapes(client, task) == [s for s in users if s["frame"] == 6]
    assert_follows_the_scene(client, task)
    assert_each_job_holds_its_part(client, task)


def test_a_dry_run_uploads_nothing(cvat_aa_cli, client, workspace):
    task = scene_task(workspace, "track-dry-run")
    users = draw_boxes(client, task, (0, 0, "car"), (1, 0, "cyclist"))

    result = cvat_aa_cli("track", SCENE, "--task", str(task), "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "Would upload:" in result.stdout
    assert task_tracks(client, task) == []
    assert user_shapes(client, task) == users


def test_the_python_api_makes_the_tracks_the_cli_makes(cvat_aa_cli, client, workspace):
    by_cli = scene_task(workspace, "track-by-cli")
    draw_boxes(client, by_cli, (0, 0, "car"), (1, 0, "cyclist"))
    by_api = scene_task(workspace, "track-by-api")
    users = draw_boxes(client, by_api, (0, 0, "car"), (1, 0, "cyclist"))

    assert cvat_aa_cli("track", SCENE, "--task", str(by_cli)).returncode == 0
    summary = cvat_aa.track_task(client, by_api, ColourTracker())

    assert (summary.tracks, summary.lost) == (2, 1)
    assert keyframes_by_label(client, by_api) == keyframes_by_label(client, by_cli)
    assert user_shapes(client, by_api) == users


def keyframes_by_label(client, task_id: int) -> list:
    names = {v: k for k, v in label_ids(client, task_id).items()}
    return sorted(
        (names[t["label_id"]], [(s["frame"], s["outside"], s["points"]) for s in t["shapes"]])
        for t in task_tracks(client, task_id)
    )


# --- a job -----------------------------------------------------------------------------------


def test_a_job_run_tracks_only_over_the_jobs_frames(cvat_aa_cli, client, workspace):
    task = scene_task(workspace, "track-job")
    users = draw_boxes(client, task, (0, 0, "car"), (0, 5, "car"), (1, 5, "cyclist"))
    middle = jobs_of(client, task)[1]

    result = cvat_aa_cli("track", SCENE, "--job", str(middle.id), "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["target"], summary["tracks"], summary["frames"]) == ("job", 2, 5)
    ids = label_ids(client, task)
    tracks = task_tracks(client, task)
    # Only the shapes on the job's first frame start tracks, and they end with the job.
    assert shown_error(tracks, ids["car"], 0, range(5, 10)) == []
    assert shown_error(tracks, ids["cyclist"], 1, range(5, 10)) == []
    for n in [*range(5), 10, 11]:
        assert shown_boxes(tracks, ids["car"], n) == []
    for job in jobs_of(client, task):
        in_job = client.jobs.retrieve(job.id).get_annotations().to_dict()["tracks"]
        assert bool(in_job) == (job.id == middle.id), job.id
    assert user_shapes(client, task) == users


def test_a_job_run_after_a_task_run_adds_tracks_beside_the_task_runs(
    cvat_aa_cli, client, workspace
):
    task = scene_task(workspace, "track-job-after-task")
    draw_boxes(client, task, (0, 0, "car"), (0, 5, "car"))
    assert cvat_aa_cli("track", SCENE, "--task", str(task)).returncode == 0
    before = keyframes_by_label(client, task)
    middle = jobs_of(client, task)[1]

    result = cvat_aa_cli("track", SCENE, "--job", str(middle.id))

    assert result.returncode == 0, result.stderr
    after = keyframes_by_label(client, task)
    # The task run's parts are all still there, and one more track: the job run's.
    assert all(after.count(part) >= before.count(part) for part in before)
    assert len(after) == len(before) + 1


# --- jobs that share frames ------------------------------------------------------------------

#: With ``OVERLAP`` frames shared, the jobs' frames.
OVERLAP = 2
OVERLAPPING_JOBS = [(0, 4), (3, 7), (6, 10), (9, 11)]


def test_a_task_whose_jobs_share_frames_is_refused_and_its_jobs_are_tracked_one_by_one(
    cvat_aa_cli, client, workspace
):
    # CVAT keeps what is sent to such a task on a shared frame once per job and answers with
    # one copy: a failed run could not remove the others. Jobs are tracked on their own.
    task = scene_task(workspace, "track-overlap", overlap=OVERLAP)
    jobs = jobs_of(client, task)
    assert [(j.start_frame, j.stop_frame) for j in jobs] == OVERLAPPING_JOBS
    users = draw_boxes(client, task, *((0, j.start_frame, "car") for j in jobs))

    refused = cvat_aa_cli("track", SCENE, "--task", str(task))

    assert refused.returncode == 2, refused.stderr
    assert "jobs that share frames" in refused.stderr and "--job" in refused.stderr
    assert task_tracks(client, task) == []
    for job in jobs:
        result = cvat_aa_cli("track", SCENE, "--job", str(job.id))
        assert result.returncode == 0, result.stderr
    car = label_ids(client, task)["car"]
    for job in jobs:
        in_job = client.jobs.retrieve(job.id).get_annotations().to_dict()["tracks"]
        frames_of_job = range(job.start_frame, job.stop_frame + 1)
        assert shown_error(in_job, car, 0, frames_of_job, last_frame=job.stop_frame) == []
    assert user_shapes(client, task) == users


def test_a_failed_job_run_on_jobs_that_share_frames_leaves_the_task_as_it_was(
    cvat_aa_cli, client, workspace
):
    # Job 6-10: the cyclist is lost on frame 7 and its track uploaded (on frames the job
    # shares with job 3-7), then the tracker fails on frame 9.
    task = scene_task(workspace, "track-overlap-failed", white=9, overlap=OVERLAP)
    jobs = jobs_of(client, task)
    draw_boxes(client, task, (0, 6, "car"), (1, 6, "cyclist"))
    before = everything(client, task)
    in_jobs = [client.jobs.retrieve(j.id).get_annotations().to_dict() for j in jobs]

    # Slowed down so that the track is sent before the failure ends the run: the upload
    # thread runs beside the tracker, and on a loaded machine it could lose that race.
    result = cvat_aa_cli(
        "track",
        SCENE,
        "--job",
        str(jobs[2].id),
        "--upload-tracks",
        "1",
        env={"TRACK_SCENE_DELAY": "0.5"},
    )

    assert result.returncode == 6, result.stderr
    assert "Removed" in result.stderr or "removed" in result.stderr, result.stderr
    assert everything(client, task) == before
    assert [client.jobs.retrieve(j.id).get_annotations().to_dict() for j in jobs] == in_jobs


# --- failures, kills, rollback ---------------------------------------------------------------


def test_a_failed_run_removes_every_part_of_its_tracks_and_nothing_else(
    cvat_aa_cli, client, workspace
):
    # The tracker fails on frame 9, after the cyclist's track (frames 0-7, in two jobs) was
    # uploaded; the user's own track crosses the same boundary.
    task = scene_task(workspace, "track-failed", white=9)
    ids = label_ids(client, task)
    client.tasks.retrieve(task).update_annotations(
        models.PatchedLabeledDataRequest(
            tracks=[
                models.LabeledTrackRequest(
                    frame=2,
                    label_id=ids["cyclist"],
                    source="manual",
                    shapes=[
                        models.TrackedShapeRequest(
                            type="rectangle", frame=f, points=[2.0, 2.0, 9.0, 9.0], outside=out
                        )
                        for f, out in ((2, False), (8, False), (9, True))
                    ],
                )
            ]
        )
    )
    draw_boxes(client, task, (0, 0, "car"), (1, 0, "cyclist"))
    before = everything(client, task)

    result = cvat_aa_cli("track", SCENE, "--task", str(task), "--upload-tracks", "1")

    assert result.returncode == 6, result.stderr
    assert "frame 9" in result.stderr
    assert everything(client, task) == before


def wait_for_tracks(client, task_id: int, running, count: int, timeout: float = 120) -> None:
    """Wait until the task holds ``count`` tracks of the run (parts counted), or it ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running.poll() is None:
        if sum(t["source"] == "auto" for t in task_tracks(client, task_id)) >= count:
            return
        time.sleep(0.2)


def killed_run(cvat_aa_cli, client, task_id: int, journals: Path) -> tuple:
    """Starts a slow run, kills it (SIGKILL) once the cyclist's track is uploaded and before
    the car's is; returns the command's arguments."""
    args = (
        "track",
        SCENE,
        "--task",
        str(task_id),
        "--upload-tracks",
        "1",
        "--journal-dir",
        str(journals),
    )
    running = cvat_aa_cli(*args, background=True, env={"TRACK_SCENE_DELAY": "0.6"})
    # The cyclist's track crosses a job boundary: two parts.
    wait_for_tracks(client, task_id, running, 2)
    assert running.poll() is None, "the run ended before it could be killed"
    os.kill(running.pid, signal.SIGKILL)
    running.communicate()
    return args


def test_a_run_killed_with_sigkill_resumes_to_the_tracks_of_an_uninterrupted_run(
    cvat_aa_cli, client, workspace, tmp_path
):
    uninterrupted = scene_task(workspace, "track-uninterrupted")
    draw_boxes(client, uninterrupted, (0, 0, "car"), (1, 0, "cyclist"))
    assert cvat_aa_cli("track", SCENE, "--task", str(uninterrupted)).returncode == 0
    task = scene_task(workspace, "track-killed")
    users = draw_boxes(client, task, (0, 0, "car"), (1, 0, "cyclist"))
    args = killed_run(cvat_aa_cli, client, task, tmp_path / "journals")
    assert len(task_tracks(client, task)) < len(task_tracks(client, uninterrupted))

    result = cvat_aa_cli(*args, "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["resumed"], summary["tracks_resumed"], summary["tracks"]) == (True, 1, 2)
    assert keyframes_by_label(client, task) == keyframes_by_label(client, uninterrupted)
    assert_follows_the_scene(client, task)
    assert user_shapes(client, task) == users


def test_rolling_back_a_run_killed_with_sigkill_removes_every_part_of_its_tracks(
    cvat_aa_cli, client, workspace, tmp_path
):
    task = scene_task(workspace, "track-rollback")
    draw_boxes(client, task, (0, 0, "car"), (1, 0, "cyclist"))
    before = everything(client, task)
    journals = tmp_path / "journals"
    killed_run(cvat_aa_cli, client, task, journals)
    listed = cvat_aa_cli("runs", "list", "--journal-dir", str(journals), "--json", server=False)
    [run] = json.loads(listed.stdout)

    result = cvat_aa_cli("runs", "rollback", run["id"], "--journal-dir", str(journals))

    assert result.returncode == 0, result.stderr
    assert everything(client, task) == before
    listed = cvat_aa_cli("runs", "list", "--journal-dir", str(journals), "--json", server=False)
    assert json.loads(listed.stdout) == []


class Killed(BaseException):
    """What a SIGKILL does to a run, in this process: it stops, and nothing is cleaned up."""


def kill_while_sending(client, task_id: int, journals: Path, *, applied: bool) -> set[int]:
    """Track the task (every track in one piece) and stop the run as a SIGKILL does while
    that piece is being sent: the server has the tracks (``applied``, their reply was lost) or
    never got them, and the journal says only that they were being sent. Returns the ids of
    the tracks (parts) on the server then."""
    from cvat_aa.driver.journal import Journal, list_journals
    from cvat_aa.driver.upload import RollbackReport, Uploader

    closed = Journal.close
    with pytest.MonkeyPatch.context() as patch:
        if applied:

            def piece_uploaded(self, piece, keys):
                raise Killed

            patch.setattr(Journal, "piece_uploaded", piece_uploaded)
        else:
            sending = Journal.tracks_sending

            def tracks_sending(self, *args, **kwargs):
                sending(self, *args, **kwargs)
                raise Killed

            patch.setattr(Journal, "tracks_sending", tracks_sending)
        patch.setattr(Uploader, "rollback", lambda self: RollbackReport("task", 0, 0))
        patch.setattr(Journal, "close", lambda self, delete=False: closed(self))
        with pytest.raises(Killed):
            cvat_aa.track_task(
                client, task_id, ColourTracker(), journal_dir=journals, journal_key="k"
            )
    [info] = list_journals(journals)
    assert info.pieces_in_doubt == 1 and not info.uploaded
    return {t["id"] for t in task_tracks(client, task_id)}


@pytest.mark.parametrize("applied", [True, False], ids=["reply-lost", "never-arrived"])
def test_a_run_killed_while_sending_tracks_resumes_without_duplicates(
    client, workspace, tmp_path, monkeypatch, applied
):
    monkeypatch.setenv("CVAT_AA_LOAD_PLUGINS", "")
    uninterrupted = scene_task(workspace, "track-in-doubt-uninterrupted")
    draw_boxes(client, uninterrupted, (0, 0, "car"), (1, 0, "cyclist"))
    cvat_aa.track_task(client, uninterrupted, ColourTracker())
    task = scene_task(workspace, "track-in-doubt")
    users = draw_boxes(client, task, (0, 0, "car"), (1, 0, "cyclist"))
    left = kill_while_sending(client, task, tmp_path, applied=applied)
    # Each track is cut at every job boundary it crosses: 3 parts and 2.
    assert len(left) == (5 if applied else 0)

    summary = cvat_aa.track_task(
        client, task, ColourTracker(), journal_dir=tmp_path, journal_key="k"
    )

    assert summary.resumed and summary.tracks == 2
    assert summary.tracks_resumed == (2 if applied else 0)
    assert keyframes_by_label(client, task) == keyframes_by_label(client, uninterrupted)
    assert_follows_the_scene(client, task)
    assert user_shapes(client, task) == users


@pytest.mark.parametrize("applied", [True, False], ids=["reply-lost", "never-arrived"])
def test_rolling_back_a_run_killed_while_sending_removes_its_parts_not_a_later_runs(
    cvat_aa_cli, client, workspace, tmp_path, monkeypatch, applied
):
    from cvat_aa.driver.journal import list_journals

    monkeypatch.setenv("CVAT_AA_LOAD_PLUGINS", "")
    task = scene_task(workspace, "track-in-doubt-rollback")
    draw_boxes(client, task, (0, 0, "car"), (1, 0, "cyclist"))
    killed = kill_while_sending(client, task, tmp_path, applied=applied)
    if applied:
        # Another run from the same boxes: the same tracks again, cut the same way.
        cvat_aa.track_task(client, task, ColourTracker())
    else:
        # From the same boxes, over fewer frames: tracks that begin alike and end on frame 3.
        # (Identical tracks of a later run cannot be told from a piece that never arrived by
        # their content: the uploader takes them for the piece, as it documents.)
        cvat_aa.track_task(client, task, ColourTracker(), frames="0-2")
    later = [t for t in everything(client, task)["tracks"] if t["id"] not in killed]
    assert len(later) == (5 if applied else 2)
    [info] = list_journals(tmp_path)

    result = cvat_aa_cli("runs", "rollback", info.id, "--journal-dir", str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert f"Removed the {len(killed)} annotations" in result.stdout
    assert everything(client, task)["tracks"] == later


# --- a real tracker --------------------------------------------------------------------------


def test_the_opencv_tracker_plugin_follows_a_textured_square_across_jobs(
    client, workspace, monkeypatch
):
    pytest.importorskip("cvat_aa_opencv_tracker")
    import cv2

    monkeypatch.delenv("CVAT_AA_LOAD_PLUGINS", raising=False)
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(60, 200, (240, 320, 3), dtype=np.uint8), (0, 0), 4)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), (0, 0), 1.5)
    corners = [(40 + 7 * n, 50 + 5 * n) for n in range(FRAMES)]
    images = []
    for x, y in corners:
        pixels = background.copy()
        pixels[y : y + 40, x : x + 40] = texture
        images.append(PIL.Image.fromarray(pixels))
    task = workspace.create_task("track-opencv", images=images, labels=LABELS, segment_size=SEGMENT)
    x, y = corners[0]
    car = label_ids(client, task)["car"]
    client.tasks.retrieve(task).update_annotations(
        models.PatchedLabeledDataRequest(
            shapes=[
                models.LabeledShapeRequest(
                    type="rectangle", frame=0, label_id=car, points=[x, y, x + 40, y + 40]
                )
            ]
        )
    )

    summary = cvat_aa.track_task(client, task, "opencv-tracker", frames="0-9")

    assert (summary.tracks, summary.lost) == (1, 0)
    tracks = task_tracks(client, task)
    for n in range(10):
        [shown] = shown_boxes(tracks, car, n)
        x, y = corners[n]
        assert off_by(shown, [x, y, x + 40, y + 40]) <= 4, n
    assert shown_boxes(tracks, car, 10) == shown_boxes(tracks, car, 11) == []
