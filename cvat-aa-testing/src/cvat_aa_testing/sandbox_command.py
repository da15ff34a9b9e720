"""``cvat-aa sandbox``: a local CVAT-compatible server with the demo task and tasks of your own.

A plugin author tries their function on their own images with their function's labels, without
a CVAT server or cvat-cli: ``cvat-aa sandbox --images photos/ --labels-from my_function``.
Images are found as ``cvat-aa annotate-files`` finds them (folders, files, globs).

The core never imports this module: cvat-aa-testing registers :func:`register` under the
``cvat_aa.commands`` entry-point group, and the ``cvat-aa`` command line loads it from there.
The server itself is imported only when the command runs, so that registering the command
costs every other ``cvat-aa`` command nothing.
"""

from __future__ import annotations

import argparse
import errno
import itertools
import json
import os
import shlex
from pathlib import Path
from typing import Any

import attrs
from cvat_aa.cli.errors import UsageError
from cvat_aa.cli.options import add_parameter_option

__all__ = ["register"]

_GLOB_MAGIC = frozenset("*?[")


def register(commands: argparse._SubParsersAction) -> None:
    """Adds ``sandbox`` to the ``cvat-aa`` subcommands."""
    parser = commands.add_parser(
        "sandbox",
        help="serve a local CVAT-compatible test server with a demo task and tasks of your own",
        description="Start cvat-aa's CVAT-compatible test server on this machine with a demo"
        " task, and tasks made from your images or videos and labels; print its URL, its"
        " credentials and how to annotate a task; serve until stopped (Ctrl-C).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)"
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep the database, media, password and tasks here across restarts"
        " (default: a temporary directory)",
    )
    parser.add_argument(
        "--server-version",
        metavar="VERSION",
        help="the CVAT version the server claims, e.g. 2.73.0 to see what users of an older"
        " CVAT see (default: one the installed cvat-sdk supports)",
    )
    nuclio = parser.add_argument_group("functions through Nuclio (CVAT's /api/lambda/)")
    nuclio.add_argument(
        "--nuclio-url",
        metavar="URL",
        help="a Nuclio dashboard, or a server that answers as one such as 'cvat-aa serve'"
        " (http://127.0.0.1:8070): the server lists and calls its functions as CVAT does"
        " (default: none; the lambda endpoints then answer 503, as CVAT without Nuclio)",
    )
    nuclio.add_argument(
        "--nuclio-invoke-method",
        choices=("dashboard", "direct"),
        default="dashboard",
        help="call functions through the dashboard's /api/function_invocations (default), or"
        " directly on each function's port on localhost, as CVAT's CVAT_NUCLIO_INVOKE_METHOD",
    )
    tasks = parser.add_argument_group("tasks of your own")
    tasks.add_argument(
        "--images",
        metavar="PATH",
        nargs="+",
        action="append",
        default=[],
        help="make a task of these images: files, folders or quoted globs; each video becomes a"
        " task of its own; repeat the option for more tasks",
    )
    tasks.add_argument(
        "--name",
        action="append",
        default=[],
        help="the name of the task made by the n-th --images (default: the folder's or"
        " file's name); repeatable",
    )
    labels = tasks.add_mutually_exclusive_group()
    labels.add_argument(
        "--labels",
        metavar="NAMES|FILE",
        help="the tasks' labels: names with optional types ('person,car:rectangle') or a JSON"
        " file of labels in CVAT's form",
    )
    labels.add_argument(
        "--labels-from",
        metavar="FUNCTION",
        help="take the tasks' labels from a function's spec: an installed function's name, a"
        " module or a .py file (with its -p parameters)",
    )
    add_parameter_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .representations import SERVER_VERSION
    from .sandbox import SandboxTask, check_labels, demo_images, serve_sandbox

    if args.function_parameters and args.labels_from is None:
        raise UsageError("-p parameters are for --labels-from FUNCTION; give that too")
    labels, source = _labels(args)
    if labels is not None:
        try:
            check_labels(labels)
        except ValueError as ex:
            raise UsageError(
                f"the labels from {source!r} are not valid ({ex}); fix them and start the"
                " sandbox again"
            ) from None
    elif args.images:
        raise UsageError(
            "give the tasks' labels: --labels person,car, --labels labels.json or"
            " --labels-from FUNCTION"
        )
    tasks = _tasks(args.images, labels) if args.images else []
    if labels is not None and not args.images:
        images = [(path.name, path) for path in demo_images()]
        tasks = [SandboxTask(f"demo images ({source})", labels, images=images)]
    if len(args.name) > len(tasks):
        raise UsageError(
            f"{len(args.name)} --name options for {len(tasks)} tasks; give one name per task"
        )
    tasks = [attrs.evolve(task, name=name) for name, task in zip(args.name, tasks)] + tasks[
        len(args.name) :
    ]
    try:
        serve_sandbox(
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            version=args.server_version or SERVER_VERSION,
            tasks=tasks,
            function_options=_function_options(args),
            nuclio_url=args.nuclio_url,
            nuclio_invoke_method=args.nuclio_invoke_method,
        )
    except OSError as ex:
        if ex.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {args.port} is in use; choose another with --port, or --port 0 for a"
                " free one"
            ) from None
        raise
    return 0


def _labels(args: argparse.Namespace) -> tuple[list[dict[str, Any]] | None, str]:
    """The labels the options give (None when they give none), and where they came from."""
    if args.labels_from is not None:
        from cvat_aa.plugins import hooks, instantiate, resolve_function_source

        from .sandbox import labels_from_spec

        obj, name = resolve_function_source(args.labels_from)
        function = instantiate(obj, dict(args.function_parameters), name=name)
        return labels_from_spec(hooks().spec(function)), name
    if args.labels is None:
        return None, ""
    text = args.labels
    if text.endswith(".json") or Path(text).is_file():
        return _label_file(Path(text)), text
    labels = []
    for item in text.split(","):
        name, _, label_type = item.strip().partition(":")
        if name:
            labels.append({"name": name.strip(), "type": label_type.strip() or "any"})
    return labels, text


def _label_file(path: Path) -> list[dict[str, Any]]:
    from .sandbox import task_labels

    try:
        data = json.loads(path.read_text())
    except OSError as ex:
        raise UsageError(f"cannot read the labels file {str(path)!r}: {ex.strerror}") from None
    except ValueError as ex:
        raise UsageError(f"the labels file {str(path)!r} is not valid JSON: {ex}") from None
    # CVAT's label list, or an object with one (what 'cvat-aa functions show --json' prints).
    if isinstance(data, dict):
        data = data.get("labels")
    if not isinstance(data, list) or not all(isinstance(label, dict) for label in data):
        raise UsageError(
            f"the labels file {str(path)!r} must hold a list of labels, or an object with"
            ' \'labels\': [{"name": "car", "type": "rectangle"}, ...]'
        )
    return task_labels(data)


def _tasks(groups: list[list[str]], labels: list[dict[str, Any]]) -> list[Any]:
    from cvat_aa.local.inputs import find_media

    from .sandbox import SandboxTask

    tasks = []
    for paths in groups:
        media = find_media(paths)
        images = [(item.name, item.path) for item in media if not item.is_video]
        if images:
            tasks.append(SandboxTask(_default_name(paths[0]), labels, images=images))
        tasks.extend(
            SandboxTask(item.path.name, labels, video=item.path) for item in media if item.is_video
        )
    return tasks


def _default_name(path: str) -> str:
    """The folder's or file's name; for a glob, the name of its fixed leading folder."""
    parts = Path(path).parts
    fixed = list(itertools.takewhile(lambda part: not _GLOB_MAGIC & set(part), parts))
    if len(fixed) == len(parts):
        return Path(path).resolve().name or path
    return Path(*fixed).resolve().name if fixed else "images"


def _function_options(args: argparse.Namespace) -> str:
    """How ``cvat-aa annotate`` names the function (parameter values left out: keys, say)."""
    source = args.labels_from
    if source is None:
        options = "--function NAME"
    elif source.endswith(".py") or os.sep in source:
        options = f"--function-file {shlex.quote(source)}"
    elif "." in source:
        options = f"--function-module {source}"
    else:
        options = f"--function {source}"
    return " ".join([options, *(f"-p {name}=..." for name, _ in args.function_parameters)])
