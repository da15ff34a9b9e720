"""Native functions and their agents' queue, driven by cvat-cli 2.80's own agent.

``cvat-cli function create-native`` registers the function and ``cvat-cli function run-agent
--burst`` serves every request queued, unchanged, as subprocesses; the requests are queued as
CVAT's UI queues them (``POST /api/functions/requests/`` and ``/api/functions/{id}/run``).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import PIL.Image
import pytest
from cvat_aa_testing import TestServer

FUNCTION = """
import os
import time

import cvat_sdk.auto_annotation as cvataa

spec = cvataa.DetectionFunctionSpec(
    labels=[cvataa.label_spec("cat", 0, type="rectangle"), cvataa.label_spec("dog", 1)]
)


def detect(context, image):
    time.sleep(float(os.environ.get("AGENT_TEST_DELAY", "0")))
    found = [cvataa.rectangle(0, [0, 0, image.width, image.height])]
    if context.conf_threshold is None or context.conf_threshold < 0.5:
        found.append(cvataa.rectangle(1, [1, 1, 2, 2]))
    return found
"""


@pytest.fixture
def function_file(tmp_path: Path) -> Path:
    path = tmp_path / "cat_finder.py"
    path.write_text(textwrap.dedent(FUNCTION))
    return path


@pytest.fixture
def task_id(cvat_server: TestServer) -> int:
    """Four frames of widths 64 to 67 in two jobs; labels "cat" (rectangle) and "pet"."""
    images = [PIL.Image.new("RGB", (64 + i, 48)) for i in range(4)]
    return cvat_server.create_task(
        "pets",
        images=images,
        labels=[{"name": "cat", "type": "rectangle"}, {"name": "pet", "type": "rectangle"}],
        segment_size=2,
    )


@pytest.fixture
def function_id(cvat_cli, function_file: Path) -> int:
    result = cvat_cli(
        "function", "create-native", "cat finder", "--function-file", str(function_file)
    )
    return int(result.stdout.split()[-1])


def _agent_command(server: TestServer, function_id: int, function_file: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cvat_cli",
        *server.cli_args(),
        "function",
        "run-agent",
        str(function_id),
        "--function-file",
        str(function_file),
        "--burst",
    ]


def _boxes(server: TestServer, task_id: int) -> list[tuple[int, list[float]]]:
    return sorted((s["frame"], s["points"]) for s in server.annotations(task_id)["shapes"])


def test_create_native_registers_the_function_with_its_labels(
    cvat_server: TestServer, cvat_client, function_id: int
) -> None:
    _, response = cvat_client.api_client.call_api(
        "/api/functions/{id}", "GET", path_params={"id": function_id}
    )
    function = json.loads(response.data)
    assert (function["provider"], function["kind"], function["name"]) == (
        "native",
        "detector",
        "cat finder",
    )
    assert function["visibility"] == "private"
    assert function["owner"]["username"] == cvat_server.username
    assert [(label["name"], label["type"]) for label in function["labels_v2"]] == [
        ("cat", "rectangle"),
        ("dog", "any"),
    ]


def test_burst_agent_annotates_the_task_and_answers_a_single_frame(
    cvat_server: TestServer, cvat_cli, function_id: int, function_file: Path, task_id: int
) -> None:
    whole_task = cvat_server.submit_function_request(function_id, task_id)
    one_frame = cvat_server.submit_function_request(
        function_id, task_id, type="annotate_frame", frame=2
    )
    cvat_cli(
        "function", "run-agent", str(function_id), "--function-file", str(function_file), "--burst"
    )

    assert cvat_server.wait_function_request(whole_task)["status"] == "finished"
    # Only "cat" is in both the function and the task: "dog" is left out of the mapping.
    assert _boxes(cvat_server, task_id) == [(i, [0.0, 0.0, 64.0 + i, 48.0]) for i in range(4)]
    single = cvat_server.wait_function_request(one_frame)
    assert single["status"] == "finished"
    assert [(s["frame"], s["points"]) for s in single["result"]["annotations"]["shapes"]] == [
        (2, [0.0, 0.0, 66.0, 48.0])
    ]
