"""Jobs: listed (by task), retrieved and assigned; a task's jobs are made with its data."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from .. import auth, permissions, representations
from .context import ServerContext
from .http import ID, ApiError, Route, int_param, json_response, paginate, parse_json


def list_jobs(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    task_id = int_param(request, "task_id")
    base_url = request.host_url
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        rules.check_list()
        # Newest first, as CVAT lists jobs (and tasks, projects; labels oldest first).
        items = [
            representations.job(tx, job, task, base_url, rules)
            for job in reversed(tx.jobs(task_id))
            if rules.lists_job(job, task := tx.task(job["task_id"]))
        ]
    return json_response(200, paginate(request, items))


def retrieve_job(
    ctx: ServerContext, request: Request, identity: auth.Identity, job_id: str
) -> Response:
    with ctx.storage.read() as tx:
        job, task = ctx.job(tx, job_id)
        rules = identity.rules(tx)
        return json_response(200, representations.job(tx, job, task, request.host_url, rules))


def update_job(
    ctx: ServerContext, request: Request, identity: auth.Identity, job_id: str
) -> Response:
    """Assigns the job (``{"assignee": user id or null}``), the one change the server takes."""
    body = parse_json(request)
    if not isinstance(body, dict) or set(body) - {"assignee"}:
        raise ApiError(400, {"detail": "The test server changes only a job's assignee."})
    with ctx.storage.write() as tx:
        job, task = ctx.job(tx, job_id)
        rules = identity.rules(tx)
        if "assignee" in body:
            rules.require_job(job, task, "update:assignee")
            user_id = permissions.assignee(tx, rules, body, "assignee", task["organization_id"])
            tx.set_assignee("jobs", job["id"], user_id)
        return json_response(
            200, representations.job(tx, tx.job(job["id"]), task, request.host_url, rules)
        )


ROUTES = [
    Route("GET", "/api/jobs", list_jobs),
    Route("GET", "/api/jobs/" + ID.format("job_id"), retrieve_job, scope="view"),
    Route("PATCH", "/api/jobs/" + ID.format("job_id"), update_job, scope="view"),
]
