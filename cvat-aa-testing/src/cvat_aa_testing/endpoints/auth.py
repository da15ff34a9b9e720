"""Server information and sessions: ``/api/server/about``, login, logout, the current user.

How a request proves who sent it (tokens, sessions, CSRF) is :mod:`cvat_aa_testing.auth`;
this module is the endpoints that hand out and take back those credentials.
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from .. import auth, representations
from .context import ServerContext
from .http import ApiError, Route, json_response, parse_json


def about(ctx: ServerContext, request: Request, identity: None) -> Response:
    return json_response(200, representations.about(ctx.server_version))


def login(ctx: ServerContext, request: Request, identity: None) -> Response:
    body = parse_json(request)
    username = body.get("username") or body.get("email") or ""
    password = body.get("password") or ""
    if not isinstance(username, str) or not isinstance(password, str) or not password:
        raise ApiError(400, {"password": ["This field is required."]})
    with ctx.storage.write() as tx:
        user = tx.user_by_name(username)
        if user is None or not auth.verify_password(password, user["password_hash"]):
            raise ApiError(
                400, {"non_field_errors": ["Unable to log in with provided credentials."]}
            )
        key = auth.new_secret()
        session_id = auth.new_secret()
        csrf_token = auth.new_secret()
        tx.add_credential(auth.digest(key), "token", user["id"])
        tx.add_credential(auth.digest(session_id), "session", user["id"], csrf_token=csrf_token)
        tx.set_last_login(user["id"])
    response = json_response(200, {"key": key})
    response.set_cookie("sessionid", session_id, path="/", httponly=True, samesite="Lax")
    response.set_cookie("csrftoken", csrf_token, path="/", samesite="Lax")
    return response


def logout(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    if identity.session_digest is not None:
        with ctx.storage.write() as tx:
            tx.delete_credential(identity.session_digest)
    response = json_response(200, {"detail": "Successfully logged out."})
    response.delete_cookie("sessionid", path="/")
    return response


def current_user(ctx: ServerContext, request: Request, identity: auth.Identity) -> Response:
    return json_response(200, representations.user(identity.user, request.host_url))


ROUTES = [
    Route("GET", "/api/server/about", about, public=True),
    Route("POST", "/api/auth/login", login, public=True),
    Route("POST", "/api/auth/logout", logout),
    Route("GET", "/api/users/self", current_user),
]
