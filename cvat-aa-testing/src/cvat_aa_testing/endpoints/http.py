"""The HTTP vocabulary every endpoint module shares: routes, errors, responses, parameters.

Errors are raised, not returned: a handler raises :class:`ApiError` (or a validation error)
and the application turns it into a response with a DRF-shaped JSON body, as CVAT's are.
Lists are paginated the way DRF paginates them (``count``, ``next``, ``previous``,
``results``), since cvat-sdk follows ``next`` to read them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
#: A numeric path parameter: ``ID.format("task_id")``.
ID = r"(?P<{}>\d+)"


class ApiError(Exception):
    """An error response with a DRF-shaped JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_found(model: str | None = None) -> ApiError:
    """A 404 with Django's message for a missing ``model`` ("Task", "Job", ...), or DRF's."""
    detail = f"No {model} matches the given query." if model else "Not found."
    return ApiError(404, {"detail": detail})


class Route:
    """A method and a path pattern (with or without a trailing slash), and their handler.

    The handler is called as ``handler(context, request, identity, **path_parameters)``;
    ``identity`` is None on a public route, which needs no credentials. A route with a
    ``scope`` (CVAT's permission scope, e.g. ``"view:data"``) is refused with 403 before its
    handler runs unless the caller may act so on the task, job or project in its path
    (:func:`cvat_aa_testing.permissions.check_route`).
    """

    def __init__(
        self,
        method: str,
        pattern: str,
        handler: Callable[..., Response],
        *,
        public: bool = False,
        scope: str | None = None,
    ) -> None:
        self.method = method
        self.regex = re.compile(f"^{pattern}/?$")
        self.handler = handler
        self.public = public
        self.scope = scope


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body),
        status=status,
        headers=headers,
        content_type="application/vnd.cvat+json",
    )


def empty_response(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(b"", status=status, headers=headers)


def parse_json(request: Request) -> Any:
    """The request's JSON body; an empty body is an empty object."""
    raw = request.get_data()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, {"detail": f"JSON parse error - {e}"}) from e


def int_param(request: Request, name: str, default: int | None = None) -> int | None:
    """An integer query parameter, ``default`` when absent or empty."""
    value = request.args.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ApiError(400, {name: [f"A valid integer is required, got {value!r}."]}) from e


def paginate(request: Request, items: list[Any]) -> dict[str, Any]:
    """The page of ``items`` that the ``page`` and ``page_size`` parameters ask for."""
    page = int_param(request, "page", 1)
    page_size = int_param(request, "page_size", DEFAULT_PAGE_SIZE)
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
