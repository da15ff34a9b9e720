"""``cvat-aa sandbox``: a local CVAT-compatible server with a demo task."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sandbox",
        help="serve a local CVAT-compatible test server with a demo task",
        description="Start cvat-aa's CVAT-compatible test server on this machine, seeded with a"
        " demo task, print its URL and credentials, and serve until stopped (Ctrl-C).",
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
        help="keep the database and media here (default: a temporary directory)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..testing.sandbox import serve_sandbox

    serve_sandbox(host=args.host, port=args.port, data_dir=args.data_dir)
    return 0
