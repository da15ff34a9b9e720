"""cvat-aa's agent when things go wrong: a server failing one call in ten, an agent SIGKILLed
mid-request, two agents on one queue. Every request must end exactly once, and nothing may be
duplicated or lost in the tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import PIL.Image
import pytest
from cvat_aa.agent import queue as agent_queue
from cvat_aa.cli import main
from cvat_aa_testing import TestServer

FUNCTION = """
    import os
    import time
    import cvat_aa

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("cat", 0)])

    def detect(context, image):
        time.sleep(float(os.environ.get("AGENT_TEST_DELAY", "0")))
        return [cvat_aa.rectangle(0, [1, 1, image.width - 1, image.height - 1])]
"""


@pytest.fixture
def function_file(tmp_path: Path) -> Path:
    path = tmp_path / "cats.py"
    path.write_text(textwrap.dedent(FUNCTION))
    return path


def server_args(server: TestServer) -> list[str]:
    return [
        "--server-host",
        server.host,
        "--server-port",
        str(server.port),
        "--auth",
        f"{server.username}:{server.password}",
    ]


def create_function(server: TestServer, function_file: Path, capsys) -> int:
    code = main(["agent", "create", "--function-file", str(function_file), *server_args(server)])
    assert code == 0
    return int(capsys.readouterr().out)


def make_tasks(server: TestServer, count: int, frames: int) -> list[int]:
    images = [PIL.Image.new("RGB", (30 + i, 20), (i * 40, 0, 0)) for i in range(frames)]
    return [
        server.create_task(f"t{i}", images=images, labels=[{"name": "cat"}]) for i in range(count)
    ]


def boxes(server: TestServer, task: int) -> list[tuple[int, list[float]]]:
    return sorted((s["frame"], s["points"]) for s in server.annotations(task)["shapes"])


def expected_boxes(frames: int) -> list[tuple[int, list[float]]]:
    return [(i, [1.0, 1.0, 30.0 + i - 1, 19.0]) for i in range(frames)]


def run_agent(server: TestServer, function_id: int, function_file: Path, *extra: str) -> int:
    return main(
        [
            "agent",
            "run",
            "--function-file",
            str(function_file),
            "--function-id",
            str(function_id),
            *extra,
            *server_args(server),
        ]
    )


def until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_every_request_is_done_once_while_one_call_in_ten_fails(
    cvat_server: TestServer, function_file: Path, capsys, monkeypatch
) -> None:
    # The agent's back-off starts at 5 s as cvat-cli's does; shorter here to keep the test fast.
    monkeypatch.setattr(agent_queue, "RETRY_START", timedelta(milliseconds=50))
    function_id = create_function(cvat_server, function_file, capsys)
    tasks = make_tasks(cvat_server, count=5, frames=3)
    ids = [cvat_server.submit_function_request(function_id, task) for task in tasks]
    # Every call the agent makes may fail: the queue's, and the task's frames and metadata.
    cvat_server.faults.fail_randomly(0.1, path=r"^/api/", seed=7)
    assert run_agent(cvat_server, function_id, function_file, "--burst") == 0
    cvat_server.faults.fail_randomly(0)

    injected = sum(cvat_server.faults.injected.values())
    assert injected >= 3, f"only {injected} faults were injected: the test proves little"
    ended = [cvat_server.function_request(i) for i in ids]
    assert [r["status"] for r in ended] == ["finished"] * 5
    for task in tasks:
        assert boxes(cvat_server, task) == expected_boxes(3)


@pytest.mark.cvat_server(agent_lease_seconds=3)
def test_a_request_of_a_killed_agent_is_done_once_by_the_next(
    cvat_server: TestServer, function_file: Path, capsys
) -> None:
    function_id = create_function(cvat_server, function_file, capsys)
    (task,) = make_tasks(cvat_server, count=1, frames=4)
    request_id = cvat_server.submit_function_request(function_id, task)
    command = [sys.executable, "-m", "cvat_aa", "agent", "run", "--function-file"]
    command += [str(function_file), "--function-id", str(function_id), "--batch-size", "1"]
    stuck = subprocess.Popen(
        [*command, *server_args(cvat_server)],
        env={**os.environ, "AGENT_TEST_DELAY": "60"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until(lambda: cvat_server.function_request(request_id)["status"] == "started", 60)
    finally:
        stuck.send_signal(signal.SIGKILL)
        stuck.wait()
    assert boxes(cvat_server, task) == []
    until(lambda: cvat_server.function_request(request_id)["status"] == "queued", 15)
    assert run_agent(cvat_server, function_id, function_file, "--burst") == 0

    ended = cvat_server.function_request(request_id)
    assert ended["status"] == "finished"
    assert len(ended["assignments"]) == 2
    assert ended["completed_by"] == ended["assignments"][1]
    assert boxes(cvat_server, task) == expected_boxes(4)


def test_two_agents_on_one_queue_do_each_request_once(
    cvat_server: TestServer, function_file: Path, capsys
) -> None:
    function_id = create_function(cvat_server, function_file, capsys)
    tasks = make_tasks(cvat_server, count=6, frames=2)
    ids = [cvat_server.submit_function_request(function_id, task) for task in tasks]
    command = [sys.executable, "-m", "cvat_aa", "agent", "run", "--function-file"]
    command += [str(function_file), "--function-id", str(function_id), "--burst"]
    agents = [
        subprocess.Popen(
            [*command, *server_args(cvat_server)],
            env={**os.environ, "AGENT_TEST_DELAY": "0.1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [agent.communicate(timeout=120)[1] for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0], outputs
    ended = [cvat_server.function_request(i) for i in ids]
    assert [(r["status"], len(r["assignments"])) for r in ended] == [("finished", 1)] * 6
    for task in tasks:
        assert boxes(cvat_server, task) == expected_boxes(2)
