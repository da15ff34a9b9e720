"""The ``cvat-aa`` command line: one module per command group.

Exit codes (also in docs/cli.md):

====  =====================================================================================
0     success
1     an unexpected error, or the server failed or could not be reached
2     bad usage: bad options or parameters (a server address that does not parse too), an
      unknown function, a bad frame selection
3     authentication failed (wrong credentials or token, or no permission), or no
      credentials were given and there is no terminal to ask for a password on
4     the task or job was not found, or it has no data
5     the function is bad: a broken plugin, or a function that broke the protocol
6     the function raised an exception on a frame
7     another run is annotating the same task (see the message for which)
130   interrupted (Ctrl-C)
====  =====================================================================================
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from . import annotate, functions, runs, sandbox
from .errors import ExitCode, report_error, stopped_run_lines

__all__ = ["ExitCode", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvat-aa",
        description="Auto-annotate CVAT tasks with ML functions installed as plugins.",
    )
    parser.add_argument("--version", action="version", version=f"cvat-aa {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="log debug output and show tracebacks for errors",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    functions.register(commands)
    annotate.register(commands)
    runs.register(commands)
    sandbox.register(commands)
    return parser


def _configure_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(name)s: %(message)s"))
    root = logging.getLogger("cvat_aa")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.debug)
    try:
        return int(args.run(args) or ExitCode.OK)
    except KeyboardInterrupt as ex:
        print("cvat-aa: interrupted", file=sys.stderr)
        for line in stopped_run_lines(ex):
            print(f"cvat-aa: {line}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BaseException as ex:  # every error a user can hit ends here, as one message
        # SystemExit too: only cvat-aa decides its exit status, never code it loaded.
        return report_error(ex, debug=args.debug)
