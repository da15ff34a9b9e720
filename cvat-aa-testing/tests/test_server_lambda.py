"""The test server's lambda manager, against a fake Nuclio: what CVAT 2.73's does, step by step.

Each expectation comes from CVAT 2.73's ``cvat/apps/lambda_manager`` (views, serializers,
permissions and Rego rules): the requests Nuclio receives (paths, headers, payloads), the
answers' shapes, statuses and messages, and what a request leaves in the task.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import PIL.Image
import pytest
import urllib3
from cvat_aa_testing import TestServer, serve_sandbox
from cvat_sdk.api_client import models
from server_test_data import api_request

PASSWORD = "Pass-word-123x"

# The function's labels, as a Nuclio function.yaml's "spec" annotation has them.
DETECTOR_SPEC = [
    {
        "name": "car",
        "type": "rectangle",
        "attributes": [
            {"name": "color", "input_type": "select", "values": ["red", "blue"]},
            {"name": "speed", "input_type": "number", "values": ["0", "200", "1"]},
            {"name": "parked", "input_type": "checkbox", "values": ["true", "false"]},
        ],
    },
    {"name": "sky", "type": "mask"},
    {
        "name": "person",
        "type": "skeleton",
        "svg": '<circle r="1" cx="1" cy="1" data-label-name="head"></circle>',
        "sublabels": [
            {"name": "head", "type": "points"},
            {"name": "hand", "type": "points"},
            {"name": "foot", "type": "points"},
        ],
    },
    {"name": "outdoor", "type": "tag"},
    {"name": "zebra", "type": "rectangle"},
]


def attribute(name: str, input_type: str, values: list[str], default: str) -> dict[str, Any]:
    return {
        "name": name,
        "input_type": input_type,
        "mutable": False,
        "values": values,
        "default_value": default,
    }


# Sublabel types and default values given, as the UI gives them: CVAT 2.73 makes a sublabel
# without a type "any" (which a detector's missing skeleton element then cannot have).
TASK_LABELS = [
    {
        "name": "car",
        "type": "rectangle",
        "attributes": [
            attribute("color", "select", ["red", "blue"], "red"),
            attribute("speed", "number", ["0", "200", "5"], "0"),
            attribute("parked", "checkbox", ["false"], "false"),
            attribute("plate", "text", [""], ""),
        ],
    },
    {"name": "sky", "type": "polygon"},
    {
        "name": "person",
        "type": "skeleton",
        "sublabels": [
            {"name": "head", "type": "points"},
            {"name": "hand", "type": "points"},
            {"name": "foot", "type": "points"},
        ],
        "svg": '<line x1="1" y1="1" x2="2" y2="2" data-node-from="1" data-node-to="2"></line>',
    },
    {"name": "outdoor", "type": "tag"},
]


# A fake Nuclio: the dashboard's API, and one port per function for direct invocation.


@attrs.frozen
class Received:
    """A request the fake Nuclio received: ``via`` "dashboard" or the function's name."""

    via: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@attrs.frozen
class Reply:
    """A function's answer other than 200: a status with its reason phrase."""

    status: int
    reason: str
    body: Any = None


Handler = Callable[[dict[str, Any]], Any]


class FakeNuclio:
    """Serves ``GET /api/functions``, ``GET /api/functions/{name}``, ``POST
    /api/function_invocations`` and, per function, ``POST /`` on a port of its own (its
    ``status.httpPort``); records every request."""

    def __init__(self) -> None:
        self.functions: dict[str, dict[str, Any]] = {}
        self.handlers: dict[str, Handler] = {}
        self.received: list[Received] = []
        self._servers: list[ThreadingHTTPServer] = []
        self.dashboard = self._serve(None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard.server_address[1]}"

    def _serve(self, function: str | None) -> ThreadingHTTPServer:
        nuclio = self

        class RequestHandler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                nuclio._answer(self, function)

            def do_POST(self) -> None:
                nuclio._answer(self, function)

        server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        server.daemon_threads = True
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        self._servers.append(server)
        return server

    def add(
        self,
        name: str,
        handler: Handler | None = None,
        *,
        kind: str = "detector",
        spec: list[dict[str, Any]] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        """A function as ``nuctl``/the dashboard describes it, answering with ``handler``."""
        port = self._serve(name).server_address[1]
        self.functions[name] = {
            "metadata": {
                "name": name,
                "namespace": "nuclio",
                "annotations": {
                    "name": f"{name} (display)",
                    "type": kind,
                    "spec": json.dumps(spec or []),
                    **(annotations or {}),
                },
            },
            "spec": {"description": f"{name}, a fake function"},
            "status": {"state": "ready", "httpPort": port},
        }
        self.handlers[name] = handler or (lambda payload: [])

    def invocations(self, name: str) -> list[Received]:
        return [
            r
            for r in self.received
            if r.via == name or r.headers.get("x-nuclio-function-name") == name
        ]

    def _answer(self, handler: BaseHTTPRequestHandler, function: str | None) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.received.append(
            Received(
                function or "dashboard",
                handler.command,
                handler.path,
                {key.lower(): value for key, value in handler.headers.items()},
                body,
            )
        )
        if function is not None:
            answer = self.handlers[function](body)
        elif handler.command == "GET" and handler.path == "/api/functions":
            answer = self.functions
        elif handler.command == "GET" and handler.path.startswith("/api/functions/"):
            name = handler.path.removeprefix("/api/functions/")
            answer = self.functions.get(name, Reply(404, "Not Found", {"error": "not found"}))
        elif handler.command == "POST" and handler.path == "/api/function_invocations":
            answer = self.handlers[handler.headers["x-nuclio-function-name"]](body)
        else:
            answer = Reply(404, "Not Found")
        reply = answer if isinstance(answer, Reply) else Reply(200, "OK", answer)
        data = json.dumps(reply.body).encode()
        handler.send_response(reply.status, reply.reason)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def nuclio() -> Iterator[FakeNuclio]:
    fake = FakeNuclio()
    yield fake
    fake.close()


@pytest.fixture
def cvat_nuclio_url(nuclio: FakeNuclio) -> str:
    """Every cvat_server here uses the fake Nuclio (the plugin's fixture, overridden)."""
    return nuclio.url


# Tasks and helpers


def small_images(count: int, size: tuple[int, int] = (64, 48)) -> list[PIL.Image.Image]:
    return [PIL.Image.new("RGB", size, (i * 37 % 256, i * 11 % 256, 90)) for i in range(count)]


@pytest.fixture
def task_id(cvat_server: TestServer) -> int:
    """Five frames in jobs of two (0-1, 2-3, 4), frame 3 deleted."""
    return cvat_server.create_task(
        "lambda", images=small_images(5), labels=TASK_LABELS, segment_size=2, deleted_frames=[3]
    )


def ids(server: TestServer, task_id: int) -> dict[str, int]:
    """Label, sublabel and attribute ids by name ("car", "car.color", "person.head")."""
    found = {}
    for label in server.labels(task_id):
        found[label["name"]] = label["id"]
        for attr in label["attributes"]:
            found[f"{label['name']}.{attr['name']}"] = attr["id"]
        for sub in label["sublabels"]:
            found[f"{label['name']}.{sub['name']}"] = sub["id"]
    return found


def original_frame(server: TestServer, task_id: int, frame: int) -> bytes:
    return urllib3.request(
        "GET",
        f"{server.url}/api/tasks/{task_id}/data?type=frame&quality=original&number={frame}",
        headers={"Authorization": f"Bearer {server.create_access_token()}"},
    ).data


def frame_of(server: TestServer, task_id: int, payload: dict[str, Any]) -> int:
    """Which of the task's frames a payload's image is."""
    image = base64.b64decode(payload["image"])
    for frame in range(server.task(task_id)["size"]):
        if original_frame(server, task_id, frame) == image:
            return frame
    raise AssertionError("the image is none of the task's frames")


def as_user(
    server: TestServer, user: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    auth = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    response = urllib3.request(
        method, f"{server.url}{path}", json=body, headers={"Authorization": f"Basic {auth}"}
    )
    return response.status, json.loads(response.data) if response.data else None


def wait_until_done(server: TestServer, rq_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = api_request(server, "GET", f"/api/lambda/requests/{rq_id}")
        if status == 200 and body["status"] in ("finished", "failed"):
            return body
        assert time.monotonic() < deadline, f"the request is still {status} {body}"
        time.sleep(0.02)


def annotated_frames(server: TestServer, task_id: int) -> list[int]:
    data = server.annotations(task_id)
    return sorted(item["frame"] for kind in ("tags", "shapes") for item in data[kind])


def box_per_frame(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"label": "car", "type": "rectangle", "points": [1, 2, 11, 12]}]


# Functions


def test_functions_are_listed_as_cvat_lists_them_skipping_invalid_metadata(
    cvat_server: TestServer, nuclio: FakeNuclio
) -> None:
    nuclio.add("detector", spec=DETECTOR_SPEC[:3])
    nuclio.add(
        "sam",
        kind="interactor",
        annotations={
            "min_pos_points": "0",
            "min_neg_points": "0",
            "startswith_box_optional": "true",
            "startswith_box": "false",
            "help_message": "Click the object",
            "version": "2",
        },
    )
    nuclio.add("transt", kind="tracker")
    nuclio.add(
        "polygon-tracker", kind="tracker", annotations={"supported_shape_types": "polygon, mask,"}
    )
    # CVAT logs and skips these three.
    nuclio.add("no-kind", kind="classifier")
    nuclio.add("twice", spec=[{"name": "car"}, {"name": "car"}])
    nuclio.add("no-shapes", kind="tracker", annotations={"supported_shape_types": " , "})

    status, functions = api_request(cvat_server, "GET", "/api/lambda/functions")

    assert status == 200
    by_id = {function["id"]: function for function in functions}
    assert sorted(by_id) == ["detector", "polygon-tracker", "sam", "transt"]
    assert by_id["detector"] == {
        "id": "detector",
        "kind": "detector",
        "labels_v2": [
            {
                "name": "car",
                "type": "rectangle",
                "attributes": [
                    {"name": "color", "input_type": "select", "values": ["red", "blue"]},
                    {"name": "speed", "input_type": "number", "values": ["0", "200", "1"]},
                    {"name": "parked", "input_type": "checkbox", "values": ["true", "false"]},
                ],
            },
            {"name": "sky", "type": "mask", "attributes": []},
            {
                "name": "person",
                "type": "skeleton",
                "attributes": [],
                "sublabels": [
                    {"name": "head", "type": "points", "attributes": []},
                    {"name": "hand", "type": "points", "attributes": []},
                    {"name": "foot", "type": "points", "attributes": []},
                ],
                "svg": DETECTOR_SPEC[2]["svg"],
            },
        ],
        "description": "detector, a fake function",
        "name": "detector (display)",
        "version": 1,
    }
    # CVAT takes bool() of the annotation's text, so "false" is true.
    assert by_id["sam"] == {
        "id": "sam",
        "kind": "interactor",
        "labels_v2": [],
        "description": "sam, a fake function",
        "name": "sam (display)",
        "version": 2,
        "min_pos_points": 0,
        "min_neg_points": 0,
        "startswith_box": True,
        "startswith_box_optional": True,
        "help_message": "Click the object",
        "animated_gif": "",
    }
    assert by_id["transt"]["supported_shape_types"] == ["rectangle"]
    assert by_id["polygon-tracker"]["supported_shape_types"] == ["polygon", "mask"]
    (listing,) = nuclio.received
    assert (listing.method, listing.path) == ("GET", "/api/functions")
    assert {key: listing.headers[key] for key in DASHBOARD_HEADERS} == DASHBOARD_HEADERS
    assert listing.headers["user-agent"].startswith(f"CVAT/{cvat_server.version} python-requests/")


DASHBOARD_HEADERS = {
    "x-nuclio-project-name": "cvat",
    "x-nuclio-function-namespace": "nuclio",
    "x-nuclio-invoke-via": "domain-name",
    "x-nuclio-invoke-timeout": "120s",
}


def test_a_function_is_read_by_its_id_and_nuclio_errors_pass_through(
    cvat_server: TestServer, nuclio: FakeNuclio
) -> None:
    nuclio.add("openvino-omz.yolo-v3_tf", spec=[{"name": "car"}])

    status, function = api_request(
        cvat_server, "GET", "/api/lambda/functions/openvino-omz.yolo-v3_tf"
    )
    assert status == 200
    assert function["labels_v2"] == [{"name": "car", "type": "any", "attributes": []}]
    assert nuclio.received[-1].path == "/api/functions/openvino-omz.yolo-v3_tf"

    assert api_request(cvat_server, "GET", "/api/lambda/functions/nope") == (
        404,
        f"404 Client Error: Not Found for url: {nuclio.url}/api/functions/nope",
    )
    # FunctionViewSet's lookup regex: [a-zA-Z0-9_.-]+
    assert api_request(cvat_server, "GET", "/api/lambda/functions/a%20b")[0] == 404


# Online calls of a detector


def test_an_online_call_converts_every_kind_of_result_as_cvat_does(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    def detect(payload: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "label": "car",
                "type": "rectangle",
                "points": [1, 2, 11, 12],
                "confidence": "0.25",
                "attributes": [
                    {"name": "color", "value": "blue"},
                    {"name": "speed", "value": "7"},  # not a multiple of the task's step 5
                    {"name": "speed", "value": "10"},
                    {"name": "parked", "value": "yes"},  # a checkbox takes "true"/"false"
                ],
            },
            {"label": "sky", "type": "mask", "mask": [0, 0, 1, 1, 1, 0, 0, 0, 2, 3, 5, 4]},
            {
                "label": "person",
                "type": "skeleton",
                "elements": [
                    {"label": "head", "type": "points", "points": [10, 20]},
                    {"label": "hand", "type": "points", "points": [30, 40], "outside": 1},
                    {"label": "tail", "type": "points", "points": [0, 0]},
                ],
            },
            {"label": "person", "type": "skeleton", "elements": []},
            {"label": "outdoor", "type": "tag"},
            {"label": "zebra", "type": "rectangle", "points": [0, 0, 1, 1]},
        ]

    nuclio.add("detector", detect, spec=DETECTOR_SPEC)
    label = ids(cvat_server, task_id)

    status, result = api_request(
        cvat_server, "POST", "/api/lambda/functions/detector", {"task": task_id, "frame": 2}
    )

    assert status == 200, result

    def shape(**fields: Any) -> dict[str, Any]:
        return {
            "id": None,
            "group": 0,
            "source": "auto",
            "frame": 2,
            "attributes": [],
            "occluded": False,
            "outside": False,
            "z_order": 0,
            "rotation": 0,
            "score": 1,
            **fields,
        }

    assert result == {
        "version": 0,
        "tags": [
            {
                "id": None,
                "label_id": label["outdoor"],
                "group": 0,
                "source": "auto",
                "frame": 2,
                "attributes": [],
            }
        ],
        "shapes": [
            shape(
                type="rectangle",
                label_id=label["car"],
                points=[1, 2, 11, 12],
                attributes=[
                    {"spec_id": label["car.color"], "value": "blue"},
                    {"spec_id": label["car.speed"], "value": "10"},
                ],
            ),
            # Run lengths from a run of zeros, then the box; the task's polygon label takes it.
            shape(type="mask", label_id=label["sky"], points=[2, 3, 3, 2, 3, 5, 4]),
            shape(
                type="skeleton",
                label_id=label["person"],
                points=[],
                elements=[
                    shape(type="points", label_id=label["person.head"], points=[10, 20]),
                    shape(
                        type="points", label_id=label["person.hand"], points=[30, 40], outside=True
                    ),
                    # Missing: outside, at the centre of the others.
                    shape(
                        type="points",
                        label_id=label["person.foot"],
                        points=[20.0, 30.0],
                        outside=True,
                    ),
                ],
            ),
        ],
        "tracks": [],
        "intervals": [],
    }
    (call,) = nuclio.invocations("detector")
    assert call.body == {
        "image": base64.b64encode(original_frame(cvat_server, task_id, 2)).decode()
    }
    assert cvat_server.annotations(task_id)["shapes"] == []  # an online call saves nothing


def test_conv_mask_to_poly_makes_a_mask_with_points_a_polygon(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add(
        "detector",
        lambda payload: [
            {
                "label": "sky",
                "type": "mask",
                "mask": [1, 1, 0, 0, 0, 3, 1, 3],
                "points": [0, 0, 4, 0, 4, 4],
            },
            {"label": "sky", "type": "mask", "mask": [1, 1, 0, 0, 3, 1, 3]},
        ],
        spec=DETECTOR_SPEC,
    )

    status, result = api_request(
        cvat_server,
        "POST",
        "/api/lambda/functions/detector",
        {"task": task_id, "frame": 0, "conv_mask_to_poly": True},
    )

    assert status == 200, result
    assert [(s["type"], s["points"]) for s in result["shapes"]] == [
        ("polygon", [0, 0, 4, 0, 4, 4]),
        ("mask", [0, 2, 1, 0, 3, 1, 3]),
    ]


def test_threshold_goes_to_the_function_only_when_truthy(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add("detector", spec=DETECTOR_SPEC)
    for threshold in (0.4, 0, None):
        body = {"task": task_id, "frame": 0, "threshold": threshold}
        assert api_request(cvat_server, "POST", "/api/lambda/functions/detector", body)[0] == 200
    payloads = [call.body for call in nuclio.invocations("detector")]
    assert [payload.get("threshold") for payload in payloads] == [0.4, None, None]
    assert ["threshold" in payload for payload in payloads] == [True, False, False]


def test_a_region_of_interest_is_cropped_and_the_results_moved_back(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add(
        "detector",
        lambda payload: [
            {"label": "car", "type": "rectangle", "points": [1, 2, 11, 12]},
            {"label": "sky", "type": "mask", "mask": [1, 0, 1, 1, 0, 0, 1, 1], "group_id": 3},
        ],
        spec=DETECTOR_SPEC,
    )
    body = {"task": task_id, "frame": 1, "roi": [10, 5, 40, 30]}

    status, result = api_request(cvat_server, "POST", "/api/lambda/functions/detector", body)

    assert status == 200, result
    assert [(s["type"], s["points"], s["group"]) for s in result["shapes"]] == [
        ("rectangle", [11, 7, 21, 17], 0),
        ("mask", [0, 1, 1, 2, 10, 5, 11, 6], 3),
    ]
    (call,) = nuclio.invocations("detector")
    with PIL.Image.open(io.BytesIO(base64.b64decode(call.body["image"]))) as crop:
        assert crop.size == (30, 25)
    assert api_request(
        cvat_server,
        "POST",
        "/api/lambda/functions/detector",
        {**body, "roi": [10, 5, 100, 30]},
    ) == (400, ["ROI is outside the image"])


def test_without_a_mapping_labels_and_attributes_map_by_name_when_types_fit(
    cvat_server: TestServer, nuclio: FakeNuclio
) -> None:
    task = cvat_server.create_task(
        "types",
        images=small_images(1),
        labels=[
            {"name": "car", "type": "polygon"},  # a rectangle does not map to a polygon
            {"name": "sky", "type": "any"},
            {"name": "person", "type": "any"},  # a skeleton maps to skeletons only
            {"name": "outdoor", "type": "tag"},
        ],
    )
    nuclio.add(
        "detector",
        lambda payload: [
            {"label": "car", "type": "rectangle", "points": [1, 2, 3, 4]},
            {"label": "sky", "type": "mask", "mask": [1, 0, 0, 0, 1, 0]},
            {"label": "person", "type": "skeleton", "elements": []},
            {"label": "outdoor", "type": "tag"},
        ],
        spec=DETECTOR_SPEC,
    )

    status, result = api_request(
        cvat_server, "POST", "/api/lambda/functions/detector", {"task": task, "frame": 0}
    )

    assert status == 200, result
    assert [s["type"] for s in result["shapes"]] == ["mask"]
    assert len(result["tags"]) == 1


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"nope": {"name": "car"}}, 'Invalid mapping. Unknown model label "nope"'),
        ({"car": {"name": "nope"}}, 'Invalid mapping. Unknown db label "nope"'),
        (
            {"car": {"name": "outdoor"}},
            'Invalid mapping. Model label "car" and database label "outdoor" are not compatible',
        ),
        (
            {"car": {"name": "car", "attributes": {"size": "color"}}},
            'Invalid mapping. Unknown model attribute "size"',
        ),
        (
            {"car": {"name": "car", "attributes": {"color": "hue"}}},
            'Invalid mapping. Unknown db attribute "hue"',
        ),
        (
            {"person": {"name": "person"}},
            'Mapping for elements was not specified in skeleton "person" ',
        ),
        (
            {"person": {"name": "person", "sublabels": {"head": {"name": "neck"}}}},
            'Invalid mapping. Unknown db label "neck"',
        ),
    ],
)
def test_a_bad_mapping_is_refused_with_cvats_message(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int, mapping: dict, message: str
) -> None:
    nuclio.add("detector", spec=DETECTOR_SPEC)
    body = {"task": task_id, "frame": 0, "mapping": mapping}

    assert api_request(cvat_server, "POST", "/api/lambda/functions/detector", body) == (
        400,
        message,
    )
    assert nuclio.invocations("detector") == []


def test_a_mapping_renames_labels_attributes_and_sublabels(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add(
        "detector",
        lambda payload: [
            {
                "label": "zebra",
                "type": "rectangle",
                "points": [1, 2, 3, 4],
                "attributes": [{"name": "color", "value": "red"}],
            },
            {"label": "car", "type": "rectangle", "points": [5, 6, 7, 8]},
            {
                "label": "person",
                "type": "skeleton",
                "elements": [{"label": "hand", "type": "points", "points": [4, 4]}],
            },
        ],
        spec=[
            {
                "name": "zebra",
                "type": "rectangle",
                "attributes": [{"name": "color", "input_type": "text", "values": []}],
            },
            *DETECTOR_SPEC[:3],
        ],
    )
    mapping = {
        "zebra": {"name": "car", "attributes": {"color": "plate"}},
        "person": {"name": "person", "sublabels": {"hand": {"name": "foot"}}},
    }
    label = ids(cvat_server, task_id)

    status, result = api_request(
        cvat_server,
        "POST",
        "/api/lambda/functions/detector",
        {"task": task_id, "frame": 0, "mapping": mapping},
    )

    assert status == 200, result
    car, person = result["shapes"]
    assert (car["label_id"], car["points"], car["attributes"]) == (
        label["car"],
        [1, 2, 3, 4],
        [{"spec_id": label["car.plate"], "value": "red"}],
    )
    assert [(e["label_id"], e["points"], e["outside"]) for e in person["elements"]] == [
        (label["person.head"], [4.0, 4.0], True),
        (label["person.hand"], [4.0, 4.0], True),
        (label["person.foot"], [4, 4], False),
    ]


def test_call_arguments_are_checked_as_cvat_checks_them(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add("detector", spec=DETECTOR_SPEC)
    path = "/api/lambda/functions/detector"
    second_job = cvat_server.jobs(task_id)[1]["id"]

    assert api_request(cvat_server, "POST", path, {"task": task_id}) == (
        400,
        "`detector` lambda function was called without mandatory argument: frame",
    )
    assert api_request(cvat_server, "POST", path, {"frame": 0}) == (
        400,
        "`detector` lambda function was run with wrong arguments ('task')",
    )
    assert api_request(cvat_server, "POST", path, {"task": 999, "frame": 0}) == (
        400,
        ["Task matching query does not exist."],
    )
    assert api_request(cvat_server, "POST", path, {"job": second_job, "frame": 0}) == (
        400,
        "The frame is outside the job range",
    )
    assert api_request(cvat_server, "POST", path, {"job": second_job, "frame": 2})[0] == 200


# Interactors and trackers: the payloads CVAT builds


def test_an_interactor_gets_its_prompts_and_a_tracker_its_states_back_unsigned(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    # The mask of the region (25 rows of 30), which CVAT places in a frame-sized one.
    region_mask = [[1] * 30 for _ in range(25)]
    nuclio.add("sam", lambda payload: {"mask": region_mask}, kind="interactor")
    nuclio.add(
        "transt",
        lambda payload: {
            "shapes": [[1, 1, 5, 5]],
            "states": [{"seen": len(payload["states"])}],
        },
        kind="tracker",
    )
    path = "/api/lambda/functions/"

    status, answer = api_request(
        cvat_server,
        "POST",
        path + "sam",
        {
            "task": task_id,
            "frame": 1,
            "pos_points": [[20, 10]],
            "neg_points": [],
            "obj_bbox": [[12, 6], [30, 20]],
            "roi": [10, 5, 40, 30],
            "text_prompts": ["a car"],
        },
    )
    assert status == 200, answer
    assert (len(answer["mask"]), len(answer["mask"][0])) == (48, 64)
    assert answer["mask"][4][9:12] == [0, 0, 0] and answer["mask"][5][9:12] == [0, 1, 1]
    assert answer["mask"][29][39:41] == [1, 0] and answer["mask"][30][39:41] == [0, 0]
    (sam,) = nuclio.invocations("sam")
    assert {key: value for key, value in sam.body.items() if key != "image"} == {
        "pos_points": [[10, 5]],
        "neg_points": [],
        "obj_bbox": [[2, 1], [20, 15]],
        "text_prompts": ["a car"],
    }

    status, first = api_request(
        cvat_server,
        "POST",
        path + "transt",
        {"task": task_id, "frame": 0, "shapes": [{"type": "rectangle", "points": [0, 0, 4, 4]}]},
    )
    assert status == 200, first
    assert first["shapes"] == [{"type": "rectangle", "points": [1, 1, 5, 5]}]
    (state,) = first["states"]
    assert state.startswith('{"seen":0}:')
    status, second = api_request(
        cvat_server, "POST", path + "transt", {"task": task_id, "frame": 1, "states": [state]}
    )
    assert status == 200, second
    start, then = nuclio.invocations("transt")
    assert (start.body["shapes"], start.body["states"]) == ([[0, 0, 4, 4]], [])
    assert (then.body["shapes"], then.body["states"]) == ([None], [{"seen": 0}])
    assert api_request(
        cvat_server,
        "POST",
        path + "transt",
        {"task": task_id, "frame": 1, "states": [state.replace("0", "1", 1)]},
    ) == (400, "Invalid or expired tracker state")
    assert api_request(
        cvat_server,
        "POST",
        path + "transt",
        {"task": task_id, "frame": 1, "states": [state], "roi": [0, 0, 4, 4]},
    ) == (400, "ROI is not supported for tracker functions")


# Invoke methods


def test_the_dashboard_is_called_with_cvats_headers(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add("detector", spec=DETECTOR_SPEC)

    api_request(
        cvat_server, "POST", "/api/lambda/functions/detector", {"task": task_id, "frame": 0}
    )

    (call,) = nuclio.invocations("detector")
    assert (call.via, call.method, call.path) == ("dashboard", "POST", "/api/function_invocations")
    assert {key: call.headers.get(key) for key in DASHBOARD_HEADERS} == DASHBOARD_HEADERS
    assert (call.headers["x-nuclio-function-name"], call.headers["x-nuclio-path"]) == (
        "detector",
        "/",
    )


@pytest.mark.cvat_server(nuclio_invoke_method="direct", nuclio_namespace="cvat", nuclio_timeout=30)
def test_direct_invocation_posts_the_payload_alone_to_the_functions_port(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add("detector", box_per_frame, spec=DETECTOR_SPEC)

    status, result = api_request(
        cvat_server, "POST", "/api/lambda/functions/detector", {"task": task_id, "frame": 0}
    )

    assert status == 200 and len(result["shapes"]) == 1
    reading, call = nuclio.received
    assert reading.headers["x-nuclio-function-namespace"] == "cvat"
    assert reading.headers["x-nuclio-invoke-timeout"] == "30s"
    assert (call.via, call.method, call.path) == ("detector", "POST", "/")
    assert not [key for key in call.headers if key.startswith("x-nuclio")]
    assert set(call.body) == {"image"}


def test_without_nuclio_the_lambda_endpoints_answer_503(tmp_path: Path) -> None:
    with TestServer(data_dir=tmp_path / "none") as server:
        status, body = api_request(server, "GET", "/api/lambda/functions")
        assert status == 503 and "no Nuclio dashboard" in body
    # Nuclio down: requests' own message, as CVAT answers it.
    with TestServer(data_dir=tmp_path / "down", nuclio_url="http://127.0.0.1:9") as server:
        status, body = api_request(server, "GET", "/api/lambda/functions/detector")
        assert status == 503
        assert body.startswith("HTTPConnectionPool(host='127.0.0.1', port=9): Max retries")
        assert api_request(server, "GET", "/api/lambda/requests") == (200, [])


# Requests


def test_a_request_annotates_every_frame_of_a_task_with_several_jobs(
    cvat_server: TestServer, cvat_client: Any, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add("detector", box_per_frame, spec=DETECTOR_SPEC)

    answer, _ = cvat_client.api_client.lambda_api.create_requests(
        models.FunctionCallRequest(function="detector", task=task_id, threshold=0.5)
    )

    assert answer.id == f"action=autoannotate&target=task&target_id={task_id}"
    assert answer.status == "queued" and answer.progress is None and answer.started is None
    assert answer.function.to_dict() == {"id": "detector", "threshold": 0.5, "task": task_id}
    done = wait_until_done(cvat_server, answer.id)
    assert done["status"] == "finished", done["exc_info"]
    assert (done["progress"], done["exc_info"]) == (100, None)
    assert done["enqueued"] <= done["started"] <= done["ended"]
    # One frame per invocation, in frame order, the deleted frame 3 skipped.
    calls = nuclio.invocations("detector")
    assert [frame_of(cvat_server, task_id, call.body) for call in calls] == [0, 1, 2, 4]
    assert all(call.body["threshold"] == 0.5 for call in calls)
    annotations = cvat_client.tasks.retrieve(task_id).get_annotations()
    assert sorted(shape.frame for shape in annotations.shapes) == [0, 1, 2, 4]
    assert {shape.source for shape in annotations.shapes} == {"auto"}
    finished = cvat_client.api_client.lambda_api.retrieve_requests(answer.id)[0]
    assert finished.status == "finished"
    assert [r.id for r in cvat_client.api_client.lambda_api.list_requests()[0]] == [answer.id]


def test_a_job_request_annotates_the_jobs_frames(
    cvat_server: TestServer, cvat_client: Any, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add("detector", box_per_frame, spec=DETECTOR_SPEC)
    second_job = cvat_server.jobs(task_id)[1]["id"]  # frames 2-3, 3 deleted

    answer, _ = cvat_client.api_client.lambda_api.create_requests(
        models.FunctionCallRequest(function="detector", task=task_id, job=second_job)
    )

    assert answer.function.to_dict() == {
        "id": "detector",
        "threshold": None,
        "task": task_id,
        "job": second_job,
    }
    done = wait_until_done(cvat_server, answer.id)
    # Progress counts the frame among the task's: frame 2 of 5.
    assert (done["status"], done["progress"]) == ("finished", 60)
    assert annotated_frames(cvat_server, task_id) == [2]
    job_shapes = cvat_client.jobs.retrieve(second_job).get_annotations().shapes
    assert [(s.frame, s.source) for s in job_shapes] == [(2, "auto")]


def test_a_second_request_for_a_task_is_refused_while_the_first_runs(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    release = threading.Event()

    def slow(payload: dict[str, Any]) -> list:
        release.wait(10)
        return []

    nuclio.add("detector", slow, spec=DETECTOR_SPEC)
    body = {"function": "detector", "task": task_id}
    status, first = api_request(cvat_server, "POST", "/api/lambda/requests", body)
    assert status == 200, first

    assert api_request(cvat_server, "POST", "/api/lambda/requests", body) == (
        409,
        f"Only one running request is allowed for the same task #{task_id}",
    )
    release.set()
    wait_until_done(cvat_server, first["id"])
    # A finished request is replaced by the next one.
    assert api_request(cvat_server, "POST", "/api/lambda/requests", body)[0] == 200
    wait_until_done(cvat_server, first["id"])


def test_a_function_failing_mid_task_fails_the_request_keeping_what_cvat_had_saved(
    cvat_server: TestServer, nuclio: FakeNuclio
) -> None:
    # Results are saved after frame 100 (a nonzero multiple of 100) and at the end.
    task = cvat_server.create_task("long", images=small_images(103, (8, 8)), labels=TASK_LABELS)
    seen = []

    def fail_at_102(payload: dict[str, Any]) -> Any:
        seen.append(payload)
        if len(seen) == 103:
            return Reply(500, "Model exploded", {"error": "CUDA out of memory"})
        return box_per_frame(payload)

    nuclio.add("detector", fail_at_102, spec=DETECTOR_SPEC)

    status, answer = api_request(
        cvat_server, "POST", "/api/lambda/requests", {"function": "detector", "task": task}
    )
    assert status == 200, answer
    done = wait_until_done(cvat_server, answer["id"])

    assert (done["status"], done["progress"]) == ("failed", 99)
    assert done["exc_info"].startswith("Traceback (most recent call last):\n")
    assert done["exc_info"].endswith(
        "requests.exceptions.HTTPError: 500 Server Error: Model exploded for url:"
        f" {nuclio.url}/api/function_invocations\n"
    )
    assert annotated_frames(cvat_server, task) == list(range(101))
    # Failed requests are not listed, but can be read.
    assert api_request(cvat_server, "GET", "/api/lambda/requests") == (200, [])


def test_a_bad_mapping_fails_the_request_at_its_first_frame_after_the_cleanup(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add("detector", box_per_frame, spec=DETECTOR_SPEC)
    cvat_server.set_annotations(
        task_id, {"tags": [{"frame": 0, "label_id": ids(cvat_server, task_id)["outdoor"]}]}
    )
    body = {
        "function": "detector",
        "task": task_id,
        "mapping": {"nope": {"name": "car"}},
        "cleanup": True,
    }

    status, answer = api_request(cvat_server, "POST", "/api/lambda/requests", body)
    assert status == 200, answer
    done = wait_until_done(cvat_server, answer["id"])

    assert done["status"] == "failed"
    assert done["exc_info"].endswith(
        "django.core.exceptions.ValidationError: ['Invalid mapping. Unknown model label \"nope\"']\n"
    )
    assert annotated_frames(cvat_server, task_id) == []
    assert nuclio.invocations("detector") == []


def test_cleanup_deletes_the_tasks_or_the_jobs_annotations_first(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add("detector", lambda payload: [], spec=DETECTOR_SPEC)
    outdoor = ids(cvat_server, task_id)["outdoor"]
    cvat_server.set_annotations(
        task_id, {"tags": [{"frame": frame, "label_id": outdoor} for frame in (0, 2, 4)]}
    )
    first_job = cvat_server.jobs(task_id)[0]["id"]

    for body, kept in (
        ({"function": "detector", "task": task_id}, [0, 2, 4]),
        ({"function": "detector", "task": task_id, "job": first_job, "cleanup": True}, [2, 4]),
        ({"function": "detector", "task": task_id, "cleanup": True}, []),
    ):
        status, answer = api_request(cvat_server, "POST", "/api/lambda/requests", body)
        assert status == 200, answer
        assert wait_until_done(cvat_server, answer["id"])["status"] == "finished"
        assert annotated_frames(cvat_server, task_id) == kept


def test_deleting_a_running_request_stops_it_after_the_frame_in_hand(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    in_frame_1 = threading.Event()
    release = threading.Event()

    def detect(payload: dict[str, Any]) -> list[dict[str, Any]]:
        if len(nuclio.invocations("detector")) == 2:
            in_frame_1.set()
            release.wait(10)
        return box_per_frame(payload)

    nuclio.add("detector", detect, spec=DETECTOR_SPEC)
    status, answer = api_request(
        cvat_server, "POST", "/api/lambda/requests", {"function": "detector", "task": task_id}
    )
    assert status == 200, answer
    assert in_frame_1.wait(10)
    path = f"/api/lambda/requests/{answer['id']}"
    status, running = api_request(cvat_server, "GET", path)
    assert (running["status"], running["progress"]) == ("started", 20)

    assert api_request(cvat_server, "DELETE", path) == (204, None)
    assert api_request(cvat_server, "GET", path) == (404, f"{answer['id']} lambda job is not found")

    release.set()
    # When its loop ends, rq saves the job back: the request shows again, finished.
    done = wait_until_done(cvat_server, answer["id"])
    assert (done["status"], done["progress"]) == ("finished", 40)
    assert len(nuclio.invocations("detector")) == 2
    assert annotated_frames(cvat_server, task_id) == [0]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"function": ["This field is required."], "task": ["This field is required."]}),
        (
            {"function": "", "task": None, "threshold": "high", "cleanup": "maybe", "roi": [1, 2]},
            {
                "function": ["This field may not be blank."],
                "task": ["This field may not be null."],
                "threshold": ["A valid number is required."],
                "cleanup": ["Must be a valid boolean."],
                "roi": ["Ensure this field has at least 4 elements."],
            },
        ),
        (
            {"function": "detector", "max_distance": "1.0", "mapping": {"car": {"attributes": []}}},
            {
                "task": ["This field is required."],
                "mapping": {
                    "car": {
                        "name": ["This field is required."],
                        "attributes": ['Expected a dictionary of items but got type "list".'],
                    }
                },
            },
        ),
    ],
)
def test_a_request_with_bad_fields_gets_drfs_errors(
    cvat_server: TestServer, body: Any, errors: dict
) -> None:
    assert api_request(cvat_server, "POST", "/api/lambda/requests", body) == (400, errors)


def test_the_deprecated_convMaskToPoly_is_still_taken(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add(
        "detector",
        lambda payload: [
            {"label": "sky", "type": "mask", "mask": [1, 0, 0, 0], "points": [0, 0, 2, 0, 2, 2]}
        ],
        spec=DETECTOR_SPEC,
    )
    first_job = cvat_server.jobs(task_id)[0]["id"]
    body = {"function": "detector", "task": task_id, "job": first_job, "convMaskToPoly": True}

    status, answer = api_request(cvat_server, "POST", "/api/lambda/requests", body)

    assert status == 200, answer
    assert wait_until_done(cvat_server, answer["id"])["status"] == "finished"
    assert {s["type"] for s in cvat_server.annotations(task_id)["shapes"]} == {"polygon"}


def test_requests_are_checked_before_they_are_queued(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int
) -> None:
    nuclio.add("detector", spec=DETECTOR_SPEC)
    nuclio.add("transt", kind="tracker")
    other = cvat_server.create_task("other", images=small_images(1), labels=TASK_LABELS)
    other_job = cvat_server.jobs(other)[0]["id"]
    empty = api_request(cvat_server, "POST", "/api/tasks", {"name": "empty"})[1]["id"]
    path = "/api/lambda/requests"

    assert api_request(cvat_server, "POST", path, {"function": "detector", "task": 999}) == (
        400,
        ["Task matching query does not exist."],
    )
    # CVAT's permission reads the body with .get(): anything but an object is its 500.
    assert api_request(cvat_server, "POST", path, [])[0] == 500
    assert api_request(
        cvat_server, "POST", path, {"function": "detector", "task": task_id, "job": other_job}
    ) == (400, ["Job task ID does not match task ID"])
    assert api_request(cvat_server, "POST", path, {"function": "detector", "task": empty}) == (
        400,
        ["This task data has not been initialized yet"],
    )
    assert api_request(cvat_server, "POST", path, {"function": "nope", "task": task_id}) == (
        404,
        f"404 Client Error: Not Found for url: {nuclio.url}/api/functions/nope",
    )
    assert api_request(
        cvat_server, "POST", path, {"function": "transt", "task": task_id, "roi": [0, 0, 4, 4]}
    ) == (400, "ROI is not supported for tracker functions")
    # Frames of different sizes (the other task's frames are all 64x48).
    mixed = cvat_server.create_task(
        "mixed", images=[*small_images(1), *small_images(1, (32, 32))], labels=TASK_LABELS
    )
    assert api_request(
        cvat_server, "POST", path, {"function": "detector", "task": mixed, "roi": [0, 0, 4, 4]}
    ) == (
        400,
        [
            (
                "ROI can be used for task annotation only when all processed frames have the"
                " same resolution"
            )
        ],
    )
    assert api_request(cvat_server, "GET", path) == (200, [])


# Permissions


@pytest.fixture
def users(cvat_server: TestServer, task_id: int) -> int:
    """reader (no group), worker, owner (a user who owns a task of their own); their task's id."""
    cvat_server.create_user("reader", PASSWORD, privilege=None)
    cvat_server.create_user("worker", PASSWORD, privilege="worker")
    cvat_server.create_user("owner", PASSWORD)
    cvat_server.assign(username="reader", task_id=task_id)
    return cvat_server.create_task(
        "owned", images=small_images(2), labels=TASK_LABELS, owner="owner"
    )


def test_users_may_do_what_cvats_lambda_rules_allow(
    cvat_server: TestServer, nuclio: FakeNuclio, task_id: int, users: int
) -> None:
    nuclio.add("detector", box_per_frame, spec=DETECTOR_SPEC)
    owned = users
    call = {"task": task_id, "frame": 0}
    forbidden = (403, {"detail": "You do not have permission to perform this action."})

    # Anyone lists and reads functions; calling one takes the worker privilege.
    assert as_user(cvat_server, "reader", "GET", "/api/lambda/functions")[0] == 200
    assert as_user(cvat_server, "reader", "GET", "/api/lambda/functions/detector")[0] == 200
    assert (
        as_user(cvat_server, "reader", "POST", "/api/lambda/functions/detector", call) == forbidden
    )
    # ...and the right to see the task's data.
    assert (
        as_user(cvat_server, "worker", "POST", "/api/lambda/functions/detector", call) == forbidden
    )
    assert (
        as_user(
            cvat_server,
            "owner",
            "POST",
            "/api/lambda/functions/detector",
            {"task": owned, "frame": 0},
        )[0]
        == 200
    )
    # A request takes the right to change the task's annotations.
    body = {"function": "detector", "task": task_id}
    assert as_user(cvat_server, "reader", "POST", "/api/lambda/requests", body) == forbidden
    assert as_user(cvat_server, "worker", "POST", "/api/lambda/requests", body) == forbidden
    status, mine = as_user(
        cvat_server,
        "owner",
        "POST",
        "/api/lambda/requests",
        {"function": "detector", "task": owned},
    )
    assert status == 200, mine
    status, admins = api_request(cvat_server, "POST", "/api/lambda/requests", body)
    assert status == 200, admins
    wait_until_done(cvat_server, mine["id"])
    wait_until_done(cvat_server, admins["id"])

    # Lists show the requests of tasks the user sees; only the owner (or an admin) deletes one.
    assert [r["id"] for r in as_user(cvat_server, "owner", "GET", "/api/lambda/requests")[1]] == [
        mine["id"]
    ]
    assert as_user(cvat_server, "worker", "GET", "/api/lambda/requests") == (200, [])
    assert as_user(cvat_server, "reader", "GET", "/api/lambda/requests") == forbidden
    assert as_user(cvat_server, "owner", "GET", f"/api/lambda/requests/{admins['id']}") == forbidden
    assert (
        as_user(cvat_server, "owner", "DELETE", f"/api/lambda/requests/{admins['id']}") == forbidden
    )
    assert as_user(cvat_server, "owner", "DELETE", f"/api/lambda/requests/{mine['id']}") == (
        204,
        None,
    )


def test_in_an_organization_the_task_is_judged_in_the_requests_context(
    cvat_server: TestServer, nuclio: FakeNuclio
) -> None:
    nuclio.add("detector", box_per_frame, spec=DETECTOR_SPEC)
    cvat_server.create_user("boss", PASSWORD)
    cvat_server.create_organization("lab")
    cvat_server.add_member("lab", "boss", "maintainer")
    task = cvat_server.create_task(
        "org", images=small_images(1), labels=TASK_LABELS, organization="lab"
    )
    call = {"task": task, "frame": 0}
    auth = base64.b64encode(f"boss:{PASSWORD}".encode()).decode()

    def status_in(org: str | None) -> int:
        headers = {"Authorization": f"Basic {auth}"}
        if org is not None:
            headers["X-Organization"] = org
        return urllib3.request(
            "POST", f"{cvat_server.url}/api/lambda/functions/detector", json=call, headers=headers
        ).status

    # A maintainer sees the task through its organization, not from outside it.
    assert (status_in("lab"), status_in(None)) == (200, 403)


def test_the_sandbox_serves_the_lambda_manager_with_its_nuclio(
    nuclio: FakeNuclio, tmp_path: Path
) -> None:
    nuclio.add("detector", spec=DETECTOR_SPEC)
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_sandbox,
        kwargs={
            "port": 0,
            "data_dir": tmp_path / "sandbox",
            "out": out,
            "stop": stop,
            "nuclio_url": nuclio.url,
            "nuclio_invoke_method": "direct",
        },
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while "Press Ctrl-C" not in out.getvalue():
            assert time.monotonic() < deadline and thread.is_alive(), out.getvalue()
            time.sleep(0.05)
        text = out.getvalue()
        url = text.split("URL:", 1)[1].split()[0]
        password = text.split("password:", 1)[1].split()[0]
        assert (
            f"nuclio:    {nuclio.url} (CVAT's /api/lambda/ calls its functions on their ports)"
            in text
        )
        auth = base64.b64encode(f"admin:{password}".encode()).decode()
        response = urllib3.request(
            "GET", f"{url}/api/lambda/functions", headers={"Authorization": f"Basic {auth}"}
        )
        assert [f["id"] for f in json.loads(response.data)] == ["detector"]
    finally:
        stop.set()
        thread.join(30)
