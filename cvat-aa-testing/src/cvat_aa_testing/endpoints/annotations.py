"""Annotations of a task or a job: GET, PUT, PATCH (create, update, delete) and DELETE.

Every change runs CVAT's checks against the task's labels and the frames in scope, and
happens in one transaction: a rejected request changes nothing. Ids sent with PUT and PATCH
update are kept; one already used outside the request's scope is refused. Annotations live in
jobs, as on CVAT: what is sent to a task is sliced into its jobs, and a task's annotations are
its jobs' merged (:mod:`cvat_aa_testing.job_annotations`).
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from .. import auth
from ..job_annotations import (
    change_job_annotations,
    change_task_annotations,
    job_annotations,
    task_annotations,
)
from ..storage import IdConflictError
from ..validation import check_annotations, parse_labeled_data
from .context import ServerContext
from .http import ID, ApiError, Route, empty_response, json_response, parse_json


def get_task_annotations(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    with ctx.storage.read() as tx:
        task = ctx.task(tx, task_id)
        return json_response(200, task_annotations(tx, task, tx.task_labels(task)))


def put_task_annotations(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    return _change_annotations(ctx, request, int(task_id), None, "put")


def patch_task_annotations(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    return _change_annotations(ctx, request, int(task_id), None, _patch_action(request))


def delete_task_annotations(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    return _change_annotations(ctx, request, int(task_id), None, "clear")


def import_annotations(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    raise ApiError(
        400,
        ["The test server does not import annotation files; send annotations with PUT or PATCH."],
    )


def get_job_annotations(
    ctx: ServerContext, request: Request, identity: auth.Identity, job_id: str
) -> Response:
    with ctx.storage.read() as tx:
        job, task = ctx.job(tx, job_id)
        return json_response(200, job_annotations(tx, job, tx.task_labels(task)))


def put_job_annotations(
    ctx: ServerContext, request: Request, identity: auth.Identity, job_id: str
) -> Response:
    return _change_annotations(ctx, request, None, int(job_id), "put")


def patch_job_annotations(
    ctx: ServerContext, request: Request, identity: auth.Identity, job_id: str
) -> Response:
    return _change_annotations(ctx, request, None, int(job_id), _patch_action(request))


def delete_job_annotations(
    ctx: ServerContext, request: Request, identity: auth.Identity, job_id: str
) -> Response:
    return _change_annotations(ctx, request, None, int(job_id), "clear")


def _patch_action(request: Request) -> str:
    action = request.args.get("action", "")
    if action not in ("create", "update", "delete"):
        raise ApiError(
            400,
            {
                "action": [
                    f"Please specify a correct 'action' for the request: create, update or delete, not {action!r}."
                ]
            },
        )
    return action


def _change_annotations(
    ctx: ServerContext, request: Request, task_id: int | None, job_id: int | None, action: str
) -> Response:
    """PUT ("put"), PATCH ("create", "update", "delete") and DELETE ("clear")."""
    data = parse_labeled_data(parse_json(request)) if action != "clear" else None
    with ctx.storage.write() as tx:
        if job_id is not None:
            job, task = ctx.job(tx, job_id)
            first, last, scope = job["start_frame"], job["stop_frame"], "job"
        else:
            task = ctx.task(tx, task_id)
            first, last, scope = 0, task["size"] - 1, "task"
        if action in ("put", "create", "update"):
            check_annotations(data, tx.task_labels(task), range(first, last + 1), scope=scope)
        try:
            if job_id is not None:
                answer = change_job_annotations(tx, job, action, data)
            else:
                answer = change_task_annotations(tx, task, action, data)
        except IdConflictError as e:
            raise ApiError(
                400, {"id": [f"{e}; use an id of this {scope}'s annotations or none."]}
            ) from e
    if action == "clear":
        return empty_response(204)
    return json_response(200, answer)


ROUTES = [
    Route(
        "GET",
        "/api/tasks/" + ID.format("task_id") + "/annotations",
        get_task_annotations,
        scope="view:annotations",
    ),
    Route(
        "PUT",
        "/api/tasks/" + ID.format("task_id") + "/annotations",
        put_task_annotations,
        scope="update:annotations",
    ),
    Route(
        "PATCH",
        "/api/tasks/" + ID.format("task_id") + "/annotations",
        patch_task_annotations,
        scope="update:annotations",
    ),
    Route(
        "DELETE",
        "/api/tasks/" + ID.format("task_id") + "/annotations",
        delete_task_annotations,
        scope="delete:annotations",
    ),
    Route(
        "POST",
        "/api/tasks/" + ID.format("task_id") + "/annotations",
        import_annotations,
        scope="update:annotations",
    ),
    Route(
        "GET",
        "/api/jobs/" + ID.format("job_id") + "/annotations",
        get_job_annotations,
        scope="view:annotations",
    ),
    Route(
        "PUT",
        "/api/jobs/" + ID.format("job_id") + "/annotations",
        put_job_annotations,
        scope="update:annotations",
    ),
    Route(
        "PATCH",
        "/api/jobs/" + ID.format("job_id") + "/annotations",
        patch_job_annotations,
        scope="update:annotations",
    ),
    Route(
        "DELETE",
        "/api/jobs/" + ID.format("job_id") + "/annotations",
        delete_job_annotations,
        scope="delete:annotations",
    ),
]
