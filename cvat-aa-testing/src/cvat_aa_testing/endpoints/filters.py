"""CVAT's ``filter`` query parameter: the part of JsonLogic that list filters use most.

A filter is a rule such as ``{"and": [{"==": [{"var": "name"}, "cats"]}, ...]}``, sent with
``GET /api/tasks?filter=...``. The fields and operators below are the ones supported; anything
else is a 400 that names them, rather than a filter silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .http import ApiError

FILTER_FIELDS = ("id", "name", "project_id", "status", "subset", "mode", "dimension", "owner")


def json_logic(rule: Any, item: dict[str, Any]) -> Any:
    """Evaluates the JsonLogic subset CVAT's ``filter`` parameter uses most."""
    if not isinstance(rule, dict):
        return rule
    if len(rule) != 1:
        raise ApiError(400, {"filter": ["Each JsonLogic rule has exactly one operator."]})
    ((operator, args),) = rule.items()
    if operator == "var":
        if args not in FILTER_FIELDS:
            raise ApiError(
                400,
                {
                    "filter": [
                        f"Filtering by {args!r} is not supported; use one of {', '.join(FILTER_FIELDS)}."
                    ]
                },
            )
        return item.get(args)
    if not isinstance(args, list):
        args = [args]
    values = [json_logic(arg, item) for arg in args]
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
