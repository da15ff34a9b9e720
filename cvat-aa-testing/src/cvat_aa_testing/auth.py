"""Users' secrets and request authentication, following CVAT's (DRF's) rules.

CVAT accepts, in this order: ``Authorization: Token <key>`` (the key from login),
``Authorization: Bearer <personal access token>``, ``Authorization: Basic ...``, and the
``sessionid`` cookie from login. Requests that change state over a session must also carry
``X-CSRFToken`` equal to the ``csrftoken`` cookie. Failures are answered like DRF:

* no credentials: 401 ``{"detail": "Authentication credentials were not provided."}``
* a wrong token: 401 ``{"detail": "Invalid token."}``
* a wrong Basic password: 401 ``{"detail": "Invalid username/password."}``
* a missing or wrong CSRF token: 403 ``{"detail": "CSRF Failed: ..."}``

(A wrong password at ``POST /api/auth/login`` is a 400, handled by the login endpoint.)

Only SHA-256 digests of session ids and tokens are stored, and passwords are salted PBKDF2.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Any

import attrs

from .permissions import OrganizationContext, Rules, organization_context
from .storage import Transaction

_PBKDF2_ITERATIONS = 10_000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class AuthError(Exception):
    """A request that cannot be authenticated; ``status`` is 401 or 403."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@attrs.frozen
class Identity:
    user: dict[str, Any]
    #: "token", "pat", "basic" or "session"
    method: str
    #: the session cookie's digest, for logout
    session_digest: str | None = None
    #: the organization the request names (X-Organization, org, org_id)
    organization: OrganizationContext = attrs.field(factory=OrganizationContext)

    def rules(self, tx: Transaction) -> Rules:
        """The permission rules for this user and organization context."""
        return Rules(tx, self.user, self.organization)


def hash_password(password: str) -> str:
    salt = secrets.token_hex(8)
    derived = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), _PBKDF2_ITERATIONS)
    return f"pbkdf2_sha256${_PBKDF2_ITERATIONS}${salt}${derived.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, iterations, salt, expected = stored.split("$")
    except ValueError:
        return False
    derived = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    return hmac.compare_digest(derived.hex(), expected)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    """40 hex characters: the length of CVAT's login token key."""
    return secrets.token_hex(20)


def new_access_token() -> str:
    return "cvat_aa_" + secrets.token_urlsafe(30)


def authenticate_request(tx: Transaction, request: Any) -> Identity:
    """The identity behind a request and the organization it names, or AuthError/ApiError.

    Credentials are checked first (401/403), then the organization (404 if unknown), as in
    CVAT, where the organization is looked up when the permissions are checked.
    """
    identity = authenticate(tx, request.method, request.headers, request.cookies)
    return attrs.evolve(identity, organization=organization_context(tx, request))


def authenticate(tx: Transaction, method: str, headers: Any, cookies: Any) -> Identity:
    """The identity behind a request, or AuthError."""
    authorization = headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme in ("token", "bearer"):
        kind = "token" if scheme == "token" else "pat"
        record = tx.credential(digest(credentials), kind) if credentials else None
        if record is None:
            raise AuthError(401, "Invalid token.")
        return Identity(tx.user(record["user_id"]), kind)
    if scheme == "basic":
        try:
            username, _, password = base64.b64decode(credentials).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError(401, "Invalid basic header. Credentials not correctly base64 encoded.")
        user = tx.user_by_name(username)
        if user is None or not verify_password(password, user["password_hash"]):
            raise AuthError(401, "Invalid username/password.")
        return Identity(user, "basic")

    session_id = cookies.get("sessionid")
    record = tx.credential(digest(session_id), "session") if session_id else None
    if record is None:
        raise AuthError(401, "Authentication credentials were not provided.")
    if method not in SAFE_METHODS:
        header_token = headers.get("X-CSRFToken")
        if not header_token:
            raise AuthError(403, "CSRF Failed: CSRF token missing.")
        cookie_token = cookies.get("csrftoken", "")
        if not (
            hmac.compare_digest(header_token, cookie_token)
            and hmac.compare_digest(cookie_token, record["csrf_token"] or "")
        ):
            raise AuthError(403, "CSRF Failed: CSRF token incorrect.")
    return Identity(tx.user(record["user_id"]), "session", session_digest=record["digest"])
