"""The CVAT server the integration suite runs against, chosen from the environment.

``CVAT_AA_IT_URL`` names it: a URL such as ``http://127.0.0.1:8080``, or ``testserver`` for
cvat-aa's own test server (started once for the session). Credentials come from
``CVAT_AA_IT_USER`` and ``CVAT_AA_IT_PASSWORD`` (or a personal access token in
``CVAT_AA_IT_TOKEN``); ``CVAT_AA_IT_ORG`` runs everything in an organization; a second user
for the refusal scenarios comes from ``CVAT_AA_IT_USER2`` and ``CVAT_AA_IT_PASSWORD2``, or is
registered for the session (and deleted after it) when the first user is an administrator.

The ``cvat-aa serve`` scenarios need to know where the CVAT under test looks for its Nuclio
dashboard: ``CVAT_AA_IT_NUCLIO_PORT`` (its ``CVAT_NUCLIO_PORT``), ``CVAT_AA_IT_NUCLIO_HOST``
(the address the suite's gateway binds, default 127.0.0.1) and ``CVAT_AA_IT_NUCLIO_METHOD``
(its ``CVAT_NUCLIO_INVOKE_METHOD``: ``dashboard``, the default, or ``direct``). For
``testserver`` the suite chooses a free port and starts the test server pointed at it.

Secrets stay in memory: they reach the CLI through its environment (``PASS``,
``CVAT_ACCESS_TOKEN``), never through its command line, and are never printed.
"""

from __future__ import annotations

import inspect
import os
import secrets
import socket
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs
from cvat_sdk import Client, Config, models
from cvat_sdk.api_client import exceptions
from cvat_sdk.core.client import AccessTokenCredentials

URL_VARIABLE = "CVAT_AA_IT_URL"
HOW_TO_RUN = (
    f"the integration suite needs a CVAT server: set {URL_VARIABLE} to its URL (and"
    " CVAT_AA_IT_USER, CVAT_AA_IT_PASSWORD) or to 'testserver'; see docs/testing.md"
)


NUCLIO_HOW_TO_RUN = (
    "the cvat-aa serve scenarios need the port this CVAT expects its Nuclio dashboard on: start"
    " CVAT with CVAT_NUCLIO_HOST=<this machine> CVAT_NUCLIO_PORT=<port>"
    " CVAT_NUCLIO_INVOKE_METHOD=dashboard and set CVAT_AA_IT_NUCLIO_PORT=<port> (and"
    " CVAT_AA_IT_NUCLIO_METHOD=direct for a CVAT that invokes functions directly); see"
    " docs/testing.md"
)
TESTSERVER_WITHOUT_NUCLIO = (
    "the cvat-aa serve scenarios need a lambda manager in cvat-aa's test server"
    " (TestServer(nuclio_url=...)), which this cvat-aa-testing does not have yet"
)
NUCLIO_METHODS = ("dashboard", "direct")


@attrs.frozen
class Nuclio:
    """Where the CVAT under test expects its Nuclio dashboard, and how it invokes functions.

    ``host`` is the address the suite's ``cvat-aa serve`` binds; with the ``direct`` method
    each served function also gets a port of its own, the ports after ``port``.
    """

    host: str
    port: int
    method: str = "dashboard"

    @property
    def url(self) -> str:
        """The dashboard's URL as a CVAT on this machine reaches it."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


def nuclio_from_environment(
    environ: os._Environ | dict[str, str], *, free_if_unset: int = 0
) -> Nuclio | None:
    """The CVAT under test's Nuclio dashboard (``CVAT_AA_IT_NUCLIO_*``). Without a port: None,
    or with ``free_if_unset``, the first of that many consecutive ports free now (for a
    server the suite starts itself)."""
    method = environ.get("CVAT_AA_IT_NUCLIO_METHOD", "").strip() or "dashboard"
    if method not in NUCLIO_METHODS:
        raise ValueError(f"CVAT_AA_IT_NUCLIO_METHOD must be one of {', '.join(NUCLIO_METHODS)}")
    host = environ.get("CVAT_AA_IT_NUCLIO_HOST", "").strip() or "127.0.0.1"
    port = environ.get("CVAT_AA_IT_NUCLIO_PORT", "").strip()
    if not port:
        return Nuclio(host, free_ports(host, free_if_unset), method) if free_if_unset else None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("CVAT_AA_IT_NUCLIO_PORT must be a port number")
    return Nuclio(host, int(port), method)


def free_ports(host: str, count: int) -> int:
    """The first of ``count`` consecutive ports that are free on ``host`` now."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((host, 0))
            first = probe.getsockname()[1]
        if first + count > 65536:
            continue
        try:
            with ExitStack() as stack:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind((host, port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"found no {count} consecutive free ports on {host}")


@attrs.frozen
class Account:
    """Who the clients log in as: a user name with a password, or a personal access token."""

    username: str
    password: str | None = attrs.field(default=None, repr=False)
    token: str | None = attrs.field(default=None, repr=False)

    def login(self, client: Client) -> None:
        if self.token is not None:
            client.login(AccessTokenCredentials(self.token))
        else:
            client.login((self.username, self.password))

    def cli_auth(self) -> tuple[list[str], dict[str, str]]:
        """cvat-aa's arguments and environment for this account, with no secret in argv."""
        if self.token is not None:
            return [], {"CVAT_ACCESS_TOKEN": self.token}
        return ["--auth", self.username], {"PASS": self.password or ""}

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.token) if s]


@attrs.define
class Target:
    """A CVAT server under test: where it is, who logs in, and which organization is used.

    ``url`` is what the clients talk to (the recorder, when recording); ``direct_url`` is the
    server itself, for setup that is not part of any scenario (managing users).
    """

    url: str
    direct_url: str
    account: Account
    organization: str | None = None
    is_testserver: bool = False
    testserver: Any = None  # the running cvat_aa_testing.TestServer, for `testserver`
    nuclio: Nuclio | None = None
    """Where this CVAT expects its Nuclio dashboard; None: the serve scenarios are skipped."""
    nuclio_unavailable: str = NUCLIO_HOW_TO_RUN
    """Why ``nuclio`` is None: the serve scenarios' skip reason."""

    @property
    def host(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}"

    @property
    def port(self) -> int | None:
        return urllib.parse.urlsplit(self.url).port

    def cli_args(self, account: Account | None = None) -> tuple[list[str], dict[str, str]]:
        """``--server-host/--server-port/--auth`` (and ``--organization``) plus environment."""
        auth_args, env = (account or self.account).cli_auth()
        args = ["--server-host", self.host]
        if self.port is not None:
            args += ["--server-port", str(self.port)]
        args += auth_args
        if self.organization:
            args += ["--organization", self.organization]
        return args, env

    def client(
        self, cache_dir: Path, *, account: Account | None = None, direct: bool = False
    ) -> Client:
        """A logged-in cvat-sdk client with its own cache directory."""
        config = Config(status_check_period=0.2, cache_dir=cache_dir)
        client = Client(self.direct_url if direct else self.url, config=config)
        client.logger.setLevel("ERROR")  # cvat-sdk warns on every connection to older servers
        (account or self.account).login(client)
        if self.organization:
            client.organization_slug = self.organization
        return client


def target_from_environment(environ: os._Environ | dict[str, str]) -> tuple[str, Account] | None:
    """(URL or 'testserver', account) from the environment; None when no server is given."""
    url = environ.get(URL_VARIABLE, "").strip()
    if not url:
        return None
    if url != "testserver" and not url.startswith(("http://", "https://")):
        raise ValueError(f"{URL_VARIABLE} must start with http:// or https://, or be 'testserver'")
    account = Account(
        environ.get("CVAT_AA_IT_USER", "admin"),
        password=environ.get("CVAT_AA_IT_PASSWORD"),
        token=environ.get("CVAT_AA_IT_TOKEN"),
    )
    if url != "testserver" and account.password is None and account.token is None:
        raise ValueError("set CVAT_AA_IT_PASSWORD (or CVAT_AA_IT_TOKEN) for the server's user")
    return url, account


def is_admin(client: Client) -> bool:
    me = client.api_client.users_api.retrieve_self()[0]
    return bool(me.is_superuser) or "admin" in (me.groups or [])


class UserManager:
    """Registers throw-away users through CVAT's API (``/api/auth/register``) and deletes them.

    Registering needs no login (CVAT allows self-registration by default); changing a user's
    groups and deleting a user need an administrator. In an organization (``CVAT_AA_IT_ORG``)
    each user is invited into it as a worker.
    """

    def __init__(self, target: Target, admin: Client, prefix: str) -> None:
        self.target = target
        self.admin = admin
        self.prefix = prefix.replace("-", "")
        self.created: list[int] = []

    def register(self, role: str) -> tuple[Account, int]:
        username = f"{self.prefix}{role}"[:150]
        password = "It-" + secrets.token_urlsafe(16)
        anonymous = Client(self.target.direct_url, config=Config(cache_dir=Path("/nonexistent")))
        anonymous.logger.setLevel("ERROR")
        try:
            anonymous.api_client.auth_api.create_register(
                models.RegisterSerializerExRequest(
                    username=username,
                    email=f"{username}@example.com",
                    password1=password,
                    password2=password,
                    first_name="cvat-aa",
                    last_name="integration",
                )
            )
        finally:
            anonymous.close()
        # Outside any organization: in one, the list holds only its members.
        with self.admin.organization_context(""):
            users = self.admin.api_client.users_api.list(search=username)[0].results
        user_id = next(u.id for u in users if u.username == username)
        self.created.append(user_id)
        if self.target.organization:
            # A member with the least role: in the organization, but seeing only what is
            # assigned to them (CVAT accepts an invitation of a registered user at once).
            self.admin.api_client.invitations_api.create(
                models.InvitationWriteRequest(role="worker", email=f"{username}@example.com"),
                org=self.target.organization,
            )
        return Account(username, password=password), user_id

    def set_groups(self, user_id: int, groups: list[str]) -> None:
        self.admin.api_client.users_api.partial_update(
            user_id, patched_user_request=models.PatchedUserRequest(groups=groups)
        )

    def delete_all(self) -> None:
        for user_id in self.created:
            try:
                self.admin.api_client.users_api.destroy(user_id)
            except exceptions.NotFoundException:
                pass
        self.created.clear()


def testserver_has_lambda_manager() -> bool:
    from cvat_aa_testing import TestServer

    return "nuclio_url" in inspect.signature(TestServer).parameters


@contextmanager
def started_testserver(nuclio: Nuclio | None = None) -> Iterator[Any]:
    """cvat-aa's test server; with ``nuclio``, its lambda manager uses that dashboard."""
    from cvat_aa_testing import TestServer

    options = {}
    if nuclio is not None:
        options = {"nuclio_url": nuclio.url, "nuclio_invoke_method": nuclio.method}
    with TestServer(**options) as server:
        yield server
