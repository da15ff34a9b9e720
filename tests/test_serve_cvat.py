"""cvat-aa serve behind a CVAT lambda manager: cvat-aa's test server, which implements CVAT
2.73's (``/api/lambda/...``) and calls the gateway as CVAT does, one frame per call.

What a whole-task request leaves must be what ``cvat-aa annotate`` leaves with the same
function, except what CVAT's own converter sets whatever the function says: every shape's
score is 1, ``occluded`` false and ``z_order`` 0.
"""

from __future__ import annotations

import time
from typing import Any

import cvat_aa
import PIL.Image
import pytest
import serve_functions
from cvat_aa.serve import FunctionChoice, Gateway, ServedFunction
from cvat_aa_testing import TestServer
from cvat_sdk import models

LABELS = [
    {
        "name": "car",
        "type": "rectangle",
        "attributes": [
            {"name": "color", "input_type": "select", "values": ["red", "blue"], "mutable": False},
            {"name": "doors", "input_type": "number", "values": ["2", "5", "1"], "mutable": False},
        ],
    },
    {"name": "lake", "type": "polygon"},
    {"name": "spot", "type": "points"},
    {"name": "blob", "type": "mask"},
    {
        "name": "animal",
        "type": "skeleton",
        "sublabels": [{"name": "head", "type": "points"}, {"name": "tail", "type": "points"}],
        "svg": serve_functions.SKELETON_SVG,
    },
    {"name": "night", "type": "tag"},
]

SET_BY_CVAT = ("id", "score", "occluded", "z_order")


def frames(count: int) -> list[PIL.Image.Image]:
    return [PIL.Image.new("RGB", (64 + i, 48), (i * 30 % 256, 90, 10)) for i in range(count)]


def comparable(server: TestServer, task_id: int) -> list[Any]:
    """The task's annotations by label name, without what CVAT's lambda path sets itself."""
    names: dict[int, str] = {}
    for label in server.labels(task_id):
        names[label["id"]] = label["name"]
        for sub in label.get("sublabels", []):
            names[sub["id"]] = sub["name"]

    def clean(annotation: dict) -> dict:
        data = {k: v for k, v in annotation.items() if k not in SET_BY_CVAT}
        data["label_id"] = names[data["label_id"]]
        data["attributes"] = sorted(a["value"] for a in data.get("attributes", []))
        if "elements" in data:
            data["elements"] = sorted(
                (clean(e) for e in data["elements"]), key=lambda e: e["label_id"]
            )
        return data

    stored = server.annotations(task_id)
    return sorted(
        (clean(a) for a in stored["tags"] + stored["shapes"]),
        key=lambda a: (a["frame"], a["label_id"], str(a.get("points"))),
    )


def run_request(client: Any, **call: Any) -> Any:
    request, _ = client.api_client.lambda_api.create_requests(models.FunctionCallRequest(**call))
    for _ in range(600):
        status, _ = client.api_client.lambda_api.retrieve_requests(request.id)
        if status.status in ("finished", "failed"):
            return status
        time.sleep(0.05)
    raise AssertionError("the request never ended")


@pytest.fixture
def serving():
    functions = [
        ServedFunction(FunctionChoice(source=serve_functions.EveryKind(), id="every-kind")),
        ServedFunction(FunctionChoice(source=serve_functions.Raising(), id="raising")),
    ]
    with Gateway(functions, port=0, direct=False) as gateway:
        yield gateway


@pytest.fixture
def server(serving: Gateway, tmp_path):
    with TestServer(data_dir=tmp_path / "server", nuclio_url=serving.url) as server:
        yield server


def test_cvat_lists_the_served_functions_with_their_labels(server: TestServer) -> None:
    with server.make_client() as client:
        listed = client.api_client.lambda_api.list_functions(_parse_response=False)[1].json()
    by_id = {f["id"]: f for f in listed}
    assert sorted(by_id) == ["every-kind", "raising"]
    every_kind = by_id["every-kind"]
    assert every_kind["kind"] == "detector"
    assert [label["name"] for label in every_kind["labels_v2"]] == [
        "car",
        "lake",
        "spot",
        "blob",
        "animal",
        "night",
    ]
    animal = every_kind["labels_v2"][4]
    assert [s["name"] for s in animal["sublabels"]] == ["head", "tail"]


def test_a_whole_task_request_leaves_what_annotate_leaves(server: TestServer) -> None:
    served_task = server.create_task("served", images=frames(6), labels=LABELS, segment_size=2)
    annotated_task = server.create_task(
        "annotated", images=frames(6), labels=LABELS, segment_size=2
    )
    with server.make_client() as client:
        status = run_request(client, function="every-kind", task=served_task)
        assert status.status == "finished", status.exc_info
        cvat_aa.annotate_task(client, annotated_task, serve_functions.EveryKind())
    served, annotated = comparable(server, served_task), comparable(server, annotated_task)
    assert len(served) == 6 * 6
    assert served == annotated
    # And what CVAT sets itself, whatever the function said:
    shapes = server.annotations(served_task)["shapes"]
    assert {s["score"] for s in shapes} == {1.0}


def test_the_threshold_of_a_request_reaches_the_function(server: TestServer) -> None:
    task = server.create_task("threshold", images=frames(2), labels=LABELS)
    with server.make_client() as client:
        assert run_request(client, function="every-kind", task=task, threshold=0.65).status == (
            "finished"
        )
    labels = {a["label_id"] for a in comparable(server, task)}
    assert labels == {"car", "spot", "blob", "night"}


def test_a_single_frame_call_returns_the_shapes_for_that_frame(server: TestServer) -> None:
    task = server.create_task("online", images=frames(3), labels=LABELS)
    with server.make_client() as client:
        _, reply = client.api_client.lambda_api.create_functions(
            "every-kind",
            online_function_call_request={"task": task, "frame": 2},
            _parse_response=False,
        )
        result = reply.json()
    assert {shape["frame"] for shape in result["shapes"]} == {2}
    car = next(s for s in result["shapes"] if s["type"] == "rectangle")
    assert car["points"] == [1.0, 2.0, 65.0, 24.0]  # frame 2 is 66 pixels wide
    assert [t["frame"] for t in result["tags"]] == [2]


def test_a_function_that_raises_fails_the_request_with_its_message(server: TestServer) -> None:
    red = [PIL.Image.new("RGB", (32, 32), (0, 0, 255)), PIL.Image.new("RGB", (32, 32), (255, 0, 0))]
    task = server.create_task("raising", images=red, labels=[{"name": "thing"}])
    with server.make_client() as client:
        status = run_request(client, function="raising", task=task)
    assert status.status == "failed"
    assert (
        "cvat-aa: function 'raising' failed: ValueError: the model cannot take red frames"
        in status.exc_info
    )
    # Fewer than 100 frames: CVAT had submitted nothing when the call failed.
    assert server.annotations(task)["shapes"] == []
