"""The fields of CVAT 2.73's answers, as a real server sends them.

Each behaviour was seen on a real CVAT 2.73.0 (the same requests sent to both servers) and
follows its source: which keys a label, task, job, project or data meta carries and when, what
a finished task-creation request reports, the bodies of 404s, user logins and deletion.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cvat_aa_testing import TestServer
from server_test_data import api_request, make_images

SKELETON_SVG = (
    '<line data-type="edge" data-node-from="1" data-node-to="2"></line>'
    '<circle data-type="element node" data-node-id="1" data-label-name="head"></circle>'
    '<circle data-type="element node" data-node-id="2" data-label-name="foot"></circle>'
)
LABELS = [
    {"name": "car", "type": "rectangle"},
    {
        "name": "person",
        "type": "skeleton",
        "svg": SKELETON_SVG,
        "sublabels": [{"name": "head", "type": "points"}, {"name": "foot", "type": "points"}],
    },
]


def _labels(server: TestServer, query: str) -> dict[str, dict[str, Any]]:
    _, page = api_request(server, "GET", f"/api/labels?{query}")
    return {label["name"]: label for label in page["results"]}


# labels


def test_a_skeleton_s_svg_names_its_points_by_sublabel_id(cvat_server: TestServer) -> None:
    _, task = api_request(cvat_server, "POST", "/api/tasks", {"name": "t", "labels": LABELS})
    person = _labels(cvat_server, f"task_id={task['id']}")["person"]
    head, foot = (sub["id"] for sub in person["sublabels"])
    assert person["svg"] == SKELETON_SVG.replace(
        'data-label-name="head"', f'data-label-id="{head}"'
    ).replace('data-label-name="foot"', f'data-label-id="{foot}"')


def test_points_added_to_a_task_later_are_named_by_id_too(cvat_server: TestServer) -> None:
    _, task = api_request(cvat_server, "POST", "/api/tasks", {"name": "t", "labels": LABELS[:1]})
    api_request(cvat_server, "PATCH", f"/api/tasks/{task['id']}", {"labels": LABELS[1:]})
    person = _labels(cvat_server, f"task_id={task['id']}")["person"]
    assert "data-label-name" not in person["svg"]
    assert f'data-label-id="{person["sublabels"][0]["id"]}"' in person["svg"]


def test_only_skeletons_have_an_svg(cvat_server: TestServer) -> None:
    _, task = api_request(cvat_server, "POST", "/api/tasks", {"name": "t", "labels": LABELS})
    labels = _labels(cvat_server, f"task_id={task['id']}")
    assert "svg" not in labels["car"] and "svg" in labels["person"]


def test_a_task_s_label_names_its_task_and_a_project_s_its_project(
    cvat_server: TestServer,
) -> None:
    _, task = api_request(cvat_server, "POST", "/api/tasks", {"name": "t", "labels": LABELS})
    _, project = api_request(cvat_server, "POST", "/api/projects", {"name": "p", "labels": LABELS})
    task_label = _labels(cvat_server, f"task_id={task['id']}")["car"]
    project_label = _labels(cvat_server, f"project_id={project['id']}")["car"]
    assert task_label["task_id"] == task["id"] and "project_id" not in task_label
    assert project_label["project_id"] == project["id"] and "task_id" not in project_label


# tasks, projects and jobs

DATA_FIELDS = (
    "size",
    "image_quality",
    "data_chunk_size",
    "data_cloud_storage_id",
    "data_compressed_chunk_type",
    "data_original_chunk_type",
)


def test_a_task_without_data_has_no_data_fields_and_no_dimension(
    cvat_server: TestServer,
) -> None:
    _, task = api_request(cvat_server, "POST", "/api/tasks", {"name": "t", "labels": LABELS})
    assert [field for field in DATA_FIELDS if field in task] == []
    assert (task["dimension"], task["media_type"], task["consensus_enabled"]) == ("", "", False)


def test_a_task_with_data_has_them(cvat_server: TestServer, tmp_path: Path) -> None:
    task_id = cvat_server.create_task("t", images=make_images(tmp_path, 2), labels=LABELS)
    _, task = api_request(cvat_server, "GET", f"/api/tasks/{task_id}")
    assert [field for field in DATA_FIELDS if field not in task] == []
    assert (task["dimension"], task["consensus_enabled"]) == ("2d", False)


def test_a_project_has_a_dimension_once_a_task_in_it_has_data(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    _, project = api_request(cvat_server, "POST", "/api/projects", {"name": "p", "labels": LABELS})
    assert project["dimension"] is None
    cvat_server.create_task("t", images=make_images(tmp_path, 2), project_id=project["id"])
    _, project = api_request(cvat_server, "GET", f"/api/projects/{project['id']}")
    assert project["dimension"] == "2d"


def test_jobs_have_no_consensus_replicas(cvat_server: TestServer, tmp_path: Path) -> None:
    task_id = cvat_server.create_task("t", images=make_images(tmp_path, 2), labels=LABELS)
    _, page = api_request(cvat_server, "GET", f"/api/jobs?task_id={task_id}")
    _, job = api_request(cvat_server, "GET", f"/api/jobs/{page['results'][0]['id']}")
    for answer in (page["results"][0], job):
        assert (answer["consensus_replicas"], answer["replicas_count"]) == (0, 0)


def test_a_job_s_bug_tracker_is_its_task_s_else_its_project_s(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    _, project = api_request(cvat_server, "POST", "/api/projects", {"name": "p", "labels": LABELS})
    images = make_images(tmp_path, 2)
    jobs = {}
    for name, project_id, labels in (("alone", None, LABELS), ("in", project["id"], ())):
        task_id = cvat_server.create_task(name, images=images, project_id=project_id, labels=labels)
        _, page = api_request(cvat_server, "GET", f"/api/jobs?task_id={task_id}")
        jobs[name] = page["results"][0]
    assert (jobs["alone"]["bug_tracker"], jobs["in"]["bug_tracker"]) == (None, "")


def test_a_video_task_has_media_type_image_and_mode_interpolation(
    cvat_server: TestServer, video_file: Path
) -> None:
    task_id = cvat_server.create_video_task("v", video=video_file, labels=LABELS)
    _, task = api_request(cvat_server, "GET", f"/api/tasks/{task_id}")
    _, page = api_request(cvat_server, "GET", f"/api/jobs?task_id={task_id}")
    assert (task["media_type"], task["mode"]) == ("image", "interpolation")
    assert (page["results"][0]["media_type"], page["results"][0]["mode"]) == (
        "image",
        "interpolation",
    )


@pytest.mark.parametrize(
    ("media", "segment_size", "overlap"),
    [
        ("video", 0, 0),
        ("video", 10, 5),
        ("video", 5, 2),
        ("video", 12, 0),
        ("images", 2, 0),
        ("images", 0, 0),
    ],
)
def test_the_default_overlap_is_cvat_s(
    cvat_server: TestServer,
    video_file: Path,
    tmp_path: Path,
    media: str,
    segment_size: int,
    overlap: int,
) -> None:
    """task.py: 5 for a video (image media in interpolation mode) of several segments, else 0;
    at most half a segment."""
    if media == "video":
        task_id = cvat_server.create_video_task("v", video=video_file, segment_size=segment_size)
    else:
        images = make_images(tmp_path, 5)
        task_id = cvat_server.create_task("t", images=images, segment_size=segment_size)
    assert cvat_server.task(task_id)["overlap"] == overlap


def test_data_meta_has_chapters_for_video_only(
    cvat_server: TestServer, video_file: Path, tmp_path: Path
) -> None:
    video = cvat_server.create_video_task("v", video=video_file, labels=LABELS)
    images = cvat_server.create_task("t", images=make_images(tmp_path, 2), labels=LABELS)
    for task_id, chapters in ((video, []), (images, None)):
        job_id = cvat_server.jobs(task_id)[0]["id"]
        for path in (f"/api/tasks/{task_id}/data/meta", f"/api/jobs/{job_id}/data/meta"):
            _, meta = api_request(cvat_server, "GET", path)
            assert meta["chapters"] == chapters


# assignees


def test_a_task_s_new_assignee_is_dated_in_the_answer_alone(cvat_server: TestServer) -> None:
    """CVAT 2.73 leaves the date out of the fields it saves."""
    _, task = api_request(cvat_server, "POST", "/api/tasks", {"name": "t", "labels": LABELS})
    user_id = cvat_server.create_user("worker", "pass-1234")
    _, patched = api_request(
        cvat_server, "PATCH", f"/api/tasks/{task['id']}", {"assignee_id": user_id}
    )
    _, read = api_request(cvat_server, "GET", f"/api/tasks/{task['id']}")
    assert patched["assignee_updated_date"] == patched["updated_date"]
    assert read["assignee"]["id"] == user_id and read["assignee_updated_date"] is None


def test_a_job_s_new_assignee_is_dated(cvat_server: TestServer, tmp_path: Path) -> None:
    task_id = cvat_server.create_task("t", images=make_images(tmp_path, 2), labels=LABELS)
    job_id = cvat_server.jobs(task_id)[0]["id"]
    user_id = cvat_server.create_user("worker", "pass-1234")
    _, patched = api_request(cvat_server, "PATCH", f"/api/jobs/{job_id}", {"assignee": user_id})
    _, again = api_request(cvat_server, "PATCH", f"/api/jobs/{job_id}", {"assignee": user_id})
    assert patched["assignee_updated_date"] is not None
    assert again["assignee_updated_date"] == patched["assignee_updated_date"]


# the request that makes a task's data


def _post_data(server: TestServer, task_id: int, headers: dict[str, str], **kwargs: Any) -> Any:
    token = server.create_access_token()
    return urllib3.request(
        "POST",
        f"{server.url}/api/tasks/{task_id}/data/",
        headers={"Authorization": f"Bearer {token}", **headers},
        **kwargs,
    )


def test_the_finished_request_of_a_task_in_a_project(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    _, project = api_request(cvat_server, "POST", "/api/projects", {"name": "p", "labels": LABELS})
    _, task = api_request(
        cvat_server, "POST", "/api/tasks", {"name": "t", "project_id": project["id"]}
    )
    (image,) = make_images(tmp_path, 1)
    _post_data(cvat_server, task["id"], {"Upload-Start": ""})
    multiple = _post_data(
        cvat_server,
        task["id"],
        {"Upload-Multiple": ""},
        fields={"image_quality": "70", "client_files[0]": (image.name, image.read_bytes())},
    )
    finish = _post_data(cvat_server, task["id"], {"Upload-Finish": ""}, json={"image_quality": 70})
    _, request = api_request(cvat_server, "GET", f"/api/requests/{finish.json()['rq_id']}")

    assert (multiple.status, multiple.data) == (200, b"")
    assert request["status"] == "finished"
    assert (request["progress"], request["result_id"]) == (0.0, None)
    finished = datetime.datetime.fromisoformat(request["finished_date"])
    expires = datetime.datetime.fromisoformat(request["expiry_date"])
    assert expires - finished == datetime.timedelta(seconds=500)
    assert request["operation"] == {
        "type": "create:task",
        "target": "task",
        "project_id": project["id"],
        "task_id": task["id"],
        "job_id": None,
        "format": None,
        "org_id": None,
        "lightweight": None,
    }


def test_an_unknown_request_is_answered_in_plain_words(cvat_server: TestServer) -> None:
    response = urllib3.request(
        "GET",
        f"{cvat_server.url}/api/requests/action=create&target=task&target_id=999",
        headers={"Authorization": f"Bearer {cvat_server.create_access_token()}"},
    )
    assert (response.status, response.data) == (404, b"There is no request with specified id")


# 404s


@pytest.mark.parametrize(
    ("method", "path", "model"),
    [
        ("GET", "/api/tasks/999", "Task"),
        ("PATCH", "/api/tasks/999", "Task"),
        ("DELETE", "/api/tasks/999", "Task"),
        ("GET", "/api/tasks/999/data/meta", "Task"),
        ("GET", "/api/tasks/999/annotations/", "Task"),
        ("GET", "/api/jobs/999", "Job"),
        ("GET", "/api/jobs/999/annotations/", "Job"),
        ("GET", "/api/projects/999", "Project"),
        ("GET", "/api/users/999", "User"),
        ("DELETE", "/api/users/999", "User"),
        ("GET", "/api/labels/999", "Label"),
        ("GET", "/api/organizations/999", "Organization"),
        ("DELETE", "/api/memberships/999", "Membership"),
    ],
)
def test_a_missing_object_is_named_in_the_404(
    cvat_server: TestServer, method: str, path: str, model: str
) -> None:
    assert api_request(cvat_server, method, path, {} if method == "PATCH" else None) == (
        404,
        {"detail": f"No {model} matches the given query."},
    )


# users


def _login(server: TestServer, username: str, password: str) -> None:
    response = urllib3.request(
        "POST", f"{server.url}/api/auth/login", json={"username": username, "password": password}
    )
    assert response.status == 200


def _user(server: TestServer, user_id: int) -> dict[str, Any]:
    return api_request(server, "GET", f"/api/users/{user_id}")[1]


def test_last_login_is_the_time_of_the_last_password_login(cvat_server: TestServer) -> None:
    user_id = cvat_server.create_user("worker", "pass-1234")
    assert _user(cvat_server, user_id)["last_login"] is None
    _login(cvat_server, "worker", "pass-1234")
    first = _user(cvat_server, user_id)["last_login"]
    _login(cvat_server, "worker", "pass-1234")
    assert first is not None and _user(cvat_server, user_id)["last_login"] > first


def test_registering_logs_the_user_in(cvat_server: TestServer) -> None:
    password = "Pr0be-pass-123!"
    response = urllib3.request(
        "POST",
        f"{cvat_server.url}/api/auth/register",
        json={
            "username": "new",
            "email": "new@example.org",
            "password1": password,
            "password2": password,
            "first_name": "N",
            "last_name": "U",
        },
    )
    assert response.status == 201
    _, page = api_request(cvat_server, "GET", "/api/users?search=new")
    assert page["results"][0]["last_login"] is not None


def test_an_admin_has_analytics_access_and_a_user_not(cvat_server: TestServer) -> None:
    user_id = cvat_server.create_user("worker", "pass-1234")
    _, admin = api_request(cvat_server, "GET", "/api/users/self")
    assert (admin["has_analytics_access"], _user(cvat_server, user_id)["has_analytics_access"]) == (
        True,
        False,
    )


def test_an_admin_deletes_a_user_whose_tasks_stay_ownerless(
    cvat_server: TestServer, tmp_path: Path
) -> None:
    user_id = cvat_server.create_user("worker", "pass-1234")
    task_id = cvat_server.create_task("t", images=make_images(tmp_path, 1), owner="worker")
    assert api_request(cvat_server, "DELETE", f"/api/users/{user_id}") == (204, None)
    assert api_request(cvat_server, "GET", f"/api/users/{user_id}")[0] == 404
    assert cvat_server.task(task_id)["owner"] is None


def _as_user(server: TestServer, username: str, method: str, path: str) -> int:
    token = server.create_access_token(username)
    response = urllib3.request(
        method, f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status


def test_a_user_deletes_themself_but_no_one_else(cvat_server: TestServer) -> None:
    first = cvat_server.create_user("first", "pass-1234")
    second = cvat_server.create_user("second", "pass-1234")
    assert _as_user(cvat_server, "first", "DELETE", f"/api/users/{second}") == 403
    assert _as_user(cvat_server, "first", "DELETE", f"/api/users/{first}") == 204
    assert _user(cvat_server, second)["username"] == "second"
