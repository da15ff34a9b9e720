"""The two errors CVAT's lambda manager refuses calls with, and how each one surfaces.

CVAT raises Django's ``ValidationError`` in most of ``lambda_manager/views.py`` and DRF's in
its serializers, its ROI helper and its frame provider. The two reach a client differently:

* Django's is caught by the views' ``return_response``: the status is the error's code (400
  unless given) and the body is the message alone, a JSON string (``"Invalid mapping. ..."``).
* DRF's goes to DRF's exception handler: a 400 whose body is the error's detail, a list of
  messages (``["ROI size must be positive"]``) or an object of them by field.

In a request (the background job), either fails the job, and rq stores the traceback: its
last line names the exception's class as CVAT has it, which :func:`exc_info_text` writes.
"""

from __future__ import annotations

import traceback
from typing import Any


class LambdaError(Exception):
    """An error whose last traceback line imitates CVAT's exception (``cvat_type``)."""

    cvat_type = ""

    def cvat_str(self) -> str:
        raise NotImplementedError


class CallError(LambdaError):
    """Django's ValidationError: answered with ``status`` and the message as a JSON string."""

    cvat_type = "django.core.exceptions.ValidationError"

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def cvat_str(self) -> str:
        return repr([self.message])


class RefusedError(LambdaError):
    """DRF's ValidationError: answered 400 with ``detail`` (a list, or an object by field)."""

    cvat_type = "rest_framework.exceptions.ValidationError"

    def __init__(self, detail: list[Any] | dict[str, Any], code: str | int = "invalid") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code

    def cvat_str(self) -> str:
        return _error_details(self.detail, self.code)


def _error_details(detail: Any, code: str | int) -> str:
    """``str()`` of DRF's detail: its messages are ``ErrorDetail`` objects."""
    if isinstance(detail, list):
        return "[" + ", ".join(_error_details(item, code) for item in detail) + "]"
    if isinstance(detail, dict):
        items = (f"{key!r}: {_error_details(value, code)}" for key, value in detail.items())
        return "{" + ", ".join(items) + "}"
    return f"ErrorDetail(string={str(detail)!r}, code={code!r})"


def exc_info_text(error: BaseException) -> str:
    """What rq stores as a failed job's ``exc_info``: the traceback, ending as CVAT's would."""
    text = "".join(traceback.format_exception(error))
    if isinstance(error, LambdaError):
        last = "".join(traceback.format_exception_only(error))
        text = text.removesuffix(last) + f"{error.cvat_type}: {error.cvat_str()}\n"
    return text
