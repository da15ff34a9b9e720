"""``cvat-aa agent``: run installed functions for CVAT Online/Enterprise as agents.

CVAT Online and Enterprise do not run users' models: a user registers a *native function*
there (a name, its kind, and the labels it detects, the prompts it takes or the shapes it
tracks) and runs an agent on their own machine, which takes the function's requests from
CVAT's queue. Detectors, interactors and trackers are served alike; the kind follows from the
function's spec. cvat-cli calls these ``function create-native``, ``function delete`` and
``function run-agent``; here they live under ``agent`` (``create``, ``list``, ``delete``,
``run``), because ``functions`` already means the functions installed on this machine:

* ``agent create NAME [-p ...]`` registers a native function from an installed function's
  spec and prints its id;
* ``agent list`` lists the native functions on the server;
* ``agent delete ID...`` deletes them;
* ``agent run --function NAME [-p ...] (--function-id ID | --create)`` serves one, the model
  loaded once. Without ``--function-id`` it uses the native function with the function's
  name (``--display-name``) that fits; ``--create`` makes one when there is none,
  so starting an agent for a new function is one command.

``run`` stops on Ctrl-C or SIGTERM after the request in progress is submitted, and exits 0; a
second signal drops that request unsubmitted (CVAT hands it to another agent) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from typing import Any

from cvat_sdk import Client

from ..agent import (
    Agent,
    IncompatibleFunctionError,
    check_compatible,
    create_native_function,
    delete_function,
    list_functions,
    native_fields,
    runner_for,
)
from ..errors import BadFunctionError, NotFoundError
from ..interaction import Interactor
from ..interface import function_kind
from ..pipeline.executors import Executor, LocalExecutor
from ..pipeline.options import DEFAULT_BATCH_SIZE
from ..tracking import Tracker
from .errors import UsageError
from .login import add_server_options, log_in
from .options import add_executor_options, add_function_options, function_for_run, load_from_args
from .run_options import add_plugin_run_options, plugin_options_for_serving, positive

__all__ = ["register"]

logger = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "agent",
        help="serve functions to CVAT Online/Enterprise as agents (native functions)",
        description="Register installed functions as native functions of a CVAT Online or"
        " Enterprise server and serve their requests from this machine (see docs/agent.md).",
    )
    sub = parser.add_subparsers(dest="agent_command", metavar="COMMAND", required=True)

    create = sub.add_parser(
        "create",
        help="register an installed function on the server as a native function",
        description="Register a native function made from an installed function's spec (a"
        " detector's labels, an interactor's prompts, a tracker's shape types), and print its"
        " id.",
    )
    create.add_argument(
        "name", nargs="?", metavar="NAME", help="an installed function (see 'functions list')"
    )
    add_function_options(create, named_option=False)
    _add_display_options(create)
    create.add_argument("--json", action="store_true", help="print the function's record as JSON")
    add_server_options(create)
    create.set_defaults(run=run_create)

    listing = sub.add_parser("list", help="list the native functions on the server")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_server_options(listing)
    listing.set_defaults(run=run_list)

    delete = sub.add_parser("delete", help="delete native functions (missing ones are skipped)")
    delete.add_argument("ids", nargs="+", type=positive, metavar="ID", help="function ids")
    add_server_options(delete)
    delete.set_defaults(run=run_delete)

    run = sub.add_parser(
        "run",
        help="serve a native function's requests with an installed function",
        description="Take the requests of a native function from the server's queue and serve"
        " them with an installed function (a detector, an interactor or a tracker), loaded"
        " once. Interactive (single-frame) requests are served between the batches of a task"
        " request. Ctrl-C or SIGTERM stops after the request in progress; a second one drops"
        " it for another agent.",
    )
    add_function_options(run, named_option=True)
    which = run.add_mutually_exclusive_group()
    which.add_argument(
        "--function-id",
        type=positive,
        metavar="ID",
        help="the native function to serve (by default: the one named as the function)",
    )
    which.add_argument(
        "--create",
        action="store_true",
        help="create the native function if the server has none of that name that fits",
    )
    _add_display_options(run)
    add_plugin_run_options(run, serving=True)
    run.add_argument(
        "--burst", action="store_true", help="serve the requests in the queue, then exit"
    )
    run.add_argument(
        "--batch-size",
        type=positive,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"frames per call of a detector in task requests (default {DEFAULT_BATCH_SIZE})",
    )
    add_executor_options(run)
    add_server_options(run)
    run.set_defaults(run=run_agent)


def _add_display_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--display-name",
        metavar="TEXT",
        help="the native function's name on the server (default: the function's name)",
    )
    parser.add_argument(
        "--visibility",
        choices=["private", "public"],
        default="private",
        help="who may use a created native function: you (private, the default) or everyone"
        " in its organization or on the server (public)",
    )


def _native_name(args: argparse.Namespace, name: str) -> str:
    """The native function's name: ``--display-name``, or the function's name (a file's
    without its folder and ``.py``)."""
    if args.display_name:
        return args.display_name
    return args.function_file.stem if args.function_file is not None else name


def run_create(args: argparse.Namespace) -> int:
    if (args.name is None) == (args.function_module is None and args.function_file is None):
        raise UsageError("give a function NAME, or one of --function-module/--function-file")
    function, name, _ = load_from_args(args, args.name)
    spec = _checked_spec(function)
    client = log_in(args)
    record = create_native_function(
        client, name=_native_name(args, name), visibility=args.visibility, **native_fields(spec)
    )
    print(
        f"cvat-aa agent: created native function #{record['id']} ({record['name']!r})",
        file=sys.stderr,
    )
    print(json.dumps(record, indent=2) if args.json else record["id"])
    return 0


def _checked_spec(function: Any) -> Any:
    """The function's spec, checked as a run would check it."""
    kind = function_kind(function)
    if kind == "interaction":
        return Interactor(function).spec
    if kind == "tracking":
        return Tracker(function).spec
    return LocalExecutor().spec(function)


def run_list(args: argparse.Namespace) -> int:
    client = log_in(args)
    functions = [f for f in list_functions(client) if f.get("provider") == "native"]
    if args.json:
        print(json.dumps(functions, indent=2))
        return 0
    if not functions:
        print("No native functions on this server. Create one with 'cvat-aa agent create'.")
        return 0
    table = [("ID", "KIND", "LABELS", "NAME")] + [
        (str(f["id"]), str(f.get("kind", "")), _labels_cell(f), f["name"]) for f in functions
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    return 0


def _labels_cell(function: dict[str, Any]) -> str:
    """A detector's number of labels; other kinds have none ("-")."""
    if function.get("kind") != "detector":
        return "-"
    return str(len(function.get("labels_v2") or []))


def run_delete(args: argparse.Namespace) -> int:
    client = log_in(args)
    for function_id in args.ids:
        if delete_function(client, function_id):
            print(f"cvat-aa agent: deleted function #{function_id}", file=sys.stderr)
        else:
            print(f"cvat-aa agent: there is no function #{function_id}", file=sys.stderr)
    return 0


def _find_or_create(client: Client, args: argparse.Namespace, name: str, spec: Any) -> int:
    """The id of the native function named ``name`` that fits ``spec``."""
    same_name = [
        f for f in list_functions(client) if f.get("provider") == "native" and f["name"] == name
    ]
    fitting = []
    why_not = []
    for remote in same_name:
        try:
            check_compatible(remote, spec)
        except IncompatibleFunctionError as ex:
            why_not.append(str(ex))
        else:
            fitting.append(remote)
    if len(fitting) > 1:
        ids = ", ".join(f"#{f['id']}" for f in fitting)
        raise UsageError(
            f"several native functions are named {name!r} ({ids}): choose one with --function-id"
        )
    if fitting:
        return int(fitting[0]["id"])
    if not args.create:
        detail = f" ({why_not[0]})" if why_not else ""
        raise NotFoundError(
            f"there is no native function named {name!r} that fits this function on the"
            f" server{detail}: add --create to create one, or give --function-id"
        )
    record = create_native_function(
        client, name=name, visibility=args.visibility, **native_fields(spec)
    )
    print(f"cvat-aa agent: created native function #{record['id']} ({name!r})", file=sys.stderr)
    return int(record["id"])


def run_agent(args: argparse.Namespace) -> int:
    function, name, ray = function_for_run(args)
    # What an agent does is its output: each request, as it is taken and finished.
    agent_log = logging.getLogger("cvat_aa.agent")
    if agent_log.getEffectiveLevel() > logging.INFO:
        agent_log.setLevel(logging.INFO)
    executor: Executor = ray if ray is not None else LocalExecutor()
    try:
        loaded = executor.load(function, plugin_options_for_serving(args))
        client = log_in(args)
        # The agent's requests are told apart from other cvat-aa requests, as cvat-cli's are.
        headers = client.api_client.default_headers
        headers["User-Agent"] = headers["User-Agent"].replace(" ", " (agent) ", 1)
        try:
            runner = runner_for(client, executor, loaded, name=name, batch_size=args.batch_size)
        except BadFunctionError as ex:
            if ray is None:
                raise
            raise UsageError(
                f"{ex}; with --executor ray the agent serves detectors only: serve interactors"
                " and trackers without it (their states stay in the agent's process)"
            ) from None
        function_id = args.function_id or _find_or_create(
            client, args, _native_name(args, name), runner.spec
        )
        agent = Agent(client, function_id, runner)
        signals = 0

        def on_signal(signum: int, frame: Any) -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                print(
                    "cvat-aa agent: stopping after the request in progress (again to drop it)",
                    file=sys.stderr,
                )
                agent.stop()
            else:
                agent.abandon()

        # Once serving, Ctrl-C and SIGTERM are the way to stop, not an interruption.
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        if args.burst and function_kind(runner.spec) == "tracking":
            print(
                "cvat-aa agent: warning: the tracking states this agent gives out are lost when"
                " it exits; serve a tracker without --burst",
                file=sys.stderr,
            )
        try:
            print(
                f"cvat-aa agent: serving native function #{function_id}"
                f" ({agent.remote['name']!r}) with {name}"
                + (" until the queue is empty" if args.burst else "; stop with Ctrl-C"),
                file=sys.stderr,
            )
            summary = agent.run(burst=args.burst)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        close = getattr(executor, "close", None)
        if close is not None:
            close()
    print(
        f"cvat-aa agent: {len(summary.completed)} requests completed, {len(summary.failed)}"
        f" failed, {len(summary.lost)} dropped",
        file=sys.stderr,
    )
    return 0
