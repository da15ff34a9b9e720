"""Server and authentication options, and logging in, for commands that talk to CVAT.

The options are cvat-cli's own (cvat-sdk's ``configure_client_auth_arguments``), so that
``--server-host``, ``--auth``, ``--profile`` and ``CVAT_ACCESS_TOKEN`` mean what they mean
there. Two things differ, both for scripts and CI:

* A password is asked for only when standard input is a terminal. Without one, cvat-sdk
  would prompt anyway and fail on end of input; here a run that would need a prompt stops
  before connecting, with :class:`MissingCredentialsError` saying what to give instead.
* Logging in, the first contact with the server, gives a refused connection only the
  three quick tries (about three seconds) of cvat-sdk's HTTP client, since a wrong port
  refuses too; failures that cannot succeed later (a TLS failure, a host name that does not
  exist, a URL that does not parse) fail as soon. Once logged in, a refused connection means
  a server restart and gets the full retry. See ``driver.retry``.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from typing import Any

import attrs
from cvat_sdk.api_client import exceptions as api_exceptions
from cvat_sdk.core import Client
from cvat_sdk.core.auth import (
    CVAT_ACCESS_TOKEN_ENV_VAR,
    AuthStore,
    configure_client_auth_arguments,
    make_client_from_cli,
)
from cvat_sdk.core.client import PasswordCredentials

from .. import __version__
from ..driver.retry import RetryPolicy
from ..errors import MissingCredentialsError, NotFoundError

__all__ = ["MissingCredentialsError", "add_server_options", "log_in"]

PASSWORD_ENV_VAR = "PASS"
"""Where ``--auth USER`` takes the password from, as in cvat-cli."""

LOGIN_RETRY = RetryPolicy(refused_attempts=1)
"""Full retries for a server that is overloaded; none of cvat-aa's own for one that refuses
(cvat-sdk's HTTP client already tries three times, over about three seconds)."""

HOW_TO_AUTHENTICATE = (
    f"give --auth USER:PASSWORD, or --auth USER with the password in the {PASSWORD_ENV_VAR}"
    f" variable, or a personal access token in the {CVAT_ACCESS_TOKEN_ENV_VAR} variable, or"
    " --profile NAME (a profile saved with 'cvat-cli profile')"
)


def _can_prompt() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


@attrs.frozen
class PasswordAuth:
    """``--auth USER[:PASS]``: cvat-sdk's credentials factory, prompting only on a terminal."""

    user: str
    password: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> PasswordAuth:
        user, _, password = text.partition(":")
        return cls(user, password or os.environ.get(PASSWORD_ENV_VAR) or None)

    def check(self) -> None:
        """Raise MissingCredentialsError if the password would be asked for with no terminal."""
        if self.password is None and not _can_prompt():
            raise MissingCredentialsError(
                f"no password for user {self.user!r} and no terminal to ask for it on:"
                f" {HOW_TO_AUTHENTICATE}"
            )

    def __call__(self, url: str) -> PasswordCredentials:
        self.check()
        password = self.password
        if password is None:
            password = getpass.getpass(f"Password for {self.user} at {url}: ")
        return PasswordCredentials(self.user, password)


class _AuthOptionParser:
    """Passes cvat-sdk's options on to the parser, with ``--auth`` parsed by PasswordAuth."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._parser = parser

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        if "--auth" in names:
            kwargs["type"] = PasswordAuth.parse
            kwargs["help"] = (
                f"user and password; with USER alone, the password comes from the"
                f" {PASSWORD_ENV_VAR} variable or, on a terminal, a prompt. Without --auth,"
                f" a personal access token in {CVAT_ACCESS_TOKEN_ENV_VAR} or the default"
                " profile is used"
            )
        return self._parser.add_argument(*names, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """cvat-cli's server and authentication options."""
    configure_client_auth_arguments(_AuthOptionParser(parser))  # type: ignore[arg-type]


def _check_credentials(args: argparse.Namespace) -> None:
    """Raise MissingCredentialsError if logging in would prompt, and there is no terminal.

    Follows ``make_client_from_cli``: ``--profile``, ``--auth``, then the token variable,
    then (with no host given) the default profile, and last the OS user with a password.
    """
    if _can_prompt() or args.profile is not None:
        return
    if args.auth is not None:
        if isinstance(args.auth, PasswordAuth):
            args.auth.check()
        return
    if os.environ.get(CVAT_ACCESS_TOKEN_ENV_VAR) is not None:
        return
    if args.server_host is None and args.server_port is None:
        if AuthStore().get_default_profile() is not None:
            return
    if os.environ.get(PASSWORD_ENV_VAR):
        return  # cvat-sdk logs in as the OS user with it
    raise MissingCredentialsError(f"no credentials were given: {HOW_TO_AUTHENTICATE}")


def log_in(args: argparse.Namespace, *, retry: RetryPolicy = LOGIN_RETRY) -> Client:
    """A client logged in with the options ``add_server_options`` added."""
    _check_credentials(args)
    client = retry.call(
        lambda: make_client_from_cli(args, logger=logging.getLogger("cvat_aa.client")),
        what="logging in",
    )
    client.api_client.default_headers["User-Agent"] = (
        f"cvat_aa/{__version__} {client.api_client.default_headers['User-Agent']}"
    )
    if client.organization_slug:
        retry.call(lambda: check_organization(client), what="checking the organization")
    return client


def check_organization(client: Client) -> None:
    """Raise NotFoundError unless the client's organization exists and the user is in it.

    cvat-cli leaves this to the first request, which CVAT answers with a bare 404 (an unknown
    organization) or, for a task of an organization one is not in, a 403. Asked here, once,
    the answer can say which option is wrong. CVAT lists only the organizations the user
    belongs to (all of them to an admin).
    """
    slug = client.organization_slug
    try:
        page, _ = client.api_client.organizations_api.list(slug=slug)
    except api_exceptions.NotFoundException:
        page = None
    if page is None or not any(org.slug == slug for org in page.results):
        raise NotFoundError(
            f"there is no organization {slug!r} on this server that you are a member of:"
            " check --organization (it takes the organization's short name, its slug), or"
            " leave it out to work outside any organization"
        )
