"""Labels: listed by task, job, project or parent skeleton, and retrieved by id."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from .. import auth, representations
from .context import ServerContext
from .http import ID, Route, int_param, json_response, not_found, paginate


def list_labels(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    task_id = int_param(request, "task_id")
    project_id = int_param(request, "project_id")
    job_id = int_param(request, "job_id")
    parent_id = int_param(request, "parent_id")
    with ctx.storage.read() as tx:
        if job_id is not None:
            job = tx.job(job_id)
            task_id = job["task_id"] if job else -1
        if task_id is not None:
            task = tx.task(task_id)
            labels = tx.task_labels(task) if task else []
        elif project_id is not None:
            labels = tx.labels(project_id=project_id)
        else:
            labels = tx.labels()
        if parent_id is not None:
            labels = tx.labels(parent_id=parent_id)
    return json_response(200, paginate(request, [representations.label(label) for label in labels]))


def retrieve_label(
    ctx: ServerContext, request: Request, identity: auth.Identity, label_id: str
) -> Response:
    with ctx.storage.read() as tx:
        label = tx.label(int(label_id))
    if label is None:
        raise not_found()
    return json_response(200, representations.label(label))


ROUTES = [
    Route("GET", "/api/labels", list_labels),
    Route("GET", "/api/labels/" + ID.format("label_id"), retrieve_label),
]
