"""Answers that match real CVAT 2.73 in the details clients see.

Each behaviour here was seen on a real CVAT server (see docs/testing.md, "Differences from
real CVAT"); these tests keep the test server from drifting away from it again.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import cvat_sdk
import PIL.Image
import pytest
from cvat_aa.cli import main
from cvat_aa_testing import TestServer
from cvat_aa_testing import sandbox as sandbox_module
from cvat_aa_testing.label_colors import label_color
from server_test_data import api_request, make_images

SKELETON = {
    "name": "person",
    "type": "skeleton",
    "sublabels": [{"name": "head"}, {"name": "hand"}],
    "svg": '<line x1="1" y1="1" x2="2" y2="2" data-node-from="1" data-node-to="2"></line>',
}


@pytest.fixture
def task_id(cvat_server: TestServer, tmp_path: Path) -> int:
    return cvat_server.create_task(
        "fidelity",
        images=make_images(tmp_path, 4),
        labels=[{"name": "car", "type": "rectangle"}, {"name": "daytime"}, SKELETON],
        segment_size=2,
    )


@pytest.fixture
def label_ids(cvat_server: TestServer, task_id: int) -> dict[str, int]:
    ids = {}
    for label in cvat_server.labels(task_id):
        ids[label["name"]] = label["id"]
        ids.update({sub["name"]: sub["id"] for sub in label["sublabels"]})
    return ids


def _annotations_of_every_kind(ids: dict[str, int], **group: Any) -> dict[str, Any]:
    """A tag, a rectangle, a skeleton and tracks of both, all with the given group (if any).

    The tracks end on frame 1, in the first job: a track still visible at a job's end
    continues in the next job as a track of its own.
    """
    rectangle = {"type": "rectangle", "frame": 0, "points": [1, 2, 3, 4]}
    ended = {"type": "rectangle", "frame": 1, "points": [1, 2, 3, 4], "outside": True}
    return {
        "tags": [{"label_id": ids["daytime"], "frame": 0, **group}],
        "shapes": [
            {**rectangle, "label_id": ids["car"], **group},
            {
                "type": "skeleton",
                "label_id": ids["person"],
                "frame": 0,
                "points": [],
                **group,
                "elements": [
                    {"type": "points", "label_id": ids[name], "frame": 0, "points": [1, 1], **group}
                    for name in ("head", "hand")
                ],
            },
        ],
        "tracks": [
            {"label_id": ids["car"], "frame": 0, "shapes": [rectangle, ended], **group},
            {
                "label_id": ids["person"],
                "frame": 0,
                "shapes": [{"type": "skeleton", "frame": 0, "points": []}],
                **group,
                "elements": [
                    {
                        "label_id": ids[name],
                        "frame": 0,
                        "shapes": [
                            {"type": "points", "frame": 0, "points": [1, 1]},
                            {"type": "points", "frame": 1, "points": [1, 1], "outside": True},
                        ],
                        **group,
                    }
                    for name in ("head", "hand")
                ],
            },
        ],
    }


def _groups(data: dict[str, Any]) -> list[Any]:
    """The group of every tag, shape, track and element in LabeledData."""
    return [
        item["group"]
        for kind in ("tags", "shapes", "tracks")
        for annotation in data[kind]
        for item in [annotation, *annotation.get("elements", [])]
    ]


@pytest.mark.parametrize("group", [{}, {"group": None}, {"group": 0}], ids=["omitted", "null", "0"])
def test_ungrouped_annotations_have_group_0(
    cvat_server: TestServer, task_id: int, label_ids: dict[str, int], group: dict[str, Any]
) -> None:
    body = _annotations_of_every_kind(label_ids, **group)
    status, reply = api_request(
        cvat_server, "PATCH", f"/api/tasks/{task_id}/annotations/?action=create", body
    )
    assert status == 200
    _, stored = api_request(cvat_server, "GET", f"/api/tasks/{task_id}/annotations/")
    _, in_job = api_request(
        cvat_server, "GET", f"/api/jobs/{_first_job(cvat_server, task_id)}/annotations/"
    )
    assert _groups(reply) == _groups(stored) == _groups(in_job) == [0] * 9


def test_a_group_number_is_kept(
    cvat_server: TestServer, task_id: int, label_ids: dict[str, int]
) -> None:
    body = _annotations_of_every_kind(label_ids, group=3)
    status, reply = api_request(cvat_server, "PUT", f"/api/tasks/{task_id}/annotations/", body)
    assert status == 200
    _, stored = api_request(cvat_server, "GET", f"/api/tasks/{task_id}/annotations/")
    assert _groups(reply) == _groups(stored) == [3] * 9


def test_shapes_sent_without_a_score_have_score_1(
    cvat_server: TestServer, task_id: int, label_ids: dict[str, int]
) -> None:
    body = _annotations_of_every_kind(label_ids)
    api_request(cvat_server, "PATCH", f"/api/tasks/{task_id}/annotations/?action=create", body)
    _, stored = api_request(cvat_server, "GET", f"/api/tasks/{task_id}/annotations/")
    rectangle, skeleton = stored["shapes"]
    assert [rectangle["score"], skeleton["score"]] == [1.0, 1.0]
    assert [element["score"] for element in skeleton["elements"]] == [1.0, 1.0]


def test_annotations_list_no_intervals(cvat_server: TestServer, task_id: int) -> None:
    _, stored = api_request(cvat_server, "GET", f"/api/tasks/{task_id}/annotations/")
    _, replaced = api_request(cvat_server, "PUT", f"/api/tasks/{task_id}/annotations/", {})
    assert stored["intervals"] == replaced["intervals"] == []


def _first_job(server: TestServer, task_id: int) -> int:
    _, jobs = api_request(server, "GET", f"/api/jobs?task_id={task_id}")
    return min(job["id"] for job in jobs["results"])


# Label colours. The expected colours are those a real CVAT 2.73 gave the same requests.


def _skeleton(name: str, points: list[str]) -> dict[str, Any]:
    return {**SKELETON, "name": name, "sublabels": [{"name": point} for point in points]}


def _colors(server: TestServer, query: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    _, labels = api_request(server, "GET", f"/api/labels?{query}")
    return [
        (label["name"], label["color"], [(sub["name"], sub["color"]) for sub in label["sublabels"]])
        for label in labels["results"]
    ]


NEW_LABELS = [
    {"name": "a"},
    {"name": "A"},
    {"name": "car"},
    {"name": "Car"},
    _skeleton("sk", ["a", "A", "b"]),
    {"name": "own", "color": "#123456"},
]
NEW_LABEL_COLORS = [
    ("a", "#e400a8", []),
    ("A", "#e619b0", []),
    ("car", "#2080c0", []),
    ("Car", "#368cc6", []),
    ("sk", "#c960f7", [("a", "#e400a8"), ("A", "#e619b0"), ("b", "#7ca7df")]),
    ("own", "#123456", []),
]


def test_a_new_task_s_labels_get_cvat_s_colours(cvat_server: TestServer) -> None:
    # A name's own colour (predefined for "car", hashed for the others) unless a label before
    # it at the same level has it; a skeleton's points differ only among themselves.
    _, task = api_request(cvat_server, "POST", "/api/tasks", {"name": "t", "labels": NEW_LABELS})
    assert _colors(cvat_server, f"task_id={task['id']}") == NEW_LABEL_COLORS


def test_a_new_project_s_labels_get_cvat_s_colours(cvat_server: TestServer) -> None:
    _, project = api_request(
        cvat_server, "POST", "/api/projects", {"name": "p", "labels": NEW_LABELS}
    )
    assert _colors(cvat_server, f"project_id={project['id']}") == NEW_LABEL_COLORS


def test_labels_added_to_a_task_differ_from_all_its_labels(cvat_server: TestServer) -> None:
    _, task = api_request(cvat_server, "POST", "/api/tasks", {"name": "t", "labels": NEW_LABELS})
    added = [{"name": "a_"}, {"name": "b"}, _skeleton("sk2", ["a", "b", "c"]), {"name": "c"}]
    status, _ = api_request(cvat_server, "PATCH", f"/api/tasks/{task['id']}", {"labels": added})
    assert status == 200
    assert _colors(cvat_server, f"task_id={task['id']}")[len(NEW_LABELS) :] == [
        ("a_", "#e3090d", []),
        ("b", "#89afe2", []),
        ("sk2", "#9e6015", [("a", "#e933b9"), ("b", "#96b8e5"), ("c", "#906025")]),
        ("c", "#9b6f3a", []),
    ]


def test_a_colour_whose_tints_and_shades_are_all_taken_falls_between_used_colours() -> None:
    taken = ["#e400a8", "#e619b0", "#e933b9", "#ec4cc2", "#ee66ca", "#f17fd3", "#f499dc"]
    taken += ["#f6b2e4", "#f9cced", "#fce5f6", "#cd0097", "#b60086", "#9f0075", "#880064"]
    taken += ["#720054", "#5b0043", "#440032", "#2d0021", "#160010"]
    # What CVAT 2.73's get_label_color answers for the same arguments.
    assert label_color("a", taken) == "#080c29"


# List order: CVAT lists tasks, projects and jobs newest first, labels oldest first.


def _listed_ids(server: TestServer, query: str) -> list[int]:
    _, page = api_request(server, "GET", query)
    return [item["id"] for item in page["results"]]


def test_lists_are_newest_first_except_labels(cvat_server: TestServer, tmp_path: Path) -> None:
    _, project = api_request(
        cvat_server, "POST", "/api/projects", {"name": "p", "labels": [{"name": "x"}]}
    )
    images = make_images(tmp_path, 3)
    in_project = cvat_server.create_task(
        "t1", images=images, project_id=project["id"], segment_size=1
    )
    alone = cvat_server.create_task("t2", images=images, labels=[{"name": "y"}, {"name": "z"}])
    _, second_project = api_request(cvat_server, "POST", "/api/projects", {"name": "q"})

    job_ids = _listed_ids(cvat_server, f"/api/jobs?task_id={in_project}")
    assert job_ids == sorted(job_ids, reverse=True) and len(job_ids) == 3
    all_jobs = _listed_ids(cvat_server, "/api/jobs")
    assert all_jobs == sorted(all_jobs, reverse=True) and len(all_jobs) == 4
    assert _listed_ids(cvat_server, "/api/tasks") == [alone, in_project]
    assert _listed_ids(cvat_server, "/api/projects") == [second_project["id"], project["id"]]
    label_ids = _listed_ids(cvat_server, f"/api/labels?task_id={alone}")
    assert label_ids == sorted(label_ids) and len(label_ids) == 2


# Chunk sizes of tasks created without one.


def _chunk_size(server: TestServer, task_id: int) -> int:
    _, task = api_request(server, "GET", f"/api/tasks/{task_id}")
    return task["data_chunk_size"]


def test_video_chunks_hold_36_frames_whatever_the_frame_size(
    cvat_server: TestServer, video_file: Path
) -> None:
    # 64x48 frames: an imageset of them would take 72 per chunk.
    task_id = cvat_server.create_video_task("v", video=video_file)
    assert _chunk_size(cvat_server, task_id) == 36


def test_video_with_zip_chunks_follows_the_frame_size(
    cvat_server: TestServer, video_file: Path
) -> None:
    task_id = cvat_server.create_video_task("v", video=video_file, use_zip_chunks=True)
    assert _chunk_size(cvat_server, task_id) == 72


@pytest.mark.parametrize(("start_frame", "chunk_size"), [(0, 36), (1, 72)])
def test_image_chunk_size_follows_the_first_frame_alone(
    cvat_client: cvat_sdk.Client, tmp_path: Path, start_frame: int, chunk_size: int
) -> None:
    full_hd = tmp_path / "image_00.png"
    PIL.Image.new("RGB", (1920, 1080)).save(full_hd)
    images = [full_hd, *make_images(tmp_path / "small", 2)]
    task = cvat_client.tasks.create_from_data(
        {"name": "t"}, resources=images, data_params={"start_frame": start_frame}
    )
    assert task.data_chunk_size == chunk_size


# The CVAT version the server claims.

OLD_VERSION_WARNING = "Server version '2.73.0' is not compatible with SDK version"


def _connect(server: TestServer, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> list[str]:
    """Connects as cvat-sdk's make_client does; the warnings cvat-sdk logged."""
    caplog.set_level(logging.WARNING)
    with server.make_client(cache_dir=tmp_path / "cache"):
        pass
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_by_default_the_server_claims_a_version_cvat_sdk_supports(
    cvat_server: TestServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    _, about = api_request(cvat_server, "GET", "/api/server/about")
    assert about["version"] == cvat_server.version == "2.80.0"
    assert _connect(cvat_server, caplog, tmp_path) == []


def test_a_server_claiming_2_73_makes_cvat_sdk_warn_as_a_real_one_does(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with TestServer(version="2.73.0") as server:
        _, about = api_request(server, "GET", "/api/server/about")
        warnings = _connect(server, caplog, tmp_path)
    assert about["version"] == "2.73.0"
    assert [w for w in warnings if OLD_VERSION_WARNING in w] == warnings and len(warnings) == 1


@pytest.mark.cvat_server(version="2.73.0")
def test_the_cvat_server_marker_sets_the_version(cvat_server: TestServer) -> None:
    _, about = api_request(cvat_server, "GET", "/api/server/about")
    assert about["version"] == "2.73.0"


@pytest.mark.cvat_server(version="2.73.0")
def test_cvat_aa_annotates_on_a_2_73_server_and_warns_once(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    function_file = tmp_path / "boxes.py"
    function_file.write_text(BOX_FUNCTION)
    task_id = cvat_server.create_task(
        "t", images=make_images(tmp_path, 3), labels=[{"name": "car"}], segment_size=1
    )
    result = subprocess.run(
        [sys.executable, "-m", "cvat_aa", "annotate", str(task_id), "--function-file",
         str(function_file), *cvat_server.cli_args()],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(OLD_VERSION_WARNING) == 1
    assert len(cvat_server.annotations(task_id)["shapes"]) == 3


BOX_FUNCTION = """
import cvat_aa

spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])


def detect(context, image):
    return [cvat_aa.rectangle(0, [1, 1, 5, 5])]
"""


def test_the_sandbox_claims_the_version_given(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    started = threading.Event()
    started.set()
    monkeypatch.setattr(
        sandbox_module,
        "serve_sandbox",
        functools.partial(sandbox_module.serve_sandbox, stop=started),
    )
    data_dir = str(tmp_path / "data")
    assert (
        main(["sandbox", "--port", "0", "--data-dir", data_dir, "--server-version", "2.73.0"]) == 0
    )
    assert "  version:   CVAT 2.73.0\n" in capsys.readouterr().out
