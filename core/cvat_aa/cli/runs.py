"""``cvat-aa runs``: the runs that did not finish, and undoing them.

A run that is killed (or fails in a way that its own rollback could not undo) leaves its
journal behind, and possibly annotations it uploaded. Running the same command again resumes
it; when the user runs with other options instead, or gives up on it, these commands show
what is left (``list``), remove what such a run uploaded (``rollback``) or drop its journal and
keep its annotations (``forget``). Nothing here touches an annotation the run did not create.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..driver.journal import (
    Journal,
    JournalInfo,
    default_journal_dir,
    list_journals,
    remove_journal_files,
)
from ..driver.run_lock import RunLock
from ..driver.upload import AnnotationTarget, Uploader
from . import login
from .errors import ExitCode, UsageError

__all__ = ["register"]

logger = logging.getLogger(__name__)


def _journal_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal-dir",
        type=Path,
        metavar="DIR",
        help=f"where run journals are kept (default {default_journal_dir()})",
    )


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "runs",
        help="list, roll back or forget runs that did not finish",
        description="Runs that were killed or failed keep a journal until they are run again"
        " (which resumes them). These commands show them, remove what one uploaded, or drop"
        " its journal.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="list the runs that did not finish")
    _journal_dir_option(listing)
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(run=run_list)

    rollback = actions.add_parser(
        "rollback",
        help="remove the annotations an unfinished run uploaded, then forget it",
        description="Remove from CVAT the annotations that an unfinished run uploaded (nothing"
        " else), then delete its journal. Server and authentication options are cvat-cli's;"
        " the server defaults to the one the run used.",
    )
    rollback.add_argument("run_id", metavar="ID", help="the run's ID, as 'runs list' shows it")
    _journal_dir_option(rollback)
    login.add_server_options(rollback)
    rollback.set_defaults(run=run_rollback)

    forget = actions.add_parser(
        "forget",
        help="delete an unfinished run's journal, keeping what it uploaded",
        description="Delete an unfinished run's journal. What it uploaded stays in CVAT, and"
        " running its command again starts over instead of resuming.",
    )
    forget.add_argument("run_id", metavar="ID", help="the run's ID, as 'runs list' shows it")
    _journal_dir_option(forget)
    forget.set_defaults(run=run_forget)


def _directory(args: argparse.Namespace) -> Path:
    return args.journal_dir or default_journal_dir()


def _find(args: argparse.Namespace) -> JournalInfo:
    directory = _directory(args)
    matches = [i for i in list_journals(directory) if i.key.startswith(args.run_id)]
    if not matches:
        raise UsageError(
            f"there is no unfinished run {args.run_id!r} in {directory}; 'cvat-aa runs list'"
            " shows the runs there"
        )
    if len(matches) > 1:
        raise UsageError(
            f"{args.run_id!r} matches {len(matches)} runs; give more of its ID"
            f" ({', '.join(m.id for m in matches)})"
        )
    return matches[0]


def _uploaded(info: JournalInfo) -> str:
    parts = [f"{n} {kind}s" for kind, n in sorted(info.uploaded.items()) if n]
    if info.pieces_in_doubt:
        parts.append(f"{info.pieces_in_doubt} uploads in doubt")
    return ", ".join(parts) or "nothing"


def run_list(args: argparse.Namespace) -> int:
    infos = list_journals(_directory(args))
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
        return ExitCode.OK
    if not infos:
        print(f"No unfinished runs in {_directory(args)}.")
        return ExitCode.OK
    rows = [("ID", "TARGET", "FUNCTION", "SERVER", "STARTED", "FRAMES DONE", "LEFT IN CVAT")]
    for info in infos:
        if not info.compatible:
            rows.append((info.id, "?", "?", "?", "?", "?", "written by another cvat-aa version"))
            continue
        rows.append(
            (
                info.id,
                info.target,
                str(info.run.get("function_name", "?")),
                info.server or "?",
                info.created_at or "?",
                str(info.frames_done),
                _uploaded(info),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(
        "\nRun a run's command again to resume it; 'cvat-aa runs rollback ID' removes what it"
        " uploaded; 'cvat-aa runs forget ID' keeps that and drops the run."
    )
    return ExitCode.OK


def _incompatible(info: JournalInfo) -> UsageError:
    return UsageError(
        f"run {info.id} was journaled by another version of cvat-aa, which this one cannot roll"
        f" back; 'cvat-aa runs forget {info.id}' deletes its journal"
    )


def run_forget(args: argparse.Namespace) -> int:
    info = _find(args)
    if info.compatible:
        # Not while it is running: its journal is in use.
        with RunLock.acquire(
            info.server, info.task_id, what=info.target, function=str(info.run.get("function_name"))
        ):
            remove_journal_files(info.path)
    else:
        remove_journal_files(info.path)
    kept = f"; what it uploaded stays in {info.target}" if info.may_have_uploads else ""
    print(f"Forgot run {info.id}{kept}.")
    return ExitCode.OK


def run_rollback(args: argparse.Namespace) -> int:
    info = _find(args)
    if not info.compatible:
        raise _incompatible(info)
    if args.server_host is None and args.profile is None:
        args.server_host = info.server
    kind, target_id = info.run["target"]
    function = str(info.run.get("function_name"))
    with RunLock.acquire(info.server, info.task_id, what=info.target, function=function):
        journal = Journal(info.path, describe=info.run)
        try:
            with login.log_in(args) as client:
                target = AnnotationTarget(client, kind, target_id)
                uploader = Uploader(target, journal)
                try:
                    # Uploads the run was sending when it stopped: find out whether they arrived.
                    uploader.resolve_in_doubt()
                finally:
                    uploader.abort()
                report = uploader.rollback()
        finally:
            journal.close()
        if report.left:
            print(
                f"cvat-aa: error: could not remove the {report.left} annotations run {info.id}"
                f" uploaded to {info.target}; run this command again",
                file=sys.stderr,
            )
            return ExitCode.ERROR
        remove_journal_files(info.path)
    print(
        f"Removed the {report.removed} annotations run {info.id} had uploaded to {info.target},"
        " and forgot the run."
    )
    return ExitCode.OK
