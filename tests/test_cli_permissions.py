"""`cvat-aa annotate` with organizations and for users who may not change what they see.

What the test server answers here is what real CVAT 2.73 answered to the same requests (see
cvat-aa-testing's test_server_permissions.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import PIL.Image
import pytest
from cvat_aa import plugins
from cvat_aa_testing import TestServer
from test_cli_annotate import BOXES, RAISES, cvat_aa

PASSWORD = "Pass-word-123x"
IMAGES = [PIL.Image.new("RGB", (30 + i, 20), (i * 40, 0, 0)) for i in range(4)]
LABELS = [{"name": "car", "type": "rectangle"}]


@pytest.fixture
def site(make_distribution):
    dist_info = make_distribution(
        "cvat-aa-boxes",
        modules={"boxes_cli_plugin": BOXES, "raises_cli_plugin": RAISES},
        entry_points={
            plugins.FUNCTIONS_GROUP: {"boxes": "boxes_cli_plugin", "raises": "raises_cli_plugin"}
        },
    )
    return dist_info.parent


def as_user(server: TestServer, site, user: str, *args: str):
    return cvat_aa(server, site, *args, auth=f"{user}:{PASSWORD}")


def changes(server: TestServer) -> list[str]:
    """The requests that changed annotations (an empty PATCH is only the permission check)."""
    return [
        f"{entry.method} {entry.path}?{entry.query}"
        for entry in server.request_log.entries()
        if "/annotations" in entry.path and entry.method != "GET" and entry.bytes_in > 60
    ]


@pytest.fixture
def lab(cvat_server: TestServer) -> int:
    """Organization "lab" of alice, with a task of hers in it."""
    cvat_server.create_user("alice", PASSWORD)
    cvat_server.create_organization("lab", owner="alice")
    return cvat_server.create_task(
        "lab task", images=IMAGES, labels=LABELS, organization="lab", owner="alice"
    )


def test_a_task_of_an_organization_is_annotated_with_organization(cvat_server, site, lab):
    result = as_user(
        cvat_server,
        site,
        "alice",
        "annotate",
        str(lab),
        "--function",
        "boxes",
        "--organization",
        "lab",
    )
    assert result.returncode == 0, result.stderr
    assert len(cvat_server.annotations(lab)["shapes"]) == 4


def test_an_unknown_organization_exits_4_with_one_line(cvat_server, site, lab):
    result = as_user(
        cvat_server,
        site,
        "alice",
        "annotate",
        str(lab),
        "--function",
        "boxes",
        "--organization",
        "nope",
    )
    assert result.returncode == 4
    assert "no organization 'nope'" in result.stderr and "--organization" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_organization_one_is_not_in_exits_4(cvat_server, site, lab):
    cvat_server.create_user("eve", PASSWORD)
    result = as_user(
        cvat_server,
        site,
        "eve",
        "annotate",
        str(lab),
        "--function",
        "boxes",
        "--organization",
        "lab",
    )
    assert result.returncode == 4
    assert "no organization 'lab'" in result.stderr


@pytest.fixture
def viewer_task(cvat_server: TestServer) -> int:
    """A task assigned to frank, a user in no group: he may read it, not change it."""
    cvat_server.create_user("frank", PASSWORD, privilege=None)
    return cvat_server.create_task("seen", images=IMAGES, labels=LABELS, assignee="frank")


def test_a_user_who_may_only_read_the_task_is_refused_before_the_function_runs(
    cvat_server,
    site,
    viewer_task,
):
    # "raises" fails on every frame: exit 6 would mean it ran.
    result = as_user(
        cvat_server, site, "frank", "annotate", str(viewer_task), "--function", "raises"
    )
    assert result.returncode == 3, result.stderr
    assert f"user 'frank' may read task {viewer_task} but not change its annotations" in (
        result.stderr
    )
    assert "--dry-run" in result.stderr and "Traceback" not in result.stderr
    assert changes(cvat_server) == []


def test_a_dry_run_needs_only_to_read(cvat_server, site, viewer_task):
    result = as_user(
        cvat_server, site, "frank", "annotate", str(viewer_task), "--function", "boxes", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert cvat_server.annotations(viewer_task)["shapes"] == []


def test_a_job_of_a_read_only_user_is_refused_too(cvat_server, site, viewer_task):
    job_id = cvat_server.jobs(viewer_task)[0]["id"]
    result = as_user(
        cvat_server, site, "frank", "annotate", "--job", str(job_id), "--function", "raises"
    )
    assert result.returncode == 3
    assert f"may read job {job_id} but not change its annotations" in result.stderr


def test_a_project_run_stops_before_any_task_if_one_is_read_only(cvat_server, site):
    cvat_server.create_user("frank", PASSWORD, privilege=None)
    project = cvat_server.create_project("p", labels=LABELS, assignee="frank")
    for name in ("a", "b"):
        cvat_server.create_task(name, images=IMAGES, project_id=project)
    result = as_user(
        cvat_server, site, "frank", "annotate", "--project", str(project), "--function", "raises"
    )
    assert result.returncode == 3, result.stderr
    assert changes(cvat_server) == []


SIZES = """
    '''Boxes each frame from (0, 0) to its own size, so a box tells which image it was run on.'''
    import cvat_aa
    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])
    def detect(context, image):
        return [cvat_aa.rectangle(0, [0, 0, image.width - 1, image.height - 1])]
"""


@pytest.fixture
def sizes_site(make_distribution):
    dist_info = make_distribution(
        "cvat-aa-sizes",
        modules={"sizes_cli_plugin": SIZES},
        entry_points={plugins.FUNCTIONS_GROUP: {"sizes": "sizes_cli_plugin"}},
    )
    return dist_info.parent


def test_a_job_assignee_annotates_the_job_without_reading_the_task(cvat_server, sizes_site):
    # On CVAT 2.73 a user assigned only a job may read nothing of its task: a job run reads
    # the job's meta, chunks (numbered from the job's first frame) and labels.
    cvat_server.create_user("jo", PASSWORD)
    images = [PIL.Image.new("RGB", (30 + i, 20 + i)) for i in range(9)]
    # Jobs of 4 frames, chunks of 3: the second job starts inside the task's second chunk.
    task = cvat_server.create_task(
        "jobs", images=images, labels=LABELS, segment_size=4, chunk_size=3, deleted_frames=[6]
    )
    job = sorted(cvat_server.jobs(task), key=lambda j: j["start_frame"])[1]
    cvat_server.assign(username="jo", job_id=job["id"])

    result = subprocess_annotate(cvat_server, sizes_site, "jo", "--job", str(job["id"]))

    assert result.returncode == 0, result.stderr
    assert f"/tasks/{task}/jobs/{job['id']}" in result.stdout
    boxes = sorted((s["frame"], s["points"]) for s in cvat_server.annotations(task)["shapes"])
    assert boxes == [(f, [0, 0, 29 + f, 19 + f]) for f in (4, 5, 7)]
    task_paths = {f"/api/tasks/{task}", f"/api/tasks/{task}/"}
    assert not [
        entry.path
        for entry in cvat_server.request_log.entries()
        if entry.path.rstrip("/") in task_paths or entry.path.startswith(f"/api/tasks/{task}/")
    ]


def test_a_job_assignee_annotates_a_video_job(cvat_server, sizes_site, tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_image(PIL.Image.new("RGB", (64, 48), (i * 40, 0, 0)))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    cvat_server.create_user("jo", PASSWORD)
    task = cvat_server.create_video_task(
        "video", video=path, labels=LABELS, segment_size=4, overlap=0
    )
    job = sorted(cvat_server.jobs(task), key=lambda j: j["start_frame"])[1]
    cvat_server.assign(username="jo", job_id=job["id"])

    result = subprocess_annotate(cvat_server, sizes_site, "jo", "--job", str(job["id"]))

    assert result.returncode == 0, result.stderr
    shapes = cvat_server.annotations(task)["shapes"]
    assert sorted(s["frame"] for s in shapes) == [4, 5]
    assert all(s["points"] == [0, 0, 63, 47] for s in shapes)


def subprocess_annotate(server: TestServer, site, user: str, *args: str):
    environment = {**os.environ, "PYTHONPATH": str(site), "CVAT_AA_LOAD_PLUGINS": "sizes"}
    command = [
        sys.executable,
        "-m",
        "cvat_aa",
        "annotate",
        *args,
        "--function",
        "sizes",
        "--server-host",
        server.host,
        "--server-port",
        str(server.port),
        "--auth",
        f"{user}:{PASSWORD}",
    ]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, env=environment, timeout=120
    )
