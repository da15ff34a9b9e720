"""`cvat-aa annotate` with organizations and for users who may not change what they see.

What the test server answers here is what real CVAT 2.73 answered to the same requests (see
cvat-aa-testing's test_server_permissions.py).
"""

from __future__ import annotations

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
