"""Organizations, their members with a role each, and who owns or is assigned what.

CVAT's permission rules ask three questions of every task, job and project: which
organization it belongs to (none: the owner's personal "sandbox"), who owns it, and who is
assigned to it. The organization and assignee columns of those tables are defined here, next
to the organizations they refer to, and added to a database made by an older test server as
well (:data:`ADDED_COLUMNS`), since ``cvat-aa sandbox --data-dir`` keeps its database.
"""

from __future__ import annotations

from typing import Any

from .access import TableAccess

SCHEMA = """
CREATE TABLE IF NOT EXISTS organizations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_date TEXT NOT NULL,
    updated_date TEXT NOT NULL
);
-- An invitation is accepted at once (CVAT does so when the invited user exists and
-- ORG_INVITATION_CONFIRM is off, its default), so a membership keeps its invitation's key.
CREATE TABLE IF NOT EXISTS memberships (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'maintainer', 'supervisor', 'worker')),
    joined_date TEXT NOT NULL,
    invitation TEXT UNIQUE,
    invited_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    UNIQUE (organization_id, user_id)
);
"""

#: Columns of other tables, as ``(table, column, declaration)``.
ADDED_COLUMNS = (
    ("users", "privilege", "TEXT DEFAULT 'user'"),
    ("projects", "organization_id", "INTEGER REFERENCES organizations(id) ON DELETE CASCADE"),
    ("projects", "assignee_id", "INTEGER REFERENCES users(id) ON DELETE SET NULL"),
    ("tasks", "organization_id", "INTEGER REFERENCES organizations(id) ON DELETE CASCADE"),
    ("tasks", "assignee_id", "INTEGER REFERENCES users(id) ON DELETE SET NULL"),
    ("jobs", "assignee_id", "INTEGER REFERENCES users(id) ON DELETE SET NULL"),
    *((table, "assignee_updated_date", "TEXT") for table in ("projects", "tasks", "jobs")),
)

#: Tables whose rows can be assigned to a user.
_ASSIGNABLE = ("projects", "tasks", "jobs")


class Organizations(TableAccess):
    """Rows of ``organizations`` and ``memberships``, and the assignee columns."""

    def create_organization(self, slug: str, owner_id: int, name: str = "") -> int:
        now = self.now()
        organization_id = self._insert(
            "organizations",
            {
                "slug": slug,
                "name": name or slug,
                "owner_id": owner_id,
                "created_date": now,
                "updated_date": now,
            },
        )
        self.add_membership(organization_id, owner_id, "owner")
        return organization_id

    def organization(self, organization_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM organizations WHERE id = ?", (organization_id,))

    def organization_by_slug(self, slug: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM organizations WHERE slug = ?", (slug,))

    def organizations(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM organizations ORDER BY id DESC")

    def delete_organization(self, organization_id: int) -> None:
        self.conn.execute("DELETE FROM organizations WHERE id = ?", (organization_id,))

    def add_membership(
        self,
        organization_id: int,
        user_id: int,
        role: str,
        *,
        invitation: str | None = None,
        invited_by: int | None = None,
    ) -> int:
        return self._insert(
            "memberships",
            {
                "organization_id": organization_id,
                "user_id": user_id,
                "role": role,
                "joined_date": self.now(),
                "invitation": invitation,
                "invited_by": invited_by,
            },
        )

    def membership(self, membership_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM memberships WHERE id = ?", (membership_id,))

    def membership_of(self, organization_id: int, user_id: int) -> dict[str, Any] | None:
        return self._one(
            "SELECT * FROM memberships WHERE organization_id = ? AND user_id = ?",
            (organization_id, user_id),
        )

    def memberships(
        self, *, organization_id: int | None = None, user_id: int | None = None
    ) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM memberships WHERE 1", []
        if organization_id is not None:
            sql += " AND organization_id = ?"
            params.append(organization_id)
        if user_id is not None:
            sql += " AND user_id = ?"
            params.append(user_id)
        return self._all(sql + " ORDER BY id DESC", params)

    def invitation_membership(self, key: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM memberships WHERE invitation = ?", (key,))

    def set_role(self, membership_id: int, role: str) -> None:
        self.conn.execute("UPDATE memberships SET role = ? WHERE id = ?", (role, membership_id))

    def delete_membership(self, membership_id: int) -> None:
        self.conn.execute("DELETE FROM memberships WHERE id = ?", (membership_id,))

    def set_assignee(self, table: str, row_id: int, user_id: int | None) -> None:
        """Assigns a project, task or job to a user (None: to nobody).

        As in CVAT, ``assignee_updated_date`` changes only when the assignee does.
        """
        if table not in _ASSIGNABLE:
            raise ValueError(f"{table} rows have no assignee")
        now = self.now()
        self.conn.execute(
            f"UPDATE {table} SET assignee_updated_date = CASE WHEN assignee_id IS ?"
            " THEN assignee_updated_date ELSE ? END, assignee_id = ?, updated_date = ?"
            " WHERE id = ?",
            (user_id, now, user_id, now, row_id),
        )
