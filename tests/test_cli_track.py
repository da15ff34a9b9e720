"""`cvat-aa track` on a task or job of the test server: options, output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from cvat_aa.cli import main
from cvat_aa_testing import TestServer
from track_scene import box, frames, keyframes

SCENE = str(Path(__file__).with_name("track_scene.py"))
LABELS = [{"name": "car", "type": "rectangle"}, {"name": "person", "type": "rectangle"}]

DETECTOR = """
import cvat_aa
spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0)])
def detect(context, image):
    return []
"""


@pytest.fixture
def task(cvat_server: TestServer) -> int:
    task = cvat_server.create_task("cli", images=frames(8, 2), labels=LABELS, chunk_size=4)
    cvat_server.set_annotations(
        task,
        {
            "shapes": [
                {
                    "type": "rectangle",
                    "frame": 0,
                    "label_id": cvat_server.label_id(task, label),
                    "points": box(k, 0),
                }
                for k, label in ((0, "car"), (1, "person"))
            ]
        },
    )
    return task


def track(server: TestServer, *args: str) -> int:
    return main(["track", *args, *server.cli_args()])


def tracks(server: TestServer, task: int) -> list[dict]:
    return sorted(server.annotations(task)["tracks"], key=lambda t: t["label_id"])


def test_tracking_a_task_uploads_a_track_per_shape_and_says_where_to_see_it(
    cvat_server, task, capsys
):
    assert track(cvat_server, SCENE, "--task", str(task)) == 0

    out = capsys.readouterr().out
    assert out.startswith("Tracked 2 objects on task")
    assert f"See the result in CVAT: {cvat_server.url}/tasks/{task}" in out
    car, person = tracks(cvat_server, task)
    assert keyframes(car) == keyframes(person) == [(n, False) for n in range(8)]
    assert len(cvat_server.annotations(task)["shapes"]) == 2, "the start shapes stay"


def test_a_dry_run_prints_the_tracks_it_would_upload(cvat_server, task, capsys):
    assert track(cvat_server, SCENE, "--task", str(task), "--dry-run", "--frames", "0-4") == 0

    out = capsys.readouterr().out
    assert "dry run, nothing uploaded" in out
    assert "Would upload:" in out
    assert "  car: frames 0-4, 6 keyframes (followed)" in out  # and outside on frame 5
    assert tracks(cvat_server, task) == []


def test_labels_and_json(cvat_server, task, capsys):
    assert track(cvat_server, SCENE, "--task", str(task), "--labels", "person", "--json") == 0

    summary = json.loads(capsys.readouterr().out)
    assert (summary["tracks"], summary["per_label"]) == (1, {"person": 1})
    assert [t["label_id"] for t in tracks(cvat_server, task)] == [
        cvat_server.label_id(task, "person")
    ]


def test_a_job_is_tracked_over_its_own_frames(cvat_server, capsys):
    task = cvat_server.create_task(
        "cli", images=frames(8), labels=LABELS, chunk_size=4, segment_size=4
    )
    cvat_server.set_annotations(
        task,
        {
            "shapes": [
                {
                    "type": "rectangle",
                    "frame": 4,
                    "label_id": cvat_server.label_id(task, "car"),
                    "points": box(0, 4),
                }
            ]
        },
    )
    job = cvat_server.jobs(task)[1]["id"]

    assert track(cvat_server, SCENE, "--job", str(job)) == 0

    assert f"/tasks/{task}/jobs/{job}" in capsys.readouterr().out
    [made] = tracks(cvat_server, task)
    assert keyframes(made) == [(n, False) for n in range(4, 8)]


def test_replacing_the_start_shapes(cvat_server, task, capsys):
    assert track(cvat_server, SCENE, "--task", str(task), "--replace-start-shapes") == 0
    assert "2 start shapes replaced" in capsys.readouterr().out
    assert len(tracks(cvat_server, task)) == 2
    assert cvat_server.annotations(task)["shapes"] == []


def test_start_shapes_from_a_file(cvat_server, task, tmp_path):
    shapes = tmp_path / "start.json"
    shapes.write_text(
        json.dumps([{"label": "person", "frame": 3, "type": "rectangle", "points": box(0, 3)}])
    )
    assert track(cvat_server, SCENE, "--task", str(task), "--shapes-file", str(shapes)) == 0
    [made] = tracks(cvat_server, task)
    assert made["frame"] == 3 and made["label_id"] == cvat_server.label_id(task, "person")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give one of --task ID, --job ID, --video FILE or --images DIR"),
        (["--task", "1", "--job", "2"], "give one of --task ID"),
        (["--task", "1", "--output", "out.xml"], "--output applies only to tracking on files"),
        (["--images", "."], "needs --shapes-file FILE"),
        (["--images", ".", "--shapes-file", "x.json", "--dry-run"], "--dry-run apply only"),
        (
            ["--video", "x.mp4", "--shapes-file", "x.json", "--replace-start-shapes"],
            "--replace-start-shapes apply only",
        ),
        (["--video", "missing.mp4", "--shapes-file", "x.json"], "missing.mp4 does not exist"),
    ],
)
def test_bad_options_exit_2_before_anything_is_loaded(cvat_server, args, message, capsys):
    assert track(cvat_server, SCENE, *args) == 2
    assert message in capsys.readouterr().err


def test_a_bad_shapes_file_exits_2_naming_the_shape(cvat_server, task, tmp_path, capsys):
    shapes = tmp_path / "start.json"
    shapes.write_text(json.dumps([{"label": "car", "type": "rectangle", "points": "1,2"}]))
    assert track(cvat_server, SCENE, "--task", str(task), "--shapes-file", str(shapes)) == 2
    assert "shape 0: points must be a list of numbers" in capsys.readouterr().err


def test_a_shapes_file_with_a_label_the_task_lacks_exits_2(cvat_server, task, tmp_path, capsys):
    shapes = tmp_path / "start.json"
    shapes.write_text(json.dumps([{"label": "bus", "type": "rectangle", "points": [1, 2, 3, 4]}]))
    assert track(cvat_server, SCENE, "--task", str(task), "--shapes-file", str(shapes)) == 2
    assert "no label named 'bus'" in capsys.readouterr().err


def test_a_detection_function_exits_5_saying_it_cannot_track(cvat_server, task, tmp_path, capsys):
    detector = tmp_path / "detector.py"
    detector.write_text(DETECTOR)
    assert track(cvat_server, str(detector), "--task", str(task)) == 5
    err = capsys.readouterr().err
    assert "a detection function, not a tracking function" in err
    assert "cvat-aa annotate" in err
    assert tracks(cvat_server, task) == []


def test_an_unknown_function_exits_2(cvat_server, task, capsys):
    assert track(cvat_server, "no_such_tracker", "--task", str(task)) == 2
    assert "no function named 'no_such_tracker'" in capsys.readouterr().err


def test_a_missing_task_exits_4(cvat_server, capsys):
    assert track(cvat_server, SCENE, "--task", "999") == 4
    assert "task 999 was not found" in capsys.readouterr().err


def test_a_function_that_fails_exits_6_and_leaves_the_task_as_it_was(cvat_server, capsys):
    images = frames(6, 2)
    pixels = np.asarray(images[4]).copy()
    pixels[0, 0] = (255, 255, 255)
    images[4] = PIL.Image.fromarray(pixels)
    task = cvat_server.create_task("cli", images=images, labels=LABELS, chunk_size=4)
    cvat_server.set_annotations(
        task,
        {
            "shapes": [
                {
                    "type": "rectangle",
                    "frame": 0,
                    "label_id": cvat_server.label_id(task, "car"),
                    "points": box(0, 0),
                }
            ]
        },
    )
    before = cvat_server.annotations(task)

    assert track(cvat_server, SCENE, "--task", str(task)) == 6

    err = capsys.readouterr().err
    assert "the function failed on frame 4" in err and "ran out of memory" in err
    assert cvat_server.annotations(task) == before


def test_an_unusable_journal_directory_exits_2_before_the_function_is_loaded(
    cvat_server, task, tmp_path, capsys
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    marker = tmp_path / "loaded"
    function = tmp_path / "tracker.py"
    function.write_text(f"open({str(marker)!r}, 'w')\n" + Path(SCENE).read_text())
    code = track(cvat_server, str(function), "--task", str(task), "--journal-dir", str(blocker))
    assert code == 2
    assert "journal directory" in capsys.readouterr().err
    assert not marker.exists()
