"""cvat-aa serve's interactors and trackers, called as CVAT 2.73's lambda manager calls them.

CVAT's ``LambdaFunction.invoke`` (``lambda_manager/views.py``) sends an interactor
``{"image", "pos_points", "neg_points", "obj_bbox"}`` for each click and a tracker
``{"image", "shapes", "states"}`` for each frame: shapes and no states to start, as many
nulls as states to go on. It signs every state a tracker answers and unsigns it on the next
call, so what serve gets back is the state it gave out. The first tests drive the gateway
with those payloads; the last ones go through cvat-aa's test server, whose lambda manager
builds them from a task's frames and signs the states as CVAT does.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from importlib.metadata import entry_points
from typing import Any

import numpy as np
import PIL.Image
import pytest
import serve_functions
from cvat_aa.serve import FunctionChoice, Gateway, ServedFunction
from cvat_aa_testing import TestServer
from cvat_sdk.masks import decode_mask
from serve_functions import square_frame
from test_serve import http, invoke, list_functions


def encoded(image: PIL.Image.Image) -> str:
    """A frame as CVAT sends it: the image file in base64."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def grey(width: int = 64, height: int = 48) -> str:
    return encoded(PIL.Image.new("RGB", (width, height), (90, 90, 90)))


def served(source: Any, function_id: str, **options: Any) -> ServedFunction:
    return ServedFunction(FunctionChoice(source=source, id=function_id), **options)


def click(gateway: Gateway, function_id: str, image: str, pos, neg=(), box=None):
    """One click in CVAT's interactor panel: the payload of ``LambdaFunction.invoke``."""
    return invoke(
        gateway,
        function_id,
        {"image": image, "pos_points": list(pos), "neg_points": list(neg), "obj_bbox": box},
    )


def mask_box(shape: dict) -> tuple[np.ndarray, list[float]]:
    """A mask shape's bitmap (frame-sized) and its box."""
    assert shape["type"] == "mask"
    return decode_mask(shape["points"], image_width=64, image_height=48), shape["points"][-4:]


@pytest.fixture
def box_of_points():
    function = serve_functions.BoxOfPoints()
    with Gateway([served(function, "box-of-points")], port=0) as gateway:
        yield gateway, function


@pytest.fixture
def red_square():
    function = serve_functions.RedSquareTracker()
    with Gateway([served(function, "red-square")], port=0) as gateway:
        yield gateway, function


# --- listing ------------------------------------------------------------------------------------


def test_an_interactor_is_listed_with_the_prompts_it_takes_and_no_labels() -> None:
    functions = [
        served(serve_functions.BoxOfPoints(), "box-of-points"),
        served(serve_functions.PolygonOfPoints(), "polygon"),
        ServedFunction(
            FunctionChoice(
                source=serve_functions.BoxFirst(), id="box-first", help_message="Draw a box."
            )
        ),
    ]
    with Gateway(functions, port=0, direct=False) as gateway:
        listed = list_functions(gateway)
    annotations = {name: config["metadata"]["annotations"] for name, config in listed.items()}
    # What LambdaFunction.__init__ reads; Nuclio's annotations are strings, and CVAT takes
    # any startswith_box* given for true, so a false one is left out.
    assert {k: v for k, v in annotations["box-of-points"].items() if k != "help_message"} == {
        "name": "box-of-points",
        "type": "interactor",
        "framework": "cvat-aa",
        "spec": "[]",
        "min_pos_points": "1",
        "min_neg_points": "0",
        "startswith_box_optional": "true",
    }
    assert annotations["box-of-points"]["help_message"] == (
        "Takes at least 1 positive point, negative points (optional), a box around the object"
        " (optional)."
    )
    polygon = annotations["polygon"]
    assert (polygon["min_pos_points"], polygon["min_neg_points"]) == ("3", "-1")
    assert "startswith_box" not in polygon and "startswith_box_optional" not in polygon
    box_first = annotations["box-first"]
    assert (box_first["startswith_box"], box_first["help_message"]) == ("true", "Draw a box.")
    assert "startswith_box_optional" not in box_first


def test_a_tracker_is_listed_with_the_shape_types_it_tracks() -> None:
    with Gateway([served(serve_functions.ShiftTracker(), "shift")], port=0) as gateway:
        config = list_functions(gateway)["shift"]
    annotations = config["metadata"]["annotations"]
    assert annotations["type"] == "tracker"
    assert annotations["spec"] == "[]"
    assert annotations["supported_shape_types"] == "polygon,rectangle"
    assert config["status"]["httpPort"] == gateway.direct_ports["shift"]


# --- interactors --------------------------------------------------------------------------------


def test_an_interactor_call_with_points_returns_a_mask(box_of_points) -> None:
    gateway, _ = box_of_points
    reply = click(gateway, "box-of-points", grey(), pos=[[10, 12], [20, 30]], neg=[[40, 40]])
    assert reply.status == 200, reply.reason
    (shape,) = reply.json()["shapes"]
    # cvat-sdk's InteractionResultShape as cvat-cli's agent sends it.
    assert shape["attributes"] == [{"spec_id": 0, "value": "0.9"}]
    bitmap, box = mask_box(shape)
    assert box == [10, 12, 20, 30]
    assert bitmap.sum() == 11 * 19 and bitmap[12:31, 10:21].all()


def test_a_box_is_a_prompt_too(box_of_points) -> None:
    gateway, _ = box_of_points
    reply = click(gateway, "box-of-points", grey(), pos=[[10, 12]], box=[[5, 6], [30, 20]])
    _, box = mask_box(reply.json()["shapes"][0])
    assert box == [5, 6, 30, 20]
    # An empty box is no box, as in cvat-cli's agent.
    reply = click(gateway, "box-of-points", grey(), pos=[[10, 12], [11, 13]], box=[])
    assert mask_box(reply.json()["shapes"][0])[1] == [10, 12, 11, 13]


def test_a_polygon_interactor_returns_a_polygon() -> None:
    with Gateway([served(serve_functions.PolygonOfPoints(), "polygon")], port=0) as gateway:
        reply = click(gateway, "polygon", grey(), pos=[[1, 2], [30, 2], [15, 40]])
    assert reply.status == 200, reply.reason
    assert reply.json() == {
        "shapes": [{"type": "polygon", "points": [1, 2, 30, 2, 15, 40], "attributes": []}]
    }


@pytest.mark.parametrize(
    ("function", "prompts", "message"),
    [
        (serve_functions.PolygonOfPoints(), {"pos": [[1, 2]]}, "not enough positive points"),
        (
            serve_functions.PolygonOfPoints(),
            {"pos": [[1, 2], [3, 4], [5, 6]], "neg": [[7, 8]]},
            "negative points are not supported",
        ),
        (
            serve_functions.PolygonOfPoints(),
            {"pos": [[1, 2], [3, 4], [5, 6]], "box": [[1, 1], [9, 9]]},
            "bounding boxes are not supported",
        ),
        (serve_functions.BoxFirst(), {"pos": []}, "a bounding box is required"),
    ],
)
def test_prompts_the_function_does_not_take_are_refused_with_cvat_clis_messages(
    function, prompts: dict, message: str
) -> None:
    with Gateway([served(function, "fn")], port=0) as gateway:
        reply = click(gateway, "fn", grey(), **prompts)
    assert reply.status == 400
    # CVAT shows the reason phrase of the reply, never its body.
    assert reply.reason == f"cvat-aa: {message}"


def test_clicks_on_one_frame_preprocess_it_once(
    box_of_points, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, function = box_of_points
    caplog.set_level("INFO", logger="cvat_aa.serve")
    frame = grey()
    for points in ([[10, 10]], [[10, 10], [20, 20]], [[10, 10], [20, 20], [30, 5]]):
        assert click(gateway, "box-of-points", frame, pos=points).status == 200
    assert function.preprocessed == [(64, 48)]
    # Another frame is preprocessed, and the first one is still cached.
    assert click(gateway, "box-of-points", grey(32, 24), pos=[[1, 1]]).status == 200
    assert click(gateway, "box-of-points", frame, pos=[[5, 5]]).status == 200
    assert function.preprocessed == [(64, 48), (32, 24)]
    assert gateway.metrics.as_dict()["box-of-points"]["image_cache"] == {"hits": 3, "misses": 2}
    lines = [r.getMessage() for r in caplog.records if r.name == "cvat_aa.serve.gateway"]
    assert [line.split()[1] for line in lines] == [
        "frame=64x48",
        "frame=cached",
        "frame=cached",
        "frame=32x24",
        "frame=cached",
    ]


def test_interactive_calls_run_on_the_thread_that_loaded_the_function() -> None:
    functions: list[serve_functions.BoxOfPoints] = []

    def factory() -> serve_functions.BoxOfPoints:
        functions.append(serve_functions.BoxOfPoints())
        return functions[-1]

    # A factory, which serve calls in the function's worker thread.
    with Gateway([served(factory, "box-of-points")], port=0) as gateway:
        for x in range(5, 9):
            assert click(gateway, "box-of-points", grey(), pos=[[x, x]]).status == 200
    (function,) = functions
    assert len(function.threads) == 1
    assert threading.get_ident() not in function.threads


# --- trackers -----------------------------------------------------------------------------------


def test_a_tracker_follows_a_square_over_three_frames(red_square) -> None:
    gateway, function = red_square
    start = invoke(
        gateway,
        "red-square",
        {
            "image": encoded(square_frame(10)),
            "shapes": [{"type": "rectangle", "points": [9, 9, 19, 19]}],
            "states": [],
        },
    )
    assert start.status == 200, start.reason
    assert start.json()["shapes"] == [{"type": "rectangle", "points": [9, 9, 19, 19]}]
    (state,) = start.json()["states"]
    assert isinstance(state, str) and len(state) >= 32  # an opaque, unguessable id
    moved = []
    for x in (16, 22):
        # Going on, CVAT sends as many nulls as states.
        reply = invoke(
            gateway,
            "red-square",
            {"image": encoded(square_frame(x)), "shapes": [None], "states": [state]},
        )
        assert reply.status == 200, reply.reason
        assert reply.json()["states"] == [state]
        moved += reply.json()["shapes"]
    assert moved == [
        {"type": "rectangle", "points": [15.0, 9.0, 25.0, 19.0]},
        {"type": "rectangle", "points": [21.0, 9.0, 31.0, 19.0]},
    ]
    assert function.preprocessed == 3


def test_several_objects_are_tracked_with_one_preprocessing_of_each_frame(red_square) -> None:
    gateway, function = red_square
    start = invoke(
        gateway,
        "red-square",
        {
            "image": encoded(square_frame(10)),
            "shapes": [
                {"type": "rectangle", "points": [9, 9, 19, 19]},
                {"type": "rectangle", "points": [4, 4, 24, 24]},
            ],
            "states": [],
        },
    )
    states = start.json()["states"]
    assert len(set(states)) == 2
    reply = invoke(
        gateway,
        "red-square",
        {"image": encoded(square_frame(20)), "shapes": [None, None], "states": states},
    )
    assert [s["points"] for s in reply.json()["shapes"]] == [[19, 9, 29, 19], [14, 4, 34, 24]]
    assert function.preprocessed == 2


def test_a_lost_object_is_a_null_shape_and_its_state_goes_on(red_square) -> None:
    gateway, _ = red_square
    start = invoke(
        gateway,
        "red-square",
        {
            "image": encoded(square_frame(10)),
            "shapes": [{"type": "rectangle", "points": [9, 9, 19, 19]}],
            "states": [],
        },
    )
    states = start.json()["states"]
    lost = invoke(gateway, "red-square", {"image": grey(), "shapes": [None], "states": states})
    assert lost.json() == {"shapes": [None], "states": states}
    found = invoke(
        gateway,
        "red-square",
        {"image": encoded(square_frame(30)), "shapes": [None], "states": states},
    )
    assert found.json()["shapes"] == [{"type": "rectangle", "points": [29, 9, 39, 19]}]


def test_a_call_with_shapes_and_states_starts_some_objects_and_tracks_the_others() -> None:
    # What an old UI sends, and CVAT passes on: a new object beside one being tracked.
    with Gateway([served(serve_functions.ShiftTracker(), "shift")], port=0) as gateway:
        start = invoke(
            gateway,
            "shift",
            {"image": grey(), "shapes": [{"type": "rectangle", "points": [1, 1, 5, 5]}]},
        )
        (old,) = start.json()["states"]
        new = {"type": "polygon", "points": [10, 10, 20, 10, 15, 20]}
        reply = invoke(
            gateway, "shift", {"image": grey(), "shapes": [new, None], "states": [None, old]}
        )
    assert reply.status == 200, reply.reason
    shapes, states = reply.json()["shapes"], reply.json()["states"]
    assert shapes == [new, {"type": "rectangle", "points": [4, 2, 8, 6]}]
    assert states[1] == old and states[0] not in (old, None)


def test_an_unknown_or_expired_state_is_refused_with_a_readable_reason() -> None:
    function = serve_functions.ShiftTracker()
    with Gateway([served(function, "shift", state_max_age=0.3)], port=0) as gateway:
        unknown = invoke(gateway, "shift", {"image": grey(), "shapes": [None], "states": ["x1"]})
        assert unknown.status == 400
        assert unknown.reason == "cvat-aa: Tracking state 'x1' not found - possibly expired"
        start = invoke(
            gateway,
            "shift",
            {"image": grey(), "shapes": [{"type": "polygon", "points": [1, 1, 9, 1, 5, 9]}]},
        )
        states = start.json()["states"]
        threading.Event().wait(0.6)
        expired = invoke(gateway, "shift", {"image": grey(), "shapes": [None], "states": states})
    assert expired.status == 400
    assert "not found - possibly expired" in expired.reason


def test_a_shape_type_the_tracker_does_not_track_and_a_new_frame_size_are_refused() -> None:
    with Gateway([served(serve_functions.ShiftTracker(), "shift")], port=0) as gateway:
        ellipse = invoke(
            gateway,
            "shift",
            {"image": grey(), "shapes": [{"type": "ellipse", "points": [5, 5, 9, 9]}]},
        )
        assert (ellipse.status, ellipse.reason) == (
            400,
            "cvat-aa: Unsupported shape type 'ellipse'",
        )
        start = invoke(
            gateway,
            "shift",
            {"image": grey(), "shapes": [{"type": "rectangle", "points": [1, 1, 5, 5]}]},
        )
        resized = invoke(
            gateway,
            "shift",
            {"image": grey(32, 24), "shapes": [None], "states": start.json()["states"]},
        )
    assert resized.status == 400
    assert resized.reason == (
        "cvat-aa: Image sizes of the start frame and the current frame are different"
    )


def test_a_polygon_moves_as_the_function_says() -> None:
    with Gateway([served(serve_functions.ShiftTracker(), "shift")], port=0) as gateway:
        start = invoke(
            gateway,
            "shift",
            {"image": grey(), "shapes": [{"type": "polygon", "points": [1, 1, 9, 1, 5, 9]}]},
        )
        states = start.json()["states"]
        shapes = []
        for _ in range(2):
            reply = invoke(gateway, "shift", {"image": grey(), "shapes": [None], "states": states})
            shapes += reply.json()["shapes"]
    assert shapes == [
        {"type": "polygon", "points": [4, 2, 12, 2, 8, 10]},
        {"type": "polygon", "points": [7, 3, 15, 3, 11, 11]},
    ]


# --- malformed calls and failures ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"pos_points": [[1, 2]]}, 'no "image"'),
        ({"image": "%%%", "pos_points": [[1, 2]]}, "not valid base64"),
        ({"image": grey(), "pos_points": [[1]]}, '"pos_points" must be a list of [x, y] points'),
        ({"image": grey(), "pos_points": "1,2"}, '"pos_points" must be a list of [x, y] points'),
        (
            {"image": grey(), "pos_points": [[1, 2]], "neg_points": [[True, 2]]},
            '"neg_points" must be a list of [x, y] points',
        ),
        (
            {"image": grey(), "pos_points": [[1, 2]], "obj_bbox": [[1, 2]]},
            '"obj_bbox" must be two points',
        ),
    ],
)
def test_a_malformed_interactor_call_is_refused_with_400_and_a_reason(
    box_of_points, payload: dict, message: str
) -> None:
    gateway, _ = box_of_points
    reply = invoke(gateway, "box-of-points", payload)
    assert reply.status == 400
    assert message in reply.reason


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"shapes": [], "states": []}, 'no "image"'),
        ({"image": grey(), "shapes": [[1, 2, 3, 4]]}, 'each of "shapes" must be null or an object'),
        ({"image": grey(), "shapes": [{"type": "rectangle", "points": ["a"]}]}, "not all numbers"),
        ({"image": grey(), "shapes": [None], "states": [{"id": 1}]}, '"states" must be a list'),
        ({"image": grey(), "shapes": [None, None], "states": ["a"]}, '2 "shapes" but 1 "states"'),
        ({"image": grey(), "shapes": [None]}, "neither a shape to track nor a tracking state"),
        (
            {"image": grey(), "shapes": [{"type": "rectangle", "points": [1, 2, 3]}]},
            "a shape to track is not valid",
        ),
    ],
)
def test_a_malformed_tracker_call_is_refused_with_400_and_a_reason(
    red_square, payload: dict, message: str
) -> None:
    gateway, _ = red_square
    reply = invoke(gateway, "red-square", payload)
    assert reply.status == 400, reply.reason
    assert message in reply.reason


def test_a_function_that_raises_or_breaks_the_protocol_is_a_500_that_says_so() -> None:
    functions = [
        served(serve_functions.RaisingInteractor(), "interactor"),
        served(serve_functions.ShiftTracker(raising=True), "raising-tracker"),
        served(serve_functions.ShiftTracker(broken=True), "broken-tracker"),
    ]
    rectangle = {"type": "rectangle", "points": [1, 1, 5, 5]}
    with Gateway(functions, port=0) as gateway:
        raised = click(gateway, "interactor", grey(), pos=[[2, 2]])
        broken = click(gateway, "interactor", grey(), pos=[[20, 20]])
        tracker_replies = {}
        for function_id in ("raising-tracker", "broken-tracker"):
            start = invoke(gateway, function_id, {"image": grey(), "shapes": [rectangle]})
            tracker_replies[function_id] = invoke(
                gateway,
                function_id,
                {"image": grey(), "shapes": [None], "states": start.json()["states"]},
            )
        metrics = gateway.metrics.as_dict()
    assert (raised.status, raised.reason) == (
        500,
        "cvat-aa: function 'interactor' failed: ValueError: the model cannot segment the corner",
    )
    assert broken.status == 500
    assert broken.reason.startswith("cvat-aa: function 'interactor' is broken:")
    assert "rectangle" in broken.reason
    assert tracker_replies["raising-tracker"].status == 500
    assert tracker_replies["raising-tracker"].reason == (
        "cvat-aa: function 'raising-tracker' failed: RuntimeError: the tracker lost its footing"
    )
    assert tracker_replies["broken-tracker"].status == 500
    assert tracker_replies["broken-tracker"].reason == (
        "cvat-aa: function 'broken-tracker' is broken: function output shape of type"
        " 'polyline', but original shape was of type 'rectangle'"
    )
    assert metrics["interactor"]["errors"] == {"function_failed": 1, "bad_function": 1}


def test_one_gateway_serves_every_kind_and_each_call_goes_to_its_kind() -> None:
    functions = [
        served(serve_functions.EveryKind(), "detector"),
        served(serve_functions.BoxOfPoints(), "interactor"),
        served(serve_functions.ShiftTracker(), "tracker"),
    ]
    with Gateway(functions, port=0) as gateway:
        kinds = {
            name: config["metadata"]["annotations"]["type"]
            for name, config in list_functions(gateway).items()
        }
        detected = invoke(gateway, "detector", {"image": grey()})
        clicked = click(gateway, "interactor", grey(), pos=[[3, 3]])
        port = gateway.direct_ports["tracker"]
        # CVAT's direct invoke method: the payload alone, on the function's own port.
        tracked = http.request(
            "POST",
            f"http://127.0.0.1:{port}",
            body=json.dumps(
                {"image": grey(), "shapes": [{"type": "rectangle", "points": [1, 1, 5, 5]}]}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        # A detector's payload sent to an interactor is an interactor call without points.
        wrong = invoke(gateway, "interactor", {"image": grey()})
    assert kinds == {"detector": "detector", "interactor": "interactor", "tracker": "tracker"}
    assert detected.status == clicked.status == tracked.status == 200
    assert isinstance(detected.json(), list)
    assert clicked.json()["shapes"][0]["type"] == "mask"
    assert tracked.json()["shapes"] == [{"type": "rectangle", "points": [1, 1, 5, 5]}]
    assert (wrong.status, wrong.reason) == (400, "cvat-aa: not enough positive points")


# --- behind a lambda manager --------------------------------------------------------------------


@pytest.fixture
def behind_cvat(tmp_path):
    """A test server whose lambda manager calls a gateway serving an interactor of masks, one
    of polygons and a tracker; the server and the mask interactor."""
    box_of_points = serve_functions.BoxOfPoints()
    functions = [
        served(box_of_points, "box-of-points"),
        served(serve_functions.PolygonOfPoints(), "polygon"),
        served(serve_functions.RedSquareTracker(), "red-square"),
    ]
    with (
        Gateway(functions, port=0, direct=False) as gateway,
        TestServer(data_dir=tmp_path / "server", nuclio_url=gateway.url) as server,
    ):
        yield server, box_of_points


def call(client, function_id: str, **fields: Any) -> tuple[int, Any]:
    """``POST /api/lambda/functions/{id}`` as CVAT's UI sends it: the status and the answer."""
    from cvat_sdk.api_client import exceptions

    try:
        _, reply = client.api_client.lambda_api.create_functions(
            function_id, online_function_call_request=fields, _parse_response=False
        )
    except exceptions.ApiException as ex:
        return ex.status, json.loads(ex.body)
    return reply.status, reply.json()


def test_cvat_lists_the_interactor_and_the_tracker_as_its_ui_reads_them(behind_cvat) -> None:
    server, _ = behind_cvat
    with server.make_client() as client:
        listed = client.api_client.lambda_api.list_functions(_parse_response=False)[1].json()
    by_id = {f["id"]: f for f in listed}
    box = by_id["box-of-points"]
    assert box["kind"] == "interactor"
    assert box["labels_v2"] == []
    assert (box["min_pos_points"], box["min_neg_points"]) == (1, 0)
    assert (box["startswith_box"], box["startswith_box_optional"]) == (False, True)
    assert box["help_message"].startswith("Takes at least 1 positive point")
    polygon = by_id["polygon"]
    assert (polygon["min_neg_points"], polygon["startswith_box"]) == (-1, False)
    tracker = by_id["red-square"]
    assert (tracker["kind"], tracker["supported_shape_types"]) == ("tracker", ["rectangle"])


def test_through_cvat_an_interactor_call_returns_a_mask_and_reuses_the_frame(
    behind_cvat,
) -> None:
    server, function = behind_cvat
    task = server.create_task(
        "interact", images=[square_frame(10), square_frame(20)], image_quality=100
    )
    with server.make_client() as client:
        first = call(
            client, "box-of-points", task=task, frame=1, pos_points=[[10, 12]], neg_points=[]
        )
        second = call(
            client,
            "box-of-points",
            task=task,
            frame=1,
            pos_points=[[10, 12], [30, 20]],
            neg_points=[[40, 40]],
        )
    assert first[0] == second[0] == 200, (first, second)
    assert mask_box(first[1]["shapes"][0])[1] == [10, 12, 10, 12]
    assert mask_box(second[1]["shapes"][0])[1] == [10, 12, 30, 20]
    # CVAT sends the same frame's bytes on every click: preprocessed once.
    assert function.preprocessed == [(64, 48)]


def test_through_cvat_a_region_of_interest_is_cropped_and_the_mask_moved_back(
    behind_cvat,
) -> None:
    server, function = behind_cvat
    task = server.create_task("interact-roi", images=[square_frame(10)])
    with server.make_client() as client:
        status, answer = call(
            client,
            "box-of-points",
            task=task,
            frame=0,
            pos_points=[[20, 20], [24, 30]],
            neg_points=[],
            roi=[10, 10, 40, 40],
        )
    assert status == 200, answer
    # The function saw the 30x30 region, its points moved into it.
    assert function.preprocessed == [(30, 30)]
    assert answer["shapes"][0]["points"][-4:] == [20, 20, 24, 30]


def test_through_cvat_a_polygon_interactor_returns_a_polygon(behind_cvat) -> None:
    server, _ = behind_cvat
    task = server.create_task("interact-polygon", images=[square_frame(10)])
    with server.make_client() as client:
        status, answer = call(
            client,
            "polygon",
            task=task,
            frame=0,
            pos_points=[[1, 2], [30, 2], [15, 40]],
            neg_points=[],
        )
        refused = call(client, "polygon", task=task, frame=0, pos_points=[[1, 2]], neg_points=[])
    assert status == 200, answer
    assert answer == {
        "shapes": [{"type": "polygon", "points": [1, 2, 30, 2, 15, 40], "attributes": []}]
    }
    # CVAT passes on the status and the reason phrase.
    assert refused[0] == 400
    assert "cvat-aa: not enough positive points" in refused[1]


def test_through_cvat_a_tracker_moves_over_three_frames_with_the_states_cvat_signed(
    behind_cvat,
) -> None:
    server, _ = behind_cvat
    task = server.create_task(
        "track", images=[square_frame(10), square_frame(16), square_frame(22)], image_quality=100
    )
    with server.make_client() as client:
        status, start = call(
            client,
            "red-square",
            task=task,
            frame=0,
            shapes=[{"type": "rectangle", "points": [9, 9, 19, 19]}],
        )
        assert status == 200, start
        # CVAT signs the state serve gave out: JSON, a timestamp and a signature.
        (signed,) = start["states"]
        assert signed.startswith('"') and signed.count(":") >= 2
        moved = []
        states = start["states"]
        for frame in (1, 2):
            status, answer = call(client, "red-square", task=task, frame=frame, states=states)
            assert status == 200, answer
            moved += answer["shapes"]
            states = answer["states"]
        forged = signed.replace(signed.split(":")[0], json.dumps("not-a-state"))
        refused = call(client, "red-square", task=task, frame=2, states=[forged])
    assert moved == [
        {"type": "rectangle", "points": [15.0, 9.0, 25.0, 19.0]},
        {"type": "rectangle", "points": [21.0, 9.0, 31.0, 19.0]},
    ]
    # A state CVAT did not sign never reaches serve.
    assert refused == (400, "Invalid or expired tracker state")


def test_through_cvat_a_state_serve_forgot_is_a_400_that_says_so(tmp_path) -> None:
    task_images = [square_frame(10), square_frame(16)]
    with (
        Gateway(
            [served(serve_functions.RedSquareTracker(), "red-square", state_max_age=0.3)],
            port=0,
            direct=False,
        ) as gateway,
        TestServer(data_dir=tmp_path / "server", nuclio_url=gateway.url) as server,
    ):
        task = server.create_task("track-expired", images=task_images, image_quality=100)
        with server.make_client() as client:
            _, start = call(
                client,
                "red-square",
                task=task,
                frame=0,
                shapes=[{"type": "rectangle", "points": [9, 9, 19, 19]}],
            )
            threading.Event().wait(0.6)
            status, answer = call(client, "red-square", task=task, frame=1, states=start["states"])
    assert status == 400
    assert "cvat-aa: Tracking state" in answer and "not found - possibly expired" in answer


# --- the real plugins ---------------------------------------------------------------------------


def _installed(name: str) -> bool:
    return name in {ep.name for ep in entry_points(group="cvat_aa.functions")}


def textured_scene(corners: list[tuple[int, int]], side: int = 40) -> list[PIL.Image.Image]:
    """Frames of a blurred background with a textured square at each of ``corners``."""
    import cv2

    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(60, 200, (240, 320, 3), dtype=np.uint8), (0, 0), 4)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), (0, 0), 1.5)
    frames = []
    for x, y in corners:
        pixels = background.copy()
        pixels[y : y + side, x : x + side] = texture
        frames.append(PIL.Image.fromarray(pixels))
    return frames


@pytest.mark.skipif(not _installed("opencv-tracker"), reason="opencv-tracker is not installed")
def test_through_cvat_the_opencv_tracker_follows_a_square_over_three_frames(tmp_path) -> None:
    corners = [(40, 50), (47, 55), (54, 60)]
    function = ServedFunction(FunctionChoice(source="opencv-tracker"))
    with (
        Gateway([function], port=0, direct=False) as gateway,
        TestServer(data_dir=tmp_path / "server", nuclio_url=gateway.url) as server,
    ):
        task = server.create_task("opencv", images=textured_scene(corners), image_quality=100)
        with server.make_client() as client:
            x, y = corners[0]
            status, answer = call(
                client,
                "opencv-tracker",
                task=task,
                frame=0,
                shapes=[{"type": "rectangle", "points": [x, y, x + 40, y + 40]}],
            )
            assert status == 200, answer
            for frame in (1, 2):
                status, answer = call(
                    client, "opencv-tracker", task=task, frame=frame, states=answer["states"]
                )
                assert status == 200, answer
                (shape,) = answer["shapes"]
                x, y = corners[frame]
                assert shape["type"] == "rectangle"
                assert shape["points"] == pytest.approx([x, y, x + 40, y + 40], abs=4)


@pytest.mark.slow
@pytest.mark.skipif(not _installed("segment-anything"), reason="segment-anything is not installed")
def test_through_cvat_segment_anything_answers_a_mask_and_a_polygon_encoding_the_frame_once(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    # Ultralytics offline, its settings out of the user's folder; a random-weight MobileSAM.
    monkeypatch.setenv("YOLO_OFFLINE", "true")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    from cvat_aa_segment_anything.models import build_model

    torch.manual_seed(0)
    weights = tmp_path / "mobile_sam-random.pt"
    torch.save(build_model("mobile_sam").state_dict(), weights)
    params = {"weights": str(weights), "device": "cpu"}
    functions = [
        ServedFunction(FunctionChoice(source="segment-anything", id="sam", params=params)),
        ServedFunction(
            FunctionChoice(
                source="segment-anything",
                id="sam-polygon",
                params={**params, "output": "polygon"},
            )
        ),
    ]
    # A grey picture with a bright, textured square in it (the plugin's own test picture).
    pixels = np.full((120, 160, 3), 90, dtype=np.uint8)
    pixels[30:80, 50:110] = np.random.default_rng(0).integers(180, 255, (50, 60, 3))
    with (
        Gateway(functions, port=0, direct=False) as gateway,
        TestServer(data_dir=tmp_path / "server", nuclio_url=gateway.url) as server,
    ):
        task = server.create_task("sam", images=[PIL.Image.fromarray(pixels)], image_quality=100)
        with server.make_client() as client:
            clicks = [
                call(client, "sam", task=task, frame=0, pos_points=[[80, 55]], neg_points=[]),
                call(
                    client,
                    "sam",
                    task=task,
                    frame=0,
                    pos_points=[[80, 55], [70, 40]],
                    neg_points=[[10, 10]],
                ),
            ]
            outlined = call(
                client,
                "sam-polygon",
                task=task,
                frame=0,
                pos_points=[[80, 55]],
                neg_points=[],
                obj_bbox=[[40, 20], [120, 90]],
            )
        metrics = gateway.metrics.as_dict()
    for status, answer in clicks:
        assert status == 200, answer
        (shape,) = answer["shapes"]
        assert shape["type"] == "mask"
        assert decode_mask(shape["points"], image_width=160, image_height=120).any()
        assert [a["spec_id"] for a in shape["attributes"]] == [0]  # the confidence
    assert metrics["sam"]["image_cache"] == {"hits": 1, "misses": 1}
    status, answer = outlined
    assert status == 200, answer
    (polygon,) = answer["shapes"]
    assert polygon["type"] == "polygon" and len(polygon["points"]) >= 6
