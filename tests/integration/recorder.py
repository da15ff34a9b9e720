"""A recording reverse proxy: what the clients asked the server and what it answered.

With ``CVAT_AA_IT_RECORD=DIR`` the suite puts this proxy between every client (cvat-sdk in the
tests, cvat-aa and cvat-cli subprocesses) and the server, and writes one JSON line per request
to ``DIR/<scenario>.jsonl``: the method, the path and query, the status, the content type, and
the request's and the response's bodies. Two recordings of the same scenarios, one per server,
are compared by :mod:`differential`.

What is per-server is replaced as it is recorded, so that the rest can be compared as is:

* ids (in paths, queries and bodies) become ``<kind#n>``, numbered per kind in the order they
  first appear in the scenario (so ``label_id`` 4711 on one server and 3 on the other are both
  ``<label#2>`` when both are the second label the scenario saw);
* dates become ``<date>``, the server's address ``<server>``, background request ids ``<rq>``,
  upload ids ``<upload>``, the session's name prefix ``<prefix>``, user names ``<user>``,
  ``<user2>`` ..., the Nuclio dashboard's address (``cvat-aa serve``'s) ``<nuclio>``;
* a failed background request's ``exc_info`` (a traceback through the server's own code) is
  kept to its last line, the error;
* secrets are never written: no header is recorded (no cookie, token or CSRF value), bodies
  of the login and registration endpoints are left out, and any value that equals a known
  secret, or sits under a key such as ``key`` or ``password``, is ``<secret>``.

Binary bodies are summarised: an image by its format and size, a ZIP by its member names and
their image sizes, anything else by its content type.
"""

from __future__ import annotations

import http.client
import http.server
import io
import json
import re
import threading
import urllib.parse
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
#: A background request's id names its task or project: ``action=create&target=task&target_id=5``.
_REQUEST_TARGET = re.compile(r"target=(task|project|job)&target_id=(\d+)")
#: CVAT names a skeleton's points by their label ids in its svg.
_SVG_LABEL_ID = re.compile(r'data-label-id="(\d+)"')
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
_SECRET_KEYS = {"key", "password", "password1", "password2", "token", "csrftoken", "sessionid"}
_UNRECORDED_BODIES = ("/api/auth/login", "/api/auth/register", "/api/auth/password")

#: The kind of id under each key; "id" takes the kind of what holds it (see _kind_of_id).
_ID_KEYS = {
    "label_id": "label",
    "parent_id": "label",
    "spec_id": "attribute",
    "task_id": "task",
    "project_id": "project",
    "job_id": "job",
    "parent_job_id": "job",
    "organization_id": "organization",
    "organization": "organization",
    "assignee_id": "user",
    "owner_id": "user",
    "guide_id": "guide",
    "cloud_storage_id": "cloud_storage",
    "data_cloud_storage_id": "cloud_storage",
    "data": "data",
    # Lambda requests and function calls name their task and job so.
    "task": "task",
    "job": "job",
}
_CONTAINER_KINDS = {
    "shapes": "shape",
    "elements": "shape",
    "tags": "tag",
    "tracks": "track",
    "attributes": "attribute",
    "sublabels": "label",
    "labels": "label",
    "owner": "user",
    "assignee": "user",
    "jobs": "job",
    "tasks": "task",
}
_RESOURCES = {
    "tasks": "task",
    "jobs": "job",
    "projects": "project",
    "labels": "label",
    "users": "user",
    "organizations": "organization",
    "memberships": "membership",
    "invitations": "invitation",
}


class Normalizer:
    """Replaces what is per-server in one scenario's requests and responses."""

    def __init__(
        self, server_urls: Iterable[str], names: dict[str, str], secrets: Iterable[str]
    ) -> None:
        # Held, not copied: a user registered half-way through a scenario is named from then on.
        self.server_urls = server_urls
        self.names = names
        self.secrets = secrets
        self.ids: dict[tuple[str, Any], str] = {}
        self.counts: dict[str, int] = {}

    def id(self, kind: str, value: Any) -> str:
        key = (kind, value)
        if key not in self.ids:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.ids[key] = f"<{kind}#{self.counts[kind]}>"
        return self.ids[key]

    def path(self, path: str) -> str:
        parts = path.split("/")
        out = []
        for i, part in enumerate(parts):
            previous = parts[i - 1] if i else ""
            if part.isdigit() and previous in _RESOURCES:
                out.append(self.id(_RESOURCES[previous], int(part)))
            elif previous == "requests" and part:
                out.append("<rq>")
            elif _UUID.fullmatch(part):
                out.append("<upload>")
            else:
                out.append(self.text(part))
        return "/".join(out)

    def query(self, query: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            if name in _ID_KEYS and value.isdigit():
                value = self.id(_ID_KEYS[name], int(value))
            elif name == "org_id" and value.isdigit():
                value = self.id("organization", int(value))
            elif name == "rq_id":
                value = "<rq>"
            else:
                value = self.text(value)
            result.setdefault(name, []).append(value)
        return {k: v[0] if len(v) == 1 else v for k, v in sorted(result.items())}

    def text(self, value: str) -> str:
        if value and value in self.secrets:
            return "<secret>"
        if _DATE.match(value):
            return "<date>"
        for url in sorted((u.rstrip("/") for u in self.server_urls), key=len, reverse=True):
            if value.startswith(url):
                rest = value[len(url) :]
                path, _, query = rest.partition("?")
                normal = "<server>" + self.path(path)
                if query:
                    normal += "?" + urllib.parse.urlencode(
                        self.query(query), doseq=True, safe="<>#"
                    )
                return normal
        value = _SVG_LABEL_ID.sub(
            lambda m: f'data-label-id="{self.id("label", int(m.group(1)))}"', value
        )
        value = _REQUEST_TARGET.sub(
            lambda m: f"target={m.group(1)}&target_id={self.id(m.group(1), int(m.group(2)))}", value
        )
        # Longer names first, so that a name that contains another is replaced whole.
        for name in sorted(self.names, key=len, reverse=True):
            value = value.replace(name, self.names[name])
        return _UUID.sub("<uuid>", value)

    def body(self, value: Any, *, resource: str | None, container: str | None = None) -> Any:
        if isinstance(value, dict):
            return {
                key: self._field(key, item, resource=resource, container=container)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.body(item, resource=resource, container=container) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def _field(self, key: str, value: Any, *, resource: str | None, container: str | None) -> Any:
        if key in _SECRET_KEYS and isinstance(value, str):
            return "<secret>"
        if key == "id" and isinstance(value, int) and not isinstance(value, bool):
            return self.id(container or resource or "object", value)
        if key in _ID_KEYS and isinstance(value, int) and not isinstance(value, bool):
            return self.id(_ID_KEYS[key], value)
        if key in ("owner", "assignee") and isinstance(value, int) and not isinstance(value, bool):
            # A user by id (a job PATCH sends {"assignee": 5}; answers hold the user object).
            return self.id("user", value)
        if key == "rq_id" and isinstance(value, str):
            return "<rq>"
        if key == "exc_info" and isinstance(value, str) and value.strip():
            # A failed request's traceback runs through each server's own code: its last
            # line, the error, is what a client shows and what is compared.
            return self.text(value.strip().splitlines()[-1])
        if key in ("results",):
            return self.body(value, resource=resource, container=resource)
        if key in _CONTAINER_KINDS and isinstance(value, (dict, list)):
            return self.body(value, resource=resource, container=_CONTAINER_KINDS[key])
        if isinstance(value, (dict, list)):
            # A nested object of something else (e.g. a track's "shapes" are tracked shapes).
            inner = f"{container}.{key}" if container in ("track",) else None
            return self.body(value, resource=resource, container=inner)
        return self.body(value, resource=resource)


def resource_of(path: str) -> str | None:
    """The kind of object an endpoint returns (``/api/tasks/5`` and ``/api/tasks``: task)."""
    parts = [p for p in path.split("/") if p]
    if 2 <= len(parts) <= 3 and parts[0] == "api" and parts[1] in _RESOURCES:
        return _RESOURCES[parts[1]]
    return None


def summarize_binary(content_type: str, data: bytes) -> dict[str, Any]:
    """What a binary body holds, without its bytes (which differ with every encoder)."""
    summary: dict[str, Any] = {"content_type": content_type.split(";")[0]}
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                summary["zip"] = [
                    {"name": info.filename, **_image_summary(archive.read(info))}
                    for info in archive.infolist()
                ]
        except zipfile.BadZipFile:
            summary["zip"] = "unreadable"
        return summary
    summary.update(_image_summary(data))
    return summary


def _image_summary(data: bytes) -> dict[str, Any]:
    import PIL.Image

    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            return {"image": [image.format, image.width, image.height]}
    except (OSError, ValueError, PIL.Image.DecompressionBombError):
        return {}  # not an image


class Recorder:
    """The records of the scenario running now; one JSONL file per scenario."""

    def __init__(self, directory: Path, server_urls: list[str], secrets: list[str]) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.server_urls = server_urls
        self.secrets = list(secrets)
        self.names: dict[str, str] = {}
        self._lock = threading.Lock()
        self._scenario: str | None = None
        self._normalizer: Normalizer | None = None
        self._seq = 0

    def add_name(self, name: str, placeholder: str) -> None:
        """Replace ``name`` with ``placeholder`` wherever it appears (prefixes, user names)."""
        self.names[name] = placeholder

    def add_secret(self, secret: str) -> None:
        self.secrets.append(secret)

    def start_scenario(self, name: str) -> None:
        with self._lock:
            self._scenario = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
            self._normalizer = Normalizer(self.server_urls, self.names, self.secrets)
            self._seq = 0
            (self.directory / f"{self._scenario}.jsonl").write_text("")

    def end_scenario(self) -> None:
        with self._lock:
            self._scenario = None
            self._normalizer = None

    def record(
        self,
        method: str,
        target: str,
        request_type: str,
        request_body: bytes,
        status: int,
        response_type: str,
        response_body: bytes,
    ) -> None:
        with self._lock:
            if self._scenario is None:
                return
            normal = self._normalizer
            path, _, query = target.partition("?")
            resource = resource_of(path)
            entry: dict[str, Any] = {
                "seq": self._seq,
                "method": method,
                "path": normal.path(path),
                "query": normal.query(query),
                "status": status,
            }
            self._seq += 1
            if not path.startswith(_UNRECORDED_BODIES):
                entry["request"] = self._body(normal, request_type, request_body, resource)
                entry["response"] = self._body(normal, response_type, response_body, resource)
            else:
                entry["response"] = "<not recorded>"
            with (self.directory / f"{self._scenario}.jsonl").open("a") as out:
                out.write(json.dumps(entry, sort_keys=True) + "\n")

    @staticmethod
    def _body(normal: Normalizer, content_type: str, data: bytes, resource: str | None) -> Any:
        if not data:
            return None
        kind = content_type.split(";")[0].strip().lower()
        if "json" in kind or (not kind and data[:1] in (b"{", b"[")):
            try:
                return normal.body(json.loads(data), resource=resource)
            except ValueError:
                return {"content_type": kind, "unparsable_json": len(data)}
        if kind.startswith("multipart/"):
            names = re.findall(rb'name="([^"]*)"(?:; filename="([^"]*)")?', data)
            return {
                "multipart": [[n.decode(), Path(f.decode()).name if f else None] for n, f in names]
            }
        if kind.startswith("text/"):
            return {"content_type": kind, "text": normal.text(data.decode("utf-8", "replace"))}
        return summarize_binary(kind, data)


class RecordingProxy:
    """A threaded HTTP reverse proxy to ``upstream`` that hands each exchange to a Recorder.

    The ``Host`` header is passed on unchanged, so the server builds the URLs it returns (the
    ``url`` fields, a TUS upload's ``Location``) with the proxy's address, and the clients keep
    coming back through it.
    """

    def __init__(self, upstream: str, recorder: Recorder) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or (443 if parts.scheme == "https" else 80)
        self.upstream_https = parts.scheme == "https"
        self.recorder = recorder
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RecordingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _connection(self) -> http.client.HTTPConnection:
        if self.upstream_https:
            return http.client.HTTPSConnection(self.upstream_host, self.upstream_port, timeout=300)
        return http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=300)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                body = self._read_body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                connection = proxy._connection()
                try:
                    connection.request(self.command, self.path, body=body or None, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                    response_headers = response.getheaders()
                    status, reason = response.status, response.reason
                finally:
                    connection.close()
                content_type = {k.lower(): v for k, v in response_headers}.get("content-type", "")
                # Recorded before the client has the answer, so a client's requests are
                # recorded in the order it made them.
                proxy.recorder.record(
                    self.command,
                    self.path,
                    self.headers.get("Content-Type", ""),
                    body,
                    status,
                    content_type,
                    data,
                )
                self.send_response(status, reason)
                for name, value in response_headers:
                    # send_response wrote its own Server and Date.
                    if name.lower() not in _HOP_BY_HOP | {"server", "date"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward

        return Handler
