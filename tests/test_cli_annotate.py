"""`cvat-aa annotate` as a user runs it: a subprocess against the test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import PIL.Image
import pytest

from cvat_aa import plugins
from cvat_aa_testing import TestServer

BOXES = """
    '''Boxes the middle of every frame.'''
    import cvat_aa

    def create(label: str = "car", margin: int = 2):
        class Boxes:
            spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec(label, 0, type="rectangle")])
            def detect(self, context, image):
                return [cvat_aa.rectangle(0, [margin, margin, image.width - margin, image.height - margin])]
        return Boxes()
"""

RAISES = """
    import cvat_aa
    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0)])
    def detect(context, image):
        raise RuntimeError("model exploded")
"""


@pytest.fixture
def site(make_distribution) -> Path:
    dist_info = make_distribution(
        "cvat-aa-boxes",
        modules={"boxes_cli_plugin": BOXES, "raises_cli_plugin": RAISES},
        entry_points={
            plugins.FUNCTIONS_GROUP: {"boxes": "boxes_cli_plugin", "raises": "raises_cli_plugin"}
        },
    )
    return dist_info.parent


@pytest.fixture
def task(cvat_server: TestServer) -> int:
    images = [PIL.Image.new("RGB", (30 + i, 20), (i * 40, 0, 0)) for i in range(5)]
    return cvat_server.create_task(
        "cli", images=images, labels=[{"name": "car", "type": "rectangle"}], segment_size=3
    )


def cvat_aa(server: TestServer, site: Path, *args: str, auth: str | None = None, env=None):
    environment = {
        **os.environ,
        "PYTHONPATH": str(site),
        "CVAT_AA_LOAD_PLUGINS": "boxes,raises",
        **(env or {}),
    }
    command = [sys.executable, "-m", "cvat_aa", *args]
    if auth != "none":
        command += [
            "--server-host",
            server.host,
            "--server-port",
            str(server.port),
            "--auth",
            auth or f"{server.username}:{server.password}",
        ]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)


def test_a_task_is_annotated_by_plugin_name(cvat_server, site, task):
    result = cvat_aa(
        cvat_server, site, "annotate", str(task), "--function", "boxes", "-p", "margin=int:3"
    )
    assert result.returncode == 0, result.stderr
    assert f"Annotated task {task}: 5 frames, 5 annotations" in result.stdout
    shapes = cvat_server.annotations(task)["shapes"]
    assert sorted((s["frame"], tuple(s["points"])) for s in shapes) == [
        (i, (3, 3, 27 + i, 17)) for i in range(5)
    ]


def test_a_job_is_annotated_and_the_summary_is_json(cvat_server, site, task):
    job = max(cvat_server.jobs(task), key=lambda j: j["start_frame"])
    result = cvat_aa(
        cvat_server, site, "annotate", "--job", str(job["id"]), "--function", "boxes", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["target"], summary["target_id"], summary["frames"]) == ("job", job["id"], 2)
    assert summary["per_label"] == {"car": 2}
    assert sorted(s["frame"] for s in cvat_server.annotations(task)["shapes"]) == [3, 4]


def test_a_personal_access_token_from_the_environment_works(cvat_server, site, task):
    token = cvat_server.create_access_token()
    result = cvat_aa(
        cvat_server,
        site,
        "annotate",
        str(task),
        "--function",
        "boxes",
        "--server-host",
        cvat_server.host,
        "--server-port",
        str(cvat_server.port),
        auth="none",
        env={"CVAT_ACCESS_TOKEN": token},
    )
    assert result.returncode == 0, result.stderr


def test_wrong_credentials_exit_3_without_traceback(cvat_server, site, task):
    result = cvat_aa(
        cvat_server, site, "annotate", str(task), "--function", "boxes", auth="admin:wrong"
    )
    assert result.returncode == 3
    assert "login failed" in result.stderr and "Traceback" not in result.stderr
    assert cvat_server.annotations(task)["shapes"] == []


def test_a_missing_task_exits_4(cvat_server, site, task):
    result = cvat_aa(cvat_server, site, "annotate", "999", "--function", "boxes")
    assert result.returncode == 4
    assert "task 999 was not found" in result.stderr


def test_an_unknown_function_exits_2_before_connecting(cvat_server, site, task):
    result = cvat_aa(cvat_server, site, "annotate", str(task), "--function", "bxoes")
    assert result.returncode == 2
    assert "no function named 'bxoes'" in result.stderr
    assert len(cvat_server.request_log) == 0


def test_a_bad_parameter_exits_2_and_lists_the_parameters(cvat_server, site, task):
    result = cvat_aa(
        cvat_server, site, "annotate", str(task), "--function", "boxes", "-p", "margin=str:3"
    )
    assert result.returncode == 2
    assert "label: str = 'car', margin: int = 2" in result.stderr


def test_a_label_mismatch_exits_5_and_uploads_nothing(cvat_server, site, task):
    result = cvat_aa(
        cvat_server, site, "annotate", str(task), "--function", "boxes", "-p", "label=str:boat"
    )
    assert result.returncode == 5
    assert "label 'boat' is not in dataset" in result.stderr
    assert cvat_server.annotations(task)["shapes"] == []


def test_a_function_that_raises_exits_6_naming_the_frame(cvat_server, site, task):
    result = cvat_aa(
        cvat_server, site, "annotate", str(task), "--function", "raises", "--batch-size", "1"
    )
    assert result.returncode == 6
    assert "frame 0 (frame_000000.png): RuntimeError: model exploded" in result.stderr
    assert "Traceback" not in result.stderr


def test_task_and_job_together_is_a_usage_error(cvat_server, site, task):
    result = cvat_aa(cvat_server, site, "annotate", str(task), "--job", "1", "--function", "boxes")
    assert (
        result.returncode == 2
        and "give one of a TASK_ID, --job JOB_ID or --project PROJECT_ID" in result.stderr
    )


def test_an_unreachable_server_exits_1_with_one_line(site, task, cvat_server):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cvat_aa",
            "annotate",
            str(task),
            "--function",
            "boxes",
            "--server-host",
            "http://127.0.0.1",
            "--server-port",
            "9",
            "--auth",
            "a:b",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=120,
    )
    assert result.returncode == 1
    assert "cannot reach the CVAT server" in result.stderr and "Traceback" not in result.stderr
