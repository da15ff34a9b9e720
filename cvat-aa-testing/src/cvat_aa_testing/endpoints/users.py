"""Users: registration (``/api/auth/register``), the list, one user, their groups, deletion.

Enough for a script to make a second user the way it would on real CVAT: register, then an
admin sets the user's groups (``PATCH /api/users/{id} {"groups": [...]}``), which decide what
the user may do (:mod:`cvat_aa_testing.permissions`), and delete it afterwards.
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from .. import auth, permissions, representations
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

_REGISTER_FIELDS = ("username", "email", "password1", "password2", "first_name", "last_name")


def register(ctx: ServerContext, request: Request, identity: None) -> Response:
    body = parse_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    errors = {
        key: ["This field may not be blank."]
        for key in _REGISTER_FIELDS
        if not isinstance(body.get(key), str) or not body[key]
    }
    if not errors and body["password1"] != body["password2"]:
        errors["non_field_errors"] = ["The two password fields didn't match."]
    if errors:
        raise ApiError(400, errors)
    with ctx.storage.write() as tx:
        if tx.user_by_name(body["username"]) is not None:
            raise ApiError(400, {"username": ["A user with that username already exists."]})
        if tx.user_by_email(body["email"]) is not None:
            raise ApiError(400, {"email": ["A user is already registered with this e-mail."]})
        user_id = tx.create_user(
            body["username"],
            auth.hash_password(body["password1"]),
            is_superuser=False,
            email=body["email"],
            first_name=body["first_name"],
            last_name=body["last_name"],
        )
        key = auth.new_secret()
        tx.add_credential(auth.digest(key), "token", user_id)
        # Registering logs the user in, as dj-rest-auth does.
        tx.set_last_login(user_id)
    return json_response(
        201,
        {
            **{field: body[field] for field in ("username", "email", "first_name", "last_name")},
            "email_verification_required": False,
            "key": key,
        },
    )


def list_users(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    """users.rego: an admin sees everyone; in an organization, its members; else oneself."""
    with ctx.storage.read() as tx:
        rules = identity.rules(tx)
        rules.check_list()
        org = identity.organization.organization
        users = tx.users()
        if org is not None:
            members = {m["user_id"] for m in tx.memberships(organization_id=org["id"])}
            users = [user for user in users if user["id"] in members]
        elif not rules.is_admin:
            users = [user for user in users if user["id"] == identity.user["id"]]
        search = request.args.get("search") or request.args.get("username")
        if search:
            users = [user for user in users if search.lower() in user["username"].lower()]
        items = [representations.user(user, request.host_url) for user in reversed(users)]
    return json_response(200, paginate(request, items))


def retrieve_user(
    ctx: ServerContext, request: Request, identity: auth.Identity, user_id: str
) -> Response:
    with ctx.storage.read() as tx:
        user = tx.user(int(user_id))
        if user is None:
            raise not_found("User")
        org = identity.organization.organization
        if not identity.rules(tx).may_view_user(user["id"], org["id"] if org else None):
            raise permissions.forbidden()
        return json_response(200, representations.user(user, request.host_url))


def update_user(
    ctx: ServerContext, request: Request, identity: auth.Identity, user_id: str
) -> Response:
    """An admin sets a user's groups: ``[]``, ``["worker"]``, ``["user"]`` or ``["admin"]``."""
    body = parse_json(request)
    groups = body.get("groups") if isinstance(body, dict) else None
    if (
        not isinstance(groups, list)
        or len(groups) > 1
        or not set(groups)
        <= {
            "admin",
            "user",
            "worker",
        }
    ):
        raise ApiError(
            400,
            {"groups": ["The test server takes one of the groups admin, user, worker, or none."]},
        )
    with ctx.storage.write() as tx:
        user = tx.user(int(user_id))
        if user is None:
            raise not_found("User")
        if not identity.rules(tx).is_admin:
            raise permissions.forbidden()
        if user["is_superuser"]:
            raise ApiError(400, {"groups": ["The test server keeps a superuser an admin."]})
        tx.set_privilege(user["id"], groups[0] if groups else None)
        return json_response(200, representations.user(tx.user(user["id"]), request.host_url))


def delete_user(
    ctx: ServerContext, request: Request, identity: auth.Identity, user_id: str
) -> Response:
    """users.rego: an admin deletes anyone, a user themself. What they own stays, ownerless."""
    with ctx.storage.write() as tx:
        user = tx.user(int(user_id))
        if user is None:
            raise not_found("User")
        if not identity.rules(tx).is_admin and user["id"] != identity.user["id"]:
            raise permissions.forbidden()
        tx.delete_user(user["id"])
    return empty_response(204)


ROUTES = [
    Route("POST", "/api/auth/register", register, public=True),
    Route("GET", "/api/users", list_users),
    Route("GET", "/api/users/" + ID.format("user_id"), retrieve_user),
    Route("PATCH", "/api/users/" + ID.format("user_id"), update_user),
    Route("DELETE", "/api/users/" + ID.format("user_id"), delete_user),
]
