"""Organizations, memberships and invitations: ``/api/organizations``, ``/api/memberships``,
``/api/invitations``.

cvat-sdk reads organizations (``client.organizations``) and sends their slug with every
request (``X-Organization``); what a member may do in one is :mod:`cvat_aa_testing.permissions`.
Invitations exist to add members the way a script does on real CVAT: an invitation of a
registered user (found by e-mail) is accepted at once, as CVAT does by default
(``ORG_INVITATION_CONFIRM`` off). Inviting someone who has no account is refused, since the
test server sends no e-mail.
"""

from __future__ import annotations

import re
import secrets
import shutil

from werkzeug.wrappers import Request, Response

from .. import auth, permissions, representations
from ..task_data import task_media_dir
from .context import ServerContext
from .http import (
    ID,
    ApiError,
    Route,
    empty_response,
    json_response,
    not_found,
    paginate,
    parse_json,
)

_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,16}")


def list_organizations(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        items = [
            representations.organization(tx, org, request.host_url)
            for org in tx.organizations()
            if rules.sees_organization(org) and request.args.get("slug") in (None, org["slug"])
        ]
    return json_response(200, paginate(request, items))


def create_organization(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    body = parse_json(request)
    slug = body.get("slug") if isinstance(body, dict) else None
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        raise ApiError(
            400,
            {
                "slug": [
                    "Enter a valid slug of at most 16 letters, numbers, underscores or hyphens."
                ]
            },
        )
    name = body.get("name") or ""
    with ctx.storage.write() as tx:
        if not identity.rules(tx).has_privilege("worker"):
            raise permissions.forbidden()
        if tx.organization_by_slug(slug) is not None:
            raise ApiError(400, {"slug": ["organization with this slug already exists."]})
        org_id = tx.create_organization(slug, identity.user["id"], str(name))
        result = representations.organization(tx, tx.organization(org_id), request.host_url)
    return json_response(201, result)


def retrieve_organization(
    ctx: ServerContext, request: Request, identity: auth.Identity, organization_id: str
) -> Response:
    with ctx.storage.read() as tx:
        org = tx.organization(int(organization_id))
        if org is None:
            raise not_found("Organization")
        if not identity.rules(tx).sees_organization(org):
            raise permissions.forbidden()
        return json_response(200, representations.organization(tx, org, request.host_url))


def delete_organization(
    ctx: ServerContext, request: Request, identity: auth.Identity, organization_id: str
) -> Response:
    with ctx.storage.write() as tx:
        org = tx.organization(int(organization_id))
        if org is None:
            raise not_found("Organization")
        rules = identity.rules(tx)
        if not (rules.is_admin or org["owner_id"] == identity.user["id"]):
            raise permissions.forbidden()
        task_ids = [task["id"] for task in tx.tasks() if task["organization_id"] == org["id"]]
        tx.delete_organization(org["id"])
    for task_id in task_ids:
        shutil.rmtree(task_media_dir(ctx.media_root, task_id), ignore_errors=True)
    return empty_response(204)


def list_memberships(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    """memberships.rego's filter: in an organization, all of its memberships (to a member);
    outside, the user's own."""
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        rules.check_list()
        org = identity.organization.organization
        if org is not None:
            memberships = tx.memberships(organization_id=org["id"])
        elif rules.is_admin and not identity.organization.specified:
            memberships = tx.memberships()
        else:
            memberships = tx.memberships(user_id=identity.user["id"])
        username = request.args.get("user")
        items = [
            representations.membership(tx, m, request.host_url)
            for m in memberships
            if username is None or tx.user(m["user_id"])["username"] == username
        ]
    return json_response(200, paginate(request, items))


def _membership_to_change(
    tx, identity: auth.Identity, membership_id: str
) -> tuple[dict, permissions.Rules]:
    membership = tx.membership(int(membership_id))
    if membership is None:
        raise not_found("Membership")
    rules = identity.rules(tx)
    if rules.is_admin:
        return membership, rules
    org_id = membership["organization_id"]
    own_role = rules.role(org_id)
    if membership["role"] == "owner" or membership["user_id"] == identity.user["id"]:
        raise permissions.forbidden()
    if own_role == "owner" or (own_role == "maintainer" and membership["role"] != "maintainer"):
        return membership, rules
    raise permissions.forbidden()


def update_membership(
    ctx: ServerContext, request: Request, identity: auth.Identity, membership_id: str
) -> Response:
    body = parse_json(request)
    role = body.get("role") if isinstance(body, dict) else None
    if role not in ("maintainer", "supervisor", "worker"):
        raise ApiError(400, {"role": [f'"{role}" is not a valid choice.']})
    with ctx.storage.write() as tx:
        membership, _ = _membership_to_change(tx, identity, membership_id)
        tx.set_role(membership["id"], role)
        return json_response(
            200, representations.membership(tx, tx.membership(membership["id"]), request.host_url)
        )


def delete_membership(
    ctx: ServerContext, request: Request, identity: auth.Identity, membership_id: str
) -> Response:
    with ctx.storage.write() as tx:
        membership = tx.membership(int(membership_id))
        leaving = (
            membership is not None
            and membership["user_id"] == identity.user["id"]
            and membership["role"] != "owner"
        )
        if not leaving:
            membership, _ = _membership_to_change(tx, identity, membership_id)
        tx.delete_membership(membership["id"])
    return empty_response(204)


def create_invitation(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    body = parse_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    role, email = body.get("role"), body.get("email")
    if role not in ("maintainer", "supervisor", "worker"):
        raise ApiError(400, {"role": [f'"{role}" is not a valid choice.']})
    if not isinstance(email, str) or "@" not in email:
        raise ApiError(400, {"email": ["Enter a valid email address."]})
    org = identity.organization.organization
    with ctx.storage.write() as tx:
        rules = identity.rules(tx)
        if org is None:
            raise permissions.forbidden()
        own_role = rules.role(org["id"])
        may_invite = (
            rules.is_admin
            or own_role == "owner"
            or (own_role == "maintainer" and role != "maintainer")
        )
        if not may_invite:
            raise permissions.forbidden()
        user = tx.user_by_email(email)
        if user is None:
            detail = (
                "The test server sends no e-mail: invite a user with an account at this address."
            )
            raise ApiError(400, {"email": [detail]})
        if tx.membership_of(org["id"], user["id"]) is not None:
            raise ApiError(400, ["The user is a member of the organization already."])
        membership_id = tx.add_membership(
            org["id"],
            user["id"],
            role,
            invitation=secrets.token_urlsafe(48)[:64],
            invited_by=identity.user["id"],
        )
        result = representations.invitation(tx, tx.membership(membership_id), request.host_url)
    return json_response(201, result)


def accept_invitation(
    ctx: ServerContext, request: Request, identity: auth.Identity, key: str
) -> Response:
    with ctx.storage.read() as tx:
        membership = tx.invitation_membership(key)
    if membership is None or membership["user_id"] != identity.user["id"]:
        raise not_found("Invitation")
    raise ApiError(400, "Your invitation is already accepted.")


ROUTES = [
    Route("GET", "/api/organizations", list_organizations),
    Route("POST", "/api/organizations", create_organization),
    Route("GET", "/api/organizations/" + ID.format("organization_id"), retrieve_organization),
    Route("DELETE", "/api/organizations/" + ID.format("organization_id"), delete_organization),
    Route("GET", "/api/memberships", list_memberships),
    Route("PATCH", "/api/memberships/" + ID.format("membership_id"), update_membership),
    Route("DELETE", "/api/memberships/" + ID.format("membership_id"), delete_membership),
    Route("POST", "/api/invitations", create_invitation),
    Route("POST", "/api/invitations/(?P<key>[^/]+)/accept", accept_invitation),
]
