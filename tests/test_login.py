"""Logging in: permanent connection errors fail at once with a hint, transient ones are
retried, and a run without credentials and without a terminal says what to give."""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import PIL.Image
import pytest
import urllib3.exceptions
from cvat_sdk.api_client.exceptions import ApiException

from cvat_aa.cli import login
from cvat_aa.driver.retry import RetryPolicy
from cvat_aa_testing import TestServer

FUNCTION = """
import cvat_aa
spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])
def detect(context, image):
    return [cvat_aa.rectangle(0, [0, 0, 2, 2])]
"""


def free_port() -> int:
    """A port on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    login.add_server_options(parser)
    return parser.parse_args(argv)


@attrs.define
class Attempts:
    """Logs in with a retry policy that records its waits instead of waiting."""

    waits: list[float] = attrs.field(factory=list)

    def log_in(self, *argv: str, policy: RetryPolicy = login.LOGIN_RETRY) -> object:
        return login.log_in(parse(*argv), retry=attrs.evolve(policy, sleep=self.waits.append))

    @property
    def count(self) -> int:
        return len(self.waits) + 1


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[int]:
    """An HTTPS server with a self-signed certificate (answering 404 to everything)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("CVAT_ACCESS_TOKEN", "PASS")
    }
    return subprocess.run(
        [sys.executable, "-m", "cvat_aa", *args],
        capture_output=True,
        text=True,
        env={**environment, **(env or {})},
        timeout=120,
        **kwargs,
    )


def annotate(task: int, function_file: Path, *server_args: str, **kwargs):
    return cli("annotate", str(task), "--function-file", str(function_file), *server_args, **kwargs)


@pytest.fixture
def task(cvat_server: TestServer) -> int:
    images = [PIL.Image.new("RGB", (20, 16))] * 2
    return cvat_server.create_task("login", images=images, labels=[{"name": "car"}])


@pytest.fixture
def function_file(tmp_path: Path) -> Path:
    path = tmp_path / "boxes.py"
    path.write_text(FUNCTION)
    return path


# --- permanent connection errors: one attempt ------------------------------------------------


@pytest.mark.parametrize("scheme", ["", "https://"])
def test_https_against_an_http_server_is_tried_once(cvat_server, scheme):
    attempts = Attempts()
    with pytest.raises(urllib3.exceptions.MaxRetryError) as info:
        attempts.log_in(
            "--server-host", f"{scheme}127.0.0.1", "--server-port", str(cvat_server.port),
            "--auth", "a:b",
        )  # fmt: skip
    assert isinstance(info.value.reason, urllib3.exceptions.SSLError)
    assert attempts.count == 1


def test_a_port_out_of_range_is_tried_once():
    attempts = Attempts()
    with pytest.raises(urllib3.exceptions.LocationValueError):
        attempts.log_in(
            "--server-host", "http://127.0.0.1", "--server-port", "99999", "--auth", "a:b"
        )
    assert attempts.count == 1


def test_an_unknown_host_name_is_tried_once():
    attempts = Attempts()
    with pytest.raises(urllib3.exceptions.MaxRetryError) as info:
        attempts.log_in("--server-host", "http://cvat.no-such-host.invalid", "--auth", "a:b")
    cause = info.value.reason.__cause__
    if isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_AGAIN:
        pytest.skip("this machine cannot reach a DNS server (a failure worth retrying)")
    assert isinstance(info.value.reason, urllib3.exceptions.NameResolutionError)
    assert attempts.count == 1


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_certificate_that_cannot_be_verified_is_tried_once_and_insecure_skips_the_check(
    tls_server,
):
    attempts = Attempts()
    server = ("--server-host", "https://127.0.0.1", "--server-port", str(tls_server))
    with pytest.raises(urllib3.exceptions.MaxRetryError) as info:
        attempts.log_in(*server, "--auth", "a:b")
    assert isinstance(info.value.reason.args[0], ssl.SSLCertVerificationError)
    assert attempts.count == 1
    with pytest.raises(ApiException) as answered:  # got through TLS to the server's 404
        Attempts().log_in(*server, "--auth", "a:b", "--insecure")
    assert answered.value.status == 404


# --- transient ones: retried ------------------------------------------------------------------


def test_a_refused_connection_is_tried_once_at_login_and_retried_once_connected():
    at_login = Attempts()
    with pytest.raises(urllib3.exceptions.MaxRetryError) as info:
        at_login.log_in(
            "--server-host", "http://127.0.0.1", "--server-port", str(free_port()), "--auth", "a:b"
        )
    assert at_login.count == login.LOGIN_RETRY.refused_attempts == 1
    refused, calls = info.value, []

    def connect() -> None:
        calls.append(refused)
        raise refused

    with pytest.raises(urllib3.exceptions.MaxRetryError):
        RetryPolicy(sleep=lambda seconds: None).call(connect, what="reading the task")
    assert len(calls) == RetryPolicy().attempts == 8


def test_a_server_that_is_busy_at_login_is_waited_for(cvat_server):
    cvat_server.faults.fail_next(2, status=503, method="POST", path="login")
    attempts = Attempts()
    with attempts.log_in(*cvat_server.cli_args()):
        pass
    assert attempts.count == 3


# --- what the CLI says ------------------------------------------------------------------------


def test_the_cli_says_to_use_http_for_a_plain_http_server_at_once(cvat_server, task, function_file):
    started = time.monotonic()
    result = annotate(
        task, function_file,
        "--server-host", "127.0.0.1", "--server-port", str(cvat_server.port), "--auth", "a:b",
    )  # fmt: skip
    assert time.monotonic() - started < 10
    assert result.returncode == 1, result.stderr
    assert f"cannot reach the CVAT server at https://127.0.0.1:{cvat_server.port}" in result.stderr
    assert "does not speak HTTPS" in result.stderr and "http://" in result.stderr
    assert "retry" not in result.stderr


def test_the_cli_says_to_pass_insecure_for_an_unverified_certificate(
    tls_server, task, function_file
):
    result = annotate(
        task, function_file,
        "--server-host", "https://127.0.0.1", "--server-port", str(tls_server), "--auth", "a:b",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "certificate cannot be verified" in result.stderr and "--insecure" in result.stderr
    assert "retry" not in result.stderr


def test_the_cli_calls_a_port_out_of_range_a_usage_error_without_showing_the_password(
    task, function_file
):
    result = annotate(
        task, function_file,
        "--server-host", "http://user:s3cret@127.0.0.1", "--server-port", "99999",
        "--auth", "admin:pa55word",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "check --server-host and --server-port" in result.stderr
    assert "s3cret" not in result.stderr and "pa55word" not in result.stderr


def test_the_cli_gives_up_on_a_refused_connection_within_seconds(task, function_file):
    started = time.monotonic()
    result = annotate(
        task, function_file,
        "--server-host", "http://127.0.0.1", "--server-port", str(free_port()), "--auth", "a:b",
    )  # fmt: skip
    assert time.monotonic() - started < 10
    assert result.returncode == 1, result.stderr
    assert "nothing accepts connections there" in result.stderr
    assert "retry" not in result.stderr and "Traceback" not in result.stderr


# --- no credentials, no terminal ------------------------------------------------------------


def without_terminal(*args: str, env: dict[str, str] | None = None):
    """Run the CLI as CI does: stdin is not a terminal, and there is no terminal to open."""
    return cli(*args, env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def test_no_credentials_and_no_terminal_says_what_to_give(
    cvat_server, task, function_file, tmp_path
):
    result = without_terminal(
        "annotate", str(task), "--function-file", str(function_file),
        "--server-host", cvat_server.host, "--server-port", str(cvat_server.port),
        env={"XDG_CONFIG_HOME": str(tmp_path / "no-profiles")},
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("cvat-aa: error: no credentials were given: give --auth USER:PASSWORD")
    for way in ("PASS", "CVAT_ACCESS_TOKEN", "--profile"):
        assert way in line
    assert len(cvat_server.request_log) == 0


def test_a_user_without_password_and_no_terminal_says_what_to_give(
    cvat_server, task, function_file
):
    result = without_terminal(
        "annotate", str(task), "--function-file", str(function_file),
        "--server-host", cvat_server.host, "--server-port", str(cvat_server.port),
        "--auth", cvat_server.username,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert f"no password for user '{cvat_server.username}'" in result.stderr
    assert "EOFError" not in result.stderr and "Password for" not in result.stderr


def test_the_password_of_auth_user_comes_from_pass(cvat_server, task, function_file):
    result = without_terminal(
        "annotate", str(task), "--function-file", str(function_file),
        "--server-host", cvat_server.host, "--server-port", str(cvat_server.port),
        "--auth", cvat_server.username,
        env={"PASS": cvat_server.password},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(cvat_server.annotations(task)["shapes"]) == 2


def test_auth_keeps_the_password_out_of_its_repr():
    auth = login.PasswordAuth.parse("admin:pa55word")
    assert (auth.user, auth.password) == ("admin", "pa55word")
    assert "pa55word" not in repr(parse("--auth", "admin:pa55word"))
