"""Attaching data to a task: the upload protocol cvat-sdk speaks, and its background request.

``Upload-Start``, then files in ``Upload-Multiple`` parts or TUS uploads (create, append,
offset), then ``Upload-Finish`` with the data parameters; or everything in one request, as
older clients send it; or a request that names files on the server's share or URLs instead
(:mod:`cvat_aa_testing.data_sources`). Finishing answers with a background request id that
``/api/requests/{id}`` reports on, as CVAT does: media that cannot be read (or found, or
downloaded) fail that request, not the upload.
"""

from __future__ import annotations

import base64
import re
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from werkzeug.wrappers import Request, Response

from .. import auth, data_sources, media, representations
from ..storage import Transaction
from ..task_data import (
    DataParams,
    attach_data,
    parse_data_params,
    sort_images,
    task_media_dir,
)
from .context import ServerContext
from .http import ID, ApiError, Route, empty_response, json_response, not_found, parse_json

TUS_VERSION = "1.0.0"
_UPLOAD_ID = "(?P<upload_id>[0-9a-f-]{36})"


def _task_request_id(task_id: int) -> str:
    return f"action=create&target=task&target_id={task_id}"


def upload_data(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str
) -> Response:
    headers = request.headers
    if "Upload-Start" in headers:
        return _upload_start(ctx, int(task_id))
    if "Upload-Multiple" in headers:
        return _upload_multiple(ctx, request, int(task_id))
    if "Upload-Finish" in headers:
        return _upload_finish(ctx, request, identity, int(task_id), parse_json(request))
    if "Tus-Resumable" in headers:
        return _tus_create(ctx, request, int(task_id))
    # One request with the files and the parameters, as older clients send it.
    if request.files:
        _upload_start(ctx, int(task_id))
        _upload_multiple(ctx, request, int(task_id))
        params = {key: value for key, value in request.form.items()}
        return _upload_finish(ctx, request, identity, int(task_id), params)
    # Files on the server's share or behind URLs, as cvat-sdk's SHARE and REMOTE resources.
    body = _data_request(parse_json(request))
    params = parse_data_params(body)
    if not (params.server_files or params.remote_files):
        raise ApiError(
            400, {"client_files": ["Upload files with the request, or use the upload protocol."]}
        )
    return _attach(ctx, identity, int(task_id), params, uploaded=False)


def _uploads_dir(ctx: ServerContext, task_id: int) -> Path:
    return task_media_dir(ctx.media_root, task_id) / "uploads"


def _upload_start(ctx: ServerContext, task_id: int) -> Response:
    with ctx.storage.write() as tx:
        task = ctx.task(tx, task_id)
        if task["media_type"] is not None:
            raise ApiError(400, ["Adding more data is not supported: the task already has data."])
        tx.clear_uploads(task_id)
        tx.update_task(task_id, {"upload_open": 1})
        shutil.rmtree(_uploads_dir(ctx, task_id), ignore_errors=True)
    return empty_response(202)


def _open_upload_task(ctx: ServerContext, tx: Transaction, task_id: int) -> dict[str, Any]:
    task = ctx.task(tx, task_id)
    if not task["upload_open"]:
        raise ApiError(400, ["No upload is in progress: send a request with Upload-Start first."])
    return task


def _upload_multiple(ctx: ServerContext, request: Request, task_id: int) -> Response:
    uploads_dir = _uploads_dir(ctx, task_id)
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
        with ctx.storage.write() as tx:
            _open_upload_task(ctx, tx, task_id)
            offset = len(tx.uploads(task_id))
            for index, (_, storage) in enumerate(parts):
                name = PurePosixPath((storage.filename or "").replace("\\", "/")).name
                if not name:
                    raise ApiError(400, {"client_files": ["Every file part needs a file name."]})
                target = uploads_dir / f"{offset + index:06d}_{uuid.uuid4().hex}"
                storage.save(target)
                written.append(target)
                tx.add_upload(task_id, name, str(target), target.stat().st_size)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return empty_response(200)


def _tus_create(ctx: ServerContext, request: Request, task_id: int) -> Response:
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
                raise ApiError(400, {"detail": "Upload-Metadata is not valid base64."}) from None
    name = PurePosixPath(metadata.get("filename", "").replace("\\", "/")).name
    if not name:
        raise ApiError(400, {"detail": "Upload-Metadata needs a filename."})
    upload_id = str(uuid.uuid4())
    uploads_dir = _uploads_dir(ctx, task_id)
    uploads_dir.mkdir(parents=True, exist_ok=True)
    target = uploads_dir / f"tus_{upload_id}"
    with ctx.storage.write() as tx:
        _open_upload_task(ctx, tx, task_id)
        target.touch()
        tx.add_upload(task_id, name, str(target), length, tus_id=upload_id)
    location = f"{request.host_url}api/tasks/{task_id}/data/{upload_id}"
    return empty_response(
        201,
        {"Location": location, "Upload-Filename": name, "Tus-Resumable": TUS_VERSION},
    )


def tus_append(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str, upload_id: str
) -> Response:
    offset_header = request.headers.get("Upload-Offset", "")
    if request.mimetype != "application/offset+octet-stream":
        raise ApiError(
            415, {"detail": "TUS chunks need Content-Type application/offset+octet-stream."}
        )
    chunk = request.get_data()
    with ctx.storage.write() as tx:
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
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: str, upload_id: str
) -> Response:
    with ctx.storage.read() as tx:
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


def _data_request(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    return body


def _upload_finish(
    ctx: ServerContext, request: Request, identity: auth.Identity, task_id: int, body: Any
) -> Response:
    params = parse_data_params(_data_request(body))
    with ctx.storage.read() as tx:
        _open_upload_task(ctx, tx, task_id)
    return _attach(ctx, identity, task_id, params, uploaded=True)


def _source_files(ctx: ServerContext, task_id: int, params: DataParams) -> list[tuple[str, Path]]:
    """The files that ``remote_files`` and ``server_files`` name: downloads first, as CVAT."""
    files = []
    if params.remote_files:
        target = _uploads_dir(ctx, task_id) / "remote"
        files.extend(data_sources.download(params.remote_files, target))
    if params.server_files:
        files.extend(
            data_sources.share_files(
                ctx.share_root,
                params.server_files,
                exclude=params.server_files_exclude,
                order=lambda files: sort_images(files, params),
                copy_data=params.copy_data,
            )
        )
    return files


def _attach(
    ctx: ServerContext,
    identity: auth.Identity,
    task_id: int,
    params: DataParams,
    *,
    uploaded: bool,
) -> Response:
    """Makes the task's data of the uploaded files (if ``uploaded``) and the files the
    parameters name, and records the background request that CVAT would run for it."""
    request_id = _task_request_id(task_id)
    task_dir = task_media_dir(ctx.media_root, task_id)
    try:
        with ctx.storage.read() as tx:
            ctx.task(tx, task_id)
        sources = _source_files(ctx, task_id, params)
        with ctx.storage.write() as tx:
            files = []
            if uploaded:
                _open_upload_task(ctx, tx, task_id)
                uploads = tx.uploads(task_id)
                unfinished = [u["name"] for u in uploads if u["offset"] != u["length"]]
                if unfinished:
                    raise media.MediaError(
                        f"The uploads of {', '.join(unfinished)} are not finished."
                    )
                files = [(u["name"], Path(u["path"])) for u in uploads]
            attach_data(tx, ctx.media_root, task_id, [*files, *sources], params)
            tx.create_request(
                request_id,
                owner_id=identity.user["id"],
                operation_type="create:task",
                target="task",
                task_id=task_id,
                project_id=tx.task(task_id)["project_id"],
                status="finished",
            )
    except media.MediaError as e:
        # CVAT checks media in a background job: the request is accepted, then fails.
        with ctx.storage.write() as tx:
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
                project_id=tx.task(task_id)["project_id"],
                status="failed",
                message=str(e),
            )
    return json_response(202, {"rq_id": request_id})


def retrieve_request(
    ctx: ServerContext, request: Request, identity: auth.Identity, rq_id: str
) -> Response:
    with ctx.storage.read() as tx:
        req = tx.request(rq_id)
        if req is None:
            # CVAT answers this one in plain words, not JSON.
            return Response(
                "There is no request with specified id", status=404, mimetype="text/html"
            )
        owner = tx.user(req["owner_id"]) if req["owner_id"] else None
    return json_response(200, representations.request(req, owner))


ROUTES = [
    Route("POST", "/api/tasks/" + ID.format("task_id") + "/data", upload_data, scope="upload:data"),
    Route(
        "PATCH",
        "/api/tasks/" + ID.format("task_id") + "/data/" + _UPLOAD_ID,
        tus_append,
        scope="upload:data",
    ),
    Route(
        "HEAD",
        "/api/tasks/" + ID.format("task_id") + "/data/" + _UPLOAD_ID,
        tus_offset,
        scope="upload:data",
    ),
    Route("GET", "/api/requests/(?P<rq_id>[^/]+)", retrieve_request),
]
