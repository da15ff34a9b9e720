"""Jobs: listed (by task) and retrieved. A task's jobs are made when its data is attached."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from .. import auth, representations
from .context import ServerContext
from .http import ID, Route, int_param, json_response, paginate


def list_jobs(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    task_id = int_param(request, "task_id")
    base_url = request.host_url
    with ctx.storage.read() as tx:
        # Newest first, as CVAT lists jobs (and tasks, projects; labels oldest first).
        items = [
            representations.job(tx, job, tx.task(job["task_id"]), base_url)
            for job in reversed(tx.jobs(task_id))
        ]
    return json_response(200, paginate(request, items))


def retrieve_job(
    ctx: ServerContext, request: Request, identity: auth.Identity, job_id: str
) -> Response:
    with ctx.storage.read() as tx:
        job, task = ctx.job(tx, job_id)
        return json_response(200, representations.job(tx, job, task, request.host_url))


ROUTES = [
    Route("GET", "/api/jobs", list_jobs),
    Route("GET", "/api/jobs/" + ID.format("job_id"), retrieve_job, scope="view"),
]
