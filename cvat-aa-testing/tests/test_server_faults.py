"""Fault injection and the request log, seen through the real cvat-sdk client."""

from __future__ import annotations

import time
from pathlib import Path

import cvat_sdk
import PIL.Image
import pytest
import urllib3
from cvat_aa_testing import TestServer
from cvat_sdk import models
from cvat_sdk.api_client import exceptions


def test_latency_is_added_to_every_request(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client
) -> None:
    cvat_server.faults.latency = 0.2
    started = time.monotonic()
    cvat_client.tasks.list()
    assert time.monotonic() - started >= 0.2
    cvat_server.faults.latency = 0
    started = time.monotonic()
    cvat_client.tasks.list()
    assert time.monotonic() - started < 0.2


def test_bandwidth_cap_slows_large_responses(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files)
    cvat_server.faults.bandwidth = 20_000
    started = time.monotonic()
    frame = cvat_client.tasks.retrieve(task_id).get_frame(0, quality="original").read()
    assert frame == image_files[0].read_bytes()
    expected = len(frame) / 20_000
    assert time.monotonic() - started >= expected * 0.9


def test_bandwidth_cap_slows_uploads(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, tmp_path: Path
) -> None:
    files = []
    for i in range(3):
        files.append(tmp_path / f"noise_{i}.png")
        PIL.Image.effect_noise((200, 200), 64).save(files[-1])
    cvat_server.faults.bandwidth = 1_000_000
    cvat_client.tasks.create_from_data(models.TaskWriteRequest(name="t"), files)
    (upload,) = [
        e for e in cvat_server.request_log.entries(method="POST", path="/data/$") if e.status == 200
    ]
    assert upload.bytes_in > 100_000
    assert upload.duration >= upload.bytes_in / 1_000_000


def test_failed_gets_are_retried_by_the_sdk(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files)
    cvat_server.faults.fail_next(1, status=503, method="GET", path=rf"^/api/tasks/{task_id}$")
    assert cvat_client.tasks.retrieve(task_id).id == task_id
    statuses = [e.status for e in cvat_server.request_log.entries(path=rf"^/api/tasks/{task_id}$")]
    assert statuses == [503, 200]


def test_failures_beyond_the_retries_reach_the_caller(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client
) -> None:
    cvat_server.faults.fail_next(4, status=502, method="GET")
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        cvat_client.tasks.list()


def test_failed_post_is_not_applied(cvat_server: TestServer, cvat_client: cvat_sdk.Client) -> None:
    cvat_server.faults.fail_next(1, status=500, method="POST", path="^/api/tasks$")
    with pytest.raises(exceptions.ServiceException):
        cvat_client.tasks.create(models.TaskWriteRequest(name="t"))
    assert cvat_server.task_ids() == []
    assert cvat_client.tasks.create(models.TaskWriteRequest(name="t")).name == "t"


def test_failures_only_hit_matching_requests(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files)
    cvat_server.faults.fail_next(1, status=504, method="PATCH")
    task = cvat_client.tasks.retrieve(task_id)
    task.get_meta()
    assert cvat_server.faults.pending() == 1
    with pytest.raises(exceptions.ServiceException):
        task.remove_frames_by_ids([0])
    assert cvat_server.faults.pending() == 0


def test_connection_closed_before_a_request_leaves_it_unapplied(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client
) -> None:
    cvat_server.faults.close_connection_next(1, when="before", method="POST", path="^/api/tasks$")
    with pytest.raises(urllib3.exceptions.HTTPError):
        cvat_client.tasks.create(models.TaskWriteRequest(name="t"))
    assert cvat_server.task_ids() == []
    (entry,) = cvat_server.request_log.entries(method="POST", path="^/api/tasks$")
    assert (entry.status, entry.fault) == (None, "close-before")


def test_connection_closed_after_a_request_loses_only_the_reply(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client
) -> None:
    cvat_server.faults.close_connection_next(1, when="after", method="POST", path="^/api/tasks$")
    with pytest.raises(urllib3.exceptions.HTTPError):
        cvat_client.tasks.create(models.TaskWriteRequest(name="t"))
    assert len(cvat_server.task_ids()) == 1


def test_closed_connections_on_gets_are_retried(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client
) -> None:
    cvat_server.faults.close_connection_next(2, method="GET", path="^/api/tasks$")
    assert cvat_client.tasks.list() == []
    assert [e.fault for e in cvat_server.request_log.entries(path="^/api/tasks$")] == [
        "close-before",
        "close-before",
        None,
    ]


def test_tus_upload_recovers_from_a_lost_reply(
    cvat_server: TestServer,
    cvat_client: cvat_sdk.Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cvat_sdk.core import uploading
    from server_test_data import make_images

    monkeypatch.setattr(uploading, "TUS_CHUNK_SIZE", 5_000)
    (file,) = make_images(tmp_path, 1, size=(100, 100), suffix=".bmp")
    task = cvat_client.tasks.create(models.TaskWriteRequest(name="t"))
    url = cvat_client.api_map.make_endpoint_url(
        task.api.create_data_endpoint.path, kwsub={"id": task.id}
    )
    cvat_server.faults.close_connection_next(
        1, when="after", method="PATCH", path="/data/[0-9a-f-]{36}$"
    )
    uploading.DataUploader(cvat_client, max_request_size=1000).upload_files(
        url, [file], image_quality=70
    )
    assert cvat_client.tasks.retrieve(task.id).size == 1
    assert "HEAD" in [e.method for e in cvat_server.request_log]


def test_request_log_records_method_path_status_and_sizes(
    cvat_server: TestServer, cvat_client: cvat_sdk.Client, image_files: list[Path]
) -> None:
    task_id = cvat_server.create_task("t", images=image_files)
    cvat_server.request_log.clear()
    frame = cvat_client.tasks.retrieve(task_id).get_frame(1, quality="original").read()
    entries = cvat_server.request_log.entries()
    assert [(e.method, e.path, e.status) for e in entries] == [
        ("GET", f"/api/tasks/{task_id}", 200),
        ("GET", f"/api/tasks/{task_id}/data/", 200),
    ]
    assert entries[1].query == "number=1&quality=original&type=frame"
    assert entries[1].bytes_out == len(frame)
    assert entries[0].bytes_in == 0


def test_request_log_holds_no_secrets(cvat_server: TestServer) -> None:
    with cvat_server.make_client() as client:
        client.tasks.list()
        secrets = [
            cvat_server.password,
            *(morsel.value for morsel in client.api_client.cookies.values()),
        ]
    token = cvat_server.create_access_token()
    with cvat_server.make_client(access_token=token) as client:
        client.tasks.list()
    logged = repr(cvat_server.request_log.entries())
    assert all(secret not in logged for secret in [*secrets, token])


def test_random_failures_hit_about_the_given_share_of_requests(cvat_server):
    import urllib3

    cvat_server.faults.fail_randomly(0.3, statuses=(503,), closes=(), seed=7)
    http = urllib3.PoolManager(retries=False)
    statuses = [
        http.request("GET", f"{cvat_server.url}/api/server/about").status for _ in range(200)
    ]
    failed = statuses.count(503)
    assert 30 <= failed <= 90
    assert cvat_server.faults.injected["fail-503"] == failed
    cvat_server.faults.fail_randomly(0)
    assert http.request("GET", f"{cvat_server.url}/api/server/about").status == 200


def test_the_bandwidth_cap_is_one_link_shared_by_concurrent_transfers(cvat_server, image_files):
    import threading
    import time

    import urllib3

    task = cvat_server.create_task(
        "link", images=image_files * 4, labels=[{"name": "a"}], chunk_size=1
    )
    http = urllib3.PoolManager(retries=False)
    headers = urllib3.make_headers(basic_auth=f"{cvat_server.username}:{cvat_server.password}")
    url = f"{cvat_server.url}/api/tasks/{task}/data/?type=chunk&quality=original&number="
    size = len(http.request("GET", url + "0", headers=headers).data)
    cvat_server.faults.bandwidth = size * 10  # one chunk takes 0.1 s

    def fetch(n):
        http.request("GET", url + str(n), headers=headers)

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Eight chunks through one link take about 0.8 s, not the 0.1 s of eight separate links.
    assert time.monotonic() - started >= 0.7
