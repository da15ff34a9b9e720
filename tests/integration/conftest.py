"""The integration suite's server, accounts, throw-away workspace, plugin and recorder.

Every test here is marked ``integration`` and skipped unless ``CVAT_AA_IT_URL`` names a
server (see target.py and docs/testing.md). The session:

1. connects to the server (or starts cvat-aa's test server for ``testserver``);
2. deletes what crashed earlier sessions left (names starting with ``cvat-aa-it-``);
3. with ``CVAT_AA_IT_RECORD=DIR``, puts the recording proxy between every client and the
   server, one recording per test;
4. installs the suite's functions as the plugins ``it_every_shape`` and ``it_frame_code`` in a
   temporary folder;
5. for the ``cvat-aa serve`` scenarios, runs ``cvat-aa serve`` where the server expects its
   Nuclio dashboard (``CVAT_AA_IT_NUCLIO_PORT``; for ``testserver``, a free port that the test
   server is started with), for the tests of one module at a time;
6. deletes everything it created (projects, tasks, users) at the end, whatever happened.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PLUGIN_NAME = "it_every_shape"
#: The plugins the suite installs: entry-point names and their modules.
PLUGINS = {PLUGIN_NAME: "cvat_aa_it_functions", "it_frame_code": "cvat_aa_it_frame_code"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from target import HOW_TO_RUN, target_from_environment

    # Tests of the suite's own tools (the recorder, the differential check) need no server.
    ours = [
        item
        for item in items
        if Path(str(item.fspath)).is_relative_to(HERE)
        and "it_session" in getattr(item, "fixturenames", ())
    ]
    for item in ours:
        item.add_marker(pytest.mark.integration)
    if target_from_environment(os.environ) is None:
        skip = pytest.mark.skip(reason=HOW_TO_RUN)
        for item in ours:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def it_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Everything the session sets up, torn down in reverse order even when tests fail."""
    from recorder import Recorder, RecordingProxy
    from serve_process import SERVED
    from target import (
        NUCLIO_HOW_TO_RUN,
        TESTSERVER_WITHOUT_NUCLIO,
        Target,
        is_admin,
        nuclio_from_environment,
        started_testserver,
        target_from_environment,
        testserver_has_lambda_manager,
    )
    from workspace import Workspace, delete_leftovers

    url, account = target_from_environment(os.environ)
    nuclio, nuclio_unavailable = nuclio_from_environment(os.environ), NUCLIO_HOW_TO_RUN
    with ExitStack() as stack:
        testserver = None
        if url == "testserver":
            if testserver_has_lambda_manager():
                # The dashboard's port and, for the direct method, one per function.
                nuclio = nuclio_from_environment(os.environ, free_if_unset=1 + len(SERVED))
            else:
                nuclio, nuclio_unavailable = None, TESTSERVER_WITHOUT_NUCLIO
            testserver = stack.enter_context(started_testserver(nuclio))
            url = testserver.url
            from target import Account

            account = Account(testserver.username, password=testserver.password)
            if os.environ.get("CVAT_AA_IT_ORG"):
                # A fresh test server has no organizations: make the one asked for.
                testserver.create_organization(os.environ["CVAT_AA_IT_ORG"])
        target = Target(
            url=url,
            direct_url=url,
            account=account,
            organization=os.environ.get("CVAT_AA_IT_ORG") or None,
            is_testserver=testserver is not None,
            testserver=testserver,
            nuclio=nuclio,
            nuclio_unavailable=nuclio_unavailable,
        )
        recorder = None
        record_dir = os.environ.get("CVAT_AA_IT_RECORD")
        if record_dir:
            recorder = Recorder(Path(record_dir), [url], account.secrets)
            recorder.add_name(account.username, "<user>")
            if nuclio is not None:
                recorder.add_name(nuclio.url, "<nuclio>")
            proxy = RecordingProxy(url, recorder).start()
            stack.callback(proxy.stop)
            recorder.server_urls.append(proxy.url)
            target.url = proxy.url

        direct = target.client(tmp_path_factory.mktemp("sdk-cache"), direct=True)
        stack.callback(direct.close)
        delete_leftovers(direct)
        client = target.client(tmp_path_factory.mktemp("sdk-cache"))
        stack.callback(client.close)
        workspace = Workspace(client, tmp_path_factory.mktemp("media"))
        stack.callback(workspace.delete_everything)
        if recorder is not None:
            recorder.add_name(workspace.prefix, "<prefix>-")
        yield {
            "target": target,
            "client": client,
            "direct": direct,
            "workspace": workspace,
            "recorder": recorder,
            "admin": is_admin(direct),
        }


@pytest.fixture(scope="session")
def target(it_session: dict):
    return it_session["target"]


@pytest.fixture(scope="session")
def workspace(it_session: dict):
    return it_session["workspace"]


@pytest.fixture(autouse=True)
def scenario(request: pytest.FixtureRequest) -> Iterator[None]:
    """With a recorder, each test's requests go to a recording of its own."""
    if "it_session" not in request.fixturenames:
        yield
        return
    recorder = request.getfixturevalue("it_session")["recorder"]
    if recorder is None:
        yield
        return
    recorder.start_scenario(f"{request.node.module.__name__}.{request.node.name}")
    try:
        yield
    finally:
        recorder.end_scenario()


@pytest.fixture
def client(target, tmp_path: Path, it_session: dict):
    """A cvat-sdk client of the first user, with a cache of its own (through the recorder)."""
    with target.client(tmp_path / "sdk-cache") as client:
        yield client


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that installs the suite's functions as the function plugins ``it_every_shape``
    (cvat_aa_it_functions) and ``it_frame_code`` (cvat_aa_it_frame_code)."""
    site = tmp_path_factory.mktemp("site")
    dist_info = site / "cvat_aa_it_every_shape-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: cvat-aa-it-every-shape\nVersion: 1.0\n"
        "Summary: Every annotation type, from the frame number (cvat-aa's integration suite).\n"
    )
    entry_points = "".join(f"{name} = {module}\n" for name, module in PLUGINS.items())
    (dist_info / "entry_points.txt").write_text(f"[cvat_aa.functions]\n{entry_points}")
    return site


def cli_environment(plugin_site: Path, folder: Path) -> dict[str, str]:
    """The environment of a cvat-aa command: the suite's plugins installed, and a cache and
    configuration of its own in ``folder``."""
    (folder / "cache").mkdir(parents=True, exist_ok=True)
    (folder / "config").mkdir(exist_ok=True)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(plugin_site), str(HERE)]),
        "CVAT_AA_LOAD_PLUGINS": ",".join(PLUGINS),
        "XDG_CACHE_HOME": str(folder / "cache"),
        "XDG_CONFIG_HOME": str(folder / "config"),
    }


@pytest.fixture
def installed_plugin(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``it_every_shape`` installed in this process too, for the Python API; its name."""
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.setenv("CVAT_AA_LOAD_PLUGINS", PLUGIN_NAME)
    return PLUGIN_NAME


@pytest.fixture
def cvat_aa_cli(
    target, plugin_site: Path, tmp_path: Path, it_session: dict
) -> Callable[..., subprocess.CompletedProcess]:
    """Runs ``cvat-aa ARGS...`` against the server as a user would, and returns the result.

    ``account`` logs in as another user; ``server=False`` leaves the server options out;
    ``background=True`` returns the running ``Popen`` instead.
    """

    def run(
        *args: str,
        account=None,
        server: bool = True,
        background: bool = False,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ):
        command = [sys.executable, "-m", "cvat_aa", *args]
        environment = {**cli_environment(plugin_site, tmp_path), **(env or {})}
        if server:
            server_args, secret_env = target.cli_args(account)
            command += server_args
            environment.update(secret_env)
        if background:
            return subprocess.Popen(
                command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        return subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=timeout, check=False
        )

    return run


@pytest.fixture(scope="module")
def served(target, plugin_site: Path, tmp_path_factory: pytest.TempPathFactory):
    """``cvat-aa serve`` of serve_process.SERVED where the server expects its Nuclio dashboard,
    for the tests of one module; skips them when the server has no lambda manager to test."""
    from serve_process import ServeProcess

    if target.nuclio is None:
        pytest.skip(target.nuclio_unavailable)
    folder = tmp_path_factory.mktemp("serve")
    process = ServeProcess(target.nuclio, cli_environment(plugin_site, folder), folder / "log")
    process.start()
    try:
        yield process
    finally:
        status = process.stop()
    assert status == 0, f"cvat-aa serve ended with {status} on SIGTERM:\n{process.output()}"


@pytest.fixture(scope="session")
def users(it_session: dict):
    """Registers throw-away users (deleted at the end of the session); needs an administrator."""
    from target import UserManager

    if not it_session["admin"]:
        pytest.skip("creating a second user needs an administrator: set CVAT_AA_IT_USER2 too")
    manager = UserManager(
        it_session["target"], it_session["direct"], it_session["workspace"].prefix
    )
    recorder = it_session["recorder"]
    try:
        yield manager, recorder
    finally:
        manager.delete_all()


@pytest.fixture(scope="session")
def second_account(request: pytest.FixtureRequest):
    """A user of the default 'user' role, who is given nothing of the first user's:
    ``CVAT_AA_IT_USER2``/``CVAT_AA_IT_PASSWORD2``, or one registered for the session."""
    from target import Account

    if os.environ.get("CVAT_AA_IT_USER2"):
        return Account(
            os.environ["CVAT_AA_IT_USER2"], password=os.environ.get("CVAT_AA_IT_PASSWORD2")
        )
    manager, recorder = request.getfixturevalue("users")
    account, _ = manager.register("stranger")
    if recorder is not None:
        recorder.add_name(account.username, "<user2>")
        recorder.add_secret(account.password)
    return account
