"""CVAT Online's ``/api/functions``: native functions, their ARs and the agents' queue.

The protocol and the queue's behaviour are described in :mod:`..native_functions`; this module
is the HTTP around it: bodies checked as the app.cvat.ai schema describes them (DRF's messages),
permissions, and what completing an AR does to the task.

Permissions (CVAT Online's rules are not published; these are the test server's, kept close to
the lambda manager's): a function is seen by its owner, by members of its organization, by
anyone if it is public, and by admins; it is deleted, and its queue served (acquire, update,
complete, fail, watch), by its owner, its organization's maintainers and owners, and admins.
Creating one needs what creating a task needs in the request's organization context, which the
function then belongs to. Submitting an AR needs the worker privilege, sight of the function
and the rights to see the data of the task or job named and, for a batch AR, to change its
annotations. An AR is seen by whoever made it and by those who may see its task; it is cancelled
by whoever made it and by admins.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.wrappers import Request, Response

from .. import auth, permissions
from ..function_calls import _check_mapping, _default_mapping
from ..job_annotations import change_job_annotations, change_task_annotations
from ..lambda_errors import CallError
from ..native_functions import (
    BATCH,
    BATCH_TYPES,
    CATEGORIES,
    INTERACTIVE,
    INTERACTIVE_TYPES,
    AnnotationRequest,
    NativeFunction,
    QueueError,
    drf_datetime,
)
from ..representations import basic_user
from ..storage import Transaction
from ..validation import INPUT_TYPES, SHAPE_TYPES, check_annotations, parse_labeled_data
from .context import ServerContext
from .http import ID, ApiError, Route, empty_response, json_response, paginate, parse_json
from .lambda_manager import (
    _boolean,
    _char,
    _FieldError,
    _float,
    _integer,
    _mapping,
    _object,
    _roi,
)

_QUEUE = r"function:(?P<function_id>\d+)"
_AR_ID = r"(?P<request_id>[a-z0-9-]+)"
KINDS = ("detector", "interactor", "reid", "tracker")
LABEL_TYPES = (
    "any",
    "cuboid",
    "ellipse",
    "mask",
    "points",
    "polygon",
    "polyline",
    "rectangle",
    "skeleton",
    "interval",
    "tag",
)
#: Which AR types each kind of function serves.
TYPES_OF_KIND = {
    "detector": ("annotate_task", "annotate_frame"),
    "interactor": ("interact",),
    "tracker": ("init_tracking", "track"),
    "reid": (),
}


@contextmanager
def _queue_answers() -> Iterator[None]:
    try:
        yield
    except QueueError as e:
        raise ApiError(e.status, {"detail": e.detail}) from e


def _parse(body: Any, fields: list[tuple[str, Any, bool]]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(
            400,
            {
                "non_field_errors": [
                    f"Invalid data. Expected a dictionary, but got {type(body).__name__}."
                ]
            },
        )
    try:
        return _object(body, fields)
    except _FieldError as e:
        raise ApiError(400, e.detail) from e


def _choice(choices: tuple[str, ...]) -> Any:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _FieldError([f'"{value}" is not a valid choice.'])
        return value

    return parse


def _limited_char(max_length: int) -> Any:
    def parse(value: Any) -> str:
        text = _char(value)
        if len(text) > max_length:
            raise _FieldError([f"Ensure this field has no more than {max_length} characters."])
        return text

    return parse


def _list_of(parse_item: Any, *, max_items: int | None = None) -> Any:
    def parse(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise _FieldError([f'Expected a list of items but got type "{type(value).__name__}".'])
        if max_items is not None and len(value) > max_items:
            raise _FieldError([f"Ensure this field has no more than {max_items} elements."])
        parsed, errors = [], {}
        for index, item in enumerate(value):
            try:
                parsed.append(parse_item(item))
            except _FieldError as e:
                errors[str(index)] = e.detail
        if errors:
            raise _FieldError(errors)
        return parsed

    return parse


def _bounded(parse_value: Any, low: float, high: float | None = None) -> Any:
    def parse(value: Any) -> Any:
        number = parse_value(value)
        if number < low:
            raise _FieldError([f"Ensure this value is greater than or equal to {low}."])
        if high is not None and number > high:
            raise _FieldError([f"Ensure this value is less than or equal to {high}."])
        return number

    return parse


def _point(value: Any) -> list[float]:
    point = _list_of(_float)(value)
    if len(point) != 2:
        raise _FieldError(["Ensure this field has exactly 2 elements."])
    return point


def _agent_id(value: Any) -> str:
    return _limited_char(64)(value)


# the function registry


def _attribute(value: Any) -> dict[str, Any]:
    return _parse(
        value,
        [
            ("name", _limited_char(64), True),
            ("input_type", _choice(INPUT_TYPES), True),
            ("values", _list_of(_limited_char(64), max_items=64), True),
        ],
    )


def _sublabel(value: Any) -> dict[str, Any]:
    parsed = _parse(
        value,
        [
            ("name", _char, True),
            ("type", _choice(LABEL_TYPES), False),
            ("attributes", _list_of(_attribute, max_items=16), False),
        ],
    )
    return {
        "name": parsed["name"],
        "type": parsed.get("type", "any"),
        "attributes": parsed.get("attributes", []),
    }


def _label(value: Any) -> dict[str, Any]:
    parsed = _parse(
        value,
        [
            ("name", _char, True),
            ("type", _choice(LABEL_TYPES), False),
            ("attributes", _list_of(_attribute, max_items=16), False),
            ("sublabels", _list_of(_sublabel, max_items=32), False),
        ],
    )
    label = {
        "name": parsed["name"],
        "type": parsed.get("type", "any"),
        "attributes": parsed.get("attributes", []),
    }
    if "sublabels" in parsed:
        label["sublabels"] = parsed["sublabels"]
    return label


def _wrap(parse_value: Any) -> Any:
    """A parser that raises ApiError (for nested objects) made one that raises _FieldError."""

    def parse(value: Any) -> Any:
        try:
            return parse_value(value)
        except ApiError as e:
            raise _FieldError(e.body) from e

    return parse


def parse_function(body: Any) -> dict[str, Any]:
    """FunctionRequest's validated data, with the defaults a native function gets."""
    parsed = _parse(
        body,
        [
            ("provider", _limited_char(32), True),
            ("name", _limited_char(128), True),
            ("kind", _choice(KINDS), False),
            ("url", _limited_char(256), False),
            ("visibility", _choice(("public", "private")), False),
            ("labels_v2", _list_of(_wrap(_label)), False),
            ("min_pos_points", _bounded(_integer, 0), False),
            ("min_neg_points", _bounded(_integer, -1), False),
            ("startswith_box", _boolean, False),
            ("startswith_box_optional", _boolean, False),
            ("supported_shape_types", _list_of(_choice(SHAPE_TYPES)), False),
        ],
    )
    if parsed["provider"] != "native":
        raise ApiError(
            400,
            {
                "provider": [
                    f"The test server has native functions only, not {parsed['provider']!r}."
                ]
            },
        )
    if "kind" not in parsed:
        raise ApiError(400, {"kind": ["This field is required."]})
    names = [label["name"] for label in parsed.get("labels_v2", [])]
    if len(names) != len(set(names)):
        raise ApiError(400, {"labels_v2": ["Label names must be unique."]})
    return parsed


def function_dict(tx: Transaction, function: NativeFunction, base_url: str) -> dict[str, Any]:
    """CVAT Online's Function serializer of a native function."""
    return {
        "id": function.id,
        "provider": function.provider,
        "url": function.url,
        "name": function.name,
        "kind": function.kind,
        "labels_v2": function.labels_v2,
        "min_pos_points": function.min_pos_points,
        "min_neg_points": function.min_neg_points,
        "startswith_box": function.startswith_box,
        "startswith_box_optional": function.startswith_box_optional,
        "supported_shape_types": function.supported_shape_types,
        "created_date": drf_datetime(function.created),
        "updated_date": drf_datetime(function.updated),
        "owner": basic_user(tx.user(function.owner_id), base_url),
        "organization": function.organization_id,
        "visibility": function.visibility,
    }


def _sees(rules: permissions.Rules, function: NativeFunction) -> bool:
    return (
        rules.is_admin
        or rules.user["id"] == function.owner_id
        or function.visibility == "public"
        or rules.role(function.organization_id) is not None
    )


def _serves(rules: permissions.Rules, function: NativeFunction) -> bool:
    return (
        rules.is_admin
        or rules.user["id"] == function.owner_id
        or rules.has_role(function.organization_id, "maintainer")
    )


def _function(ctx: ServerContext, function_id: str | int) -> NativeFunction:
    function = ctx.functions.function(int(function_id))
    if function is None:
        raise ApiError(404, {"detail": "No Function matches the given query."})
    return function


def create_function(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    parsed = parse_function(parse_json(request))
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        if not rules.may_create():
            raise permissions.forbidden()
        org = identity.organization.organization
        function = ctx.functions.create_function(
            owner_id=identity.user["id"],
            organization_id=org["id"] if org else None,
            name=parsed["name"],
            kind=parsed["kind"],
            visibility=parsed.get("visibility", "private"),
            labels_v2=parsed.get("labels_v2", []),
            min_pos_points=parsed.get("min_pos_points", 0),
            min_neg_points=parsed.get("min_neg_points", -1),
            startswith_box=parsed.get("startswith_box", False),
            startswith_box_optional=parsed.get("startswith_box_optional", False),
            supported_shape_types=parsed.get("supported_shape_types", []),
            url=parsed.get("url", ""),
        )
        return json_response(201, function_dict(tx, function, request.host_url))


def list_functions(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        rules.check_list()
        context = identity.organization
        visible = []
        for function in ctx.functions.functions():
            if not _sees(rules, function):
                continue
            if context.organization is not None:
                if function.organization_id != context.organization["id"]:
                    continue
            elif context.specified and function.organization_id is not None:
                continue
            visible.append(function)
        search = request.args.get("search", "").lower()
        if search:
            visible = [f for f in visible if search in f.name.lower()]
        items = [function_dict(tx, function, request.host_url) for function in visible]
    return json_response(200, paginate(request, items))


def retrieve_function(
    ctx: ServerContext, request: Request, identity: auth.Identity, function_id: str
) -> Response:
    function = _function(ctx, function_id)
    with ctx.storage.read() as tx:
        if not _sees(identity.rules(tx), function):
            raise permissions.forbidden()
        return json_response(200, function_dict(tx, function, request.host_url))


def delete_function(
    ctx: ServerContext, request: Request, identity: auth.Identity, function_id: str
) -> Response:
    function = _function(ctx, function_id)
    with ctx.storage.read() as tx:
        if not _serves(identity.rules(tx), function):
            raise permissions.forbidden()
    with _queue_answers():
        ctx.functions.delete_function(function.id)
    return empty_response(204)


# ARs, as CVAT's UI submits them


def _shape(value: Any) -> dict[str, Any]:
    parsed = _parse(
        value,
        [
            ("type", _choice(SHAPE_TYPES), True),
            ("occluded", _boolean, False),
            ("outside", _boolean, False),
            ("z_order", _integer, False),
            ("rotation", _bounded(_float, 0, 360), False),
            ("points", _list_of(_float), False),
        ],
    )
    return {
        "type": parsed["type"],
        "occluded": parsed.get("occluded", False),
        "outside": parsed.get("outside", False),
        "z_order": parsed.get("z_order", 0),
        "rotation": parsed.get("rotation", 0.0),
        "points": parsed.get("points", []),
    }


def parse_ar_params(body: Any, *, with_function: bool) -> dict[str, Any]:
    """ArParamsRequest's (or FunctionIdAndArParamsRequest's) validated data."""
    threshold_null = isinstance(body, dict) and body.get("threshold", 0) is None
    if threshold_null:
        body = {key: value for key, value in body.items() if key != "threshold"}
    fields = [
        ("type", _choice(BATCH_TYPES + INTERACTIVE_TYPES), False),
        ("task", _integer, True),
        ("job", _integer, False),
        ("frame", _bounded(_integer, 0), False),
        ("threshold", _bounded(_float, 0, 1), False),
        ("cleanup", _boolean, False),
        ("conv_mask_to_poly", _boolean, False),
        ("mapping", _mapping, False),
        ("pos_points", _list_of(_point), False),
        ("neg_points", _list_of(_point), False),
        ("obj_bbox", _list_of(_point, max_items=2), False),
        ("roi", _roi, False),
        ("shapes", _list_of(_wrap(_shape)), False),
        ("states", _list_of(_limited_char(4194304), max_items=32), False),
    ]
    if with_function:
        fields.append(("function", _integer, True))
    parsed = _parse(body, fields)
    if threshold_null:
        parsed["threshold"] = None
    return parsed


def _agent_params(
    function: NativeFunction,
    parsed: dict[str, Any],
    task: dict[str, Any],
    job: dict[str, Any] | None,
    labels: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``ar_params`` an agent gets for an AR of this type."""
    ar_type = parsed["type"]
    if ar_type not in TYPES_OF_KIND[function.kind]:
        raise ApiError(
            400, {"type": [f"A {function.kind} function does not serve {ar_type!r} requests."]}
        )
    params: dict[str, Any] = {"type": ar_type, "task": task["id"]}
    if job is not None:
        params["job"] = job["id"]
    if ar_type != "annotate_task":
        if "frame" not in parsed:
            raise ApiError(400, {"frame": ["This field is required."]})
        first, last = (job["start_frame"], job["stop_frame"]) if job else (0, task["size"] - 1)
        if not first <= parsed["frame"] <= last:
            raise ApiError(
                400, {"frame": [f"The frame must be from {first} to {last} in this request."]}
            )
        params["frame"] = parsed["frame"]
    if ar_type in ("annotate_task", "annotate_frame"):
        mapping = parsed.get("mapping")
        try:
            if mapping is None:
                mapping = _default_mapping(function.labels_v2, labels)
            else:
                _check_mapping(mapping, function.labels_v2, labels)
        except CallError as e:
            raise ApiError(400, [e.message]) from e
        params.update(
            threshold=parsed.get("threshold"),
            conv_mask_to_poly=parsed.get("conv_mask_to_poly", False),
            mapping=mapping,
        )
        if ar_type == "annotate_task":
            params["cleanup"] = parsed.get("cleanup", False)
    if ar_type == "interact":
        params.update(
            pos_points=parsed.get("pos_points", []),
            neg_points=parsed.get("neg_points", []),
            obj_bbox=parsed.get("obj_bbox", []),
        )
    if ar_type == "init_tracking":
        params["shapes"] = parsed.get("shapes", [])
    if ar_type == "track":
        params["states"] = parsed.get("states", [])
    if "roi" in parsed and ar_type in ("annotate_task", "annotate_frame", "interact"):
        params["roi"] = parsed["roi"]
    return params


def submit_request(
    ctx: ServerContext,
    identity: auth.Identity,
    function_id: int,
    parsed: dict[str, Any],
    category: str,
) -> AnnotationRequest:
    """Queues an AR of ``category`` as the UI asks for it, checking what the user may do."""
    function = _function(ctx, function_id)
    parsed.setdefault("type", "annotate_task" if category == BATCH else None)
    allowed_types = BATCH_TYPES if category == BATCH else INTERACTIVE_TYPES
    if parsed["type"] not in allowed_types:
        raise ApiError(
            400,
            {"type": [f"{parsed['type']!r} is not a {category} request type."]}
            if parsed["type"]
            else {"type": ["This field is required."]},
        )
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        task = tx.task(parsed["task"])
        if task is None:
            raise ApiError(400, ["Task matching query does not exist."])
        job = None
        if parsed.get("job") is not None:
            job = tx.job(parsed["job"])
            if job is None:
                raise ApiError(400, ["Job matching query does not exist."])
            if job["task_id"] != task["id"]:
                raise ApiError(400, ["Job task ID does not match task ID"])
        scopes = ("view:data", "update:annotations") if category == BATCH else ("view:data",)
        allowed = rules.has_privilege("worker") and _sees(rules, function)
        for scope in scopes:
            allowed = allowed and (
                rules.may_job(job, task, scope) if job else rules.may_task(task, scope)
            )
        if not allowed:
            raise permissions.forbidden()
        if task["media_type"] is None:
            raise ApiError(400, ["This task data has not been initialized yet"])
        params = _agent_params(function, parsed, task, job, tx.task_labels(task))
    with _queue_answers():
        return ctx.functions.submit(
            AnnotationRequest(
                function_id=function.id,
                category=category,
                params=params,
                owner_id=identity.user["id"],
                task_id=task["id"],
                job_id=job["id"] if job else None,
            )
        )


def create_request(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    parsed = parse_ar_params(parse_json(request), with_function=True)
    submitted = submit_request(ctx, identity, parsed.pop("function"), parsed, BATCH)
    return json_response(201, submitted.to_dict())


def run_function(
    ctx: ServerContext, request: Request, identity: auth.Identity, function_id: str
) -> Response:
    """An interactive AR: answered with the agent's result once it completes."""
    parsed = parse_ar_params(parse_json(request), with_function=False)
    submitted = submit_request(ctx, identity, int(function_id), parsed, INTERACTIVE)
    ended = ctx.functions.wait(submitted.id, ctx.functions.interactive_timeout)
    if ended is None:
        with _queue_answers():
            ctx.functions.cancel(submitted.id)
        raise ApiError(504, {"detail": "No agent completed the request in time."})
    if ended.status != "finished":
        raise ApiError(500, {"detail": ended.exc_info or "The request failed."})
    return json_response(200, ended.result)


def _visible_request(
    ctx: ServerContext, tx: Transaction, identity: auth.Identity, request_id: str
) -> AnnotationRequest:
    ar = ctx.functions.request(request_id)
    if ar is None:
        raise ApiError(404, {"detail": "No AnnotationRequest matches the given query."})
    if not _may_see_request(identity.rules(tx), tx, ar):
        raise permissions.forbidden()
    return ar


def _may_see_request(rules: permissions.Rules, tx: Transaction, ar: AnnotationRequest) -> bool:
    if rules.is_admin or rules.user["id"] == ar.owner_id:
        return True
    task = tx.task(ar.task_id)
    return task is not None and rules.may_task(task, "view")


def list_requests(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        items = [
            ar.to_dict()
            for ar in ctx.functions.requests()
            if ar.category == BATCH and _may_see_request(rules, tx, ar)
        ]
    return json_response(200, items)


def retrieve_request(
    ctx: ServerContext, request: Request, identity: auth.Identity, request_id: str
) -> Response:
    with ctx.storage.read() as tx:
        ar = _visible_request(ctx, tx, identity, request_id)
    return json_response(200, ar.to_dict())


def delete_request(
    ctx: ServerContext, request: Request, identity: auth.Identity, request_id: str
) -> Response:
    with ctx.storage.read() as tx:
        ar = _visible_request(ctx, tx, identity, request_id)
        rules = identity.rules(tx)
        if not (rules.is_admin or rules.user["id"] == ar.owner_id):
            raise permissions.forbidden()
    with _queue_answers():
        ctx.functions.cancel(request_id)
    return empty_response(204)


# the queue, as agents use it


def _served_function(
    ctx: ServerContext, identity: auth.Identity, function_id: str
) -> NativeFunction:
    function = _function(ctx, function_id)
    with ctx.storage.read() as tx:
        if not _serves(identity.rules(tx), function):
            raise permissions.forbidden()
    return function


def acquire(
    ctx: ServerContext, request: Request, identity: auth.Identity, function_id: str
) -> Response:
    function = _served_function(ctx, identity, function_id)
    parsed = _parse(
        parse_json(request),
        [("agent_id", _agent_id, True), ("request_category", _choice(CATEGORIES), True)],
    )
    with _queue_answers():
        assignment = ctx.functions.acquire(
            function.id, parsed["agent_id"], parsed["request_category"]
        )
    return json_response(200, {"ar_assignment": assignment})


def update(
    ctx: ServerContext,
    request: Request,
    identity: auth.Identity,
    function_id: str,
    request_id: str,
) -> Response:
    function = _served_function(ctx, identity, function_id)
    parsed = _parse(
        parse_json(request),
        [("agent_id", _agent_id, True), ("progress", _bounded(_float, 0, 1), True)],
    )
    with _queue_answers():
        ctx.functions.update(function.id, request_id, parsed["agent_id"], parsed["progress"])
    return empty_response(204)


def complete(
    ctx: ServerContext,
    request: Request,
    identity: auth.Identity,
    function_id: str,
    request_id: str,
) -> Response:
    function = _served_function(ctx, identity, function_id)
    body = parse_json(request)
    parsed = _parse(body, [("agent_id", _agent_id, True)])
    result = {key: value for key, value in body.items() if key != "agent_id"}
    with _queue_answers():
        ctx.functions.complete(
            function.id,
            request_id,
            parsed["agent_id"],
            result,
            lambda ar, result: _apply_result(ctx, ar, result),
        )
    return empty_response(204)


def fail(
    ctx: ServerContext,
    request: Request,
    identity: auth.Identity,
    function_id: str,
    request_id: str,
) -> Response:
    function = _served_function(ctx, identity, function_id)
    body = parse_json(request)
    parsed = _parse(body, [("agent_id", _agent_id, True), ("exc_info", _limited_char(4096), False)])
    with _queue_answers():
        ctx.functions.fail(function.id, request_id, parsed["agent_id"], parsed.get("exc_info", ""))
    return empty_response(204)


def watch(
    ctx: ServerContext, request: Request, identity: auth.Identity, function_id: str
) -> Response:
    function = _served_function(ctx, identity, function_id)
    with _queue_answers():
        events = ctx.functions.watch(function.id)
    return Response(
        (event.encode() for event in events),
        status=200,
        content_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        direct_passthrough=True,
    )


# what a completed AR does


def _required(result: dict[str, Any], key: str, kind: type) -> Any:
    if not isinstance(result.get(key), kind):
        raise ApiError(400, {key: ["This field is required."]})
    return result[key]


def _apply_result(ctx: ServerContext, ar: AnnotationRequest, result: dict[str, Any]) -> None:
    """Checks an agent's result and, for a batch AR, writes its annotations (CVAT's PATCH
    ``?action=create``, after clearing the task's or job's annotations if ``cleanup``)."""
    ar_type = ar.params["type"]
    if ar_type == "interact":
        _required(result, "shapes", list)
        return
    if ar_type == "init_tracking":
        _required(result, "states", list)
        return
    if ar_type == "track":
        _required(result, "states", list)
        _required(result, "shapes", list)
        return
    parsed = parse_labeled_data(_required(result, "annotations", dict))
    with ctx.storage.write() as tx:
        task = tx.task(ar.task_id)
        if task is None:
            raise ApiError(400, ["Task matching query does not exist."])
        job = tx.job(ar.job_id) if ar.job_id is not None else None
        if ar.job_id is not None and job is None:
            raise ApiError(400, ["Job matching query does not exist."])
        if job is not None:
            # cvat-cli's agent annotates the job's whole task; the job's frames are kept.
            frames = range(job["start_frame"], job["stop_frame"] + 1)
            for key in ("tags", "shapes"):
                parsed[key] = [item for item in parsed[key] if item["frame"] in frames]
            parsed["tracks"] = [t for t in parsed["tracks"] if t["frame"] in frames]
        else:
            frames = range(task["size"])
        if ar_type == "annotate_frame":
            frames = range(ar.params["frame"], ar.params["frame"] + 1)
        check_annotations(
            parsed, tx.task_labels(task), frames, scope="job" if job is not None else "task"
        )
        if ar_type != "annotate_task":
            return
        if ar.params.get("cleanup"):
            if job is not None:
                change_job_annotations(tx, job, "clear", None)
            else:
                change_task_annotations(tx, task, "clear", None)
        if job is not None:
            change_job_annotations(tx, job, "create", parsed)
        else:
            change_task_annotations(tx, task, "create", parsed)


ROUTES = [
    Route("GET", "/api/functions", list_functions),
    Route("POST", "/api/functions", create_function),
    Route("GET", "/api/functions/requests", list_requests),
    Route("POST", "/api/functions/requests", create_request),
    Route("GET", "/api/functions/requests/" + _AR_ID, retrieve_request),
    Route("DELETE", "/api/functions/requests/" + _AR_ID, delete_request),
    Route("POST", f"/api/functions/queues/{_QUEUE}/requests/acquire", acquire),
    Route("POST", f"/api/functions/queues/{_QUEUE}/requests/{_AR_ID}/update", update),
    Route("POST", f"/api/functions/queues/{_QUEUE}/requests/{_AR_ID}/complete", complete),
    Route("POST", f"/api/functions/queues/{_QUEUE}/requests/{_AR_ID}/fail", fail),
    Route("GET", f"/api/functions/queues/{_QUEUE}/watch", watch),
    Route("GET", "/api/functions/" + ID.format("function_id"), retrieve_function),
    Route("DELETE", "/api/functions/" + ID.format("function_id"), delete_function),
    Route("POST", "/api/functions/" + ID.format("function_id") + "/run", run_function),
]
