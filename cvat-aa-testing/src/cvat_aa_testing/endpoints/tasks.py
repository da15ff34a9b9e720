"""Tasks themselves: list (with CVAT's ``filter``), create, retrieve, update and delete.

A task's data arrives through :mod:`.uploads`, and is read through :mod:`.data`.
"""

from __future__ import annotations

import json
import shutil

from werkzeug.wrappers import Request, Response

from .. import auth, permissions, representations
from ..task_data import add_labels, create_labels, task_media_dir
from ..validation import parse_label_specs
from .context import ServerContext
from .filters import json_logic
from .http import (
    ID,
    ApiError,
    Route,
    empty_response,
    int_param,
    json_response,
    paginate,
    parse_json,
)


def list_tasks(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    project_id = int_param(request, "project_id")
    name = request.args.get("name") or None
    raw_filter = request.args.get("filter") or ""
    try:
        rule = json.loads(raw_filter) if raw_filter else None
    except ValueError as e:
        raise ApiError(400, {"filter": [f"The filter is not valid JSON: {e}"]}) from e
    base_url = request.host_url
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        rules.check_list()
        items = [
            representations.task(tx, task, base_url, rules)
            for task in tx.tasks(project_id=project_id, name=name)
            if rules.lists_task(task)
        ]
    if rule is not None:
        items = [
            item
            for item in items
            if json_logic(rule, {**item, "owner": (item["owner"] or {}).get("username")})
        ]
    return json_response(200, paginate(request, items))


def create_task(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    body = parse_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 256:
        raise ApiError(400, {"name": ["A task needs a name of 1 to 256 characters."]})
    project_id = body.get("project_id")
    labels = parse_label_specs(body.get("labels", []))
    errors: dict[str, list[str]] = {}
    for key in ("segment_size", "overlap"):
        value = body.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            errors[key] = ["A valid non-negative integer is required."]
    if project_id is not None and labels:
        errors["project_id"] = [
            "A task inside a project uses the project's labels; don't send labels too."
        ]
    if errors:
        raise ApiError(400, errors)
    organization = identity.organization.organization
    organization_id = organization["id"] if organization else None
    with ctx.storage.write() as tx:
        rules = identity.rules(tx)
        project = tx.project(project_id) if project_id is not None else None
        if project_id is not None and project is not None:
            rules.require_project(project, "create@task")
        elif not rules.may_create():
            raise permissions.forbidden()
        if project_id is not None and project is None:
            raise ApiError(
                400, {"project_id": [f'Invalid pk "{project_id}" - object does not exist.']}
            )
        if project is not None and project["organization_id"] != organization_id:
            raise ApiError(400, ["The task and its project should be in the same organization."])
        task_id = tx.create_task(
            {
                "name": name,
                "project_id": project_id,
                "organization_id": organization_id,
                "owner_id": identity.user["id"],
                "bug_tracker": body.get("bug_tracker") or "",
                "subset": body.get("subset") or "",
                "segment_size": body.get("segment_size") or 0,
                "overlap": body.get("overlap"),
            }
        )
        create_labels(tx, labels, task_id=task_id)
        result = representations.task(tx, tx.task(task_id), request.host_url)
    return json_response(201, result)


def retrieve_task(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    with ctx.storage.read() as tx:
        task = ctx.task(tx, task_id)
        rules = identity.rules(tx)
        return json_response(200, representations.task(tx, task, request.host_url, rules))


def update_task(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    body = parse_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    changes = {}
    for key in ("name", "bug_tracker", "subset"):
        if key in body:
            if not isinstance(body[key], str):
                raise ApiError(400, {key: ["Not a valid string."]})
            changes[key] = body[key]
    new_labels = body.get("labels") or []
    if any(isinstance(spec, dict) and "id" in spec for spec in new_labels):
        raise ApiError(
            400, {"labels": ["The test server can add labels to a task, not change them."]}
        )
    labels = parse_label_specs(new_labels)
    with ctx.storage.write() as tx:
        task = ctx.task(tx, task_id)
        rules = identity.rules(tx)
        # CVAT's scope per field: view, then update:desc, update:assignee, update:owner.
        rules.require_task(task, "view")
        if changes or labels:
            rules.require_task(task, "update:desc")
        for key, scope in (("assignee_id", "update:assignee"), ("owner_id", "update:owner")):
            if key in body:
                rules.require_task(task, scope)
                user_id = permissions.assignee(tx, rules, body, key, task["organization_id"])
                changes[key] = user_id
        if labels and task["project_id"] is not None:
            raise ApiError(400, {"labels": ["A task inside a project uses the project's labels."]})
        existing = {label["name"] for label in tx.task_labels(task)}
        clashes = [spec["name"] for spec in labels if spec["name"] in existing]
        if clashes:
            raise ApiError(
                400, {"labels": [f"The task already has the labels {', '.join(clashes)}."]}
            )
        if changes:
            tx.update_task(task["id"], changes)
        add_labels(tx, labels, task_id=task["id"])
        tx.touch_task(task["id"])
        result = representations.task(tx, tx.task(task["id"]), request.host_url, rules)
        if changes.get("assignee_id", task["assignee_id"]) != task["assignee_id"]:
            # CVAT 2.73 dates a new assignee in its answer but does not save the date (its
            # update_fields leave it out): the task read back has the old one.
            result["assignee_updated_date"] = result["updated_date"]
        return json_response(200, result)


def delete_task(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    with ctx.storage.write() as tx:
        task = ctx.task(tx, task_id)
        tx.delete_task(task["id"])
    shutil.rmtree(task_media_dir(ctx.media_root, task["id"]), ignore_errors=True)
    return empty_response(204)


ROUTES = [
    Route("GET", "/api/tasks", list_tasks),
    Route("POST", "/api/tasks", create_task),
    Route("GET", "/api/tasks/" + ID.format("task_id"), retrieve_task, scope="view"),
    Route("PATCH", "/api/tasks/" + ID.format("task_id"), update_task),
    Route("DELETE", "/api/tasks/" + ID.format("task_id"), delete_task, scope="delete"),
]
