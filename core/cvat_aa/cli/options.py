"""Options shared by commands that load a function, and where the function runs."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

from ..parameters import FunctionParameterError, parse_function_parameter
from ..pipeline.ray_executor import RayExecutor
from ..plugins import (
    UnknownFunctionError,
    check_parameters,
    find_function,
    function_parameters,
    instantiate,
    resolve_function_source,
)
from .errors import UsageError
from .run_options import non_negative, positive


def parameter_argument(text: str) -> tuple[str, Any]:
    """``-p NAME=TYPE:VALUE`` parsed, or argparse's error for it."""
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
        type=parameter_argument,
        action="append",
        default=[],
        dest="function_parameters",
        help="a parameter for the function's factory; TYPE is str, int, float or bool"
        " (repeat for several)",
    )


def use_function_source(args: argparse.Namespace) -> None:
    """Point the usual function options at a command's FUNCTION argument: an installed
    function, a file or a module (so that loading, and a journal's identity of it, are
    annotate's)."""
    text = args.function
    args.function = args.function_module = args.function_file = None
    if text.endswith(".py") or os.sep in text:
        args.function_file = Path(text)
        return
    try:
        find_function(text)
    except UnknownFunctionError:
        if importlib.util.find_spec(text.split(".")[0]) is None:
            raise  # neither: the message lists the installed functions
        args.function_module = text
    else:
        args.function = text


def function_identity(args: argparse.Namespace, name: str) -> dict[str, object]:
    """What identifies the function for the run journal: source, parameters, version."""
    identity: dict[str, object] = {"source": name, "parameters": dict(args.function_parameters)}
    if args.function is not None:
        entry = find_function(args.function)
        identity["distribution"] = [entry.distribution, entry.version]
    else:
        # A file's contents are its version; a module's are those of its source file.
        path = args.function_file
        if path is None:
            spec = importlib.util.find_spec(args.function_module)
            path = spec.origin if spec is not None and spec.has_location else None
        if path is not None:
            identity["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return identity


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


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """``--executor local|ray`` and the Ray executor's options."""
    group = parser.add_argument_group("executor")
    group.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="where the function runs: in this process (default), or on Ray actors, which"
        " alone build it (needs pip install 'cvat-aa[ray]')",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --executor ray: the Ray cluster to use (e.g. ray://head:10001, or auto);"
        " by default a local one is started for the run",
    )
    group.add_argument(
        "--actors",
        type=positive,
        metavar="N",
        help="with --executor ray: Ray actors to run the function on, each loading it once"
        " (default 2)",
    )
    group.add_argument(
        "--gpus-per-actor",
        type=non_negative,
        metavar="X",
        help="with --executor ray: GPUs each actor reserves; fractions share a GPU (default 0)",
    )


def check_executor_options(args: argparse.Namespace) -> None:
    """Refuse Ray's options without ``--executor ray``."""
    ray_only = [
        option
        for option, value in (
            ("--ray-address", args.ray_address),
            ("--actors", args.actors),
            ("--gpus-per-actor", args.gpus_per_actor),
        )
        if value is not None
    ]
    if ray_only and args.executor != "ray":
        verb = "needs" if len(ray_only) == 1 else "need"
        raise UsageError(f"{', '.join(ray_only)} {verb} --executor ray")


def function_for_run(args: argparse.Namespace) -> tuple[Any, str, RayExecutor | None]:
    """What a run is given as its function, the function's display name, and the executor
    the options ask for (None: this process).

    With ``--executor local`` the function is built here, before any other work: a bad name
    or parameter needs no server and no files. With ``--executor ray`` only the Ray actors
    build it; here its module is imported, to check the parameters against its factory, and
    the run is given the name or path to load.
    """
    check_executor_options(args)
    if args.executor != "ray":
        function, name, _ = load_from_args(args)
        return function, name, None
    obj, name = resolve_function_source(
        args.function,
        function_module=args.function_module,
        function_file=args.function_file,
    )
    params = dict(args.function_parameters)
    check_parameters(obj, params, name=name)
    source = args.function or args.function_module or str(args.function_file)
    try:
        executor = RayExecutor(
            source,
            params,
            actors=args.actors or 2,
            gpus_per_actor=args.gpus_per_actor or 0,
            address=args.ray_address,
        )
    except ImportError as ex:
        raise UsageError(f"--executor ray: {ex}") from None
    return source, name, executor
