"""The database file of one server: connections, transactions and the clock.

Every HTTP request that changes state runs in one ``BEGIN IMMEDIATE`` transaction
(:meth:`Storage.write`), so a request either stores everything or, when it is rejected or fails,
nothing. WAL mode lets readers run while a writer holds the lock, and ``synchronous=FULL`` makes
a committed request survive a crash.
"""

from __future__ import annotations

import datetime
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import annotations as annotation_tables
from . import background_requests, organizations, tasks, users
from .transaction import SCHEMA, Transaction


def format_datetime(value: datetime.datetime) -> str:
    return value.isoformat(timespec="microseconds")


def _add_columns(conn: sqlite3.Connection) -> None:
    """Adds the columns a database made by an older test server lacks."""
    for table, column, declaration in (
        *organizations.ADDED_COLUMNS,
        *tasks.ADDED_COLUMNS,
        *annotation_tables.ADDED_COLUMNS,
        *users.ADDED_COLUMNS,
        *background_requests.ADDED_COLUMNS,
    ):
        existing = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in existing:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


class Storage:
    """One server's database. Thread-safe: every transaction opens its own connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._clock_lock = threading.Lock()
        self._last_timestamp: datetime.datetime | None = None
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(SCHEMA)
            _add_columns(conn)
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def now(self) -> str:
        """The current UTC time, strictly later than any earlier value from this storage.

        The SDK's cache keeps a task's cached data unless the server's ``updated_date`` is
        strictly newer, so two changes within one clock tick must still get distinct times.
        """
        with self._clock_lock:
            current = datetime.datetime.now(datetime.UTC)
            if self._last_timestamp is not None and current <= self._last_timestamp:
                current = self._last_timestamp + datetime.timedelta(microseconds=1)
            self._last_timestamp = current
            return format_datetime(current)

    @contextmanager
    def write(self) -> Iterator[Transaction]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self, conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @contextmanager
    def read(self) -> Iterator[Transaction]:
        """A read transaction: one consistent snapshot of the database."""
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            try:
                yield Transaction(self, conn)
            finally:
                conn.execute("ROLLBACK")
        finally:
            conn.close()
