"""Options shared by commands that load a function."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..parameters import FunctionParameterError, parse_function_parameter
from ..plugins import function_parameters, instantiate, resolve_function_source


def _parameter(text: str) -> tuple[str, Any]:
    try:
        return parse_function_parameter(text)
    except FunctionParameterError as ex:
        raise argparse.ArgumentTypeError(str(ex)) from None


def add_function_options(parser: argparse.ArgumentParser, *, named_option: bool) -> None:
    """``--function``/``--function-module``/``--function-file`` and ``-p NAME=TYPE:VALUE``."""
    group = parser.add_mutually_exclusive_group(required=named_option)
    if named_option:
        group.add_argument(
            "--function", metavar="NAME", help="an installed function (see 'functions list')"
        )
    group.add_argument(
        "--function-module",
        metavar="MODULE",
        help="qualified name of a module to use as the function",
    )
    group.add_argument(
        "--function-file",
        metavar="PATH",
        type=Path,
        help="path to a Python file to use as the function",
    )
    add_parameter_option(parser)


def add_parameter_option(parser: argparse.ArgumentParser) -> None:
    """``-p NAME=TYPE:VALUE`` (repeatable), parsed into ``args.function_parameters``."""
    parser.add_argument(
        "-p",
        "--function-parameter",
        metavar="NAME=TYPE:VALUE",
        type=_parameter,
        action="append",
        default=[],
        dest="function_parameters",
        help="a parameter for the function's factory; TYPE is str, int, float or bool"
        " (repeat for several)",
    )


def load_from_args(
    args: argparse.Namespace, name: str | None = None
) -> tuple[Any, str, list[dict[str, Any]]]:
    """Load the function the options name: (function, display name, factory parameters)."""
    obj, display = resolve_function_source(
        name if name is not None else getattr(args, "function", None),
        function_module=args.function_module,
        function_file=args.function_file,
    )
    params = dict(args.function_parameters)
    return instantiate(obj, params, name=display), display, function_parameters(obj)
