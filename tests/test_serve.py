"""cvat-aa serve, driven the way CVAT 2.73's lambda manager drives a Nuclio dashboard.

The requests below are those of ``LambdaGateway`` in CVAT's ``lambda_manager/views.py``: the
listing and retrieval with its ``x-nuclio-*`` headers, dashboard invocations through
``/api/function_invocations`` with the function in ``x-nuclio-function-name``, and direct
invocations as a bare POST of the payload to the function's ``status.httpPort``. The
results are read the way its ``DetectionResultConverter`` reads them. (The whole-task flow
through a CVAT server is in test_serve_cvat.py and in the integration suite.)
"""

from __future__ import annotations

import base64
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import PIL.Image
import pytest
import serve_functions
import urllib3
from cvat_aa.serve import FunctionChoice, Gateway, ServedFunction
from cvat_aa.serve.nuclio import mask_bitmap
from cvat_sdk.masks import encode_mask

NUCLIO_HEADERS = {
    "x-nuclio-project-name": "cvat",
    "x-nuclio-function-namespace": "nuclio",
    "x-nuclio-invoke-via": "domain-name",
    "X-Nuclio-Invoke-Timeout": "120s",
}

http = urllib3.PoolManager(retries=False, timeout=60)


def frame(width: int = 64, height: int = 48, color: tuple[int, int, int] = (0, 128, 0)) -> str:
    """A frame as CVAT sends it: an encoded image in base64."""
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def served(function, function_id: str = "fn", **options) -> ServedFunction:
    return ServedFunction(FunctionChoice(source=function, id=function_id), **options)


def list_functions(gateway: Gateway) -> dict:
    reply = http.request("GET", gateway.url + "/api/functions", headers=NUCLIO_HEADERS)
    assert reply.status == 200
    return reply.json()


def invoke(
    gateway: Gateway, function_id: str, payload, *, headers=None
) -> urllib3.BaseHTTPResponse:
    """A dashboard invocation, as CVAT's ``_invoke_via_dashboard`` sends it."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return http.request(
        "POST",
        gateway.url + "/api/function_invocations",
        body=body,
        headers={
            **NUCLIO_HEADERS,
            "x-nuclio-function-name": function_id,
            "x-nuclio-path": "/",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )


@pytest.fixture
def every_kind():
    function = serve_functions.EveryKind()
    with Gateway([served(function, "every-kind")], port=0) as gateway:
        yield gateway


# --- listing ------------------------------------------------------------------------------------


def test_listing_gives_each_function_as_cvat_parses_it(every_kind: Gateway) -> None:
    listed = list_functions(every_kind)
    assert list(listed) == ["every-kind"]
    config = listed["every-kind"]
    # What LambdaFunction.__init__ reads.
    assert config["metadata"]["name"] == "every-kind"
    annotations = config["metadata"]["annotations"]
    assert annotations["type"] == "detector"
    assert annotations["name"] == "every-kind"
    assert config["spec"]["description"].startswith("A rectangle with attributes")
    assert config["status"]["httpPort"] == every_kind.direct_ports["every-kind"]
    labels = json.loads(annotations["spec"])
    assert [(label["name"], label["type"]) for label in labels] == [
        ("car", "rectangle"),
        ("lake", "polygon"),
        ("spot", "points"),
        ("blob", "mask"),
        ("animal", "skeleton"),
        ("night", "tag"),
    ]
    assert labels[0]["attributes"] == [
        {
            "id": 0,
            "name": "color",
            "input_type": "select",
            "values": ["red", "blue"],
            "default_value": "red",
        },
        {
            "id": 1,
            "name": "doors",
            "input_type": "number",
            "values": ["2", "5", "1"],
            "default_value": "2",
        },
    ]
    animal = labels[4]
    assert [(s["name"], s["type"]) for s in animal["sublabels"]] == [
        ("head", "points"),
        ("tail", "points"),
    ]
    assert animal["svg"] == serve_functions.SKELETON_SVG


def test_one_function_is_retrieved_by_its_id_and_an_unknown_one_is_404(
    every_kind: Gateway,
) -> None:
    reply = http.request(
        "GET", every_kind.url + "/api/functions/every-kind", headers=NUCLIO_HEADERS
    )
    assert reply.status == 200
    assert reply.json()["metadata"]["name"] == "every-kind"
    missing = http.request("GET", every_kind.url + "/api/functions/nope", headers=NUCLIO_HEADERS)
    assert missing.status == 404
    assert "nope" in missing.reason


def test_display_name_and_description_are_the_users_choice() -> None:
    function = ServedFunction(
        FunctionChoice(
            source=serve_functions.EveryKind(),
            id="ek.v2",
            display_name="Every kind (v2)",
            description="for the tests",
        )
    )
    with Gateway([function], port=0, direct=False) as gateway:
        config = list_functions(gateway)["ek.v2"]
    assert config["metadata"]["annotations"]["name"] == "Every kind (v2)"
    assert config["spec"]["description"] == "for the tests"
    assert "httpPort" not in config["status"]


def test_an_id_that_cvat_cannot_route_is_refused() -> None:
    with pytest.raises(ValueError, match="CVAT accepts only letters"):
        served(serve_functions.EveryKind(), "every kind")


def test_two_functions_with_one_id_are_refused() -> None:
    with pytest.raises(ValueError, match="two functions have the id 'same'"):
        Gateway(
            [
                served(serve_functions.EveryKind(), "same"),
                served(serve_functions.Raising(), "same"),
            ],
            port=0,
        )


# --- detection ----------------------------------------------------------------------------------


def test_a_detector_call_returns_every_kind_of_result_by_label_name(every_kind: Gateway) -> None:
    reply = invoke(every_kind, "every-kind", {"image": frame(64, 48)})
    assert reply.status == 200, reply.reason
    items = {item["label"]: item for item in reply.json()}
    assert items["car"] == {
        "label": "car",
        "type": "rectangle",
        "points": [1.0, 2.0, 63.0, 24.0],
        "confidence": "0.9",
        "attributes": [{"name": "color", "value": "blue"}, {"name": "doors", "value": "4"}],
    }
    assert items["lake"]["type"] == "polygon"
    assert items["spot"]["points"] == [5, 6, 7, 8]
    animal = items["animal"]
    assert animal["type"] == "skeleton"
    assert "points" not in animal
    assert animal["elements"] == [
        {"label": "head", "type": "points", "points": [10, 12], "outside": False, "attributes": []},
        {"label": "tail", "type": "points", "points": [30, 32], "outside": True, "attributes": []},
    ]
    assert items["night"] == {"label": "night", "type": "tag", "attributes": []}


def test_a_mask_comes_as_the_bitmap_of_its_box_and_an_outline_for_conversion(
    every_kind: Gateway,
) -> None:
    reply = invoke(every_kind, "every-kind", {"image": frame(64, 48)})
    blob = next(item for item in reply.json() if item["label"] == "blob")
    assert blob["type"] == "mask"
    *bitmap, x1, y1, x2, y2 = blob["mask"]
    # What serverless functions' to_cvat_mask gives: the box's pixels row by row, inclusive box.
    expected = np.zeros((48, 64), dtype=np.uint8)
    expected[10:20, 30:45] = 1
    assert (x1, y1, x2, y2) == (30, 10, 44, 19)
    assert bitmap == expected[y1 : y2 + 1, x1 : x2 + 1].ravel().tolist()
    # CVAT uses "points" instead when the user asks for polygons: the mask's outline.
    xs, ys = blob["points"][0::2], blob["points"][1::2]
    assert len(xs) >= 3
    assert min(xs) >= 29 and max(xs) <= 45 and min(ys) >= 9 and max(ys) <= 20


def test_mask_bitmap_reverses_cvat_sdks_encoding() -> None:
    rng = np.random.default_rng(0)
    bitmap = rng.random((30, 40)) > 0.5
    encoded = encode_mask(bitmap, [3, 4, 33, 25])
    *flat, x1, y1, x2, y2 = mask_bitmap(encoded)
    assert (x1, y1, x2, y2) == (3, 4, 32, 24)
    assert flat == bitmap[4:25, 3:33].astype(int).ravel().tolist()


def test_the_threshold_cvat_sends_reaches_the_function(every_kind: Gateway) -> None:
    reply = invoke(every_kind, "every-kind", {"image": frame(), "threshold": 0.65})
    assert sorted(item["label"] for item in reply.json()) == ["blob", "car", "night", "spot"]


def test_a_direct_call_is_a_bare_post_to_the_functions_port(every_kind: Gateway) -> None:
    port = list_functions(every_kind)["every-kind"]["status"]["httpPort"]
    # CVAT's _invoke_directly: the payload, no Nuclio headers.
    reply = http.request(
        "POST",
        f"http://127.0.0.1:{port}",
        body=json.dumps({"image": frame(), "threshold": 0.65}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 200
    via_dashboard = invoke(every_kind, "every-kind", {"image": frame(), "threshold": 0.65})
    assert reply.json() == via_dashboard.json()


def test_shapes_are_fitted_into_the_frame_as_in_every_run(every_kind: Gateway) -> None:
    # The polygon reaches x=20: on a 16-pixel-wide frame it is clipped there.
    reply = invoke(every_kind, "every-kind", {"image": frame(16, 48)})
    lake = next(item for item in reply.json() if item["label"] == "lake")
    assert max(lake["points"][0::2]) <= 16


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", 'no "image"'),
        (json.dumps({"image": "%%%"}).encode(), "not valid base64"),
        (json.dumps({"image": base64.b64encode(b"text").decode()}).encode(), "not an image"),
        (json.dumps({"image": frame(), "threshold": 2}).encode(), '"threshold" must be'),
        (json.dumps({"image": frame(), "threshold": "high"}).encode(), '"threshold" must be'),
    ],
)
def test_a_malformed_call_is_refused_with_400_and_a_reason(
    every_kind: Gateway, body: bytes, message: str
) -> None:
    reply = invoke(every_kind, "every-kind", body)
    assert reply.status == 400
    assert message in reply.reason
    assert message in reply.json()["error"]


def test_a_call_for_no_function_or_an_unknown_one_is_refused(every_kind: Gateway) -> None:
    no_name = http.request(
        "POST",
        every_kind.url + "/api/function_invocations",
        body=json.dumps({"image": frame()}).encode(),
        headers=NUCLIO_HEADERS,
    )
    assert no_name.status == 400
    assert "x-nuclio-function-name" in no_name.reason
    assert invoke(every_kind, "missing", {"image": frame()}).status == 404
    # The connection stays usable after a refused call (its body was read).
    assert invoke(every_kind, "every-kind", {"image": frame()}).status == 200


# --- failures -----------------------------------------------------------------------------------


def test_a_function_that_raises_gives_cvat_a_500_whose_reason_says_why() -> None:
    with Gateway([served(serve_functions.Raising(), "raising")], port=0) as gateway:
        reply = invoke(gateway, "raising", {"image": frame(color=(255, 0, 0))})
        assert reply.status == 500
        # CVAT's requests.HTTPError shows the status and this reason phrase, not the body.
        assert reply.reason == (
            "cvat-aa: function 'raising' failed: ValueError: the model cannot take red frames"
        )
        assert invoke(gateway, "raising", {"image": frame()}).status == 200


def test_invalid_output_is_refused_with_the_drivers_message() -> None:
    with Gateway([served(serve_functions.Invalid(), "invalid")], port=0) as gateway:
        reply = invoke(gateway, "invalid", {"image": frame()})
    assert reply.status == 500
    assert reply.reason.startswith("cvat-aa: function 'invalid' is broken:")
    assert "rectangle shape with 3 coordinates" in reply.reason


def test_one_failing_frame_in_a_batch_fails_only_its_own_call() -> None:
    function = serve_functions.Raising()
    with Gateway([served(function, "raising", batch_size=8, batch_wait=0.5)], port=0) as gateway:
        colors = [(0, 0, 255), (255, 0, 0), (0, 255, 0)]
        with ThreadPoolExecutor(3) as pool:
            replies = list(
                pool.map(lambda c: invoke(gateway, "raising", {"image": frame(color=c)}), colors)
            )
        metrics = gateway.metrics.as_dict()["raising"]
    assert [r.status for r in replies] == [200, 500, 200]
    assert metrics["errors"] == {"function_failed": 1}


# --- concurrency --------------------------------------------------------------------------------


class Gate:
    """A function that waits for ``release`` before answering; ``entered`` is set on entry."""

    spec = serve_functions.Raising.spec

    def __init__(self, release: threading.Event | None = None) -> None:
        self.release = release or threading.Event()
        self.entered = threading.Event()

    def detect(self, context, image):
        self.entered.set()
        assert self.release.wait(30), "never released"
        return []


def wait_for_queued(function: ServedFunction, frames: int) -> None:
    for _ in range(1000):
        if function.queued >= frames:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{frames} frames never got queued")


def test_calls_queued_while_the_model_works_go_in_one_batch() -> None:
    function = serve_functions.Batching(delay=0.5)
    with Gateway([served(function, "batching", batch_size=4)], port=0) as gateway:
        with ThreadPoolExecutor(6) as pool:
            replies = list(
                pool.map(lambda _: invoke(gateway, "batching", {"image": frame()}), range(6))
            )
        metrics = gateway.metrics.as_dict()["batching"]
    assert all(r.status == 200 for r in replies)
    assert all(len(r.json()) == 1 for r in replies)
    assert sum(function.batches) == 6
    assert max(function.batches) > 1
    assert metrics["batches"] == len(function.batches)
    assert metrics["requests"] == 6


def test_different_functions_run_at_the_same_time() -> None:
    # The first function answers only once the second has been called: if calls to
    # different functions were run one after another, the first would never return.
    second = Gate()
    first = Gate(release=second.entered)
    second.release.set()
    with (
        Gateway([served(first, "first"), served(second, "second")], port=0) as gateway,
        ThreadPoolExecutor(2) as pool,
    ):
        one = pool.submit(invoke, gateway, "first", {"image": frame()})
        assert first.entered.wait(10)
        two = pool.submit(invoke, gateway, "second", {"image": frame()})
        assert two.result(30).status == 200
        assert one.result(30).status == 200


def test_listing_answers_while_a_model_works() -> None:
    gate = Gate()
    with Gateway([served(gate, "gate")], port=0) as gateway, ThreadPoolExecutor(1) as pool:
        call = pool.submit(invoke, gateway, "gate", {"image": frame()})
        assert gate.entered.wait(10)
        assert list(list_functions(gateway)) == ["gate"]
        assert http.request("GET", gateway.url + "/metrics").status == 200
        gate.release.set()
        assert call.result(30).status == 200


def test_a_full_queue_answers_503_so_that_the_caller_retries() -> None:
    gate = Gate()
    with (
        Gateway([served(gate, "gate", max_queue=1)], port=0) as gateway,
        ThreadPoolExecutor(2) as pool,
    ):
        running = pool.submit(invoke, gateway, "gate", {"image": frame()})
        assert gate.entered.wait(10)
        queued = pool.submit(invoke, gateway, "gate", {"image": frame()})
        wait_for_queued(gateway.functions["gate"], 1)
        refused = invoke(gateway, "gate", {"image": frame()})
        gate.release.set()
        assert running.result(30).status == 200
        assert queued.result(30).status == 200
    assert refused.status == 503
    assert "try again later" in refused.reason


# --- token, metrics, log ------------------------------------------------------------------------


def test_with_a_token_only_callers_that_present_it_are_served() -> None:
    function = served(serve_functions.EveryKind(), "every-kind")
    with Gateway([function], port=0, direct=False, token="s3cret-token") as gateway:
        assert http.request("GET", gateway.url + "/api/functions").status == 401
        refused = invoke(
            gateway,
            "every-kind",
            {"image": frame()},
            headers={"x-nuclio-function-namespace": "nuclio"},
        )
        assert refused.status == 401
        assert "CVAT_NUCLIO_FUNCTION_NAMESPACE" in refused.reason
        assert "s3cret" not in refused.reason and b"s3cret" not in refused.data
        # CVAT sends CVAT_NUCLIO_FUNCTION_NAMESPACE in this header on every call.
        with_namespace = {"x-nuclio-function-namespace": "s3cret-token"}
        assert (
            invoke(gateway, "every-kind", {"image": frame()}, headers=with_namespace).status == 200
        )
        bearer = {"Authorization": "Bearer s3cret-token", "x-nuclio-function-namespace": ""}
        assert invoke(gateway, "every-kind", {"image": frame()}, headers=bearer).status == 200
        assert http.request("GET", gateway.url + "/healthz").status == 200


def test_a_token_rules_out_direct_ports_which_carry_none() -> None:
    with pytest.raises(ValueError, match="direct calls carry no token"):
        Gateway([served(serve_functions.EveryKind())], port=0, token="t")


def test_metrics_count_requests_errors_and_batches(every_kind: Gateway) -> None:
    invoke(every_kind, "every-kind", {"image": frame()})
    invoke(every_kind, "every-kind", {"image": "%%%"})
    as_json = http.request("GET", every_kind.url + "/api/metrics").json()["every-kind"]
    assert as_json["requests"] == 2
    assert as_json["errors"] == {"bad_request": 1}
    assert as_json["batches"] == 1
    assert as_json["latency_s"]["max"] >= 0
    text = http.request("GET", every_kind.url + "/metrics").data.decode()
    assert 'cvat_aa_requests_total{function="every-kind"} 2' in text
    assert 'cvat_aa_request_errors_total{function="every-kind",kind="bad_request"} 1' in text
    assert 'cvat_aa_batched_frames_total{function="every-kind"} 1' in text


def test_every_call_is_logged_with_function_frame_size_status_and_time(
    every_kind: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="cvat_aa.serve")
    invoke(every_kind, "every-kind", {"image": frame(64, 48)})
    invoke(every_kind, "every-kind", {"image": "%%%"})
    lines = [r.getMessage() for r in caplog.records if r.name == "cvat_aa.serve.gateway"]
    assert lines[0].startswith("every-kind frame=64x48 status=200 ")
    assert lines[1].startswith("every-kind frame=- status=400 ")
    assert lines[1].endswith("(bad_request)")


def test_stopping_fails_what_is_queued_and_finishes_what_runs() -> None:
    gate = Gate()
    gateway = Gateway([served(gate, "gate")], port=0).start()
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(invoke, gateway, "gate", {"image": frame()})
        assert gate.entered.wait(10)
        queued = pool.submit(invoke, gateway, "gate", {"image": frame()})
        wait_for_queued(gateway.functions["gate"], 1)
        stopper = threading.Thread(target=gateway.stop)
        stopper.start()
        reply = queued.result(30)
        assert reply.status == 503
        assert "stopping" in reply.reason
        gate.release.set()
        assert running.result(30).status == 200
        stopper.join(30)
    assert not stopper.is_alive()
