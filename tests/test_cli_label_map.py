"""`--label-map` and `--label-map-file` as a user runs them, and the advice on a mismatch."""

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

PEOPLE = """
    import cvat_aa

    spec = cvat_aa.DetectionFunctionSpec(
        labels=[
            cvat_aa.label_spec("person", 0, type="rectangle"),
            cvat_aa.skeleton_label_spec(
                "body", 1, [cvat_aa.keypoint_spec("nose", 0), cvat_aa.keypoint_spec("ankle", 1)]
            ),
            cvat_aa.label_spec("dog", 2, type="rectangle"),
        ]
    )

    def detect(context, image):
        return [
            cvat_aa.rectangle(0, [1, 1, 5, 5]),
            cvat_aa.skeleton(1, [cvat_aa.keypoint(0, [2, 2]), cvat_aa.keypoint(1, [3, 3])]),
            cvat_aa.rectangle(2, [1, 1, 3, 3]),
        ]
"""

TASK_LABELS = [
    {"name": "pedestrian", "type": "rectangle"},
    {
        "name": "skeleton",
        "type": "skeleton",
        "sublabels": [{"name": "head", "type": "points"}, {"name": "foot", "type": "points"}],
    },
    {"name": "dog", "type": "rectangle"},
]


@pytest.fixture
def site(make_distribution) -> Path:
    dist_info = make_distribution(
        "cvat-aa-people",
        modules={"people_cli_plugin": PEOPLE},
        entry_points={plugins.FUNCTIONS_GROUP: {"people": "people_cli_plugin"}},
    )
    return dist_info.parent


@pytest.fixture
def task(cvat_server: TestServer) -> int:
    return cvat_server.create_task(
        "people", images=[PIL.Image.new("RGB", (20, 10))], labels=TASK_LABELS
    )


def cvat_aa(server: TestServer, site: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(site), "CVAT_AA_LOAD_PLUGINS": "people"}
    command = [sys.executable, "-m", "cvat_aa", "annotate", "--function", "people", *args]
    command += ["--server-host", server.host, "--server-port", str(server.port)]
    command += ["--auth", f"{server.username}:{server.password}"]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, env=environment, timeout=120
    )


def stored(server: TestServer, task: int) -> list[str]:
    names = {label["id"]: label["name"] for label in server.labels(task)}
    return sorted(names[s["label_id"]] for s in server.annotations(task)["shapes"])


def test_a_mismatch_lists_both_sides_labels_and_suggests_the_options(cvat_server, site, task):
    result = cvat_aa(cvat_server, site, str(task))
    assert result.returncode == 5
    assert "label 'person' is not in dataset" in result.stderr
    assert "the task's labels are 'pedestrian', 'skeleton', 'dog'" in result.stderr
    assert "the function's are 'person', 'body', 'dog'" in result.stderr
    assert "--label-map FUNCTION_LABEL=TASK_LABEL" in result.stderr
    assert "--allow-unmatched-labels" in result.stderr
    assert cvat_server.annotations(task)["shapes"] == []


def test_label_map_pairs_and_a_file_put_labels_points_and_drops_in_place(
    cvat_server, site, task, tmp_path
):
    label_map = tmp_path / "map.json"
    label_map.write_text(
        json.dumps(
            {
                "body": {"name": "skeleton", "sublabels": {"nose": "head", "ankle": "foot"}},
                "dog": None,
            }
        )
    )
    result = cvat_aa(
        cvat_server,
        site,
        str(task),
        "--label-map",
        "person=pedestrian",
        "--label-map-file",
        str(label_map),
    )
    assert result.returncode == 0, result.stderr
    assert stored(cvat_server, task) == ["pedestrian", "skeleton"]


def test_a_map_to_a_label_the_task_lacks_exits_2_naming_the_task_labels(cvat_server, site, task):
    result = cvat_aa(cvat_server, site, str(task), "--label-map", "person=pedestrain")
    assert result.returncode == 2
    assert "puts 'person' on 'pedestrain', which is not a label of the task" in result.stderr
    assert "'pedestrian', 'skeleton', 'dog'" in result.stderr
    assert cvat_server.annotations(task)["shapes"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label-map", "person"], "is not FUNCTION_LABEL=TASK_LABEL"),
        (["--label-map-file", "{missing}"], "--label-map-file: cannot read"),
        (["--label-map-file", "{broken}"], "is not valid JSON"),
        (["--label-map-file", "{listed}"], "holds a JSON list"),
        (["--label-map-file", "{badly_formed}"], "unknown keys 'nam'"),
    ],
    ids=["no-equals", "missing-file", "broken-json", "not-an-object", "unknown-key"],
)
def test_a_bad_label_map_exits_2_before_connecting(
    cvat_server, site, task, tmp_path, args, message
):
    files = {
        "missing": tmp_path / "missing.json",
        "broken": tmp_path / "broken.json",
        "listed": tmp_path / "listed.json",
        "badly_formed": tmp_path / "badly_formed.json",
    }
    files["broken"].write_text("{person: pedestrian}")
    files["listed"].write_text('["person"]')
    files["badly_formed"].write_text('{"person": {"nam": "pedestrian"}}')
    result = cvat_aa(cvat_server, site, str(task), *[a.format(**files) for a in args])
    assert result.returncode == 2
    assert message in result.stderr
    assert len(cvat_server.request_log) == 0


def test_an_images_run_writes_labels_under_their_mapped_names(cvat_server, site, tmp_path):
    PIL.Image.new("RGB", (20, 10)).save(tmp_path / "a.png")
    output = tmp_path / "out.json"
    environment = {**os.environ, "PYTHONPATH": str(site), "CVAT_AA_LOAD_PLUGINS": "people"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cvat_aa",
            "annotate",
            "--function",
            "people",
            "--images",
            str(tmp_path / "a.png"),
            "--output",
            str(output),
            "--label-map",
            "person=pedestrian",
            "--label-map",
            "dog=hound",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    categories = {c["name"] for c in json.loads(output.read_text())["categories"]}
    assert {"pedestrian", "hound", "body"} <= categories
    assert "person" not in categories
