"""Projects: list, create (with labels), retrieve and delete (with their tasks' media)."""

from __future__ import annotations

import shutil

from werkzeug.wrappers import Request, Response

from .. import auth, permissions, representations
from ..task_data import create_labels, task_media_dir
from ..validation import parse_label_specs
from .context import ServerContext
from .http import (
    ID,
    ApiError,
    Route,
    empty_response,
    json_response,
    not_found,
    paginate,
    parse_json,
)


def list_projects(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        rules.check_list()
        items = [
            representations.project(tx, p, request.host_url)
            for p in tx.projects()
            if rules.lists_project(p)
        ]
    return json_response(200, paginate(request, items))


def create_project(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    body = parse_json(request)
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 256:
        raise ApiError(400, {"name": ["A project needs a name of 1 to 256 characters."]})
    labels = parse_label_specs(body.get("labels", []))
    organization = identity.organization.organization
    with ctx.storage.write() as tx:
        if not identity.rules(tx).may_create():
            raise permissions.forbidden()
        project_id = tx.create_project(
            name,
            identity.user["id"],
            body.get("bug_tracker") or "",
            organization_id=organization["id"] if organization else None,
        )
        create_labels(tx, labels, project_id=project_id)
        result = representations.project(tx, tx.project(project_id), request.host_url)
    return json_response(201, result)


def retrieve_project(
    ctx: ServerContext, request: Request, identity: auth.Identity, project_id: str
) -> Response:
    with ctx.storage.read() as tx:
        project = tx.project(int(project_id))
        if project is None:
            raise not_found("Project")
        return json_response(200, representations.project(tx, project, request.host_url))


def delete_project(
    ctx: ServerContext, request: Request, identity: auth.Identity, project_id: str
) -> Response:
    with ctx.storage.write() as tx:
        if tx.project(int(project_id)) is None:
            raise not_found("Project")
        task_ids = [t["id"] for t in tx.tasks(project_id=int(project_id))]
        tx.delete_project(int(project_id))
    for task_id in task_ids:
        shutil.rmtree(task_media_dir(ctx.media_root, task_id), ignore_errors=True)
    return empty_response(204)


ROUTES = [
    Route("GET", "/api/projects", list_projects),
    Route("POST", "/api/projects", create_project),
    Route("GET", "/api/projects/" + ID.format("project_id"), retrieve_project, scope="view"),
    Route("DELETE", "/api/projects/" + ID.format("project_id"), delete_project, scope="delete"),
]
