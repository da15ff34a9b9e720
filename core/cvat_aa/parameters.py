"""Function parameters: parsing ``-p NAME=TYPE:VALUE`` and checking them against a factory."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from attr.converters import to_bool
from .errors import FunctionParameterError

__all__ = [
    "FunctionParameterError",
    "check_factory_parameters",
    "describe_factory_parameters",
    "parse_function_parameter",
]

_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    # cvat-cli parses booleans with attrs' to_bool: yes/no, true/false, on/off, 1/0.
    "bool": to_bool,
}


def parse_function_parameter(text: str) -> tuple[str, Any]:
    """Parse ``NAME=TYPE:VALUE`` exactly as cvat-cli 2.80 does (types str, int, float, bool)."""
    name, sep, type_and_value = text.partition("=")
    if not sep or not name:
        raise FunctionParameterError(
            f"parameter {text!r} is not of the form NAME=TYPE:VALUE (e.g. threshold=float:0.5)"
        )
    type_name, sep, raw_value = type_and_value.partition(":")
    if not sep:
        raise FunctionParameterError(
            f"parameter {text!r} has no type; write {name}=TYPE:VALUE with TYPE one of"
            f" {', '.join(_PARSERS)}"
        )
    parser = _PARSERS.get(type_name)
    if parser is None:
        raise FunctionParameterError(
            f"parameter {name!r} has unsupported type {type_name!r}; use one of"
            f" {', '.join(_PARSERS)}"
        )
    try:
        return name, parser(raw_value)
    except ValueError as ex:
        raise FunctionParameterError(
            f"parameter {name!r}: {raw_value!r} is not a valid {type_name}"
        ) from ex


def _annotation_name(annotation: Any) -> str | None:
    if annotation is inspect.Parameter.empty:
        return None
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def describe_factory_parameters(factory: Callable[..., Any]) -> list[dict[str, Any]]:
    """The parameters a factory accepts: name, type (as written), required, default."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return []
    described = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            continue
        if param.kind is param.VAR_KEYWORD:
            described.append(
                {"name": f"**{param.name}", "type": None, "required": False, "default": None}
            )
            continue
        required = param.default is inspect.Parameter.empty
        described.append(
            {
                "name": param.name,
                "type": _annotation_name(param.annotation),
                "required": required,
                "default": None if required else repr(param.default),
            }
        )
    return described


def format_factory_parameters(factory: Callable[..., Any]) -> str:
    """A one-line list of a factory's parameters for error messages."""
    parts = []
    for p in describe_factory_parameters(factory):
        text = p["name"]
        if p["type"]:
            text += f": {p['type']}"
        text += " (required)" if p["required"] else (f" = {p['default']}" if p["default"] else "")
        parts.append(text)
    return ", ".join(parts) if parts else "none"


_SIMPLE_TYPES: dict[Any, tuple[type, ...]] = {
    str: (str,),
    "str": (str,),
    int: (int,),
    "int": (int,),
    float: (int, float),
    "float": (int, float),
    bool: (bool,),
    "bool": (bool,),
}


def check_factory_parameters(
    factory: Callable[..., Any], params: Mapping[str, Any], *, function_name: str
) -> None:
    """Raise FunctionParameterError if ``params`` cannot be passed to ``factory``.

    Unknown and missing parameters are found from the signature; a value whose type
    contradicts a plain ``str``/``int``/``float``/``bool`` annotation is reported too.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    accepted = format_factory_parameters(factory)
    try:
        bound = signature.bind(**params)
    except TypeError as ex:
        raise FunctionParameterError(
            f"function {function_name!r}: {ex}. Its parameters: {accepted}"
        ) from None
    for name, value in bound.arguments.items():
        param = signature.parameters[name]
        if param.kind is param.VAR_KEYWORD:
            continue
        expected = _SIMPLE_TYPES.get(param.annotation)
        # bool is an int subclass; an int parameter given a bool is still a mistake.
        is_wrong = expected is not None and (
            not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected)
        )
        if is_wrong:
            raise FunctionParameterError(
                f"function {function_name!r}: parameter {name!r} must be"
                f" {_annotation_name(param.annotation) or param.annotation}, got"
                f" {type(value).__name__} {value!r}. Its parameters: {accepted}"
            )
