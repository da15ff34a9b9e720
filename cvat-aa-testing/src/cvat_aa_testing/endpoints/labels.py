"""Labels: listed by task, job, project or parent skeleton, and retrieved by id."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from .. import auth, permissions, representations
from ..storage import Transaction
from .context import ServerContext
from .http import ID, Route, int_param, json_response, not_found, paginate


def list_labels(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    task_id = int_param(request, "task_id")
    project_id = int_param(request, "project_id")
    job_id = int_param(request, "job_id")
    parent_id = int_param(request, "parent_id")
    with ctx.storage.read() as tx:
        # With a job, task or project: what the user may view of it (else 403), in whatever
        # organization it is; without: the labels of what the user may list.
        rules = identity.rules(tx)
        rules.check_list()
        if job_id is not None:
            job = tx.job(job_id)
            if job is not None:
                rules.require_job(job, tx.task(job["task_id"]), "view")
            task_id = job["task_id"] if job else -1
        if task_id is not None:
            task = tx.task(task_id)
            if task is not None and job_id is None:
                rules.require_task(task, "view")
            labels = tx.task_labels(task) if task else []
        elif project_id is not None:
            project = tx.project(project_id)
            if project is not None:
                rules.require_project(project, "view")
            labels = tx.labels(project_id=project_id)
        else:
            labels = [label for label in tx.labels() if _lists_label(tx, rules, label)]
        if parent_id is not None:
            labels = tx.labels(parent_id=parent_id)
    return json_response(200, paginate(request, [representations.label(label) for label in labels]))


def _lists_label(tx: Transaction, rules: permissions.Rules, label: dict[str, Any]) -> bool:
    if label["task_id"] is not None:
        return rules.lists_task(tx.task(label["task_id"]))
    return rules.lists_project(tx.project(label["project_id"]))


def retrieve_label(
    ctx: ServerContext, request: Request, identity: auth.Identity, label_id: str
) -> Response:
    with ctx.storage.read() as tx:
        label = tx.label(int(label_id))
    if label is None:
        raise not_found("Label")
    return json_response(200, representations.label(label))


ROUTES = [
    Route("GET", "/api/labels", list_labels),
    Route("GET", "/api/labels/" + ID.format("label_id"), retrieve_label),
]
