"""The Ray executor on a local Ray cluster against the test server: the same results as a
local run, whatever happens to the actors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cvat_aa
import PIL.Image
import pytest
from cvat_aa import BadFunctionError, FunctionFailedError, LocalExecutor, RayExecutor
from cvat_aa_testing import TestServer

ray = pytest.importorskip("ray")

FUNCTION = """
import os
import sys
from pathlib import Path

import cvat_aa

spec = cvat_aa.DetectionFunctionSpec(
    labels=[cvat_aa.label_spec("car", 0, type="rectangle"), cvat_aa.label_spec("scene", 1, type="tag")]
)


def create(
    die_on: str = "", marker: str = "", raise_on: str = "", exit_on: str = "", bad: bool = False
):
    class Boxes:
        '''Boxes a corner that depends on the pixels; can die (once, with a marker) or raise on a frame.'''

        def __init__(self):
            self.spec = spec

        def detect(self, context, image):
            if context.frame_name == die_on and not (marker and Path(marker).exists()):
                if marker:
                    Path(marker).touch()
                os._exit(1)
            if context.frame_name == raise_on:
                raise RuntimeError("model exploded")
            if context.frame_name == exit_on:
                sys.exit(0)
            red = image.getpixel((0, 0))[0]
            return [
                cvat_aa.rectangle(7 if bad else 0, [1, 2, 10 + red % 20, image.height - 1]),
                cvat_aa.tag(1),
            ]

    return Boxes()
"""

LABELS = [{"name": "car", "type": "rectangle"}, {"name": "scene", "type": "tag"}]


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def function_file(tmp_path: Path) -> Path:
    path = tmp_path / "boxes.py"
    path.write_text(FUNCTION)
    return path


def make_task(server: TestServer, name: str = "frames", count: int = 20) -> int:
    images = [PIL.Image.new("RGB", (40 + i, 30), (i * 12 % 256, 50, 0)) for i in range(count)]
    return server.create_task(name, images=images, labels=LABELS, chunk_size=4)


def annotations(server: TestServer, task_id: int) -> list[tuple]:
    """The task's annotations without ids, by label name: comparable across tasks."""
    names = {label["id"]: label["name"] for label in server.labels(task_id)}
    stored = server.annotations(task_id)
    return sorted(
        [("tag", t["frame"], names[t["label_id"]], t["source"]) for t in stored["tags"]]
        + [
            (s["type"], s["frame"], names[s["label_id"]], s["source"], tuple(s["points"]))
            for s in stored["shapes"]
        ]
    )


def test_results_are_those_of_the_local_executor(
    ray_cluster, cvat_server, cvat_client, function_file
):
    local_task, ray_task = make_task(cvat_server, "local"), make_task(cvat_server, "ray")
    function = cvat_aa.load_function(str(function_file))
    local = cvat_aa.annotate_task(
        cvat_client, local_task, function, executor=LocalExecutor(), batch_size=3
    )
    with RayExecutor(str(function_file), actors=2) as executor:
        remote = cvat_aa.annotate_task(
            cvat_client, ray_task, function, executor=executor, batch_size=3
        )
    assert annotations(cvat_server, ray_task) == annotations(cvat_server, local_task)
    assert len(annotations(cvat_server, ray_task)) == 40
    assert (remote.frames, remote.annotations, remote.per_label) == (
        local.frames,
        local.annotations,
        local.per_label,
    )


def test_an_actor_killed_mid_run_changes_nothing(
    ray_cluster, cvat_server, cvat_client, function_file, tmp_path
):
    expected_task, task = make_task(cvat_server, "expected"), make_task(cvat_server, "killed")
    cvat_aa.annotate_task(cvat_client, expected_task, str(function_file))
    params = {"die_on": "frame_000009.png", "marker": str(tmp_path / "died")}
    function = cvat_aa.load_function(str(function_file), **params)
    with RayExecutor(function_file, params, actors=2) as executor:
        summary = cvat_aa.annotate_task(
            cvat_client, task, function, executor=executor, batch_size=2, upload_frames=4
        )
        assert executor.replaced == 1
    assert (tmp_path / "died").exists()
    assert annotations(cvat_server, task) == annotations(cvat_server, expected_task)
    assert summary.annotations == 40


def test_a_batch_whose_actor_always_dies_fails_naming_its_frames(
    ray_cluster, cvat_server, cvat_client, function_file
):
    task = make_task(cvat_server, count=4)
    params = {"die_on": "frame_000002.png"}  # no marker: it dies every time
    function = cvat_aa.load_function(str(function_file), **params)
    with (
        RayExecutor(function_file, params, actors=1) as executor,
        pytest.raises(
            FunctionFailedError, match=r"frames 2 \(frame_000002.png\), 3 .*died 3 times"
        ),
    ):
        cvat_aa.annotate_task(cvat_client, task, function, executor=executor, batch_size=2)
    assert cvat_server.annotations(task)["shapes"] == []


def test_a_bad_function_is_reported_as_with_the_local_executor(
    ray_cluster, cvat_server, cvat_client, function_file
):
    task = make_task(cvat_server, count=4)
    function = cvat_aa.load_function(str(function_file), bad=True)
    with pytest.raises(BadFunctionError) as local:
        cvat_aa.annotate_task(cvat_client, task, function)
    with (
        RayExecutor(function_file, {"bad": True}, actors=1) as executor,
        pytest.raises(BadFunctionError) as remote,
    ):
        cvat_aa.annotate_task(cvat_client, task, function, executor=executor)
    assert str(remote.value) == str(local.value)
    assert cvat_server.annotations(task)["shapes"] == []


def test_frames_the_function_raises_on_are_skipped_as_locally(
    ray_cluster, cvat_server, cvat_client, function_file
):
    task = make_task(cvat_server, count=6)
    function = cvat_aa.load_function(str(function_file), raise_on="frame_000004.png")
    with RayExecutor(function_file, {"raise_on": "frame_000004.png"}, actors=2) as executor:
        summary = cvat_aa.annotate_task(
            cvat_client, task, function, executor=executor, batch_size=3, on_error="skip"
        )
    assert summary.failed_frames == {4: "RuntimeError: model exploded"}
    assert sorted(s["frame"] for s in cvat_server.annotations(task)["shapes"]) == [0, 1, 2, 3, 5]


def test_a_function_object_is_sent_to_the_actors(ray_cluster, cvat_server, cvat_client):
    class Whole:
        spec = cvat_aa.DetectionFunctionSpec(
            labels=[cvat_aa.label_spec("car", 3, type="rectangle")]
        )

        def detect(self, context, image):
            return [cvat_aa.rectangle(3, [0, 0, image.width, image.height])]

    task = make_task(cvat_server, count=5)
    with RayExecutor(actors=1) as executor:
        cvat_aa.annotate_task(cvat_client, task, Whole(), executor=executor)
        assert executor.pids and os.getpid() not in executor.pids
    assert [
        s["points"]
        for s in sorted(cvat_server.annotations(task)["shapes"], key=lambda s: s["frame"])
    ] == [[0, 0, 40 + i, 30] for i in range(5)]


def test_one_executor_serves_several_tasks_loading_the_function_once(
    ray_cluster, cvat_server, cvat_client, function_file
):
    tasks = [make_task(cvat_server, f"t{i}", count=3) for i in range(3)]
    function = cvat_aa.load_function(str(function_file))
    with RayExecutor(function_file, actors=2) as executor:
        cvat_aa.annotate_task(cvat_client, tasks[0], function, executor=executor)
        pids = executor.pids
        summary = cvat_aa.annotate_tasks(cvat_client, tasks[1:], function, executor=executor)
        assert executor.pids == pids
    assert [t.task_id for t in summary.tasks] == tasks[1:]
    assert all(len(annotations(cvat_server, t)) == 6 for t in tasks)


def test_the_cli_runs_a_task_on_ray(cvat_server, function_file):
    task = make_task(cvat_server, count=6)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cvat_aa",
            "annotate",
            str(task),
            "--function-file",
            str(function_file),
            "--executor",
            "ray",
            "--actors",
            "2",
            "--batch-size",
            "2",
            "--json",
            *cvat_server.cli_args(),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["annotations"] == 12
    assert len(annotations(cvat_server, task)) == 12


def test_ray_options_without_the_ray_executor_are_a_usage_error(function_file):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cvat_aa",
            "annotate",
            "1",
            "--function-file",
            str(function_file),
            "--actors",
            "4",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--actors needs --executor ray" in result.stderr


def test_the_functions_own_exception_comes_back_from_an_actor_naming_its_frame(
    ray_cluster, cvat_server, cvat_client, function_file
):
    task = make_task(cvat_server, count=6)
    params = {"raise_on": "frame_000004.png"}
    function = cvat_aa.load_function(str(function_file), **params)
    with (
        RayExecutor(function_file, params, actors=2) as executor,
        pytest.raises(RuntimeError, match="model exploded") as info,
    ):
        cvat_aa.annotate_task(cvat_client, task, function, executor=executor, batch_size=3)
    assert type(info.value) is RuntimeError
    assert info.value.__notes__ == ["cvat-aa: the function failed on frame 4 (frame_000004.png)"]
    assert cvat_server.annotations(task)["shapes"] == []


def test_a_function_that_exits_in_an_actor_fails_on_its_frame_and_the_actor_lives(
    ray_cluster, cvat_server, cvat_client, function_file
):
    task = make_task(cvat_server, count=4)
    params = {"exit_on": "frame_000002.png"}
    function = cvat_aa.load_function(str(function_file), **params)
    with (
        RayExecutor(function_file, params, actors=1) as executor,
        pytest.raises(FunctionFailedError, match=r"frame 2 \(frame_000002.png\): SystemExit: 0"),
    ):
        cvat_aa.annotate_task(cvat_client, task, function, executor=executor, batch_size=2)
    assert executor.replaced == 0
    assert cvat_server.annotations(task)["shapes"] == []


# --- the function is built only in the actors ---------------------------------------------------

COUNTED = """
import os

import cvat_aa

spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])


def create(built: str):
    '''Appends the id of the process that builds it to the file ``built``.'''
    with open(built, "a") as file:
        file.write(f"{os.getpid()}\\n")

    class Whole:
        def __init__(self):
            self.spec = spec

        def detect(self, context, image):
            return [cvat_aa.rectangle(0, [0, 0, image.width, image.height])]

    return Whole()
"""


@pytest.fixture
def counted(tmp_path: Path) -> tuple[Path, Path]:
    """A function file whose factory records each process that builds the function."""
    path = tmp_path / "counted.py"
    path.write_text(COUNTED)
    return path, tmp_path / "built.txt"


def builders(built: Path) -> list[int]:
    return [int(line) for line in built.read_text().split()]


def run_cli(*args: object) -> tuple[subprocess.Popen, str, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "cvat_aa", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.communicate(timeout=180)
    return process, out, err


def test_a_task_run_on_ray_builds_the_function_only_in_the_actors(cvat_server, counted):
    path, built = counted
    task = make_task(cvat_server, count=4)
    process, out, err = run_cli(
        "annotate", task, "--function-file", path, "-p", f"built=str:{built}",
        "--executor", "ray", "--actors", "2", "--json", *cvat_server.cli_args(),
    )  # fmt: skip
    assert process.returncode == 0, err
    assert json.loads(out)["annotations"] == 4
    assert len(builders(built)) == 2
    assert process.pid not in builders(built)


def test_a_run_over_files_on_ray_builds_the_function_only_in_the_actors(tmp_path, counted):
    path, built = counted
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        PIL.Image.new("RGB", (20 + i, 10)).save(folder / f"{i}.png")
    process, out, err = run_cli(
        "annotate-files", folder, "--function-file", path, "-p", f"built=str:{built}",
        "--executor", "ray", "--actors", "1", "--output", tmp_path / "out.json", "--json",
    )  # fmt: skip
    assert process.returncode == 0, err
    assert (json.loads(out)["frames"], json.loads(out)["annotations"]) == (3, 3)
    assert len(builders(built)) == 1
    assert process.pid not in builders(built)
    boxes = json.loads((tmp_path / "out.json").read_text())["annotations"]
    assert sorted(box["bbox"] for box in boxes) == [[0, 0, 20 + i, 10] for i in range(3)]


def test_the_api_reads_the_spec_from_an_actor(ray_cluster, cvat_server, cvat_client, counted):
    path, built = counted
    task = make_task(cvat_server, count=3)
    with RayExecutor(path, {"built": str(built)}, actors=1) as executor:
        summary = cvat_aa.annotate_task(
            cvat_client, task, str(path), executor=executor, function_name="counted"
        )
        assert builders(built) == executor.pids
    assert (summary.function, summary.annotations) == ("counted", 3)


def test_a_run_over_files_on_ray_gives_what_a_local_run_gives(
    ray_cluster, tmp_path, function_file
):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        PIL.Image.new("RGB", (30 + i, 20), (i * 40, 0, 0)).save(folder / f"{i}.png")
    function = cvat_aa.load_function(str(function_file), raise_on="3.png")
    local = cvat_aa.annotate_images(function, [folder], batch_size=2, on_error="skip")
    with RayExecutor(function_file, {"raise_on": "3.png"}, actors=2) as executor:
        remote = cvat_aa.annotate_images(
            str(function_file), [folder], batch_size=2, on_error="skip", executor=executor
        )
    assert remote.skipped == local.skipped
    assert [f.shapes for f in remote.annotations.frames] == [
        f.shapes for f in local.annotations.frames
    ]
    assert remote.annotation_count == local.annotation_count == 8
