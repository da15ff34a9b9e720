"""pytest fixtures for cvat-aa and its plugin authors, registered through ``pytest11``.

Installing cvat-aa-testing makes these fixtures available in every test suite:

``cvat_server``
    A fresh :class:`~cvat_aa_testing.TestServer` per test, with its data under ``tmp_path``.
    Mark a test ``@pytest.mark.cvat_server(version="2.73.0")`` to have the server claim that
    CVAT version (cvat-sdk then warns as it does with a real server of that version). The
    marker also takes the server's Nuclio options (``nuclio_url``, ``nuclio_invoke_method``,
    ``nuclio_namespace``, ``nuclio_timeout``), for its lambda manager (``/api/lambda/``), and
    ``agent_lease_seconds`` and ``agent_interactive_timeout`` for its native functions' queues
    (``/api/functions/``, see :mod:`cvat_aa_testing.native_functions`).
    It also points ``XDG_CACHE_HOME``, ``XDG_CONFIG_HOME`` and ``XDG_STATE_HOME`` at temporary
    directories, so cvat-cli and cvat-aa subprocesses neither read the user's saved profiles
    nor write to their cache or run journals.
``cvat_nuclio_url``
    The Nuclio dashboard ``cvat_server`` uses, unless its marker names one: None (the lambda
    endpoints then answer 503, as CVAT without Nuclio). Override it in a ``conftest.py`` to
    point the server at a gateway a fixture starts::

        @pytest.fixture
        def cvat_nuclio_url(my_gateway):
            return my_gateway.url
``cvat_cache_dir``
    A temporary directory for cvat-sdk's cache (``Config.cache_dir``).
``cvat_client``
    A ``cvat_sdk.Client`` logged in to ``cvat_server`` as its superuser, caching in
    ``cvat_cache_dir``.
``cvat_cli``
    A function running ``cvat-cli`` against ``cvat_server``: ``cvat_cli("task", "ls")``
    returns the ``subprocess.CompletedProcess`` (text output; ``check=True`` by default).
``cvat_demo_task``
    The id of a task on ``cvat_server`` with the demo photos (a person, a cat, a coffee cup,
    a rocket...) and the labels person, face, cat, dog, car and cup.

cvat-sdk picks its default cache directory when it is imported, so the environment variables
above do not reach clients made in the test process: use ``cvat_client``, or
``cvat_server.make_client(cache_dir=cvat_cache_dir)``, or pass
``cvat_sdk.Config(cache_dir=...)`` yourself.

Example::

    def test_my_function_finds_the_cat(cvat_client, cvat_demo_task):
        cvat_sdk.auto_annotation.annotate_task(cvat_client, cvat_demo_task, my_function)
        ...
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .sandbox import seed_demo
from .server import TestServer

if TYPE_CHECKING:
    import cvat_sdk

CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cvat_server(version=..., nuclio_url=..., nuclio_invoke_method=..., nuclio_namespace=...,"
        " nuclio_timeout=..., agent_lease_seconds=..., agent_interactive_timeout=...): the CVAT"
        " version the cvat_server fixture's server claims, the Nuclio its lambda manager uses,"
        " and the leases and waits of its native functions' queues",
    )


_MARKER_OPTIONS = (
    "version",
    "nuclio_url",
    "nuclio_invoke_method",
    "nuclio_namespace",
    "nuclio_timeout",
    "agent_lease_seconds",
    "agent_interactive_timeout",
)


@pytest.fixture
def cvat_nuclio_url() -> str | None:
    """The Nuclio dashboard of ``cvat_server``: none unless overridden."""
    return None


@pytest.fixture
def cvat_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    cvat_nuclio_url: str | None,
) -> Iterator[TestServer]:
    """A running test server of its own for one test."""
    marker = request.node.get_closest_marker("cvat_server")
    options = dict(marker.kwargs) if marker else {}
    unknown = set(options) - set(_MARKER_OPTIONS)
    if unknown or (marker and marker.args):
        raise pytest.UsageError(
            f"@pytest.mark.cvat_server takes only {', '.join(_MARKER_OPTIONS)} as keywords,"
            f" not {sorted(unknown) or marker.args}"
        )
    options.setdefault("nuclio_url", cvat_nuclio_url)
    home = tmp_path_factory.mktemp("cvat-home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    with TestServer(data_dir=tmp_path_factory.mktemp("cvat-server"), **options) as server:
        yield server


@pytest.fixture
def cvat_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary cvat-sdk cache directory."""
    return tmp_path_factory.mktemp("cvat-sdk-cache")


@pytest.fixture
def cvat_client(cvat_server: TestServer, cvat_cache_dir: Path) -> Iterator[cvat_sdk.Client]:
    """A cvat-sdk client logged in to ``cvat_server``."""
    with cvat_server.make_client(cache_dir=cvat_cache_dir) as client:
        yield client


@pytest.fixture
def cvat_cli(cvat_server: TestServer) -> CliRunner:
    """Runs cvat-cli against ``cvat_server`` with the superuser's credentials."""

    def run(
        *args: str,
        check: bool = True,
        auth: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        connection = cvat_server.cli_args() if auth else cvat_server.cli_args()[:4]
        return subprocess.run(
            [sys.executable, "-m", "cvat_cli", *connection, *args],
            capture_output=True,
            text=True,
            check=check,
            env={**os.environ, **(env or {})},
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    return run


@pytest.fixture
def cvat_demo_task(cvat_server: TestServer) -> int:
    """The id of the demo task (see ``cvat_aa_testing.sandbox``) on ``cvat_server``."""
    return seed_demo(cvat_server)
