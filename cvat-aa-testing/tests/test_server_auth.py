"""Connecting and authenticating with the real cvat-sdk client."""

from __future__ import annotations

import logging

import cvat_sdk
import pytest
import urllib3
from cvat_aa_testing import TestServer
from cvat_sdk.api_client import exceptions
from cvat_sdk.core.client import AccessTokenCredentials


def test_make_client_logs_in_with_a_password(cvat_server: TestServer) -> None:
    with cvat_sdk.make_client(
        cvat_server.host,
        port=cvat_server.port,
        credentials=(cvat_server.username, cvat_server.password),
    ) as client:
        assert client.users.retrieve_current_user().username == cvat_server.username


def test_server_version_is_one_the_sdk_supports(
    cvat_server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), cvat_sdk.Client(cvat_server.url) as client:
        client.check_server_version(fail_if_unsupported=True)
        assert str(client.get_server_version()).startswith("2.80")
    assert not caplog.records


def test_wrong_password_is_rejected_as_cvat_does(cvat_server: TestServer) -> None:
    with pytest.raises(exceptions.ApiException) as error:
        cvat_sdk.make_client(
            cvat_server.host, port=cvat_server.port, credentials=(cvat_server.username, "wrong")
        )
    assert error.value.status == 400
    assert "non_field_errors" in error.value.body


def test_requests_without_credentials_get_401(cvat_server: TestServer) -> None:
    with (
        cvat_sdk.Client(cvat_server.url) as client,
        pytest.raises(exceptions.UnauthorizedException) as error,
    ):
        client.tasks.list()
    assert "Authentication credentials were not provided." in error.value.body


def test_access_token_created_on_the_server_authenticates(cvat_server: TestServer) -> None:
    token = cvat_server.create_access_token()
    with cvat_sdk.make_client(
        cvat_server.host, port=cvat_server.port, access_token=token
    ) as client:
        assert client.users.retrieve_current_user().username == cvat_server.username
    assert not any(e.path == "/api/auth/login" for e in cvat_server.request_log)


def test_access_token_of_another_user_acts_as_that_user(cvat_server: TestServer) -> None:
    cvat_server.create_user("annotator", "secret-pass")
    token = cvat_server.create_access_token("annotator")
    with cvat_server.make_client(access_token=token) as client:
        assert client.users.retrieve_current_user().username == "annotator"


def test_unknown_access_token_gets_401_invalid_token(cvat_server: TestServer) -> None:
    with cvat_sdk.Client(cvat_server.url) as client:
        client.login(AccessTokenCredentials("not-a-token"))
        with pytest.raises(exceptions.UnauthorizedException) as error:
            client.tasks.list()
    assert "Invalid token." in error.value.body


def test_created_user_logs_in_with_its_password(cvat_server: TestServer) -> None:
    cvat_server.create_user("annotator", "secret-pass")
    with cvat_sdk.make_client(
        cvat_server.host, port=cvat_server.port, credentials=("annotator", "secret-pass")
    ) as client:
        assert client.users.retrieve_current_user().username == "annotator"


def test_logout_ends_the_session(cvat_server: TestServer) -> None:
    with cvat_server.make_client() as client:
        cookies = {name: morsel.value for name, morsel in client.api_client.cookies.items()}
        client.logout()
    response = urllib3.request(
        "GET",
        f"{cvat_server.url}/api/tasks",
        headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())},
    )
    assert response.status == 401


def test_session_writes_without_csrf_token_get_403(cvat_server: TestServer) -> None:
    with cvat_server.make_client() as client:
        cookie = "; ".join(
            f"{name}={morsel.value}" for name, morsel in client.api_client.cookies.items()
        )
        response = urllib3.request(
            "POST", f"{cvat_server.url}/api/tasks", json={"name": "t"}, headers={"Cookie": cookie}
        )
    assert response.status == 403
    assert response.json()["detail"].startswith("CSRF Failed")
    assert cvat_server.task_ids() == []


def test_cli_authenticates_with_cvat_access_token(cvat_server: TestServer, cvat_cli) -> None:
    token = cvat_server.create_access_token()
    result = cvat_cli("task", "ls", auth=False, env={"CVAT_ACCESS_TOKEN": token})
    assert result.returncode == 0
    assert not any(e.path == "/api/auth/login" for e in cvat_server.request_log)


def test_cli_reports_a_wrong_password_and_exits_1(cvat_server: TestServer, cvat_cli) -> None:
    result = cvat_cli(
        "--auth", f"{cvat_server.username}:wrong", "task", "ls", auth=False, check=False
    )
    assert result.returncode == 1
    assert "400" in result.stderr


def test_basic_authentication_is_accepted(cvat_server: TestServer) -> None:
    headers = urllib3.make_headers(basic_auth=f"{cvat_server.username}:{cvat_server.password}")
    assert urllib3.request("GET", f"{cvat_server.url}/api/tasks", headers=headers).status == 200
    headers = urllib3.make_headers(basic_auth=f"{cvat_server.username}:wrong")
    response = urllib3.request("GET", f"{cvat_server.url}/api/tasks", headers=headers)
    assert (response.status, response.json()) == (401, {"detail": "Invalid username/password."})
