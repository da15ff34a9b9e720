"""The WSGI application: CVAT's REST endpoints over :mod:`storage` and :mod:`media`.

Routes accept paths with and without a trailing slash and never redirect. Every response with
a body has a Content-Length, and werkzeug's server closes the connection after each response
(it does not keep connections alive). Requests that change state run in one transaction each;
a rejected request (400) stores nothing. Fault injection and the request log wrap the whole application
(:meth:`CvatApi.__call__`).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlencode

import PIL.Image
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from . import auth, media, representations
from .faults import FaultInjector, RequestLog, RequestLogEntry
from .storage import IdConflictError, Storage, Transaction
from .task_data import attach_data, create_labels, parse_data_params, task_media_dir
from .validation import (
    ValidationError,
    annotation_ids,
    check_annotations,
    parse_label_specs,
    parse_labeled_data,
)

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
TUS_VERSION = "1.0.0"


class ApiError(Exception):
    """An error response with a DRF-shaped JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_found() -> ApiError:
    return ApiError(404, {"detail": "Not found."})


class _Request(Request):
    # The SDK packs up to 100 MiB of files into one multipart request; werkzeug's default
    # limit of 1000 parts would turn a batch of many small images into a 413.
    max_form_parts = None


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body),
        status=status,
        headers=headers,
        content_type="application/vnd.cvat+json",
    )


def empty_response(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status=status, headers=headers)


class _Route:
    def __init__(self, method: str, pattern: str, handler: str, *, public: bool = False) -> None:
        self.method = method
        self.regex = re.compile(f"^{pattern}/?$")
        self.handler = handler
        self.public = public


_ID = r"(?P<{}>\d+)"
ROUTES = [
    _Route("GET", "/api/server/about", "about", public=True),
    _Route("POST", "/api/auth/login", "login", public=True),
    _Route("POST", "/api/auth/logout", "logout"),
    _Route("GET", "/api/users/self", "current_user"),
    _Route("GET", "/api/projects", "list_projects"),
    _Route("POST", "/api/projects", "create_project"),
    _Route("GET", "/api/projects/" + _ID.format("project_id"), "retrieve_project"),
    _Route("DELETE", "/api/projects/" + _ID.format("project_id"), "delete_project"),
    _Route("GET", "/api/tasks", "list_tasks"),
    _Route("POST", "/api/tasks", "create_task"),
    _Route("GET", "/api/tasks/" + _ID.format("task_id"), "retrieve_task"),
    _Route("PATCH", "/api/tasks/" + _ID.format("task_id"), "update_task"),
    _Route("DELETE", "/api/tasks/" + _ID.format("task_id"), "delete_task"),
    _Route("POST", "/api/tasks/" + _ID.format("task_id") + "/data", "upload_data"),
    _Route("GET", "/api/tasks/" + _ID.format("task_id") + "/data", "task_data"),
    _Route("GET", "/api/tasks/" + _ID.format("task_id") + "/data/meta", "task_data_meta"),
    _Route("PATCH", "/api/tasks/" + _ID.format("task_id") + "/data/meta", "update_task_data_meta"),
    _Route(
        "PATCH",
        "/api/tasks/" + _ID.format("task_id") + "/data/(?P<upload_id>[0-9a-f-]{36})",
        "tus_append",
    ),
    _Route(
        "HEAD",
        "/api/tasks/" + _ID.format("task_id") + "/data/(?P<upload_id>[0-9a-f-]{36})",
        "tus_offset",
    ),
    _Route("GET", "/api/tasks/" + _ID.format("task_id") + "/preview", "task_preview"),
    _Route("GET", "/api/tasks/" + _ID.format("task_id") + "/annotations", "get_task_annotations"),
    _Route("PUT", "/api/tasks/" + _ID.format("task_id") + "/annotations", "put_task_annotations"),
    _Route(
        "PATCH", "/api/tasks/" + _ID.format("task_id") + "/annotations", "patch_task_annotations"
    ),
    _Route(
        "DELETE", "/api/tasks/" + _ID.format("task_id") + "/annotations", "delete_task_annotations"
    ),
    _Route("POST", "/api/tasks/" + _ID.format("task_id") + "/annotations", "import_annotations"),
    _Route("GET", "/api/labels", "list_labels"),
    _Route("GET", "/api/labels/" + _ID.format("label_id"), "retrieve_label"),
    _Route("GET", "/api/jobs", "list_jobs"),
    _Route("GET", "/api/jobs/" + _ID.format("job_id"), "retrieve_job"),
    _Route("GET", "/api/jobs/" + _ID.format("job_id") + "/data", "job_data"),
    _Route("GET", "/api/jobs/" + _ID.format("job_id") + "/data/meta", "job_data_meta"),
    _Route("GET", "/api/jobs/" + _ID.format("job_id") + "/annotations", "get_job_annotations"),
    _Route("PUT", "/api/jobs/" + _ID.format("job_id") + "/annotations", "put_job_annotations"),
    _Route("PATCH", "/api/jobs/" + _ID.format("job_id") + "/annotations", "patch_job_annotations"),
    _Route(
        "DELETE", "/api/jobs/" + _ID.format("job_id") + "/annotations", "delete_job_annotations"
    ),
    _Route("GET", "/api/requests/(?P<rq_id>[^/]+)", "retrieve_request"),
]


def _task_request_id(task_id: int) -> str:
    return f"action=create&target=task&target_id={task_id}"


def _parse_json(request: Request) -> Any:
    raw = request.get_data()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, {"detail": f"JSON parse error - {e}"}) from e


def _int_param(request: Request, name: str, default: int | None = None) -> int | None:
    value = request.args.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ApiError(400, {name: [f"A valid integer is required, got {value!r}."]}) from e


_FILTER_FIELDS = ("id", "name", "project_id", "status", "subset", "mode", "dimension", "owner")


def _json_logic(rule: Any, item: dict[str, Any]) -> Any:
    """Evaluates the JsonLogic subset CVAT's ``filter`` parameter uses most."""
    if not isinstance(rule, dict):
        return rule
    if len(rule) != 1:
        raise ApiError(400, {"filter": ["Each JsonLogic rule has exactly one operator."]})
    ((operator, args),) = rule.items()
    if operator == "var":
        if args not in _FILTER_FIELDS:
            raise ApiError(
                400,
                {
                    "filter": [
                        f"Filtering by {args!r} is not supported; use one of {', '.join(_FILTER_FIELDS)}."
                    ]
                },
            )
        return item.get(args)
    if not isinstance(args, list):
        args = [args]
    values = [_json_logic(arg, item) for arg in args]
    operations: dict[str, Callable[[], Any]] = {
        "==": lambda: values[0] == values[1],
        "!=": lambda: values[0] != values[1],
        "<": lambda: values[0] < values[1],
        "<=": lambda: values[0] <= values[1],
        ">": lambda: values[0] > values[1],
        ">=": lambda: values[0] >= values[1],
        "and": lambda: all(values),
        "or": lambda: any(values),
        "!": lambda: not values[0],
        "in": lambda: values[0] in values[1],
    }
    if operator not in operations:
        raise ApiError(400, {"filter": [f"The JsonLogic operator {operator!r} is not supported."]})
    return operations[operator]()


class CvatApi:
    """The WSGI application of one test server."""

    def __init__(
        self,
        storage: Storage,
        media_root: Path,
        faults: FaultInjector,
        request_log: RequestLog,
    ) -> None:
        self.storage = storage
        self.media_root = media_root
        self.faults = faults
        self.request_log = request_log

    # the WSGI entry point: faults, logging, dispatch

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        started = time.monotonic()
        request = _Request(environ)
        method, path = request.method, request.path
        query = request.query_string.decode("latin-1")
        bytes_in = request.content_length or 0
        fault = self.faults.take(method, path)

        def log(status: int | None, bytes_out: int) -> None:
            self.request_log.append(
                RequestLogEntry(
                    method=method,
                    path=path,
                    query=query,
                    status=status,
                    bytes_in=bytes_in,
                    bytes_out=bytes_out,
                    duration=time.monotonic() - started,
                    fault=fault.label if fault else None,
                )
            )

        # Latency and the time the request body takes at the bandwidth cap pass before the
        # request is handled, as they would on a slow link.
        delay = self.faults.latency + self.faults.reserve_link(bytes_in)
        if delay:
            time.sleep(delay)
        if fault is not None and fault.kind == "close" and fault.when == "before":
            request.get_data()
            log(None, 0)
            _drop_connection(environ)
        if fault is not None and fault.kind == "fail":
            request.get_data()
            response = json_response(
                fault.status, {"detail": f"Injected failure: status {fault.status}."}
            )
        else:
            response = self.dispatch(request)
        if fault is not None and fault.kind == "close" and fault.when == "after":
            log(None, 0)
            _drop_connection(environ)

        body = b"" if method == "HEAD" else response.get_data()
        log(response.status_code, len(body))
        if self.faults.bandwidth and body:
            response.response = self.faults.throttled(body)
            response.headers["Content-Length"] = str(len(body))
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        allowed = []
        for route in ROUTES:
            match = route.regex.match(path)
            if match is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            try:
                if not route.public:
                    with self.storage.read() as tx:
                        identity = auth.authenticate(
                            tx, request.method, request.headers, request.cookies
                        )
                else:
                    identity = None
                return getattr(self, route.handler)(request, identity, **match.groupdict())
            except ApiError as e:
                return json_response(e.status, e.body, e.headers)
            except ValidationError as e:
                return json_response(400, e.errors)
            except auth.AuthError as e:
                headers = {"WWW-Authenticate": 'Token realm="api"'} if e.status == 401 else None
                return json_response(e.status, {"detail": e.detail}, headers)
            except HTTPException as e:
                # werkzeug's own errors: a client that disconnected mid-body, a bad form...
                return json_response(e.code or 400, {"detail": e.description})
            except ConnectionError:
                raise
            except Exception as e:
                logger.exception("the test server failed on %s %s", request.method, path)
                return json_response(500, {"detail": f"Internal server error: {e}"})
        if allowed:
            return json_response(
                405,
                {"detail": f'Method "{request.method}" not allowed.'},
                {"Allow": ", ".join(sorted(set(allowed)))},
            )
        return json_response(404, {"detail": "Not found."})

    def base_url(self, request: Request) -> str:
        return request.host_url

    # common look-ups

    def _task(self, tx: Transaction, task_id: str | int) -> dict[str, Any]:
        task = tx.task(int(task_id))
        if task is None:
            raise not_found()
        return task

    def _job(self, tx: Transaction, job_id: str | int) -> tuple[dict[str, Any], dict[str, Any]]:
        job = tx.job(int(job_id))
        if job is None:
            raise not_found()
        return job, tx.task(job["task_id"])

    def _paginate(self, request: Request, items: list[Any]) -> dict[str, Any]:
        page = _int_param(request, "page", 1)
        page_size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE)
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        pages = max(1, -(-len(items) // page_size))
        if page < 1 or page > pages:
            raise ApiError(404, {"detail": "Invalid page."})

        def page_url(number: int) -> str:
            args = request.args.copy()
            args["page"] = str(number)
            return f"{request.base_url}?{urlencode(list(args.items(multi=True)))}"

        return {
            "count": len(items),
            "next": page_url(page + 1) if page < pages else None,
            "previous": page_url(page - 1) if page > 1 else None,
            "results": items[(page - 1) * page_size : page * page_size],
        }

    # server, auth, users

    def about(self, request: Request, identity: None) -> Response:
        return json_response(200, representations.about())

    def login(self, request: Request, identity: None) -> Response:
        body = _parse_json(request)
        username = body.get("username") or body.get("email") or ""
        password = body.get("password") or ""
        if not isinstance(username, str) or not isinstance(password, str) or not password:
            raise ApiError(400, {"password": ["This field is required."]})
        with self.storage.write() as tx:
            user = tx.user_by_name(username)
            if user is None or not auth.verify_password(password, user["password_hash"]):
                raise ApiError(
                    400, {"non_field_errors": ["Unable to log in with provided credentials."]}
                )
            key = auth.new_secret()
            session_id = auth.new_secret()
            csrf_token = auth.new_secret()
            tx.add_credential(auth.digest(key), "token", user["id"])
            tx.add_credential(auth.digest(session_id), "session", user["id"], csrf_token=csrf_token)
        response = json_response(200, {"key": key})
        response.set_cookie("sessionid", session_id, path="/", httponly=True, samesite="Lax")
        response.set_cookie("csrftoken", csrf_token, path="/", samesite="Lax")
        return response

    def logout(self, request: Request, identity: auth.Identity) -> Response:
        if identity.session_digest is not None:
            with self.storage.write() as tx:
                tx.delete_credential(identity.session_digest)
        response = json_response(200, {"detail": "Successfully logged out."})
        response.delete_cookie("sessionid", path="/")
        return response

    def current_user(self, request: Request, identity: auth.Identity) -> Response:
        return json_response(200, representations.user(identity.user, self.base_url(request)))

    # projects

    def list_projects(self, request: Request, identity: auth.Identity) -> Response:
        with self.storage.read() as tx:
            items = [representations.project(tx, p, self.base_url(request)) for p in tx.projects()]
        return json_response(200, self._paginate(request, items))

    def create_project(self, request: Request, identity: auth.Identity) -> Response:
        body = _parse_json(request)
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 256:
            raise ApiError(400, {"name": ["A project needs a name of 1 to 256 characters."]})
        labels = parse_label_specs(body.get("labels", []))
        with self.storage.write() as tx:
            project_id = tx.create_project(name, identity.user["id"], body.get("bug_tracker") or "")
            create_labels(tx, labels, project_id=project_id)
            result = representations.project(tx, tx.project(project_id), self.base_url(request))
        return json_response(201, result)

    def retrieve_project(
        self, request: Request, identity: auth.Identity, project_id: str
    ) -> Response:
        with self.storage.read() as tx:
            project = tx.project(int(project_id))
            if project is None:
                raise not_found()
            return json_response(200, representations.project(tx, project, self.base_url(request)))

    def delete_project(
        self, request: Request, identity: auth.Identity, project_id: str
    ) -> Response:
        with self.storage.write() as tx:
            if tx.project(int(project_id)) is None:
                raise not_found()
            task_ids = [t["id"] for t in tx.tasks(project_id=int(project_id))]
            tx.delete_project(int(project_id))
        for task_id in task_ids:
            shutil.rmtree(task_media_dir(self.media_root, task_id), ignore_errors=True)
        return empty_response(204)

    # tasks

    def list_tasks(self, request: Request, identity: auth.Identity) -> Response:
        project_id = _int_param(request, "project_id")
        name = request.args.get("name") or None
        raw_filter = request.args.get("filter") or ""
        try:
            rule = json.loads(raw_filter) if raw_filter else None
        except ValueError as e:
            raise ApiError(400, {"filter": [f"The filter is not valid JSON: {e}"]}) from e
        base_url = self.base_url(request)
        with self.storage.read() as tx:
            items = [
                representations.task(tx, task, base_url)
                for task in tx.tasks(project_id=project_id, name=name)
            ]
        if rule is not None:
            items = [
                item
                for item in items
                if _json_logic(rule, {**item, "owner": (item["owner"] or {}).get("username")})
            ]
        return json_response(200, self._paginate(request, items))

    def create_task(self, request: Request, identity: auth.Identity) -> Response:
        body = _parse_json(request)
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
        with self.storage.write() as tx:
            if project_id is not None and tx.project(project_id) is None:
                raise ApiError(
                    400, {"project_id": [f'Invalid pk "{project_id}" - object does not exist.']}
                )
            task_id = tx.create_task(
                {
                    "name": name,
                    "project_id": project_id,
                    "owner_id": identity.user["id"],
                    "bug_tracker": body.get("bug_tracker") or "",
                    "subset": body.get("subset") or "",
                    "segment_size": body.get("segment_size") or 0,
                    "overlap": body.get("overlap"),
                }
            )
            create_labels(tx, labels, task_id=task_id)
            result = representations.task(tx, tx.task(task_id), self.base_url(request))
        return json_response(201, result)

    def retrieve_task(self, request: Request, identity: auth.Identity, task_id: str) -> Response:
        with self.storage.read() as tx:
            task = self._task(tx, task_id)
            return json_response(200, representations.task(tx, task, self.base_url(request)))

    def update_task(self, request: Request, identity: auth.Identity, task_id: str) -> Response:
        body = _parse_json(request)
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
        with self.storage.write() as tx:
            task = self._task(tx, task_id)
            if labels and task["project_id"] is not None:
                raise ApiError(
                    400, {"labels": ["A task inside a project uses the project's labels."]}
                )
            existing = {label["name"] for label in tx.task_labels(task)}
            clashes = [spec["name"] for spec in labels if spec["name"] in existing]
            if clashes:
                raise ApiError(
                    400, {"labels": [f"The task already has the labels {', '.join(clashes)}."]}
                )
            if changes:
                tx.update_task(task["id"], changes)
            create_labels(tx, labels, task_id=task["id"])
            tx.touch_task(task["id"])
            return json_response(
                200, representations.task(tx, tx.task(task["id"]), self.base_url(request))
            )

    def delete_task(self, request: Request, identity: auth.Identity, task_id: str) -> Response:
        with self.storage.write() as tx:
            task = self._task(tx, task_id)
            tx.delete_task(task["id"])
        shutil.rmtree(task_media_dir(self.media_root, task["id"]), ignore_errors=True)
        return empty_response(204)

    # data upload: Upload-Start, Upload-Multiple, TUS, Upload-Finish

    def upload_data(self, request: Request, identity: auth.Identity, task_id: str) -> Response:
        headers = request.headers
        if "Upload-Start" in headers:
            return self._upload_start(int(task_id))
        if "Upload-Multiple" in headers:
            return self._upload_multiple(request, int(task_id))
        if "Upload-Finish" in headers:
            return self._upload_finish(request, identity, int(task_id), _parse_json(request))
        if "Tus-Resumable" in headers:
            return self._tus_create(request, int(task_id))
        # One request with the files and the parameters, as older clients send it.
        if request.files:
            self._upload_start(int(task_id))
            self._upload_multiple(request, int(task_id))
            params = {key: value for key, value in request.form.items()}
            return self._upload_finish(request, identity, int(task_id), params)
        body = _parse_json(request)
        parse_data_params(body)
        raise ApiError(
            400, {"client_files": ["Upload files with the request, or use the upload protocol."]}
        )

    def _uploads_dir(self, task_id: int) -> Path:
        return task_media_dir(self.media_root, task_id) / "uploads"

    def _upload_start(self, task_id: int) -> Response:
        with self.storage.write() as tx:
            task = self._task(tx, task_id)
            if task["media_type"] is not None:
                raise ApiError(
                    400, ["Adding more data is not supported: the task already has data."]
                )
            tx.clear_uploads(task_id)
            tx.update_task(task_id, {"upload_open": 1})
            shutil.rmtree(self._uploads_dir(task_id), ignore_errors=True)
        return empty_response(202)

    def _open_upload_task(self, tx: Transaction, task_id: int) -> dict[str, Any]:
        task = self._task(tx, task_id)
        if not task["upload_open"]:
            raise ApiError(
                400, ["No upload is in progress: send a request with Upload-Start first."]
            )
        return task

    def _upload_multiple(self, request: Request, task_id: int) -> Response:
        uploads_dir = self._uploads_dir(task_id)
        uploads_dir.mkdir(parents=True, exist_ok=True)
        parts = []
        for key, storage in request.files.items(multi=True):
            match = re.fullmatch(r"client_files\[(\d+)\]", key)
            if match is None:
                continue
            parts.append((int(match.group(1)), storage))
        parts.sort(key=lambda part: part[0])
        written = []
        try:
            with self.storage.write() as tx:
                self._open_upload_task(tx, task_id)
                offset = len(tx.uploads(task_id))
                for index, (_, storage) in enumerate(parts):
                    name = PurePosixPath((storage.filename or "").replace("\\", "/")).name
                    if not name:
                        raise ApiError(
                            400, {"client_files": ["Every file part needs a file name."]}
                        )
                    target = uploads_dir / f"{offset + index:06d}_{uuid.uuid4().hex}"
                    storage.save(target)
                    written.append(target)
                    tx.add_upload(task_id, name, str(target), target.stat().st_size)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return json_response(200, {})

    def _tus_create(self, request: Request, task_id: int) -> Response:
        try:
            length = int(request.headers.get("Upload-Length", ""))
        except ValueError:
            raise ApiError(400, {"detail": "Upload-Length must be an integer."}) from None
        metadata = {}
        for item in request.headers.get("Upload-Metadata", "").split(","):
            key, _, value = item.strip().partition(" ")
            if key:
                try:
                    metadata[key] = base64.b64decode(value).decode()
                except (ValueError, UnicodeDecodeError):
                    raise ApiError(
                        400, {"detail": "Upload-Metadata is not valid base64."}
                    ) from None
        name = PurePosixPath(metadata.get("filename", "").replace("\\", "/")).name
        if not name:
            raise ApiError(400, {"detail": "Upload-Metadata needs a filename."})
        upload_id = str(uuid.uuid4())
        uploads_dir = self._uploads_dir(task_id)
        uploads_dir.mkdir(parents=True, exist_ok=True)
        target = uploads_dir / f"tus_{upload_id}"
        with self.storage.write() as tx:
            self._open_upload_task(tx, task_id)
            target.touch()
            tx.add_upload(task_id, name, str(target), length, tus_id=upload_id)
        location = f"{self.base_url(request)}api/tasks/{task_id}/data/{upload_id}"
        return empty_response(
            201,
            {"Location": location, "Upload-Filename": name, "Tus-Resumable": TUS_VERSION},
        )

    def tus_append(
        self, request: Request, identity: auth.Identity, task_id: str, upload_id: str
    ) -> Response:
        offset_header = request.headers.get("Upload-Offset", "")
        if request.mimetype != "application/offset+octet-stream":
            raise ApiError(
                415, {"detail": "TUS chunks need Content-Type application/offset+octet-stream."}
            )
        chunk = request.get_data()
        with self.storage.write() as tx:
            upload = tx.tus_upload(int(task_id), upload_id)
            if upload is None:
                raise not_found()
            if offset_header != str(upload["offset"]):
                raise ApiError(
                    409,
                    {"detail": f"Upload-Offset must be {upload['offset']}."},
                    {"Upload-Offset": str(upload["offset"]), "Tus-Resumable": TUS_VERSION},
                )
            new_offset = upload["offset"] + len(chunk)
            if new_offset > upload["length"]:
                raise ApiError(400, {"detail": "The chunk goes past Upload-Length."})
            with open(upload["path"], "r+b") as file:
                file.seek(upload["offset"])
                file.write(chunk)
                file.truncate()
            tx.set_upload_offset(upload["id"], new_offset)
        return empty_response(204, {"Upload-Offset": str(new_offset), "Tus-Resumable": TUS_VERSION})

    def tus_offset(
        self, request: Request, identity: auth.Identity, task_id: str, upload_id: str
    ) -> Response:
        with self.storage.read() as tx:
            upload = tx.tus_upload(int(task_id), upload_id)
        if upload is None:
            raise not_found()
        return empty_response(
            200,
            {
                "Upload-Offset": str(upload["offset"]),
                "Upload-Length": str(upload["length"]),
                "Tus-Resumable": TUS_VERSION,
                "Cache-Control": "no-store",
            },
        )

    def _upload_finish(
        self, request: Request, identity: auth.Identity, task_id: int, body: Any
    ) -> Response:
        if not isinstance(body, dict):
            raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
        params = parse_data_params(body)
        request_id = _task_request_id(task_id)
        task_dir = task_media_dir(self.media_root, task_id)
        try:
            with self.storage.write() as tx:
                self._open_upload_task(tx, task_id)
                uploads = tx.uploads(task_id)
                unfinished = [u["name"] for u in uploads if u["offset"] != u["length"]]
                if unfinished:
                    raise media.MediaError(
                        f"The uploads of {', '.join(unfinished)} are not finished."
                    )
                files = [(u["name"], Path(u["path"])) for u in uploads]
                attach_data(tx, self.media_root, task_id, files, params)
                tx.create_request(
                    request_id,
                    owner_id=identity.user["id"],
                    operation_type="create:task",
                    target="task",
                    task_id=task_id,
                    status="finished",
                )
        except media.MediaError as e:
            # CVAT checks media in a background job: the request is accepted, then fails.
            with self.storage.write() as tx:
                if tx.task(task_id)["media_type"] is None:
                    shutil.rmtree(task_dir / "original", ignore_errors=True)
                shutil.rmtree(task_dir / "uploads", ignore_errors=True)
                tx.clear_uploads(task_id)
                tx.update_task(task_id, {"upload_open": 0})
                tx.create_request(
                    request_id,
                    owner_id=identity.user["id"],
                    operation_type="create:task",
                    target="task",
                    task_id=task_id,
                    status="failed",
                    message=str(e),
                )
        return json_response(202, {"rq_id": request_id})

    def retrieve_request(self, request: Request, identity: auth.Identity, rq_id: str) -> Response:
        with self.storage.read() as tx:
            req = tx.request(rq_id)
            if req is None:
                raise not_found()
            owner = tx.user(req["owner_id"]) if req["owner_id"] else None
        return json_response(200, representations.request(req, owner))

    # data: meta, frames, chunks

    def task_data_meta(self, request: Request, identity: auth.Identity, task_id: str) -> Response:
        with self.storage.read() as tx:
            task = self._task(tx, task_id)
            return json_response(200, representations.data_meta(task, tx.frames(task["id"])))

    def update_task_data_meta(
        self, request: Request, identity: auth.Identity, task_id: str
    ) -> Response:
        body = _parse_json(request)
        deleted = body.get("deleted_frames") if isinstance(body, dict) else None
        if deleted is None:
            return self.task_data_meta(request, identity, task_id)
        if not isinstance(deleted, list) or not all(
            isinstance(f, int) and not isinstance(f, bool) and f >= 0 for f in deleted
        ):
            raise ApiError(
                400, {"deleted_frames": ["Expected a list of non-negative frame numbers."]}
            )
        with self.storage.write() as tx:
            task = self._task(tx, task_id)
            outside = [f for f in deleted if f >= task["size"]]
            if outside:
                raise ApiError(
                    400,
                    {
                        "deleted_frames": [
                            f"Frames {outside} are outside the task's {task['size']} frames."
                        ]
                    },
                )
            tx.set_deleted_frames(task["id"], deleted)
            tx.touch_task(task["id"])
            return json_response(
                200, representations.data_meta(tx.task(task["id"]), tx.frames(task["id"]))
            )

    def task_data(self, request: Request, identity: auth.Identity, task_id: str) -> Response:
        with self.storage.read() as tx:
            task = self._task(tx, task_id)
            frames = tx.frames(task["id"])
        return self._serve_data(
            request, task, frames, 0, task["size"] - 1, job_relative_chunks=False
        )

    def task_preview(self, request: Request, identity: auth.Identity, task_id: str) -> Response:
        with self.storage.read() as tx:
            task = self._task(tx, task_id)
            frame = tx.frame(task["id"], 0)
        if frame is None:
            raise ApiError(404, {"detail": "The task has no data."})
        return self._preview(task, frame)

    def job_data_meta(self, request: Request, identity: auth.Identity, job_id: str) -> Response:
        with self.storage.read() as tx:
            job, task = self._job(tx, job_id)
            meta = representations.data_meta(
                task, tx.frames(task["id"]), job["start_frame"], job["stop_frame"]
            )
        return json_response(200, meta)

    def job_data(self, request: Request, identity: auth.Identity, job_id: str) -> Response:
        with self.storage.read() as tx:
            job, task = self._job(tx, job_id)
            frames = tx.frames(task["id"])
        return self._serve_data(
            request, task, frames, job["start_frame"], job["stop_frame"], job_relative_chunks=True
        )

    def _serve_data(
        self,
        request: Request,
        task: dict[str, Any],
        frames: list[dict[str, Any]],
        first: int,
        last: int,
        *,
        job_relative_chunks: bool,
    ) -> Response:
        kind = request.args.get("type", "")
        quality = request.args.get("quality") or "compressed"
        if quality not in ("compressed", "original"):
            raise ApiError(
                400,
                {"quality": [f"{quality!r} is not a valid choice, use compressed or original."]},
            )
        number = _int_param(request, "number")
        if task["media_type"] is None:
            raise ApiError(400, ["The task has no data."])
        if kind == "preview":
            return self._preview(task, frames[first])
        if number is None:
            raise ApiError(400, {"number": ["This parameter is required."]})
        if kind == "frame":
            if not first <= number <= last:
                raise ApiError(
                    400, [f"The frame number {number} is outside the frames {first}-{last}."]
                )
            return self._frame(task, frames[number], quality)
        if kind == "chunk":
            chunk_size = task["chunk_size"]
            base = first if job_relative_chunks else 0
            start = base + number * chunk_size
            if number < 0 or start > last:
                raise ApiError(400, [f"The chunk number {number} is outside the data."])
            chunk_frames = frames[start : min(start + chunk_size - 1, last) + 1]
            return self._chunk(
                task, chunk_frames, quality, f"{start}-{start + len(chunk_frames) - 1}"
            )
        raise ApiError(
            400, {"type": [f"{kind!r} is not a valid choice, use chunk, frame or preview."]}
        )

    def _frame_path(self, task: dict[str, Any], frame: dict[str, Any]) -> Path:
        return task_media_dir(self.media_root, task["id"]) / frame["path"]

    def _frame(self, task: dict[str, Any], frame: dict[str, Any], quality: str) -> Response:
        path = self._frame_path(task, frame)
        if quality == "original":
            return Response(path.read_bytes(), status=200, content_type=media.mime_type(path))
        cached = (
            task_media_dir(self.media_root, task["id"]) / "compressed" / f"{frame['frame']:06d}.jpg"
        )
        if not cached.exists():
            data = media.encode_jpeg(path, task["image_quality"])
            media.write_atomically(cached, lambda temporary: temporary.write_bytes(data))
        return Response(cached.read_bytes(), status=200, content_type="image/jpeg")

    def _preview(self, task: dict[str, Any], frame: dict[str, Any]) -> Response:
        with PIL.Image.open(self._frame_path(task, frame)) as image:
            image = image.convert("RGB")
            image.thumbnail((256, 256))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=80)
        return Response(buffer.getvalue(), status=200, content_type="image/jpeg")

    def _chunk(
        self, task: dict[str, Any], frames: list[dict[str, Any]], quality: str, span: str
    ) -> Response:
        chunk_type = (
            task["original_chunk_type"] if quality == "original" else task["compressed_chunk_type"]
        )
        extension = "zip" if chunk_type == "imageset" else "mp4"
        cached = (
            task_media_dir(self.media_root, task["id"]) / "chunks" / f"{quality}_{span}.{extension}"
        )
        if not cached.exists():
            paths = [self._frame_path(task, frame) for frame in frames]
            if chunk_type == "imageset":
                media.write_imageset_chunk(
                    cached, paths, None if quality == "original" else task["image_quality"]
                )
            else:
                media.write_video_chunk(
                    cached, paths, 100 if quality == "original" else task["image_quality"]
                )
        content_type = "application/zip" if extension == "zip" else "video/mp4"
        return Response(cached.read_bytes(), status=200, content_type=content_type)

    # labels and jobs

    def list_labels(self, request: Request, identity: auth.Identity) -> Response:
        task_id = _int_param(request, "task_id")
        project_id = _int_param(request, "project_id")
        job_id = _int_param(request, "job_id")
        parent_id = _int_param(request, "parent_id")
        with self.storage.read() as tx:
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
        return json_response(
            200, self._paginate(request, [representations.label(label) for label in labels])
        )

    def retrieve_label(self, request: Request, identity: auth.Identity, label_id: str) -> Response:
        with self.storage.read() as tx:
            label = tx.label(int(label_id))
        if label is None:
            raise not_found()
        return json_response(200, representations.label(label))

    def list_jobs(self, request: Request, identity: auth.Identity) -> Response:
        task_id = _int_param(request, "task_id")
        base_url = self.base_url(request)
        with self.storage.read() as tx:
            items = [
                representations.job(tx, job, tx.task(job["task_id"]), base_url)
                for job in tx.jobs(task_id)
            ]
        return json_response(200, self._paginate(request, items))

    def retrieve_job(self, request: Request, identity: auth.Identity, job_id: str) -> Response:
        with self.storage.read() as tx:
            job, task = self._job(tx, job_id)
            return json_response(200, representations.job(tx, job, task, self.base_url(request)))

    # annotations

    def get_task_annotations(
        self, request: Request, identity: auth.Identity, task_id: str
    ) -> Response:
        with self.storage.read() as tx:
            task = self._task(tx, task_id)
            return json_response(200, tx.annotations(task["id"]))

    def put_task_annotations(
        self, request: Request, identity: auth.Identity, task_id: str
    ) -> Response:
        return self._change_annotations(request, int(task_id), None, "put")

    def patch_task_annotations(
        self, request: Request, identity: auth.Identity, task_id: str
    ) -> Response:
        return self._change_annotations(request, int(task_id), None, self._patch_action(request))

    def delete_task_annotations(
        self, request: Request, identity: auth.Identity, task_id: str
    ) -> Response:
        return self._change_annotations(request, int(task_id), None, "clear")

    def import_annotations(
        self, request: Request, identity: auth.Identity, task_id: str
    ) -> Response:
        raise ApiError(
            400,
            [
                "The test server does not import annotation files; send annotations with PUT or PATCH."
            ],
        )

    def get_job_annotations(
        self, request: Request, identity: auth.Identity, job_id: str
    ) -> Response:
        with self.storage.read() as tx:
            job, task = self._job(tx, job_id)
            return json_response(
                200, tx.annotations(task["id"], job["start_frame"], job["stop_frame"])
            )

    def put_job_annotations(
        self, request: Request, identity: auth.Identity, job_id: str
    ) -> Response:
        return self._change_annotations(request, None, int(job_id), "put")

    def patch_job_annotations(
        self, request: Request, identity: auth.Identity, job_id: str
    ) -> Response:
        return self._change_annotations(request, None, int(job_id), self._patch_action(request))

    def delete_job_annotations(
        self, request: Request, identity: auth.Identity, job_id: str
    ) -> Response:
        return self._change_annotations(request, None, int(job_id), "clear")

    @staticmethod
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
        self, request: Request, task_id: int | None, job_id: int | None, action: str
    ) -> Response:
        """PUT ("put"), PATCH ("create", "update", "delete") and DELETE ("clear")."""
        data = parse_labeled_data(_parse_json(request)) if action != "clear" else None
        with self.storage.write() as tx:
            if job_id is not None:
                job, task = self._job(tx, job_id)
                first, last, scope = job["start_frame"], job["stop_frame"], "job"
            else:
                task = self._task(tx, task_id)
                first, last, scope = 0, task["size"] - 1, "task"
            job_range = (first, last) if job_id is not None else (None, None)
            if action in ("put", "create", "update"):
                check_annotations(data, tx.task_labels(task), range(first, last + 1), scope=scope)
            if action in ("put", "clear"):
                tx.delete_annotations(task["id"], *job_range)
            elif action in ("update", "delete"):
                for kind in ("tags", "shapes", "tracks"):
                    tx.delete_annotations_by_id(
                        task["id"], kind, annotation_ids(data, kind), *job_range
                    )
            if action in ("put", "create", "update"):
                keep_ids = action != "create"
                if keep_ids:
                    try:
                        tx.ensure_ids_unused(data)
                    except IdConflictError as e:
                        raise ApiError(
                            400, {"id": [f"{e}; use an id of this {scope}'s annotations or none."]}
                        ) from e
                tx.insert_annotations(task["id"], data, keep_ids=keep_ids)
            tx.touch_task(task["id"])
            tx.touch_jobs(task["id"], first, max(first, last))
        if action == "clear":
            return empty_response(204)
        return json_response(200, data)


def _drop_connection(environ: dict[str, Any]) -> None:
    """Closes the client's connection without a reply (fault injection)."""
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionAbortedError("connection closed by fault injection")
