"""Who may do what: CVAT's permission rules for projects, tasks, jobs and their lists.

These are CVAT 2.73's Rego rules (``cvat/apps/engine/rules/{projects,tasks,jobs,labels}.rego``,
``cvat/apps/organizations/rules/*.rego``, ``cvat/apps/lambda_manager/rules/*.rego``) written in
Python for the scopes that cvat-sdk, cvat-cli, cvat-aa and the lambda manager use. As in CVAT:

* The organization context of a request comes from the ``X-Organization`` header or the
  ``org`` / ``org_id`` query parameters (:func:`organization_context`). An unknown one is a
  404 on every authenticated endpoint; ``org_id`` with either of the others, or ``org`` and
  the header with different values, is a 400. ``org=`` (empty) means the personal sandbox.
* A request about one object is judged in the context of the object's own organization, not
  the request's; a user who may not do it gets 403 (the object exists), never 404.
* Lists show what the user may see, narrowed to the context's organization when one is given
  (to objects outside any organization for ``org=``). Listing in an organization one is not a
  member of is a 403.
* A user's privilege is CVAT's group: "admin" (superusers), "user" (the default for new
  users), "worker" (may change what they are assigned, but create nothing) or none (may look
  at what they are assigned, and change nothing).
"""

from __future__ import annotations

from typing import Any

import attrs
from werkzeug.wrappers import Request

from .endpoints.http import ApiError, not_found
from .storage import Transaction

# Lower is more: CVAT's get_priority in iam/rules/utils.rego and organizations.rego.
_PRIVILEGE_PRIORITY = {"admin": 0, "user": 75, "worker": 100}
_ROLE_PRIORITY = {"owner": 0, "maintainer": 50, "supervisor": 75, "worker": 100}
ROLES = tuple(_ROLE_PRIORITY)
PRIVILEGES = ("admin", "user", "worker", None)

VIEW_SCOPES = frozenset({"view", "view:annotations", "view:data", "view:metadata"})
CHANGE_SCOPES = frozenset({"update:annotations", "delete:annotations", "update:metadata"})

FORBIDDEN_DETAIL = "You do not have permission to perform this action."


def forbidden() -> ApiError:
    return ApiError(403, {"detail": FORBIDDEN_DETAIL})


@attrs.frozen
class OrganizationContext:
    """The organization a request names: ``organization`` None and ``specified`` is the sandbox."""

    organization: dict[str, Any] | None = None
    specified: bool = False


def organization_context(tx: Transaction, request: Request) -> OrganizationContext:
    """The organization context of a request, or the 400/404 CVAT answers instead."""
    slug = request.args.get("org")
    org_id = request.args.get("org_id")
    header = request.headers.get("X-Organization")
    if org_id is not None and (slug is not None or header is not None):
        raise ApiError(
            400,
            [
                (
                    'You cannot specify "org_id" query parameter with "org" query parameter or'
                    ' "X-Organization" HTTP header at the same time.'
                )
            ],
        )
    if slug is not None and header is not None and slug != header:
        raise ApiError(
            400,
            [
                (
                    'You cannot specify "org" query parameter and "X-Organization" HTTP header'
                    " with different values."
                )
            ],
        )
    slug = slug if slug is not None else header
    specified = slug is not None or org_id is not None
    organization = None
    if slug:
        organization = tx.organization_by_slug(slug)
    elif org_id:
        organization = tx.organization(int(org_id)) if org_id.isdigit() else None
    if (slug or org_id) and organization is None:
        raise ApiError(404, {"detail": f"{slug or org_id} organization does not exist."})
    return OrganizationContext(organization, specified)


def _at_least(priority: dict[str, int], value: str | None, wanted: str) -> bool:
    return value in priority and priority[value] <= priority[wanted]


class Rules:
    """The permission rules for one user, within one transaction."""

    def __init__(
        self, tx: Transaction, user: dict[str, Any], context: OrganizationContext | None = None
    ) -> None:
        self.tx = tx
        self.user = user
        self.context = context or OrganizationContext()
        self.privilege = "admin" if user["is_superuser"] else user["privilege"]
        self._roles: dict[int, str | None] = {}

    # who the user is

    @property
    def is_admin(self) -> bool:
        return self.privilege == "admin"

    def has_privilege(self, wanted: str) -> bool:
        return _at_least(_PRIVILEGE_PRIORITY, self.privilege, wanted)

    def role(self, organization_id: int | None) -> str | None:
        """The user's role in an organization, None if not a member (or no organization)."""
        if organization_id is None:
            return None
        if organization_id not in self._roles:
            membership = self.tx.membership_of(organization_id, self.user["id"])
            self._roles[organization_id] = membership["role"] if membership else None
        return self._roles[organization_id]

    def has_role(self, organization_id: int | None, wanted: str) -> bool:
        return _at_least(_ROLE_PRIORITY, self.role(organization_id), wanted)

    def _is(self, user_id: int | None) -> bool:
        return user_id is not None and user_id == self.user["id"]

    # who an object belongs to

    def _project_of(self, task: dict[str, Any]) -> dict[str, Any] | None:
        return self.tx.project(task["project_id"]) if task["project_id"] is not None else None

    def _is_project_staff(self, project: dict[str, Any] | None) -> bool:
        return project is not None and (
            self._is(project["owner_id"]) or self._is(project["assignee_id"])
        )

    def _is_task_staff(self, task: dict[str, Any]) -> bool:
        return (
            self._is(task["owner_id"])
            or self._is(task["assignee_id"])
            or self._is_project_staff(self._project_of(task))
        )

    def _is_job_staff(self, job: dict[str, Any], task: dict[str, Any]) -> bool:
        return self._is(job["assignee_id"]) or self._is_task_staff(task)

    # single objects (tasks.rego, jobs.rego, projects.rego)

    def may_task(self, task: dict[str, Any], scope: str) -> bool:
        if self.is_admin:
            return True
        org = task["organization_id"]
        staff = self._is_task_staff(task)
        maintainer = self.has_privilege("user") and self.has_role(org, "maintainer")
        if scope in VIEW_SCOPES:
            if org is None:
                return staff
            return maintainer or (self.has_role(org, "worker") and staff)
        if scope in CHANGE_SCOPES | {"update:desc", "upload:data"}:
            if not self.has_privilege("worker"):
                return org is not None and maintainer
            if org is None:
                return staff
            return maintainer or (self.has_role(org, "worker") and staff)
        if scope in ("delete", "update:owner", "update:assignee", "update:project"):
            if not self.has_privilege("worker"):
                return org is not None and maintainer
            owner_or_project_staff = self._is(task["owner_id"]) or self._is_project_staff(
                self._project_of(task)
            )
            if org is None:
                return owner_or_project_staff
            return maintainer or (self.has_role(org, "worker") and owner_or_project_staff)
        raise ValueError(f"unknown task scope {scope!r}")

    def may_job(self, job: dict[str, Any], task: dict[str, Any], scope: str) -> bool:
        if self.is_admin:
            return True
        org = task["organization_id"]
        maintainer = self.has_privilege("user") and self.has_role(org, "maintainer")
        # A "worker" who is no member of the job's organization may still work on their job.
        outside_assignee = (
            org is not None
            and self.privilege == "worker"
            and self.role(org) is None
            and self._is(job["assignee_id"])
        )
        if scope in VIEW_SCOPES:
            staff = self._is_job_staff(job, task)
            if org is None:
                return staff
            return maintainer or (self.has_role(org, "worker") and staff) or outside_assignee
        if scope in CHANGE_SCOPES:
            staff = self._is_job_staff(job, task)
            if org is None:
                return self.has_privilege("worker") and staff
            return (
                maintainer
                or (self.has_privilege("worker") and self.has_role(org, "worker") and staff)
                or outside_assignee
            )
        if scope == "update:assignee":
            staff = self._is_task_staff(task)
            if org is None:
                return self.has_privilege("worker") and staff
            return maintainer or (
                self.has_privilege("worker") and self.has_role(org, "worker") and staff
            )
        raise ValueError(f"unknown job scope {scope!r}")

    def may_project(self, project: dict[str, Any], scope: str) -> bool:
        if self.is_admin:
            return True
        org = project["organization_id"]
        staff = self._is_project_staff(project)
        owner = self._is(project["owner_id"])
        maintainer = self.has_privilege("user") and self.has_role(org, "maintainer")
        if scope == "view":
            if org is None:
                return staff
            return maintainer or (self.has_role(org, "worker") and staff)
        if scope == "delete":
            if org is None:
                return self.has_privilege("worker") and owner
            return maintainer or (
                self.has_privilege("worker") and self.role(org) is not None and owner
            )
        if scope in ("update:desc", "create@task"):
            # create@task: adding a task to the project (tasks.rego, create@project)
            if scope == "create@task" and not self.has_privilege("user"):
                return False
            if org is None:
                return staff and self.has_privilege("worker")
            if scope == "create@task" and self.has_role(org, "supervisor"):
                return True
            return maintainer or (
                self.has_privilege("worker") and self.has_role(org, "worker") and staff
            )
        raise ValueError(f"unknown project scope {scope!r}")

    def may_create(self) -> bool:
        """May create a project or a task (outside a project) in the request's context."""
        if self.is_admin:
            return True
        org = self.context.organization
        if org is None:
            return self.has_privilege("user")
        return self.has_privilege("user") and self.has_role(org["id"], "supervisor")

    # the lambda manager (lambda.rego, lambda_requests.rego, lambda_manager/permissions.py)

    def may_lambda(self, scope: str) -> bool:
        """Functions: anyone may list and view them; calling one needs the worker privilege."""
        if self.is_admin or scope in ("list", "view"):
            return True
        if scope == "call:online":
            return self.has_privilege("worker")
        raise ValueError(f"unknown lambda scope {scope!r}")

    def may_lambda_request(self, scope: str, owner_id: int | None = None) -> bool:
        """Requests: workers may list, view and make them; only their owner deletes one."""
        if self.is_admin:
            return True
        if scope in ("list", "view", "create"):
            return self.has_privilege("worker")
        if scope == "delete":
            return self._is(owner_id) and self.has_privilege("worker")
        raise ValueError(f"unknown lambda request scope {scope!r}")

    def may_task_in_context(self, task: dict[str, Any], scope: str) -> bool:
        """tasks.rego judged in the request's organization context, not the task's own.

        The lambda manager builds its permissions on the task or job a call names with the
        request's context, so there a task of an organization is seen only through that
        organization (or, outside any, by its staff), and a personal task only outside any.
        """
        if self.is_admin:
            return True
        org = self.context.organization
        if org is None:
            return self.may_task({**task, "organization_id": None}, scope)
        return org["id"] == task["organization_id"] and self.may_task(task, scope)

    def may_job_in_context(self, job: dict[str, Any], task: dict[str, Any], scope: str) -> bool:
        """jobs.rego judged in the request's organization context (see may_task_in_context)."""
        if self.is_admin:
            return True
        org = self.context.organization
        if org is None:
            return self.may_job(job, {**task, "organization_id": None}, scope)
        return org["id"] == task["organization_id"] and self.may_job(job, task, scope)

    # lists: the rules' "filter", narrowed to the request's organization

    def check_list(self) -> None:
        """Listing in an organization needs membership (or admin)."""
        org = self.context.organization
        if org is not None and not self.is_admin and self.role(org["id"]) is None:
            raise forbidden()

    def _in_context(self, *organization_ids: int | None) -> bool:
        org = self.context.organization
        if org is not None:
            return org["id"] in organization_ids
        if self.context.specified:
            return all(org_id is None for org_id in organization_ids)
        return True

    def _sees_all_of_context(self) -> bool:
        org = self.context.organization
        if self.is_admin:
            return True
        return (
            org is not None
            and self.has_privilege("user")
            and self.has_role(org["id"], "maintainer")
        )

    def lists_task(self, task: dict[str, Any]) -> bool:
        project = self._project_of(task)
        project_org = project["organization_id"] if project else None
        org = self.context.organization
        if org is not None:
            in_context = org["id"] in (task["organization_id"], project_org)
        else:
            in_context = self._in_context(task["organization_id"], project_org)
        return in_context and (self._sees_all_of_context() or self._is_task_staff(task))

    def lists_job(self, job: dict[str, Any], task: dict[str, Any]) -> bool:
        return self._in_context(task["organization_id"]) and (
            self._sees_all_of_context() or self._is_job_staff(job, task)
        )

    def lists_project(self, project: dict[str, Any]) -> bool:
        return self._in_context(project["organization_id"]) and (
            self._sees_all_of_context() or self._is_project_staff(project)
        )

    def may_view_user(self, user_id: int, organization_id: int | None) -> bool:
        """May name ``user_id`` (as an assignee): oneself, or a member of the organization."""
        return (
            self.is_admin
            or self._is(user_id)
            or (
                organization_id is not None
                and self.tx.membership_of(organization_id, user_id) is not None
            )
        )

    def sees_organization(self, organization: dict[str, Any]) -> bool:
        return (
            self.is_admin
            or self._is(organization["owner_id"])
            or self.role(organization["id"]) is not None
        )

    # raising versions for handlers

    def require_task(self, task: dict[str, Any], scope: str) -> None:
        if not self.may_task(task, scope):
            raise forbidden()

    def require_job(self, job: dict[str, Any], task: dict[str, Any], scope: str) -> None:
        if not self.may_job(job, task, scope):
            raise forbidden()

    def require_project(self, project: dict[str, Any], scope: str) -> None:
        if not self.may_project(project, scope):
            raise forbidden()


def assignee(
    tx: Transaction, rules: Rules, body: dict[str, Any], key: str, organization_id: int | None
) -> int | None:
    """The user id a request assigns in ``body[key]``: 400 if unknown, 403 if not visible."""
    user_id = body[key]
    if user_id is None:
        return None
    if not isinstance(user_id, int) or isinstance(user_id, bool) or tx.user(user_id) is None:
        raise ApiError(400, {key: [f'Invalid pk "{user_id}" - object does not exist.']})
    if not rules.may_view_user(user_id, organization_id):
        raise forbidden()
    return user_id


def check_route(tx: Transaction, identity: Any, scope: str, params: dict[str, str]) -> None:
    """Refuses (403) a request on the task, job or project in its path; 404 if it is missing."""
    rules = Rules(tx, identity.user, identity.organization)
    if "job_id" in params:
        job = tx.job(int(params["job_id"]))
        if job is None:
            raise not_found("Job")
        rules.require_job(job, tx.task(job["task_id"]), scope)
    elif "task_id" in params:
        task = tx.task(int(params["task_id"]))
        if task is None:
            raise not_found("Task")
        rules.require_task(task, scope)
    elif "project_id" in params:
        project = tx.project(int(params["project_id"]))
        if project is None:
            raise not_found("Project")
        rules.require_project(project, scope)
    else:
        raise ValueError(f"a route with scope {scope!r} names no task, job or project")
