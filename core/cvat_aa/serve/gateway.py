"""The HTTP side of ``cvat-aa serve``: what CVAT's lambda manager takes for a Nuclio dashboard.

CVAT 2.73 (``cvat/apps/lambda_manager/views.py``, ``LambdaGateway``) talks to Nuclio in two
ways, chosen by its ``CVAT_NUCLIO_INVOKE_METHOD`` setting:

* ``dashboard``: everything goes to ``CVAT_NUCLIO_HOST:CVAT_NUCLIO_PORT``: ``GET
  /api/functions`` (list), ``GET /api/functions/{id}`` and ``POST /api/function_invocations``
  with the function's id in the ``x-nuclio-function-name`` header;
* ``direct``: listing as above, but each call is a ``POST`` to ``http://localhost:{httpPort}``
  (``host.docker.internal`` inside a container), the port from the function's
  ``status.httpPort``, with nothing but the JSON payload.

So the gateway listens on one port for the dashboard API and, unless told not to, on one
more port per function for direct calls. Its own additions: ``GET /healthz``, ``GET
/metrics`` (Prometheus text) and ``GET /api/metrics`` (JSON).

CVAT turns a failed call into ``requests``' ``HTTPError``, whose text is the status and the
*reason phrase* of the reply, never its body; so every error here carries its message in the
reason phrase too, and that is what a CVAT user reads on a failed request.

With a token, every call but ``/healthz`` must carry it, in the ``x-nuclio-function-namespace``
header (the one header CVAT sends that its settings choose: ``CVAT_NUCLIO_FUNCTION_NAMESPACE``)
or as ``Authorization: Bearer``. Direct calls carry no headers at all, so a gateway with a
token opens no direct ports. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeoutError
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

from ..errors import BadFunctionError, FunctionFailedError
from .functions import ServedFunction, ServerBusyError
from .metrics import Metrics
from .nuclio import (
    BadRequestError,
    InteractorRequest,
    parse_detector_payload,
    parse_interactor_payload,
    parse_tracker_payload,
)

__all__ = ["Gateway", "is_loopback"]

logger = logging.getLogger(__name__)

MAX_BODY = 256 * 1024 * 1024
"""The largest request body taken: a base64 frame of about 190 MB."""

FUNCTIONS_PATH = "/api/functions"
INVOKE_PATH = "/api/function_invocations"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to bind to) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(message: str) -> str:
    """``message`` as an HTTP reason phrase: one line of printable ASCII."""
    text = " ".join(message.split())
    text = text.encode("ascii", "replace").decode("ascii")
    return text[:400] or "error"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: Gateway, function_id: str | None):
        self.gateway = gateway
        self.function_id = function_id
        """Set on a direct port: the function that every POST to it calls."""
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    _frame = "-"
    protocol_version = "HTTP/1.1"
    server_version = "cvat-aa-serve"
    # A reply goes out in two writes (the headers, then the body). With Nagle's algorithm the
    # body waits for the client to acknowledge the headers, which a client that delays its
    # acknowledgements does only after 40 ms: every call on a kept-alive connection took
    # 48 ms instead of 5 (benchmarks/serve_vs_annotate.py, docs/performance.md).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    # --- replies --------------------------------------------------------------------------------

    def _send(
        self, status: int, body: Any, *, reason: str | None = None, text: bool = False
    ) -> None:
        data = body.encode() if text else json.dumps(body).encode()
        self.send_response(status, reason)
        self.send_header(
            "Content-Type", "text/plain; version=0.0.4" if text else "application/json"
        )
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": message}, reason=_reason(message))

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._error(400, "the Content-Length header is not a number")
            return None
        if length > MAX_BODY:
            self._error(413, f"the request body is larger than {MAX_BODY} bytes")
            self.close_connection = True
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _authorized(self) -> bool:
        token = self.server.gateway.token
        if token is None:
            return True
        given = self.headers.get("x-nuclio-function-namespace") or ""
        authorization = self.headers.get("Authorization") or ""
        if authorization.startswith("Bearer "):
            given = authorization[len("Bearer ") :].strip()
        if given and hmac.compare_digest(given.encode(), token.encode()):
            return True
        self._error(
            401,
            "cvat-aa serve needs its token: set CVAT_NUCLIO_FUNCTION_NAMESPACE to it in CVAT",
        )
        return False

    # --- routes ---------------------------------------------------------------------------------

    def do_GET(self) -> None:
        gateway = self.server.gateway
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/healthz":
            self._send(200, {"status": "ok", "functions": len(gateway.functions)})
            return
        if not self._authorized():
            return
        if self.server.function_id is not None:
            self._error(405, "a function's own port takes POST requests only")
        elif path == FUNCTIONS_PATH:
            self._send(200, {f.id: gateway.config(f) for f in gateway.functions.values()})
        elif path.startswith(FUNCTIONS_PATH + "/"):
            function = gateway.functions.get(path[len(FUNCTIONS_PATH) + 1 :])
            if function is None:
                self._error(404, f"no function {path[len(FUNCTIONS_PATH) + 1 :]!r} is served here")
            else:
                self._send(200, gateway.config(function))
        elif path == "/metrics":
            self._send(200, gateway.metrics.prometheus(), text=True)
        elif path == "/api/metrics":
            self._send(200, gateway.metrics.as_dict())
        else:
            self._error(404, f"{path or '/'} is not an endpoint of cvat-aa serve")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        gateway = self.server.gateway
        # Read first, whatever the answer: a body left unread would be taken for the next
        # request on this connection.
        body = self._read_body()
        if body is None:
            return
        if self.server.function_id is not None:
            function_id: str | None = self.server.function_id
        else:
            if not self._authorized():
                return
            path = urlsplit(self.path).path.rstrip("/")
            if path != INVOKE_PATH:
                self._error(404, f"{path or '/'} is not an endpoint of cvat-aa serve")
                return
            function_id = self.headers.get("x-nuclio-function-name")
            if not function_id:
                self._error(400, "the x-nuclio-function-name header names no function")
                return
        function = gateway.functions.get(function_id)
        if function is None:
            self._error(404, f"no function {function_id!r} is served here")
            return
        self._invoke(function, body)

    def _call(self, function: ServedFunction, body: bytes) -> Any:
        """The function's answer to ``body``; ``self._frame`` says the frame's size for the
        log as soon as it is known ("cached" for an interactor's frame that was not decoded
        again)."""
        timeout = self.server.gateway.request_timeout
        if function.kind == "interactor":
            request = parse_interactor_payload(body)
            try:
                answer = function.interact(request, timeout=timeout)
            except BaseException:
                self._frame = _size(request)
                raise
            hit = request.decoded is None
            self.server.gateway.metrics.image_cache(function.id, hit=hit)
            self._frame = "cached" if hit else _size(request)
            return answer
        if function.kind == "tracker":
            tracking = parse_tracker_payload(body)
            self._frame = f"{tracking.image.width}x{tracking.image.height}"
            return function.track(tracking, timeout=timeout)
        detection = parse_detector_payload(body)
        self._frame = f"{detection.image.width}x{detection.image.height}"
        return function.detect(detection, timeout=timeout)

    def _invoke(self, function: ServedFunction, body: bytes) -> None:
        gateway = self.server.gateway
        started = time.monotonic()
        self._frame = "-"
        items: Any = None
        status, error_kind, message = 200, None, ""
        try:
            items = self._call(function, body)
        except BadRequestError as ex:
            status, error_kind, message = 400, "bad_request", f"cvat-aa: {ex}"
        except ServerBusyError as ex:
            status, error_kind, message = 503, "busy", f"cvat-aa: {ex}; try again later"
        except (TimeoutError, FutureTimeoutError):
            status, error_kind = 504, "timeout"
            message = f"cvat-aa: function {function.id!r} took over {gateway.request_timeout} s"
        except FunctionFailedError as ex:
            status, error_kind = 500, "function_failed"
            message = f"cvat-aa: function {function.id!r} failed: {ex.reason}"
        except BadFunctionError as ex:
            status, error_kind = 500, "bad_function"
            message = f"cvat-aa: function {function.id!r} is broken: {ex}"
        except Exception as ex:
            logger.exception("Serving function %r failed", function.id)
            status, error_kind = 500, "internal"
            message = f"cvat-aa: internal error: {type(ex).__name__}: {ex}"
        # Counted and logged before the reply goes out, so that whoever has the reply finds
        # the call in the metrics and the log.
        elapsed = time.monotonic() - started
        gateway.metrics.request(function.id, elapsed, error_kind)
        logger.info(
            "%s frame=%s status=%d %.3fs%s",
            function.id,
            self._frame,
            status,
            elapsed,
            "" if status == 200 else f" ({error_kind})",
        )
        if status == 200:
            self._send(200, items)
        else:
            self._error(status, message)


def _size(request: InteractorRequest) -> str:
    image = request.decoded
    return "-" if image is None else f"{image.width}x{image.height}"


class Gateway:
    """An HTTP server that CVAT takes for a Nuclio dashboard, serving ``functions``.

    ``port`` is the dashboard API's (0: any free port). With ``direct``, each function also
    gets a port of its own for CVAT's ``direct`` invoke method: ``direct_port_start`` and the
    ports after it, in order (by default the ports after ``port``; any free ones when ``port``
    is 0). ``token`` requires callers to present it (see the module's doc), and rules out
    direct ports. ``request_timeout`` bounds how long a call waits for its frame.
    """

    def __init__(
        self,
        functions: Sequence[ServedFunction],
        *,
        host: str = "127.0.0.1",
        port: int = 8070,
        direct: bool = True,
        direct_port_start: int | None = None,
        token: str | None = None,
        request_timeout: float | None = 600,
        namespace: str = "nuclio",
        metrics: Metrics | None = None,
    ) -> None:
        ids = [f.id for f in functions]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(
                f"two functions have the id {duplicates[0]!r}: give one of them another --id"
            )
        if not functions:
            raise ValueError("there is no function to serve")
        if token is not None and not token:
            raise ValueError("the token is empty")
        if token is not None and direct:
            raise ValueError(
                "CVAT's direct calls carry no token: with a token, serve without direct ports"
                " and set CVAT_NUCLIO_INVOKE_METHOD=dashboard"
            )
        self.functions = {f.id: f for f in functions}
        self.host = host
        self.token = token
        self.request_timeout = request_timeout
        self.namespace = namespace
        self.metrics = metrics or Metrics(ids)
        for function in functions:
            function.metrics = self.metrics
        self._servers: list[_Server] = [_Server((host, port), self, None)]
        self.direct_ports: dict[str, int] = {}
        try:
            if direct:
                start = direct_port_start
                if start is None:
                    start = 0 if port == 0 else self.port + 1
                for offset, function in enumerate(functions):
                    server = _Server((host, 0 if start == 0 else start + offset), self, function.id)
                    self._servers.append(server)
                    self.direct_ports[function.id] = server.server_address[1]
        except BaseException:
            for server in self._servers:
                server.server_close()
            raise
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return int(self._servers[0].server_address[1])

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def config(self, function: ServedFunction) -> dict[str, Any]:
        return function.config(
            http_port=self.direct_ports.get(function.id), namespace=self.namespace
        )

    def start(self) -> Self:
        """Serve in background threads; returns self."""
        for server in self._servers:
            thread = threading.Thread(
                # A short poll: stopping waits for it, once per port.
                target=lambda server=server: server.serve_forever(poll_interval=0.05),
                name=f"cvat-aa-serve-{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop answering, fail what is still queued, and release the functions."""
        for server in self._servers:
            if self._threads:
                server.shutdown()
            server.server_close()
        self._threads.clear()
        for function in self.functions.values():
            function.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set."""
        while not stop.wait(0.5):
            pass
