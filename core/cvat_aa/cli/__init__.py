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
5     the function is bad: a broken plugin, a function that broke the protocol, or a function
      of another kind than the command runs
6     the function raised an exception on a frame
7     another run is annotating the same task (see the message for which)
130   interrupted (Ctrl-C)
====  =====================================================================================

Other distributions add commands through the ``cvat_aa.commands`` entry-point group
(:func:`cvat_aa.plugins.load_command_plugins`): cvat-aa-testing adds ``sandbox``, so the core
never imports the test server. Without it, ``sandbox`` is a stub that says what to install.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from .. import __version__
from ..plugins import load_command_plugins
from . import agent, annotate, functions, interact, runs, serve, track
from .errors import ExitCode, UsageError, report_error, stopped_run_lines

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
    track.register(commands)
    interact.register(commands)
    runs.register(commands)
    serve.register(commands)
    agent.register(commands)
    load_command_plugins(commands)
    if "sandbox" not in commands.choices:
        _register_sandbox_stub(commands)
    return parser


def _register_sandbox_stub(commands: argparse._SubParsersAction) -> None:
    """``cvat-aa sandbox`` without cvat-aa-testing: says how to install it (exit 2)."""
    # Whatever options follow, the answer is what to install: with a prefix character that no
    # argument can hold (a NUL), every argument is a positional that the stub takes and ignores.
    parser = commands.add_parser(
        "sandbox",
        help="serve a local CVAT-compatible test server (needs cvat-aa-testing)",
        add_help=False,
        prefix_chars="\0",
    )
    parser.add_argument("arguments", nargs="*")

    def run(args: argparse.Namespace) -> int:
        raise UsageError(
            "cvat-aa sandbox needs the cvat-aa-testing distribution: pip install 'cvat-aa[testing]'"
        )

    parser.set_defaults(run=run)


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a record comes, not as it was when it was made.

    So one handler serves every ``main()`` in a process (tests call it many times, with
    ``sys.stderr`` replaced in between), instead of one more per call.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s: %(name)s: %(message)s"))

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always sys.stderr


def _configure_logging() -> logging.Logger:
    root = logging.getLogger("cvat_aa")
    if not any(isinstance(handler, _StderrHandler) for handler in root.handlers):
        root.addHandler(_StderrHandler())
    root.setLevel(logging.WARNING)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    # Before the parser is built: a command plugin that fails to load is a logged warning.
    root = _configure_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.debug:
        root.setLevel(logging.DEBUG)
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
