"""``cvat-aa sandbox``: tasks of a plugin author's own images and labels, kept with --data-dir."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from cvat_aa.cli import main
from cvat_aa_testing import TestServer, demo_images
from cvat_aa_testing import sandbox as sandbox_module

FUNCTION_FILE = """
    import cvat_aa

    spec = cvat_aa.DetectionFunctionSpec(
        labels=[
            cvat_aa.label_spec(
                "car", 0, type="rectangle",
                attributes=[cvat_aa.select_attribute_spec("color", 5, ["red", "blue"])],
            ),
            cvat_aa.skeleton_label_spec(
                "hand", 1,
                [cvat_aa.keypoint_spec("wrist", 10), cvat_aa.keypoint_spec("thumb", 11)],
                svg='<line data-type="edge" data-node-from="1" data-node-to="2"></line>'
                '<circle data-type="element node" data-node-id="1" data-label-id="10"></circle>'
                '<circle data-type="element node" data-node-id="2" data-label-id="11"></circle>',
            ),
        ]
    )


    def detect(context, image):
        return [
            cvat_aa.rectangle(0, [1, 1, 5, 5]),
            cvat_aa.skeleton(1, [cvat_aa.keypoint(10, [2, 2]), cvat_aa.keypoint(11, [3, 3])]),
        ]
"""


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path):
    """Runs ``cvat-aa sandbox --port 0 --data-dir DATA ARGS`` here; it stops once it has started.

    Returns (exit code, stdout, stderr).
    """
    started = threading.Event()
    started.set()
    monkeypatch.setattr(
        sandbox_module,
        "serve_sandbox",
        functools.partial(sandbox_module.serve_sandbox, stop=started),
    )

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["sandbox", "--port", "0", "--data-dir", str(tmp_path / "data"), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def reopen(data_dir: Path) -> TestServer:
    """The sandbox's server on its data directory, with the password the sandbox keeps."""
    password = json.loads((data_dir / "sandbox.json").read_text())["password"]
    return TestServer(data_dir=data_dir, password=password)


def task_named(server: TestServer, name: str) -> int:
    (task_id,) = [i for i in server.task_ids() if server.task(i)["name"] == name]
    return task_id


def frame_names(server: TestServer, task_id: int) -> list[str]:
    with server.make_client(cache_dir=server.data_dir / "client-cache") as client:
        return [frame.name for frame in client.tasks.retrieve(task_id).get_meta().frames]


def test_a_task_of_the_given_images_with_the_given_label_names(
    sandbox, tmp_path: Path, image_files: list[Path]
) -> None:
    folder = str(image_files[0].parent)
    code, out, _ = sandbox("--images", folder, "--labels", "person, car:rectangle")
    assert code == 0
    with reopen(tmp_path / "data") as server:
        task_id = task_named(server, "images")
        assert frame_names(server, task_id) == [path.name for path in image_files]
        assert [(label["name"], label["type"]) for label in server.labels(task_id)] == [
            ("person", "any"),
            ("car", "rectangle"),
        ]
    assert re.search(rf"^\s+{task_id}\s+images\s+\(5 images; labels: person, car\)$", out, re.M)


def test_labels_from_a_function_file_match_its_spec_so_annotating_needs_no_mapping(
    sandbox, tmp_path: Path, image_files: list[Path]
) -> None:
    import cvat_aa

    function_file = tmp_path / "hands.py"
    function_file.write_text(textwrap.dedent(FUNCTION_FILE))
    code, out, _ = sandbox("--images", str(image_files[0]), "--labels-from", str(function_file))
    assert code == 0
    assert f"--function-file {function_file} --server-host" in out
    with reopen(tmp_path / "data") as server:
        task_id = task_named(server, image_files[0].name)
        car, hand = server.labels(task_id)
        assert (car["name"], car["type"], [a["name"] for a in car["attributes"]]) == (
            "car",
            "rectangle",
            ["color"],
        )
        assert car["attributes"][0]["values"] == ["red", "blue"]
        assert (hand["type"], [s["name"] for s in hand["sublabels"]]) == (
            "skeleton",
            ["wrist", "thumb"],
        )
        # The function's own sublabel ids mean nothing in the task: the points are sent by
        # name, and the task names them by its own sublabels' ids, as CVAT does.
        wrist, thumb = (sub["id"] for sub in hand["sublabels"])
        assert f'data-node-id="1" data-label-id="{wrist}"' in hand["svg"]
        assert f'data-node-id="2" data-label-id="{thumb}"' in hand["svg"]
        with server.make_client(cache_dir=tmp_path / "cache") as client:
            summary = cvat_aa.annotate_task(
                client, task_id, cvat_aa.load_function(str(function_file))
            )
        assert summary.per_label == {"car": 1, "hand": 1}


def test_labels_from_an_installed_function_take_its_parameters_but_never_print_their_values(
    sandbox, tmp_path: Path, image_files: list[Path], make_distribution
) -> None:
    make_distribution(
        "cvat-aa-named",
        modules={
            "named_function": """
                import cvat_aa

                class Named:
                    def __init__(self, names):
                        self.spec = cvat_aa.DetectionFunctionSpec(labels=[
                            cvat_aa.label_spec(n, i, type="rectangle")
                            for i, n in enumerate(names.split("+"))
                        ])

                    def detect(self, context, image):
                        return []

                def create(names: str, api_key: str = "") -> Named:
                    return Named(names)
            """
        },
        entry_points={"cvat_aa.functions": {"named": "named_function:create"}},
    )
    code, out, _ = sandbox(
        "--images",
        str(image_files[0]),
        "--labels-from",
        "named",
        "-p",
        "names=str:bus+truck",
        "-p",
        "api_key=str:s3cret",
    )
    assert code == 0
    assert "--function named -p names=... -p api_key=... --server-host" in out
    assert "s3cret" not in out
    with reopen(tmp_path / "data") as server:
        task_id = task_named(server, image_files[0].name)
        assert [label["name"] for label in server.labels(task_id)] == ["bus", "truck"]


@pytest.mark.parametrize("wrapped", [False, True], ids=["a list", "functions show --json"])
def test_labels_from_a_json_file_in_cvat_form(
    sandbox, tmp_path: Path, image_files: list[Path], wrapped: bool
) -> None:
    labels = [
        {
            "id": 7,
            "name": "car",
            "type": "rectangle",
            "color": "#ff0000",
            "attributes": [
                {"id": 3, "name": "parked", "input_type": "checkbox", "mutable": True, "values": []}
            ],
        },
        {"name": "road", "type": "polygon"},
    ]
    labels_file = tmp_path / "labels.json"
    labels_file.write_text(json.dumps({"name": "f", "labels": labels} if wrapped else labels))
    code, _, err = sandbox("--images", str(image_files[0]), "--labels", str(labels_file))
    assert code == 0, err
    with reopen(tmp_path / "data") as server:
        car, road = server.labels(task_named(server, image_files[0].name))
        assert (car["color"], car["attributes"][0]["name"]) == ("#ff0000", "parked")
        assert (road["name"], road["type"]) == ("road", "polygon")


def test_each_images_option_makes_a_task_and_each_video_one_of_its_own(
    sandbox, tmp_path: Path, image_files: list[Path], video_file: Path
) -> None:
    code, _, err = sandbox(
        "--images",
        str(image_files[0]),
        str(image_files[1]),
        str(video_file),
        "--images",
        str(image_files[2].parent / "*.png"),
        "--labels",
        "car",
        "--name",
        "first two",
    )
    assert code == 0, err
    with reopen(tmp_path / "data") as server:
        first = task_named(server, "first two")
        assert frame_names(server, first) == [image_files[0].name, image_files[1].name]
        video = server.task(task_named(server, "clip.mp4"))
        assert (video["size"], video["data_original_chunk_type"]) == (12, "video")
        assert frame_names(server, task_named(server, "images")) == [p.name for p in image_files]


def test_labels_without_images_make_a_task_of_the_demo_photos(sandbox, tmp_path: Path) -> None:
    code, _, _ = sandbox("--labels", "cat,cup")
    assert code == 0
    with reopen(tmp_path / "data") as server:
        task_id = task_named(server, "demo images (cat,cup)")
        assert server.task(task_id)["size"] == len(demo_images())
        assert [label["name"] for label in server.labels(task_id)] == ["cat", "cup"]


def test_a_data_dir_keeps_the_password_and_the_tasks_across_restarts(
    sandbox, tmp_path: Path, image_files: list[Path]
) -> None:
    args = ("--images", str(image_files[0].parent), "--labels", "car")
    outputs = [sandbox(*args)[1] for _ in range(2)]
    passwords = [re.search(r"password:\s+(\S+)", out).group(1) for out in outputs]
    assert passwords[0] == passwords[1]
    assert outputs[0].split("Annotate")[0].split("Tasks:")[1] == (
        outputs[1].split("Annotate")[0].split("Tasks:")[1]
    )
    state = tmp_path / "data" / "sandbox.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    # Asked for with other labels, the images make a second task; the first one stays.
    sandbox(*args[:2], "--labels", "bus")
    with reopen(tmp_path / "data") as server:
        names = [server.task(i)["name"] for i in server.task_ids()]
        assert names == ["cvat-aa demo", "images", "images"]
        with server.make_client(cache_dir=tmp_path / "cache") as client:
            assert client.tasks.retrieve(1).name == "cvat-aa demo"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--images", "IMAGES"], "give the tasks' labels: --labels"),
        (["--images", "IMAGES", "--labels", "car:cube"], "labels from 'car:cube' are not valid"),
        (["--images", "IMAGES", "--labels", "car,car"], "label name 'car' is used more than once"),
        (["--images", "IMAGES", "--labels", "missing.json"], "cannot read the labels file"),
        (["--images", "no-such-folder", "--labels", "car"], "there is no file or folder"),
        (["--labels", "car", "--name", "a", "--name", "b"], "2 --name options for 1 tasks"),
        (["-p", "x=int:1"], "-p parameters are for --labels-from FUNCTION"),
        (["--labels-from", "no_such_function"], "no_such_function"),
    ],
)
def test_mistakes_are_one_sentence_and_exit_2(
    sandbox, image_files: list[Path], args: list[str], message: str
) -> None:
    args = [str(image_files[0].parent) if a == "IMAGES" else a for a in args]
    code, out, err = sandbox(*args)
    assert (code, out) == (2, "")
    assert err.startswith("cvat-aa: error: ") and message in err, err
    assert "Traceback" not in err


def test_a_port_in_use_says_to_choose_another(sandbox) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = sandbox("--port", str(port))
    assert code == 2
    assert f"port {port} is in use; choose another with --port" in err


def test_the_printed_annotate_command_annotates_the_new_task(
    tmp_path: Path, image_files: list[Path]
) -> None:
    function_file = tmp_path / "hands.py"
    function_file.write_text(textwrap.dedent(FUNCTION_FILE))
    process = subprocess.Popen(
        [sys.executable, "-m", "cvat_aa", "sandbox", "--port", "0", "--images",
         str(image_files[0].parent), "--labels-from", str(function_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = process.stdout.readline()
            assert line, process.stderr.read()
            lines.append(line.strip())
        (command,) = [line for line in lines if line.startswith("cvat-aa annotate")]
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
        result = subprocess.run(
            [sys.executable, "-m", "cvat_aa", *shlex.split(command)[1:], "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["per_label"] == {"car": 5, "hand": 5}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0
