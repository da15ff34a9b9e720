"""``cvat-aa serve``: installed functions behind an endpoint that CVAT takes for Nuclio.

Each ``--function`` starts the description of one served function (a detection, interaction
or tracking function: CVAT's detector, interactor or tracker); the ``-p``, ``--id``,
``--display-name``, ``--description`` and ``--help-message`` after it (before the next
``--function``) are its own. Models are loaded before the server answers anything, so a bad name or parameter ends
the command at once with the usual exit codes; once serving, the command runs until Ctrl-C or
SIGTERM and then exits 0.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ..serve import FunctionChoice, Gateway, ServedFunction, is_loopback
from ..serve.functions import kind_before_loading
from .errors import UsageError
from .options import add_executor_options, check_executor_options, parameter_argument
from .run_options import add_plugin_run_options, plugin_options_for_serving, positive

__all__ = ["register"]

logger = logging.getLogger(__name__)

TOKEN_ENV = "CVAT_AA_SERVE_TOKEN"

CHOSEN = "served_functions"

_A = {"interaction": "an", "tracking": "a"}


class _NewFunction(argparse.Action):
    """``--function NAME``: one more function to serve."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        chosen = list(getattr(namespace, CHOSEN, None) or [])
        chosen.append({"source": values, "params": {}})
        setattr(namespace, CHOSEN, chosen)


class _OfFunction(argparse.Action):
    """An option of the ``--function`` before it."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        chosen = getattr(namespace, CHOSEN, None)
        if not chosen:
            parser.error(f"{option_string} must follow the --function it is for")
        current = chosen[-1]
        if self.dest == "params":
            name, value = values
            current["params"][name] = value
        else:
            if self.dest in current:
                parser.error(f"{option_string} is given twice for --function {current['source']}")
            current[self.dest] = values


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve functions to CVAT's UI: an endpoint CVAT takes for a Nuclio dashboard",
        description="Serve installed functions to CVAT's web UI (Models, Automatic annotation,"
        " AI Tools): start an endpoint that CVAT's lambda manager takes for a Nuclio dashboard"
        " and point CVAT at it with CVAT_NUCLIO_HOST, CVAT_NUCLIO_PORT and"
        " CVAT_NUCLIO_INVOKE_METHOD (see docs/serve.md).",
    )
    which = parser.add_argument_group("functions (repeat --function for several)")
    which.add_argument(
        "-f",
        "--function",
        metavar="NAME",
        action=_NewFunction,
        required=True,
        help="an installed function (see 'functions list'), a module name or a .py path;"
        " the options below apply to the last --function before them",
    )
    which.add_argument(
        "-p",
        "--function-parameter",
        metavar="NAME=TYPE:VALUE",
        type=parameter_argument,
        action=_OfFunction,
        dest="params",
        help="a parameter for the function's factory; TYPE is str, int, float or bool",
    )
    which.add_argument(
        "--id",
        action=_OfFunction,
        dest="id",
        help="the function's id in CVAT (letters, digits, '_', '.', '-'; default: its name)",
    )
    which.add_argument(
        "--display-name",
        action=_OfFunction,
        dest="display_name",
        metavar="TEXT",
        help="the name CVAT shows for it (default: its id)",
    )
    which.add_argument(
        "--description",
        action=_OfFunction,
        dest="description",
        metavar="TEXT",
        help="the description CVAT shows (default: the plugin's summary)",
    )
    which.add_argument(
        "--help-message",
        action=_OfFunction,
        dest="help_message",
        metavar="TEXT",
        help="for an interaction function: the help CVAT's AI Tools show with it"
        " (default: the prompts it takes)",
    )

    net = parser.add_argument_group("network")
    net.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1: this machine only); give the"
        " address CVAT reaches this machine at (0.0.0.0 for all) to serve a CVAT elsewhere",
    )
    net.add_argument(
        "--port",
        type=int,
        default=8070,
        help="the port of the Nuclio dashboard API; CVAT_NUCLIO_PORT (default 8070, as CVAT's)",
    )
    net.add_argument(
        "--direct-port-start",
        type=int,
        metavar="PORT",
        help="for CVAT_NUCLIO_INVOKE_METHOD=direct: the first of the ports that the functions"
        " get, one each, in order (default: the ports after --port)",
    )
    net.add_argument(
        "--no-direct",
        action="store_true",
        help="open no port per function: CVAT must use CVAT_NUCLIO_INVOKE_METHOD=dashboard",
    )
    net.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="require the token in this file (or in the CVAT_AA_SERVE_TOKEN variable) on every"
        " call; CVAT sends it when CVAT_NUCLIO_FUNCTION_NAMESPACE is set to it. Implies"
        " --no-direct",
    )

    add_plugin_run_options(parser, serving=True)

    batching = parser.add_argument_group("batching")
    batching.add_argument(
        "--batch-size",
        type=positive,
        default=8,
        metavar="N",
        help="most frames a function gets in one call, from requests that arrive together"
        " (default 8)",
    )
    batching.add_argument(
        "--batch-wait-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="how long a frame may wait for others to fill its batch (default 0: a batch is"
        " what has arrived while the function was busy)",
    )
    batching.add_argument(
        "--max-queue",
        type=positive,
        default=256,
        metavar="N",
        help="frames that may wait for a function before calls are refused with 503 (default 256)",
    )
    batching.add_argument(
        "--request-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="answer 504 when a frame is not done after this many seconds (default 600;"
        " CVAT itself gives up after CVAT_NUCLIO_DEFAULT_TIMEOUT, 120 s)",
    )
    add_executor_options(parser)
    parser.set_defaults(run=run_serve)


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as ex:
            raise UsageError(f"--token-file: cannot read {str(args.token_file)!r}: {ex.strerror}")
        if not token:
            raise UsageError(f"--token-file: {str(args.token_file)!r} is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def _executor(args: argparse.Namespace, choice: FunctionChoice) -> Any:
    if args.executor != "ray":
        return None
    kind = kind_before_loading(choice.source)
    if kind in ("interaction", "tracking"):
        # One click or frame step at a time, answered at once: nothing for Ray to spread.
        print(
            f"cvat-aa serve: {choice.function_id!r} is {_A[kind]} {kind} function: it runs in this"
            " process (--executor ray runs detection functions)",
            file=sys.stderr,
        )
        return None
    from ..pipeline.ray_executor import RayExecutor

    try:
        return RayExecutor(
            choice.source,
            choice.params,
            actors=args.actors or 2,
            gpus_per_actor=args.gpus_per_actor or 0,
            address=args.ray_address,
        )
    except ImportError as ex:
        raise UsageError(f"--executor ray: {ex}") from None


def _configure_request_log() -> None:
    """Requests are logged (with the time) at INFO, whatever the level of the rest."""
    serve_logger = logging.getLogger("cvat_aa.serve")
    if not any(getattr(h, "cvat_aa_serve", False) for h in serve_logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.cvat_aa_serve = True  # type: ignore[attr-defined]
        serve_logger.addHandler(handler)
    serve_logger.setLevel(logging.INFO)
    serve_logger.propagate = False


def run_serve(args: argparse.Namespace) -> int:
    check_executor_options(args)
    token = _token(args)
    direct = not args.no_direct and token is None
    if args.direct_port_start is not None and not direct:
        raise UsageError("--direct-port-start cannot go with --no-direct or a token")
    plugin_options = plugin_options_for_serving(args)
    choices = [
        FunctionChoice(
            source=c["source"],
            params=c["params"],
            id=c.get("id"),
            display_name=c.get("display_name"),
            description=c.get("description"),
            help_message=c.get("help_message"),
            plugin_options=plugin_options,
        )
        for c in getattr(args, CHOSEN)
    ]
    ids = [c.function_id for c in choices]
    for function_id in ids:
        if ids.count(function_id) > 1:
            raise UsageError(
                f"two functions would have the id {function_id!r}: give one of them --id"
            )
    served: list[ServedFunction] = []
    try:
        for choice in choices:
            print(
                f"cvat-aa serve: loading {choice.source} as {choice.function_id!r}", file=sys.stderr
            )
            try:
                served.append(
                    ServedFunction(
                        choice,
                        executor=_executor(args, choice),
                        batch_size=args.batch_size,
                        batch_wait=args.batch_wait_ms / 1000,
                        max_queue=args.max_queue,
                    )
                )
            except ValueError as ex:
                if type(ex) is ValueError:
                    raise UsageError(str(ex)) from None
                raise
        try:
            gateway = Gateway(
                served,
                host=args.host,
                port=args.port,
                direct=direct,
                direct_port_start=args.direct_port_start,
                token=token,
                request_timeout=args.request_timeout,
            )
        except OSError as ex:
            if ex.errno == errno.EADDRINUSE:
                raise UsageError(
                    f"cannot listen on {args.host} port {args.port} or the ports after it: one is"
                    " in use; choose others with --port and --direct-port-start"
                ) from None
            raise UsageError(
                f"cannot listen on {args.host} port {args.port}: {ex.strerror}"
            ) from None
        except ValueError as ex:
            raise UsageError(str(ex)) from None
    except BaseException:
        for function in served:
            function.close()
        raise
    _configure_request_log()
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    # Once serving, Ctrl-C and SIGTERM are the way to stop, not an interruption: the calls
    # in progress are answered, the queued ones refused, and the command exits 0.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    gateway.start()
    try:
        _print_banner(gateway, args, token is not None)
        gateway.wait(stop)
    finally:
        print("cvat-aa serve: stopping", file=sys.stderr)
        gateway.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _what(function: ServedFunction) -> str:
    if function.kind == "detector":
        return f"detector, {len(function.catalog)} labels"
    if function.kind == "tracker":
        return f"tracker of {', '.join(sorted(function.spec.supported_shape_types))}"
    return function.kind


def _print_banner(gateway: Gateway, args: argparse.Namespace, with_token: bool) -> None:
    out = sys.stderr
    print(f"cvat-aa serve: serving on {gateway.url}", file=out)
    for function in gateway.functions.values():
        port = gateway.direct_ports.get(function.id)
        direct = f", direct port {port}" if port is not None else ""
        print(f"  {function.id}: {function.display_name!r} ({_what(function)}{direct})", file=out)
    print("Point CVAT at it (its server and its annotation worker):", file=out)
    print(
        f"  CVAT_NUCLIO_HOST=<this machine as CVAT reaches it> CVAT_NUCLIO_PORT={gateway.port}"
        " CVAT_NUCLIO_INVOKE_METHOD=dashboard",
        file=out,
    )
    if gateway.direct_ports:
        print("  (CVAT_NUCLIO_INVOKE_METHOD=direct works too, through the ports above)", file=out)
    if with_token:
        print("  CVAT_NUCLIO_FUNCTION_NAMESPACE=<the token>", file=out)
    if not is_loopback(args.host) and not with_token:
        print(
            f"cvat-aa serve: warning: listening on {args.host} without a token: anyone who can"
            " reach this port can run the functions; use --token-file",
            file=out,
        )
    print("Stop with Ctrl-C.", file=out)
