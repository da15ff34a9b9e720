"""Organizations and permissions of the test server, as real CVAT 2.73 answers them.

Each expectation here was first seen on a real CVAT 2.73 server (its own Rego rules): the
statuses, the bodies of the organization errors, and which lists show what.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cvat_aa_testing import TestServer

PASSWORD = "Pass-word-123x"
EMPTY = {"shapes": [], "tags": [], "tracks": []}


def call(
    server: TestServer,
    user: str | None,
    method: str,
    path: str,
    body: Any = None,
    org: str | None = None,
) -> tuple[int, Any]:
    """A request as ``user`` (Basic auth; None: the superuser), optionally with X-Organization."""
    username, password = (user, PASSWORD) if user else (server.username, server.password)
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    }
    if org is not None:
        headers["X-Organization"] = org
    response = urllib3.request(method, f"{server.url}{path}", json=body, headers=headers)
    return response.status, json.loads(response.data) if response.data else None


def ids(server: TestServer, user: str | None, path: str, org: str | None = None) -> list[int]:
    status, body = call(server, user, "GET", path, org=org)
    assert status == 200, body
    return sorted(item["id"] for item in body["results"])


@pytest.fixture
def org_world(cvat_server: TestServer, image_files: list[Path]) -> dict[str, int]:
    """alice owns organization "lab" (bob worker, carol supervisor, dave maintainer); eve is
    no member. alice has a two-job task in "lab" and one in her sandbox; bob is assigned
    the first job of each."""
    for name in ("alice", "bob", "carol", "dave", "eve"):
        cvat_server.create_user(name, PASSWORD, email=f"{name}@example.com")
    cvat_server.create_organization("lab", owner="alice")
    for name, role in (("bob", "worker"), ("carol", "supervisor"), ("dave", "maintainer")):
        cvat_server.add_member("lab", name, role)
    world = {}
    for key, org in (("org_task", "lab"), ("sandbox_task", None)):
        task_id = cvat_server.create_task(
            key,
            images=image_files[:4],
            labels=[{"name": "cat"}],
            segment_size=2,
            organization=org,
            owner="alice",
        )
        first_job, second_job = (job["id"] for job in cvat_server.jobs(task_id))
        cvat_server.assign(username="bob", job_id=first_job)
        world[key] = task_id
        world[key + "_jobs"] = (first_job, second_job)
    return world


def test_an_unknown_organization_is_a_404_that_names_it(cvat_server: TestServer) -> None:
    for path in ("/api/tasks", "/api/tasks/1", "/api/users/self", "/api/jobs"):
        assert call(cvat_server, None, "GET", path, org="nope") == (
            404,
            {"detail": "nope organization does not exist."},
        )
    assert call(cvat_server, None, "GET", "/api/tasks?org_id=99")[0] == 404
    assert call(cvat_server, None, "GET", "/api/server/about", org="nope")[0] == 200


def test_org_id_with_a_slug_and_differing_slugs_are_400(cvat_server: TestServer) -> None:
    cvat_server.create_organization("lab")
    assert call(cvat_server, None, "GET", "/api/tasks?org_id=1", org="lab")[0] == 400
    assert call(cvat_server, None, "GET", "/api/tasks?org=lab", org="other")[0] == 400
    assert call(cvat_server, None, "GET", "/api/tasks?org=lab", org="lab")[0] == 200


def test_tasks_created_in_an_organization_context_belong_to_it(
    cvat_server: TestServer, image_files: list[Path], cvat_client
) -> None:
    org_id = cvat_server.create_organization("lab")
    with cvat_client.organization_context("lab"):
        task = cvat_client.tasks.create_from_data(
            {"name": "in lab", "labels": [{"name": "cat"}]}, resources=image_files[:2]
        )
    task = cvat_client.tasks.retrieve(task.id)
    assert task.organization == org_id
    # The SDK asks for an organization task's jobs and labels with org_id=...
    assert len(task.get_jobs()) == 1
    assert [label.name for label in task.get_labels()] == ["cat"]


def test_lists_follow_the_organization_context(
    cvat_server: TestServer, org_world: dict[str, int]
) -> None:
    org_task, sandbox_task = org_world["org_task"], org_world["sandbox_task"]
    assert ids(cvat_server, "alice", "/api/tasks") == sorted([org_task, sandbox_task])
    assert ids(cvat_server, "alice", "/api/tasks?org=") == [sandbox_task]
    assert ids(cvat_server, "alice", "/api/tasks", org="lab") == [org_task]
    assert ids(cvat_server, None, "/api/tasks", org="lab") == [org_task]
    assert ids(cvat_server, "alice", f"/api/jobs?task_id={org_task}&org=") == []


def test_members_see_by_role(cvat_server: TestServer, org_world: dict[str, int]) -> None:
    org_task = org_world["org_task"]
    first_job, second_job = org_world["org_task_jobs"]
    # A maintainer sees every task of the organization, in its context only.
    assert ids(cvat_server, "dave", "/api/tasks", org="lab") == [org_task]
    assert ids(cvat_server, "dave", "/api/tasks") == []
    assert call(cvat_server, "dave", "GET", f"/api/tasks/{org_task}")[0] == 200
    # A supervisor or a worker sees what they own or are assigned.
    assert ids(cvat_server, "carol", "/api/tasks", org="lab") == []
    assert call(cvat_server, "carol", "GET", f"/api/tasks/{org_task}")[0] == 403
    assert ids(cvat_server, "bob", "/api/jobs", org="lab") == [first_job]
    # Someone outside the organization may not even list in it.
    assert call(cvat_server, "eve", "GET", "/api/tasks", org="lab")[0] == 403
    assert call(cvat_server, "eve", "GET", f"/api/tasks/{org_task}")[0] == 403
    assert call(cvat_server, "eve", "GET", f"/api/jobs/{second_job}")[0] == 403


@pytest.mark.parametrize("task_key", ["org_task", "sandbox_task"])
def test_a_job_assignee_works_on_the_job_but_cannot_see_the_task(
    cvat_server: TestServer, org_world: dict[str, int], task_key: str
) -> None:
    task_id = org_world[task_key]
    first_job, second_job = org_world[task_key + "_jobs"]
    assert call(cvat_server, "bob", "GET", f"/api/jobs/{first_job}")[0] == 200
    assert call(cvat_server, "bob", "GET", f"/api/jobs/{first_job}/data/meta")[0] == 200
    path = f"/api/jobs/{first_job}/annotations?action=create"
    assert call(cvat_server, "bob", "PATCH", path, EMPTY)[0] == 200
    for path in (
        f"/api/tasks/{task_id}",
        f"/api/tasks/{task_id}/annotations",
        f"/api/tasks/{task_id}/data/meta",
        f"/api/labels?task_id={task_id}",
        f"/api/jobs/{second_job}",
    ):
        assert call(cvat_server, "bob", "GET", path) == (
            403,
            {"detail": "You do not have permission to perform this action."},
        ), path
    assert ids(cvat_server, "bob", "/api/tasks") == []


def test_a_job_shows_its_task_name_only_to_who_may_see_the_task(
    cvat_server: TestServer, org_world: dict[str, int]
) -> None:
    # As CVAT's JobReadSerializer: task_name is null for a reader who may not see the task.
    first_job, _ = org_world["sandbox_task_jobs"]
    assert call(cvat_server, "bob", "GET", f"/api/jobs/{first_job}")[1]["task_name"] is None
    assert call(cvat_server, "alice", "GET", f"/api/jobs/{first_job}")[1]["task_name"] == (
        "sandbox_task"
    )
    listed = call(cvat_server, "bob", "GET", "/api/jobs")[1]["results"]
    assert [job["task_name"] for job in listed if job["id"] == first_job] == [None]


def test_a_user_without_a_group_sees_an_assigned_task_but_cannot_change_it(
    cvat_server: TestServer, org_world: dict[str, int]
) -> None:
    task_id = org_world["sandbox_task"]
    user_id = cvat_server.create_user("frank", PASSWORD, privilege=None)
    status, body = call(
        cvat_server, None, "PATCH", f"/api/tasks/{task_id}", {"assignee_id": user_id}
    )
    assert (status, body["assignee"]["username"]) == (200, "frank")
    assert call(cvat_server, "frank", "GET", f"/api/tasks/{task_id}/annotations")[0] == 200
    path = f"/api/tasks/{task_id}/annotations?action=create"
    assert call(cvat_server, "frank", "PATCH", path, EMPTY)[0] == 403
    assert call(cvat_server, "frank", "POST", "/api/tasks", {"name": "x"})[0] == 403


def test_an_empty_annotations_patch_changes_nothing(
    cvat_server: TestServer, org_world: dict[str, int]
) -> None:
    task_id = org_world["sandbox_task"]
    before = call(cvat_server, "alice", "GET", f"/api/tasks/{task_id}")[1]["updated_date"]
    path = f"/api/tasks/{task_id}/annotations?action=create"
    assert call(cvat_server, "alice", "PATCH", path, EMPTY)[0] == 200
    after = call(cvat_server, "alice", "GET", f"/api/tasks/{task_id}")[1]["updated_date"]
    assert after == before


def test_users_register_join_by_invitation_and_get_groups(cvat_server: TestServer) -> None:
    cvat_server.create_user("alice", PASSWORD)
    form = {
        "username": "gina",
        "email": "gina@example.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
        "first_name": "G",
        "last_name": "H",
    }
    assert call(cvat_server, None, "POST", "/api/auth/register", form)[0] == 201
    assert call(cvat_server, "alice", "POST", "/api/organizations", {"slug": "lab"})[0] == 201
    invitation = {"role": "worker", "email": "gina@example.com"}
    status, body = call(cvat_server, "alice", "POST", "/api/invitations", invitation, org="lab")
    assert (status, body["accepted"], body["user"]["username"]) == (201, True, "gina")
    members = call(cvat_server, "alice", "GET", "/api/memberships", org="lab")[1]["results"]
    assert {(m["user"]["username"], m["role"]) for m in members} == {
        ("alice", "owner"),
        ("gina", "worker"),
    }
    assert [
        o["slug"] for o in call(cvat_server, "gina", "GET", "/api/organizations")[1]["results"]
    ] == ["lab"]
    gina_id = body["user"]["id"]
    assert call(cvat_server, "alice", "PATCH", f"/api/users/{gina_id}", {"groups": []})[0] == 403
    status, user = call(cvat_server, None, "PATCH", f"/api/users/{gina_id}", {"groups": []})
    assert (status, user["groups"]) == (200, [])


def test_a_database_of_an_older_test_server_gets_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    from cvat_aa_testing.storage import Storage
    from cvat_aa_testing.storage.transaction import SCHEMA

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the tables as a server without organizations made them
        conn.executescript(SCHEMA)
        conn.execute(
            "INSERT INTO users (username, password_hash, date_joined) VALUES ('old', 'x', '')"
        )
    with Storage(path).read() as tx:
        assert tx.user_by_name("old")["privilege"] == "user"
        assert tx.tasks() == []
