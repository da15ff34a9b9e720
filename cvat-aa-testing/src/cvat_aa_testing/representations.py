"""JSON bodies of CVAT's read models (TaskRead, JobRead, Label, DataMetaRead, ...).

The field sets follow ``shared/cvat-api-subset.md`` §7: every field that the SDK requires or
reads is present with the right type; datetimes are tz-aware UTC.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from .storage import Transaction

if TYPE_CHECKING:
    from .permissions import Rules

#: The CVAT version a test server claims unless told otherwise: the one cvat-sdk 2.80 supports
#: without a warning.
SERVER_VERSION = "2.80.0"


def about(version: str) -> dict[str, Any]:
    return {
        "name": "Computer Vision Annotation Tool",
        "description": "A CVAT-compatible test server from cvat-aa (cvat-aa-testing).",
        "version": version,
        "logo_url": "",
        "subtitle": "cvat-aa test server",
    }


def basic_user(user: dict[str, Any] | None, base_url: str) -> dict[str, Any] | None:
    if user is None:
        return None
    return {
        "url": f"{base_url}api/users/{user['id']}",
        "id": user["id"],
        "username": user["username"],
        "first_name": user["first_name"],
        "last_name": user["last_name"],
    }


def _user_ref(tx: Transaction, user_id: int | None, base_url: str) -> dict[str, Any] | None:
    return basic_user(tx.user(user_id), base_url) if user_id is not None else None


def _groups(user: dict[str, Any]) -> list[str]:
    """CVAT's groups of a user: its privilege ("admin" for superusers), or none."""
    privilege = "admin" if user["is_superuser"] else user["privilege"]
    return [privilege] if privilege else []


def user(user: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {
        **basic_user(user, base_url),
        "email": user["email"],
        "groups": _groups(user),
        "is_staff": bool(user["is_superuser"]),
        "is_superuser": bool(user["is_superuser"]),
        "is_active": True,
        "last_login": user["last_login"],
        "date_joined": user["date_joined"],
        # CVAT gives analytics to superusers and to users made admins.
        "has_analytics_access": bool(user["is_superuser"]) or user["privilege"] == "admin",
    }


def attribute(attr: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": attr["id"],
        "name": attr["name"],
        "mutable": attr["mutable"],
        "input_type": attr["input_type"],
        "default_value": attr["default_value"],
        "values": attr["values"],
    }


def label(label: dict[str, Any]) -> dict[str, Any]:
    """CVAT's Label: ``svg`` only on skeletons, and ``task_id`` or ``project_id``, whichever
    the label belongs to (CVAT leaves out the other)."""
    body = {
        "id": label["id"],
        "name": label["name"],
        "color": label["color"],
        "attributes": [attribute(a) for a in label["attributes"]],
        "type": label["type"],
        "sublabels": [
            {
                "id": sub["id"],
                "name": sub["name"],
                "color": sub["color"],
                "attributes": [attribute(a) for a in sub["attributes"]],
                "type": sub["type"],
                "has_parent": True,
            }
            for sub in label["sublabels"]
        ],
        "has_parent": label["parent_id"] is not None,
        "parent_id": label["parent_id"],
    }
    if label["type"] == "skeleton":
        body["svg"] = label["svg"]
    for key in ("task_id", "project_id"):
        if label[key]:
            body[key] = label[key]
    return body


def _mode(task: dict[str, Any]) -> str:
    return {"image": "annotation", "video": "interpolation"}.get(task["media_type"], "")


def _media_type(task: dict[str, Any]) -> str:
    """CVAT 2.73's media type: "image" for video too (the mode tells them apart)."""
    return "image" if task["media_type"] else ""


def _visible_name(resource: dict[str, Any] | None, may: Any, scope: str) -> str | None:
    """``resource``'s name, or None when there is none or ``may(resource, scope)`` is false."""
    if resource is None or (may and not may(resource, scope)):
        return None
    return resource["name"]


def task(
    tx: Transaction, task: dict[str, Any], base_url: str, rules: Rules | None = None
) -> dict[str, Any]:
    """A task as its reader sees it: the project's name only if ``rules`` (the reader's; None:
    anyone's) let them see the project, as CVAT's TaskReadSerializer does."""
    project = tx.project(task["project_id"]) if task["project_id"] is not None else None
    jobs = tx.jobs(task["id"])
    has_data = task["media_type"] is not None
    body = {
        "url": f"{base_url}api/tasks/{task['id']}",
        "id": task["id"],
        "name": task["name"],
        "project_id": task["project_id"],
        "project_name": _visible_name(project, rules and rules.may_project, "view"),
        "mode": _mode(task),
        "owner": basic_user(tx.user(task["owner_id"]) if task["owner_id"] else None, base_url),
        "assignee": _user_ref(tx, task["assignee_id"], base_url),
        "bug_tracker": task["bug_tracker"],
        "created_date": task["created_date"],
        "updated_date": task["updated_date"],
        "overlap": task["overlap"],
        "segment_size": task["segment_size"],
        "status": "annotation",
        "data_chunk_size": task["chunk_size"],
        "data_compressed_chunk_type": task["compressed_chunk_type"],
        "data_original_chunk_type": task["original_chunk_type"],
        "data_cloud_storage_id": None,
        "guide_id": None,
        "size": task["size"],
        "image_quality": task["image_quality"],
        "data": task["id"] if has_data else None,
        "dimension": "2d" if has_data else "",
        "media_type": _media_type(task),
        "subset": task["subset"],
        "organization": task["organization_id"],
        "organization_id": task["organization_id"],
        "target_storage": None,
        "source_storage": None,
        "jobs": {
            "count": len(jobs),
            "completed": 0,
            "validation": 0,
            "url": f"{base_url}api/jobs?task_id={task['id']}",
        },
        "labels": {"url": f"{base_url}api/labels?task_id={task['id']}"},
        "assignee_updated_date": task["assignee_updated_date"],
        "validation_mode": None,
        "consensus_enabled": False,
    }
    if not has_data:
        # CVAT leaves out what only data defines until the task has some.
        for key in _DATA_FIELDS:
            del body[key]
    return body


_DATA_FIELDS = (
    "size",
    "image_quality",
    "data_chunk_size",
    "data_cloud_storage_id",
    "data_compressed_chunk_type",
    "data_original_chunk_type",
)


def job(
    tx: Transaction,
    job: dict[str, Any],
    task: dict[str, Any],
    base_url: str,
    rules: Rules | None = None,
) -> dict[str, Any]:
    """A job as its reader sees it: the task's and the project's names only if ``rules`` (the
    reader's; None: anyone's) let them see those, as CVAT's JobReadSerializer does (a job's
    assignee often may not see its task)."""
    project = tx.project(task["project_id"]) if task["project_id"] is not None else None
    return {
        "url": f"{base_url}api/jobs/{job['id']}",
        "id": job["id"],
        "task_id": task["id"],
        "task_name": _visible_name(task, rules and rules.may_task, "view"),
        "project_id": task["project_id"],
        "project_name": _visible_name(project, rules and rules.may_project, "view"),
        "assignee": _user_ref(tx, job["assignee_id"], base_url),
        "guide_id": None,
        "dimension": "2d",
        "mode": _mode(task),
        "media_type": _media_type(task),
        # CVAT's Job.get_bug_tracker: the task's, else its project's.
        "bug_tracker": task["bug_tracker"] or (project["bug_tracker"] if project else None),
        "status": "annotation",
        "stage": "annotation",
        "state": "new",
        "frame_count": job["stop_frame"] - job["start_frame"] + 1,
        "start_frame": job["start_frame"],
        "stop_frame": job["stop_frame"],
        "data_chunk_size": task["chunk_size"],
        "data_compressed_chunk_type": task["compressed_chunk_type"],
        "data_original_chunk_type": task["original_chunk_type"],
        "created_date": job["created_date"],
        "updated_date": job["updated_date"],
        "type": "annotation",
        "organization": task["organization_id"],
        "target_storage": None,
        "source_storage": None,
        "assignee_updated_date": job["assignee_updated_date"],
        "parent_job_id": None,
        "consensus_replicas": 0,
        "replicas_count": 0,
        "issues": {"count": 0, "url": f"{base_url}api/issues?job_id={job['id']}"},
        "labels": {"url": f"{base_url}api/labels?job_id={job['id']}"},
    }


def project(tx: Transaction, project: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {
        "url": f"{base_url}api/projects/{project['id']}",
        "id": project["id"],
        "name": project["name"],
        "owner": basic_user(
            tx.user(project["owner_id"]) if project["owner_id"] else None, base_url
        ),
        "assignee": _user_ref(tx, project["assignee_id"], base_url),
        "guide_id": None,
        "bug_tracker": project["bug_tracker"],
        "task_subsets": [],
        "created_date": project["created_date"],
        "updated_date": project["updated_date"],
        "status": "annotation",
        # CVAT's: that of the first task with data, none before.
        "dimension": "2d" if tx.project_has_data(project["id"]) else None,
        "organization": project["organization_id"],
        "organization_id": project["organization_id"],
        "target_storage": None,
        "source_storage": None,
        "assignee_updated_date": project["assignee_updated_date"],
        "tasks": {
            "count": tx.count_tasks_in_project(project["id"]),
            "url": f"{base_url}api/tasks?project_id={project['id']}",
        },
        "labels": {"url": f"{base_url}api/labels?project_id={project['id']}"},
    }


def organization(tx: Transaction, organization: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {
        "id": organization["id"],
        "slug": organization["slug"],
        "name": organization["name"],
        "description": organization["description"],
        "created_date": organization["created_date"],
        "updated_date": organization["updated_date"],
        "contact": {},
        "owner": _user_ref(tx, organization["owner_id"], base_url),
    }


def membership(tx: Transaction, membership: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {
        "id": membership["id"],
        "user": _user_ref(tx, membership["user_id"], base_url),
        "organization": membership["organization_id"],
        "is_active": True,
        "joined_date": membership["joined_date"],
        "role": membership["role"],
        "invitation": membership["invitation"],
    }


def invitation(tx: Transaction, membership: dict[str, Any], base_url: str) -> dict[str, Any]:
    org = tx.organization(membership["organization_id"])
    return {
        "key": membership["invitation"],
        "created_date": membership["joined_date"],
        "owner": _user_ref(tx, membership["invited_by"], base_url),
        "role": membership["role"],
        "user": _user_ref(tx, membership["user_id"], base_url),
        "organization": org["id"],
        "expired": None,
        "accepted": True,
        "organization_info": {"id": org["id"], "slug": org["slug"]},
    }


def data_meta(
    task: dict[str, Any],
    frames: list[dict[str, Any]],
    first_frame: int | None = None,
    last_frame: int | None = None,
) -> dict[str, Any]:
    """DataMetaRead of a task, or of one job's frames [first_frame, last_frame]."""
    if first_frame is not None:
        frames = [f for f in frames if first_frame <= f["frame"] <= last_frame]
    deleted = [f["frame"] for f in frames if f["deleted"]]
    listed = frames[:1] if task["media_type"] == "video" else frames
    step = int(task["frame_filter"].partition("=")[2] or 1)
    start_frame, stop_frame = task["start_frame"], task["stop_frame"]
    if first_frame is not None and frames:
        start_frame = task["start_frame"] + first_frame * step
        stop_frame = task["start_frame"] + last_frame * step
    return {
        "chunk_size": task["chunk_size"],
        "size": len(frames),
        "image_quality": task["image_quality"],
        "start_frame": start_frame,
        "stop_frame": stop_frame,
        "frame_filter": task["frame_filter"],
        "frames": [
            {
                "width": f["width"],
                "height": f["height"],
                "name": f["name"],
                "related_files": 0,
                "has_related_context": False,
            }
            for f in listed
        ],
        "deleted_frames": deleted,
        "included_frames": None,
        "chunks_updated_date": task["chunks_updated_date"] or task["created_date"],
        "storage": task["storage"],
        "cloud_storage_id": None,
        # A video's chapters (none in the videos the test server takes); images have none.
        "chapters": [] if task["media_type"] == "video" else None,
    }


#: How long CVAT's rq keeps a finished request, and a failed one (rq's default TTLs).
_RESULT_TTL = datetime.timedelta(seconds=500)
_FAILURE_TTL = datetime.timedelta(days=365)


def request(req: dict[str, Any], owner: dict[str, Any] | None) -> dict[str, Any]:
    """CVAT's Request of a task's data: a task creation has no progress (task_progress is
    never set) and no result id; its request expires rq's TTL after it ends."""
    expiry_date = None
    if req["finished_date"] is not None:
        ttl = _RESULT_TTL if req["status"] == "finished" else _FAILURE_TTL
        expiry_date = datetime.datetime.fromisoformat(req["finished_date"]) + ttl
    body = {
        "id": req["id"],
        "status": req["status"],
        "message": req["message"],
        "operation": {
            "type": req["operation_type"],
            "target": req["target"],
            "project_id": req["project_id"],
            "task_id": req["task_id"],
            "job_id": None,
            "format": None,
            "org_id": None,
            "lightweight": None,
        },
        "progress": 0.0,
        "created_date": req["created_date"],
        "started_date": req["created_date"],
        "finished_date": req["finished_date"],
        "expiry_date": expiry_date.isoformat(timespec="microseconds") if expiry_date else None,
        "result_url": None,
        "result_id": None,
    }
    if owner is not None:
        body["owner"] = {"id": owner["id"], "username": owner["username"]}
    return body
