"""Starting and stopping servers, durability, the sandbox and the pytest plugin."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cvat_sdk
import PIL.Image
import pytest
from cvat_aa_testing import TestServer, ValidationError, demo_images
from cvat_sdk import models


def test_server_starts_and_stops_well_under_a_second() -> None:
    started = time.monotonic()
    with TestServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
        data_dir = server.data_dir
    assert time.monotonic() - started < 0.5
    assert not data_dir.exists()


def test_each_server_gets_its_own_port_and_data() -> None:
    with TestServer() as first, TestServer() as second:
        first.create_project("only in the first")
        assert first.port != second.port
        with second.make_client() as client:
            assert client.projects.list() == []


def test_state_survives_a_restart_on_the_same_data_dir(
    tmp_path: Path, image_files: list[Path]
) -> None:
    with TestServer(data_dir=tmp_path / "data") as server:
        task_id = server.create_task("kept", images=image_files, labels=[{"name": "cat"}])
        with server.make_client(cache_dir=tmp_path / "cache") as client:
            client.tasks.retrieve(task_id).update_annotations(
                models.PatchedLabeledDataRequest(
                    tags=[{"frame": 0, "label_id": server.label_id(task_id, "cat")}]
                )
            )
    with (
        TestServer(data_dir=tmp_path / "data") as server,
        server.make_client(cache_dir=tmp_path / "cache") as client,
    ):
        task = client.tasks.retrieve(task_id)
        assert (task.name, task.size, len(task.get_annotations().tags)) == ("kept", 5, 1)
        assert task.get_frame(4, quality="original").read() == image_files[4].read_bytes()


def test_python_helpers_accept_pil_images(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client
) -> None:
    task_id = cvat_server.create_task("pil", images=[PIL.Image.new("RGB", (30, 20), "red")] * 3)
    assert [f.name for f in cvat_client.tasks.retrieve(task_id).get_meta().frames] == [
        "frame_000000.png",
        "frame_000001.png",
        "frame_000002.png",
    ]


def test_python_helpers_check_annotations_like_the_api(
    cvat_server: TestServer, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files, labels=[{"name": "cat"}])
    with pytest.raises(ValidationError, match="label_id"):
        cvat_server.set_annotations(task_id, {"tags": [{"frame": 0, "label_id": 777}]})
    assert cvat_server.annotations(task_id)["tags"] == []


def test_demo_images_are_real_photos() -> None:
    images = demo_images()
    assert {path.name for path in images} >= {"astronaut.jpg", "chelsea_cat.jpg"}
    for path in images:
        with PIL.Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= 640


def test_demo_task_fixture_has_the_demo_photos(
    cvat_client: cvat_sdk.Client, cvat_demo_task: int
) -> None:
    task = cvat_client.tasks.retrieve(cvat_demo_task)
    assert task.size == len(demo_images())
    assert {"person", "face"} <= {label.name for label in task.get_labels()}


def test_sandbox_prints_its_url_and_serves_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from cvat_aa_testing import serve_sandbox; serve_sandbox(port=0)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = process.stdout.readline()
            assert line, process.stderr.read()
            lines.append(line.strip())
        output = "\n".join(lines)
        url = re.search(r"URL:\s+(\S+)", output).group(1)
        password = re.search(r"password:\s+(\S+)", output).group(1)
        task_id = int(re.search(r"demo task:\s+(\d+)", output).group(1))
        with cvat_sdk.Client(url, config=cvat_sdk.Config(cache_dir=tmp_path)) as client:
            client.login(("admin", password))
            assert client.tasks.retrieve(task_id).size == len(demo_images())
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode == 0


def test_sandbox_with_a_data_dir_seeds_the_demo_task_once(tmp_path: Path) -> None:
    code = "from cvat_aa_testing import serve_sandbox; import threading; e = threading.Event(); e.set(); serve_sandbox(port=0, data_dir={!r}, stop=e)"
    outputs = [
        subprocess.run(
            [sys.executable, "-c", code.format(str(tmp_path))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    assert [re.search(r"demo task:\s+(\d+)", output).group(1) for output in outputs] == ["1", "1"]


def test_fixtures_are_registered_for_other_projects(tmp_path: Path) -> None:
    (tmp_path / "test_plugin_use.py").write_text(
        textwrap.dedent(
            """
            def test_fixtures(cvat_server, cvat_client, cvat_cli, cvat_demo_task):
                assert cvat_client.tasks.retrieve(cvat_demo_task).name == "cvat-aa demo"
                assert cvat_cli("task", "ls").stdout.split() == [str(cvat_demo_task)]
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
