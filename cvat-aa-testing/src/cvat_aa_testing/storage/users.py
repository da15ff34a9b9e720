"""The users and their credentials: sessions, login tokens and personal access tokens.

Only a digest of each secret is stored (see :mod:`cvat_aa_testing.auth`), so a copy of the
database lets nobody log in.
"""

from __future__ import annotations

from typing import Any

from .access import TableAccess

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    is_superuser INTEGER NOT NULL DEFAULT 0,
    date_joined TEXT NOT NULL
);
-- Sessions, login tokens and personal access tokens. Only a digest of each secret is kept.
CREATE TABLE IF NOT EXISTS credentials (
    digest TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('session', 'token', 'pat')),
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL DEFAULT '',
    csrf_token TEXT,
    created_date TEXT NOT NULL
);
"""

ADDED_COLUMNS = (("users", "last_login", "TEXT"),)


class Users(TableAccess):
    """Rows of ``users`` and ``credentials``."""

    def create_user(
        self,
        username: str,
        password_hash: str,
        *,
        is_superuser: bool,
        email: str = "",
        privilege: str | None = "user",
        first_name: str = "",
        last_name: str = "",
    ) -> int:
        """A new user; ``privilege`` is CVAT's group: "admin", "user", "worker" or None."""
        return self._insert(
            "users",
            {
                "username": username,
                "password_hash": password_hash,
                "is_superuser": int(is_superuser),
                "privilege": "admin" if is_superuser else privilege,
                "email": email,
                "first_name": first_name,
                "last_name": last_name,
                "date_joined": self.now(),
            },
        )

    def set_last_login(self, user_id: int) -> None:
        """Records a login (with a password, as Django's ``login()``; tokens do not count)."""
        self.conn.execute("UPDATE users SET last_login = ? WHERE id = ?", (self.now(), user_id))

    def delete_user(self, user_id: int) -> None:
        """Deletes a user: credentials and memberships go, owners and assignees become null."""
        self.conn.execute("DELETE FROM users WHERE id = ?", (user_id,))

    def set_privilege(self, user_id: int, privilege: str | None) -> None:
        self.conn.execute("UPDATE users SET privilege = ? WHERE id = ?", (privilege, user_id))

    def users(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM users ORDER BY id")

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        return self._one(
            "SELECT * FROM users WHERE email != '' AND lower(email) = lower(?)", (email,)
        )

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        self.conn.execute(
            "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
        )

    def user(self, user_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM users WHERE id = ?", (user_id,))

    def user_by_name(self, username: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM users WHERE username = ?", (username,))

    def add_credential(
        self, digest: str, kind: str, user_id: int, *, name: str = "", csrf_token: str | None = None
    ) -> None:
        self._insert(
            "credentials",
            {
                "digest": digest,
                "kind": kind,
                "user_id": user_id,
                "name": name,
                "csrf_token": csrf_token,
                "created_date": self.now(),
            },
        )

    def credential(self, digest: str, kind: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM credentials WHERE digest = ? AND kind = ?", (digest, kind))

    def delete_credential(self, digest: str) -> None:
        self.conn.execute("DELETE FROM credentials WHERE digest = ?", (digest,))
