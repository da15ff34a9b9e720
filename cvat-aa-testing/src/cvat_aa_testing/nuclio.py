"""The Nuclio side of CVAT's lambda manager: the gateway client and the functions it lists.

CVAT 2.73 (``cvat/apps/lambda_manager/views.py``: ``LambdaGateway``, ``LambdaFunction``) reads
its functions from a Nuclio dashboard and calls them through it or directly on each function's
port. This module does the same with the same requests, so that any Nuclio-compatible gateway
(a real dashboard, ``cvat-aa serve``, a fake in a test) is driven exactly as real CVAT drives it:

* every request to the dashboard carries ``x-nuclio-project-name: cvat``,
  ``x-nuclio-function-namespace``, ``x-nuclio-invoke-via: domain-name`` and
  ``X-Nuclio-Invoke-Timeout: <timeout>s`` (CVAT's ``NUCLIO`` settings), the timeout is also the
  HTTP timeout, and CVAT's ``User-Agent``;
* ``GET /api/functions`` (an object of functions by name) and ``GET /api/functions/{name}``
  read functions; ``POST /api/function_invocations`` with ``x-nuclio-function-name`` and
  ``x-nuclio-path: /`` invokes one ("dashboard" invocation);
* "direct" invocation posts the JSON payload alone to ``http://localhost:{status.httpPort}``,
  as CVAT does outside docker;
* errors are ``requests``' own exceptions (CVAT's views turn them into statuses, see
  :mod:`.endpoints.lambda_manager`). A server without a Nuclio URL raises a
  ``requests.ConnectionError``, as CVAT does when it cannot reach Nuclio.

A function's metadata is parsed as ``LambdaFunction.__init__`` parses it, quirks included
(``bool()`` of an annotation string, so ``startswith_box: "false"`` is true). Metadata CVAT
skips when listing raises :class:`InvalidFunctionMetadataError`; metadata CVAT crashes on (a
missing key, a spec that is not JSON) raises :class:`BrokenFunctionMetadataError`.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import requests
import requests.utils

FUNCTION_KINDS = ("detector", "interactor", "reid", "tracker")
INVOKE_METHODS = ("dashboard", "direct")


class InvalidFunctionMetadataError(Exception):
    """Metadata CVAT refuses: it leaves the function out of its list (and 500s on it alone)."""


class BrokenFunctionMetadataError(Exception):
    """Metadata CVAT's parser crashes on (a KeyError, a spec that is not JSON): a 500."""


class NuclioNotConfiguredError(requests.ConnectionError):
    """The server has no Nuclio URL: CVAT answers so when it cannot reach Nuclio."""


@attrs.frozen
class NuclioSettings:
    """CVAT's ``NUCLIO`` settings: where the dashboard is and how functions are invoked.

    ``url`` is the dashboard (``CVAT_NUCLIO_SCHEME``/``HOST``/``PORT``: ``http://host:8070``),
    None for none; ``invoke_method`` is ``CVAT_NUCLIO_INVOKE_METHOD``, ``namespace``
    ``CVAT_NUCLIO_FUNCTION_NAMESPACE`` and ``timeout`` ``CVAT_NUCLIO_DEFAULT_TIMEOUT`` (seconds).
    """

    url: str | None = None
    invoke_method: str = attrs.field(default="dashboard")
    namespace: str = "nuclio"
    timeout: float = 120
    #: The CVAT version in the User-Agent, as ``make_requests_session`` sends it.
    cvat_version: str = "2.73.0"

    @invoke_method.validator
    def _check_invoke_method(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in INVOKE_METHODS:
            raise ValueError(
                f"nuclio_invoke_method must be one of {INVOKE_METHODS}, not {value!r}."
            )

    @property
    def timeout_header(self) -> str:
        """``X-Nuclio-Invoke-Timeout``: CVAT's integer setting, so ``120s``."""
        return f"{self.timeout:g}s"


@attrs.frozen
class LambdaFunction:
    """A function as CVAT reads it from Nuclio."""

    id: str
    kind: str
    labels: list[dict[str, Any]]
    description: str
    port: int | None
    name: str
    min_pos_points: int
    min_neg_points: int
    startswith_box: bool
    startswith_box_optional: bool
    animated_gif: str
    version: int
    help_message: str
    #: None: the function takes and returns rectangles as bare point lists (legacy trackers).
    supported_shape_types: list[str] | None

    @classmethod
    def from_nuclio(cls, data: Any) -> LambdaFunction:
        try:
            return cls._parse(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BrokenFunctionMetadataError(
                f"CVAT cannot read this function's metadata: {type(e).__name__}: {e}"
            ) from e

    @classmethod
    def _parse(cls, data: Any) -> LambdaFunction:
        function_id = data["metadata"]["name"]
        annotations: dict[str, Any] = data["metadata"]["annotations"]
        kind = annotations.get("type")
        if kind not in FUNCTION_KINDS:
            raise InvalidFunctionMetadataError(
                f"{function_id} lambda function has unknown type: {kind!r}"
            )
        spec = json.loads(annotations.get("spec") or "[]")
        labels = _parse_labels(function_id, spec)
        supported_shape_types = None
        if "supported_shape_types" in annotations:
            supported_shape_types = [
                stripped
                for shape_type in annotations["supported_shape_types"].split(",")
                if (stripped := shape_type.strip())
            ]
            if not supported_shape_types:
                raise InvalidFunctionMetadataError(
                    f"{function_id!r} lambda function has no supported shape types"
                )
        return cls(
            id=function_id,
            kind=kind,
            labels=labels,
            description=data["spec"]["description"],
            port=data["status"].get("httpPort"),
            name=annotations.get("name", function_id),
            min_pos_points=int(annotations.get("min_pos_points", 1)),
            min_neg_points=int(annotations.get("min_neg_points", -1)),
            # CVAT's bool() of the annotation's string: any non-empty value is true.
            startswith_box=bool(annotations.get("startswith_box", False)),
            startswith_box_optional=bool(annotations.get("startswith_box_optional", False)),
            animated_gif=annotations.get("animated_gif", ""),
            version=int(annotations.get("version", "1")),
            help_message=annotations.get("help_message", ""),
            supported_shape_types=supported_shape_types,
        )

    def to_dict(self) -> dict[str, Any]:
        """``GET /api/lambda/functions/{id}``."""
        body: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "labels_v2": self.labels,
            "description": self.description,
            "name": self.name,
            "version": self.version,
        }
        if self.kind == "interactor":
            body.update(
                {
                    "min_pos_points": self.min_pos_points,
                    "min_neg_points": self.min_neg_points,
                    "startswith_box": self.startswith_box,
                    "startswith_box_optional": self.startswith_box_optional,
                    "help_message": self.help_message,
                    "animated_gif": self.animated_gif,
                }
            )
        elif self.kind == "tracker":
            body["supported_shape_types"] = self.supported_shape_types or ["rectangle"]
        return body


def _parse_labels(function_id: str, spec: list[dict[str, Any]]) -> list[dict[str, Any]]:
    labels = []
    for label in spec:
        attributes = [
            {"name": attr["name"], "input_type": attr["input_type"], "values": attr["values"]}
            for attr in label.get("attributes", [])
        ]
        if len(attributes) != len({attr["name"] for attr in attributes}):
            raise InvalidFunctionMetadataError(
                f"{function_id} lambda function has non-unique attributes"
            )
        parsed = {
            "name": label["name"],
            "type": label.get("type", "any"),
            "attributes": attributes,
        }
        if parsed["type"] == "skeleton":
            parsed.update(
                {"sublabels": _parse_labels(function_id, label["sublabels"]), "svg": label["svg"]}
            )
        labels.append(parsed)
    if len(labels) != len({label["name"] for label in spec}):
        raise InvalidFunctionMetadataError(f"{function_id} lambda function has non-unique labels")
    return labels


class Gateway:
    """CVAT's ``LambdaGateway``: lists, reads and invokes functions over HTTP."""

    FUNCTIONS_PATH = "/api/functions"

    def __init__(self, settings: NuclioSettings | None = None) -> None:
        self.settings = settings or NuclioSettings()

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = (
            f"CVAT/{self.settings.cvat_version} {requests.utils.default_user_agent()}"
        )
        return session

    def _dashboard(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        payload: Any = None,
    ) -> Any:
        settings = self.settings
        if settings.url is None:
            raise NuclioNotConfiguredError(
                "This test server has no Nuclio dashboard to reach: start it with"
                " TestServer(nuclio_url=...) or `cvat-aa sandbox --nuclio-url URL`."
            )
        all_headers = {
            "x-nuclio-project-name": "cvat",
            "x-nuclio-function-namespace": settings.namespace,
            "x-nuclio-invoke-via": "domain-name",
            "X-Nuclio-Invoke-Timeout": settings.timeout_header,
            **(headers or {}),
        }
        with self._session() as session:
            reply = session.request(
                method,
                settings.url.rstrip("/") + path,
                headers=all_headers,
                timeout=settings.timeout,
                json=payload,
            )
            reply.raise_for_status()
            return reply.json()

    def list(self) -> list[LambdaFunction]:
        """The functions CVAT lists: those with invalid metadata are left out.

        Raises BrokenFunctionMetadataError where CVAT's list crashes (a 500).
        """
        functions = []
        for item in self._dashboard("GET", self.FUNCTIONS_PATH).values():
            try:
                functions.append(LambdaFunction.from_nuclio(item))
            except InvalidFunctionMetadataError:
                continue
        return functions

    def get(self, function_id: str) -> LambdaFunction:
        """One function; its invalid metadata raises as CVAT's retrieve does (a 500)."""
        return LambdaFunction.from_nuclio(
            self._dashboard("GET", f"{self.FUNCTIONS_PATH}/{function_id}")
        )

    def invoke(self, function: LambdaFunction, payload: dict[str, Any]) -> Any:
        """The function's answer to ``payload``, by the configured invoke method."""
        if self.settings.invoke_method == "dashboard":
            return self._dashboard(
                "POST",
                "/api/function_invocations",
                headers={"x-nuclio-function-name": function.id, "x-nuclio-path": "/"},
                payload=payload,
            )
        with self._session() as session:
            reply = session.post(
                f"http://localhost:{function.port}", timeout=self.settings.timeout, json=payload
            )
            reply.raise_for_status()
            return reply.json()
