"""What every table's data access shares: one connection in one transaction, rows as dicts.

Each table module defines a class of methods over this base; :class:`.Transaction` combines
them, so a request handler holds a single object for everything it reads and writes, and all of
it commits or rolls back together.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .database import Storage


def dumps(value: Any) -> str:
    """Compact JSON for the columns that hold JSON."""
    return json.dumps(value, separators=(",", ":"))


class TableAccess:
    """One transaction's connection, and the helpers for queries on it."""

    def __init__(self, storage: Storage, conn: sqlite3.Connection) -> None:
        self.storage = storage
        self.conn = conn

    def now(self) -> str:
        return self.storage.now()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        row = self.conn.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(sql, params)]

    def _insert(self, table: str, values: dict[str, Any]) -> int:
        columns = ", ".join(f'"{name}"' for name in values)
        marks = ", ".join("?" for _ in values)
        cursor = self.conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values())
        )
        return cursor.lastrowid
