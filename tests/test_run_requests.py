"""When a run on a server makes its requests: independent ones overlap, so that a run waits for
the slowest of them rather than their sum, and none is sent before it is safe to."""

from __future__ import annotations

import threading
import time

import PIL.Image
import pytest
from cvat_sdk.api_client import exceptions, rest

import cvat_aa
from cvat_aa.driver.upload import AnnotationTarget
from cvat_aa.driver.retry import RetryPolicy
from cvat_aa_testing import TestServer

LATENCY_S = 0.3


class Boxes:
    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])

    def detect(self, context, image):
        return [cvat_aa.rectangle(0, [0, 0, 5, 5])]


@pytest.fixture
def task_id(cvat_server: TestServer) -> int:
    images = [PIL.Image.new("RGB", (40, 30), (10 * i, 80, 160)) for i in range(8)]
    return cvat_server.create_task(
        "eight frames", images=images, labels=[{"name": "car", "type": "rectangle"}], chunk_size=4
    )


@pytest.fixture
def timed_requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, float, float]]:
    """(method, URL with its query, start, end) of each request the client makes, as it makes them."""
    log: list[tuple[str, str, float, float]] = []
    lock = threading.Lock()
    request = rest.RESTClientObject.request

    def timed(self, method, url, *args, **kwargs):
        query = "&".join(f"{k}={v}" for k, v in kwargs.get("query_params") or ())
        started = time.monotonic()
        try:
            return request(self, method, url, *args, **kwargs)
        finally:
            with lock:
                log.append((method, f"{url}?{query}", started, time.monotonic()))

    monkeypatch.setattr(rest.RESTClientObject, "request", timed)
    return log


def _one(log, method: str, *parts: str) -> tuple[float, float]:
    found = [(s, e) for m, url, s, e in log if m == method and all(p in url for p in parts)]
    assert found, f"no {method} {parts} among {[(m, u) for m, u, *_ in log]}"
    return found[0]


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_the_permission_check_frame_list_and_labels_are_read_together(
    cvat_server, cvat_client, task_id, timed_requests
):
    cvat_server.faults.latency = LATENCY_S
    cvat_aa.annotate_task(cvat_client, task_id, Boxes())
    check = _one(timed_requests, "PATCH", f"/tasks/{task_id}/annotations", "action=create")
    meta = _one(timed_requests, "GET", f"/tasks/{task_id}/data/meta")
    labels = _one(timed_requests, "GET", "/labels")
    assert _overlap(check, meta) and _overlap(check, labels) and _overlap(meta, labels)


def test_the_baseline_is_read_while_the_first_frames_are_downloaded(
    cvat_server, cvat_client, task_id, timed_requests
):
    cvat_server.faults.latency = LATENCY_S
    cvat_aa.annotate_task(cvat_client, task_id, Boxes(), clear_existing=True)
    baseline = _one(timed_requests, "GET", f"/tasks/{task_id}/annotations")
    first_chunk = _one(timed_requests, "GET", f"/tasks/{task_id}/data", "type=chunk")
    assert _overlap(baseline, first_chunk)
    first_upload = [
        (s, e) for m, url, s, e in timed_requests if m == "PATCH" and "action=create" in url
    ][1]
    assert baseline[1] <= first_upload[0], "a piece was sent before the baseline was known"


def test_a_baseline_that_cannot_be_read_fails_the_run_before_any_upload(
    cvat_server, cvat_client, task_id
):
    cvat_server.set_annotations(
        task_id,
        {
            "tags": [],
            "tracks": [],
            "shapes": [
                {
                    "type": "rectangle",
                    "frame": 0,
                    "label_id": cvat_server.labels(task_id)[0]["id"],
                    "points": [1.0, 1.0, 9.0, 9.0],
                }
            ],
        },
    )
    before = cvat_server.annotations(task_id)["shapes"]
    cvat_server.faults.fail_next(50, status=500, method="GET", path=r"/annotations/?$")
    with pytest.raises(exceptions.ServiceException):
        cvat_aa.annotate_task(
            cvat_client,
            task_id,
            Boxes(),
            clear_existing=True,
            retry=RetryPolicy(attempts=2, base_delay=0.01),
        )
    assert cvat_server.annotations(task_id)["shapes"] == before
    assert not cvat_server.request_log.entries(method="PATCH", path=r"/annotations")[1:]


def _boxes_on_every_frame(server: TestServer, task_id: int) -> None:
    label = server.labels(task_id)[0]["id"]
    shapes = [
        {"type": "rectangle", "frame": f, "label_id": label, "points": [1.0, 1.0, 9.0, 9.0]}
        for f in range(8)
    ]
    server.set_annotations(task_id, {"tags": [], "tracks": [], "shapes": shapes})


def test_clear_existing_reads_the_old_annotations_while_the_last_piece_is_sent(
    cvat_server, cvat_client, task_id, timed_requests
):
    _boxes_on_every_frame(cvat_server, task_id)
    cvat_server.faults.latency = LATENCY_S
    cvat_aa.annotate_task(cvat_client, task_id, Boxes(), clear_existing=True)
    reads = [(s, e) for m, url, s, e in timed_requests if m == "GET" and "/annotations" in url]
    last_piece = [
        (s, e) for m, url, s, e in timed_requests if m == "PATCH" and "action=create" in url
    ][-1]
    removal = _one(timed_requests, "PATCH", "action=delete")
    assert len(reads) == 2 and _overlap(reads[1], last_piece)
    assert last_piece[1] <= removal[0], "old annotations were removed before every piece was in"
    assert [s["points"] for s in cvat_server.annotations(task_id)["shapes"]] == [[0, 0, 5, 5]] * 8


def test_a_clearing_read_that_fails_is_made_again_and_the_old_annotations_go(
    cvat_server, cvat_client, task_id
):
    _boxes_on_every_frame(cvat_server, task_id)
    # The baseline read passes; the read made for the clearing fails once.
    failing = threading.Event()
    original = AnnotationTarget.get_raw
    calls = []

    def get_raw(self):
        calls.append(None)
        if len(calls) == 2:
            failing.set()
            raise exceptions.ServiceException(status=503, reason="unavailable")
        return original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AnnotationTarget, "get_raw", get_raw)
        cvat_aa.annotate_task(cvat_client, task_id, Boxes(), clear_existing=True)
    assert failing.is_set() and len(calls) == 3
    assert [s["points"] for s in cvat_server.annotations(task_id)["shapes"]] == [[0, 0, 5, 5]] * 8
