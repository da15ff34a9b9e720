"""The WSGI application: finds the route of a request and runs its handler, in between faults.

Routes accept paths with and without a trailing slash and never redirect. Every response with
a body has a Content-Length, and werkzeug's server closes the connection after each response
(it does not keep connections alive). Requests that change state run in one transaction each;
a rejected request (400) stores nothing. Fault injection and the request log wrap the whole
application (:meth:`CvatApi.__call__`); the endpoints themselves are in :mod:`.endpoints`.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from . import auth, permissions
from .endpoints import ROUTES
from .endpoints.context import ServerContext
from .endpoints.http import ApiError, json_response
from .faults import FaultInjector, RequestLog, RequestLogEntry
from .native_functions import FunctionQueues
from .nuclio import Gateway, NuclioSettings
from .representations import SERVER_VERSION
from .storage import Storage
from .validation import ValidationError

logger = logging.getLogger(__name__)


class _Request(Request):
    # The SDK packs up to 100 MiB of files into one multipart request; werkzeug's default
    # limit of 1000 parts would turn a batch of many small images into a 413.
    max_form_parts = None


class CvatApi:
    """The WSGI application of one test server."""

    def __init__(
        self,
        storage: Storage,
        media_root: Path,
        faults: FaultInjector,
        request_log: RequestLog,
        server_version: str = SERVER_VERSION,
        share_root: Path | None = None,
        nuclio: NuclioSettings | None = None,
        functions: FunctionQueues | None = None,
    ) -> None:
        self.context = ServerContext(
            storage,
            media_root,
            server_version,
            share_root,
            nuclio=Gateway(nuclio),
            functions=functions or FunctionQueues(),
        )
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

        if response.mimetype == "text/event-stream":
            # An event stream: sent as it comes, unthrottled, logged when it starts.
            log(response.status_code, 0)
            return response(environ, start_response)
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
                    with self.context.storage.read() as tx:
                        identity = auth.authenticate_request(tx, request)
                        if route.scope is not None:
                            permissions.check_route(tx, identity, route.scope, match.groupdict())
                else:
                    identity = None
                return route.handler(self.context, request, identity, **match.groupdict())
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


def _drop_connection(environ: dict[str, Any]) -> None:
    """Closes the client's connection without a reply (fault injection)."""
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionAbortedError("connection closed by fault injection")
