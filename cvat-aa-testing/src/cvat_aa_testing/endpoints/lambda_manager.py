"""CVAT 2.73's lambda manager: ``/api/lambda/functions`` and ``/api/lambda/requests``.

Functions come from the server's Nuclio gateway (:mod:`..nuclio`); a call runs through
:func:`..function_calls.invoke`, a request through :mod:`..lambda_requests`. What the
endpoints add is CVAT's views (``FunctionViewSet``, ``RequestViewSet``) around them:

* Answers as CVAT's ``return_response`` gives them: Nuclio unreachable is a 503, a Nuclio
  error status is passed on (404 for an unknown function), a timeout is a 504, another
  ``requests`` error a 500, each with the error's text as a JSON string; Django's
  ValidationError is its status (400 unless given) with its message as a JSON string; DRF's is
  a 400 with a list or an object of messages. Creating a request answers 200.
* Permissions (``lambda_manager/permissions.py`` and ``rules/*.rego``): anyone may list and
  read functions; calling one needs the worker privilege and the right to see the data of the
  job or task named; making a request, the worker privilege and the rights to see the data of
  the job (or else the task) named and change its annotations; reading or deleting one, the
  right to see its job or task, and deleting it being its owner too (or an admin). Those
  tasks and jobs are judged in the request's organization context. A job or task named that
  does not exist is a 400 (``["Task matching query does not exist."]``), before any refusal.
* ``GET /api/lambda/requests`` lists the requests of tasks the user's task list would show.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from werkzeug.wrappers import Request, Response

from .. import auth, permissions
from ..function_calls import CallTarget, invoke
from ..lambda_errors import CallError, RefusedError
from ..lambda_requests import Annotator, LambdaRequest
from ..nuclio import BrokenFunctionMetadataError, InvalidFunctionMetadataError
from ..roi import check_task_roi
from ..storage import Transaction
from ..validation import DRF_FALSE, DRF_TRUE
from .context import ServerContext
from .data import task_frame
from .http import ApiError, Route, empty_response, json_response, parse_json

_FUNCTION_ID = "(?P<func_id>[a-zA-Z0-9_.-]+)"
_REQUEST_ID = "(?P<rq_id>[^/.]+)"
# The quality CVAT's TaskFrameProvider.get_frame gives by default, which the calls use.
_FRAME_QUALITY = "original"


@contextmanager
def _cvat_answers() -> Iterator[None]:
    """CVAT's ``return_response``, and DRF's handler of the errors it lets through."""
    try:
        yield
    except requests.ConnectionError as e:
        raise ApiError(503, str(e)) from e
    except requests.HTTPError as e:
        raise ApiError(e.response.status_code, str(e)) from e
    except requests.Timeout as e:
        raise ApiError(504, str(e)) from e
    except requests.RequestException as e:
        raise ApiError(500, str(e)) from e
    except CallError as e:
        raise ApiError(e.status, e.message) from e
    except RefusedError as e:
        raise ApiError(400, e.detail) from e
    except (InvalidFunctionMetadataError, BrokenFunctionMetadataError) as e:
        raise _crash(f"the function's metadata is invalid: {e}") from e


def _read_frame(ctx: ServerContext) -> Callable[[dict[str, Any], int], bytes]:
    """How the lambda manager reads a task's frame: as the frame endpoint serves it."""
    return lambda task, frame: task_frame(ctx, task, frame, _FRAME_QUALITY)


def _lookup(tx: Transaction, kind: str, value: Any) -> dict[str, Any] | None:
    """The task or job a body names by id, as Django's ``objects.get(id=...)`` finds it."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    if isinstance(value, str) and not value.strip().isdigit():
        return None
    return tx.task(int(value)) if kind == "task" else tx.job(int(value))


def _crash(reason: str) -> ApiError:
    """What CVAT answers where its code raises an unexpected exception: Django's 500."""
    return ApiError(500, {"detail": f"Server Error (500): CVAT fails here, as {reason}."})


def _missing(model: str) -> ApiError:
    """A permission naming an object that does not exist: DRF's ValidationError."""
    return ApiError(400, [f"{model} matching query does not exist."])


# functions


def list_functions(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    with ctx.storage.read() as tx:
        if not identity.rules(tx).may_lambda("list"):
            raise permissions.forbidden()
    with _cvat_answers():
        functions = ctx.nuclio.list()
    return json_response(200, [function.to_dict() for function in functions])


def retrieve_function(
    ctx: ServerContext, request: Request, identity: auth.Identity, func_id: str
) -> Response:
    with ctx.storage.read() as tx:
        if not identity.rules(tx).may_lambda("view"):
            raise permissions.forbidden()
    with _cvat_answers():
        function = ctx.nuclio.get(func_id)
    return json_response(200, function.to_dict())


def call_function(
    ctx: ServerContext, request: Request, identity: auth.Identity, func_id: str
) -> Response:
    body = parse_json(request)
    if not isinstance(body, dict):
        raise _crash("the call's arguments are not a JSON object")
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        allowed = rules.may_lambda("call:online")
        # LambdaPermission.create: the job's data if "job" is truthy, else the task's.
        if body.get("job"):
            job = _lookup(tx, "job", body["job"])
            if job is None:
                raise _missing("Job")
            allowed = allowed and rules.may_job_in_context(
                job, tx.task(job["task_id"]), "view:data"
            )
        elif body.get("task"):
            task = _lookup(tx, "task", body["task"])
            if task is None:
                raise _missing("Task")
            allowed = allowed and rules.may_task_in_context(task, "view:data")
        if not allowed:
            raise permissions.forbidden()
        with _cvat_answers():
            job, task = _call_target(tx, func_id, body)
            labels = tx.task_labels(task)
    with _cvat_answers():
        function = ctx.nuclio.get(func_id)
        read_frame = _read_frame(ctx)
        target = CallTarget(task, labels, lambda frame: read_frame(task, frame), job)
        result = invoke(ctx.nuclio, function, target, body, secret_key=ctx.secret_key)
    return json_response(200, result)


def _call_target(
    tx: Transaction, func_id: str, body: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    def wrong_arguments(reason: str) -> CallError:
        return CallError(f"`{func_id}` lambda function was run with wrong arguments ({reason})")

    job = None
    if body.get("job") is not None:
        job = _lookup(tx, "job", body["job"])
        if job is None:
            raise wrong_arguments("Job matching query does not exist.")
        task_id = job["task_id"]
    elif "task" not in body:
        raise wrong_arguments("'task'")
    else:
        task_id = body["task"]
    task = _lookup(tx, "task", task_id)
    if task is None:
        raise wrong_arguments("Task matching query does not exist.")
    return job, task


# requests


def list_requests(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    entries = ctx.lambda_queue.listed()
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        if not rules.may_lambda_request("list"):
            raise permissions.forbidden()
        visible = set()
        for task_id in {task_id for task_id, _ in entries}:
            task = tx.task(task_id)
            if task is not None and rules.lists_task(task):
                visible.add(task_id)
    return json_response(200, [entry for task_id, entry in entries if task_id in visible])


def create_request(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    body = parse_json(request)
    if not isinstance(body, dict):
        raise _crash("the request's body is not a JSON object")
    named = body
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        allowed = rules.may_lambda_request("create")
        # LambdaRequestPermission.create: the data and annotations of the job, else the task.
        if named.get("job") is not None:
            job = _lookup(tx, "job", named["job"])
            if job is None:
                raise _missing("Job")
            job_task = tx.task(job["task_id"])
            allowed = (
                allowed
                and rules.may_job_in_context(job, job_task, "view:data")
                and rules.may_job_in_context(job, job_task, "update:annotations")
            )
        elif named.get("task") is not None:
            task = _lookup(tx, "task", named["task"])
            if task is None:
                raise _missing("Task")
            allowed = (
                allowed
                and rules.may_task_in_context(task, "view:data")
                and rules.may_task_in_context(task, "update:annotations")
            )
        if not allowed:
            raise permissions.forbidden()
    call = parse_function_call(body)
    with ctx.storage.read() as tx:
        task = tx.task(call["task"])
        if task is None:
            raise ApiError(400, "Task matching query does not exist.")
        if call.get("job") is not None:
            job = tx.job(call["job"])
            if job is None:
                raise ApiError(400, "Job matching query does not exist.")
            if job["task_id"] != task["id"]:
                raise ApiError(400, ["Job task ID does not match task ID"])
        if task["media_type"] is None:
            raise ApiError(400, ["This task data has not been initialized yet"])
        frame_sizes = [
            (frame["width"], frame["height"])
            for frame in tx.frames(task["id"])
            if not frame["deleted"]
        ]
    with _cvat_answers():
        function = ctx.nuclio.get(call["function"])
        roi = call.get("roi")
        if roi is not None and function.kind != "detector":
            raise CallError(f"ROI is not supported for {function.kind} functions")
        if roi is not None:
            check_task_roi(roi, frame_sizes)
        answer = ctx.lambda_queue.enqueue(
            LambdaRequest(
                function=function,
                task_id=task["id"],
                job_id=call.get("job"),
                owner_id=identity.user["id"],
                threshold=call.get("threshold"),
                mapping=call.get("mapping"),
                cleanup=call["cleanup"],
                conv_mask_to_poly=call.get("conv_mask_to_poly", False),
                max_distance=call.get("max_distance"),
                roi=roi,
            ),
            Annotator(ctx.storage, ctx.nuclio, ctx.secret_key, _read_frame(ctx)),
        )
    return json_response(200, answer)


def _visible_request(
    ctx: ServerContext, identity: auth.Identity, rq_id: str, scope: str
) -> LambdaRequest:
    """The request, or CVAT's 404; 403 unless the user may act on it and see its task or job."""
    lambda_request = ctx.lambda_queue.fetch(rq_id)
    if lambda_request is None:
        raise ApiError(404, f"{rq_id} lambda job is not found")
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        allowed = rules.may_lambda_request(scope, lambda_request.owner_id)
        if lambda_request.job_id is not None:
            job = tx.job(lambda_request.job_id)
            if job is None:
                raise _missing("Job")
            allowed = allowed and rules.may_job_in_context(job, tx.task(job["task_id"]), "view")
        else:
            task = tx.task(lambda_request.task_id)
            if task is None:
                raise _missing("Task")
            allowed = allowed and rules.may_task_in_context(task, "view")
    if not allowed:
        raise permissions.forbidden()
    return lambda_request


def retrieve_request(
    ctx: ServerContext, request: Request, identity: auth.Identity, rq_id: str
) -> Response:
    _visible_request(ctx, identity, rq_id, "view")
    answer = ctx.lambda_queue.snapshot(rq_id)
    if answer is None:
        raise ApiError(404, f"{rq_id} lambda job is not found")
    return json_response(200, answer)


def delete_request(
    ctx: ServerContext, request: Request, identity: auth.Identity, rq_id: str
) -> Response:
    _visible_request(ctx, identity, rq_id, "delete")
    ctx.lambda_queue.delete(rq_id)
    return empty_response(204)


# FunctionCallRequestSerializer, with DRF's messages

_REQUIRED = "This field is required."
_NOT_NULL = "This field may not be null."


class _FieldError(Exception):
    def __init__(self, detail: Any) -> None:
        super().__init__(detail)
        self.detail = detail


def _char(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _FieldError(["Not a valid string."])
    text = str(value).strip()
    if not text:
        raise _FieldError(["This field may not be blank."])
    return text


def _integer(value: Any) -> int:
    try:
        return int(re.sub(r"\.0*\s*$", "", str(value)))
    except ValueError:
        raise _FieldError(["A valid integer is required."]) from None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _FieldError(["A valid number is required."]) from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool | int | float | str):
        if value in DRF_TRUE:
            return True
        if value in DRF_FALSE:
            return False
    raise _FieldError(["Must be a valid boolean."])


def _char_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _FieldError(
            [f'Expected a dictionary of items but got type "{type(value).__name__}".']
        )
    parsed, errors = {}, {}
    for key, item in value.items():
        try:
            if item is None:
                raise _FieldError([_NOT_NULL])
            parsed[str(key)] = _char(item)
        except _FieldError as e:
            errors[str(key)] = e.detail
    if errors:
        raise _FieldError(errors)
    return parsed


def _mapping_entry(value: Any, *, with_sublabels: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _FieldError(
            {
                "non_field_errors": [
                    f"Invalid data. Expected a dictionary, but got {type(value).__name__}."
                ]
            }
        )
    fields = [("name", _char, True), ("attributes", _char_dict, False)]
    if with_sublabels:
        fields.append(("sublabels", lambda v: _mapping(v, with_sublabels=False), False))
    return _object(value, fields)


def _mapping(value: Any, *, with_sublabels: bool = True) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _FieldError(
            [f'Expected a dictionary of items but got type "{type(value).__name__}".']
        )
    parsed, errors = {}, {}
    for key, entry in value.items():
        try:
            if entry is None:
                raise _FieldError([_NOT_NULL])
            parsed[str(key)] = _mapping_entry(entry, with_sublabels=with_sublabels)
        except _FieldError as e:
            errors[str(key)] = e.detail
    if errors:
        raise _FieldError(errors)
    return parsed


def _roi(value: Any) -> list[int]:
    if not isinstance(value, list):
        raise _FieldError([f'Expected a list of items but got type "{type(value).__name__}".'])
    parsed, errors = [], {}
    for index, item in enumerate(value):
        try:
            if item is None:
                raise _FieldError([_NOT_NULL])
            parsed.append(_integer(item))
        except _FieldError as e:
            errors[str(index)] = e.detail
    if errors:
        raise _FieldError(errors)
    if len(parsed) < 4:
        raise _FieldError(["Ensure this field has at least 4 elements."])
    if len(parsed) > 4:
        raise _FieldError(["Ensure this field has no more than 4 elements."])
    return parsed


def _object(value: dict[str, Any], fields: list[tuple[str, Any, bool]]) -> dict[str, Any]:
    parsed, errors = {}, {}
    for name, parse, required in fields:
        if name not in value:
            if required:
                errors[name] = [_REQUIRED]
            continue
        if value[name] is None:
            errors[name] = [_NOT_NULL]
            continue
        try:
            parsed[name] = parse(value[name])
        except _FieldError as e:
            errors[name] = e.detail
    if errors:
        raise _FieldError(errors)
    return parsed


def parse_function_call(body: dict[str, Any]) -> dict[str, Any]:
    """FunctionCallRequestSerializer's validated data: ``cleanup`` defaults to false, and
    ``convMaskToPoly`` (deprecated) is ``conv_mask_to_poly``, which wins when both are sent."""
    try:
        parsed = _object(
            body,
            [
                ("function", _char, True),
                ("task", _integer, True),
                ("job", _integer, False),
                ("max_distance", _integer, False),
                ("threshold", _float, False),
                ("cleanup", _boolean, False),
                ("convMaskToPoly", _boolean, False),
                ("conv_mask_to_poly", _boolean, False),
                ("mapping", _mapping, False),
                ("roi", _roi, False),
            ],
        )
    except _FieldError as e:
        raise ApiError(400, e.detail) from e
    parsed.setdefault("cleanup", False)
    if "convMaskToPoly" in parsed:
        parsed.setdefault("conv_mask_to_poly", parsed.pop("convMaskToPoly"))
    return parsed


ROUTES = [
    Route("GET", "/api/lambda/functions", list_functions),
    Route("GET", "/api/lambda/functions/" + _FUNCTION_ID, retrieve_function),
    Route("POST", "/api/lambda/functions/" + _FUNCTION_ID, call_function),
    Route("GET", "/api/lambda/requests", list_requests),
    Route("POST", "/api/lambda/requests", create_request),
    Route("GET", "/api/lambda/requests/" + _REQUEST_ID, retrieve_request),
    Route("DELETE", "/api/lambda/requests/" + _REQUEST_ID, delete_request),
]
