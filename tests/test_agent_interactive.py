"""The agent serving interactors and trackers (AI Tools → Interactors/Trackers in CVAT's UI).

A user's clicks and tracked shapes reach the agent as CVAT Online queues them: ``POST
/api/functions/{id}/run`` on cvat-aa's test server, which waits for the agent's answer and
returns it (or, when the agent fails the request, 500 with the agent's message). The agent
runs in a thread, as ``cvat-aa agent run`` runs it, for as long as the test needs it: a
tracker's states live in the agent. cvat-cli 2.80's agent drivers are the reference for the
native function's fields, the compatibility rules and the messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import cvat_aa
import numpy
import PIL.Image
import pytest
import requests
from cvat_aa.agent import (
    Agent,
    IncompatibleFunctionError,
    check_compatible,
    create_native_function,
    native_fields,
    runner_for,
)
from cvat_aa.pipeline.executors import LocalExecutor
from cvat_aa_testing import TestServer
from cvat_sdk import models

# --- the functions ----------------------------------------------------------------------------


class Square:
    """An interactor: the box the user drew, or else a square of side 8 around the first
    positive point, cut to the frame; its confidence falls with each negative point. It
    records the size of every image it preprocesses."""

    spec = cvat_aa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=0, min_bounding_boxes=0)

    def __init__(self, spec: cvat_aa.InteractionFunctionSpec | None = None) -> None:
        if spec is not None:
            self.spec = spec
        self.preprocessed: list[tuple[int, int]] = []

    def preprocess_image(self, context: Any, image: PIL.Image.Image) -> tuple[int, int]:
        self.preprocessed.append(image.size)
        return image.size

    def detect(self, context: Any, size: tuple[int, int], prompts: Any) -> list[Any]:
        width, height = size
        if prompts.bounding_box is not None:
            (x1, y1), (x2, y2) = prompts.bounding_box
            points = [x1, y1, x2, y2]
        else:
            x, y = prompts.pos_points[0]
            points = [max(x - 4, 0), max(y - 4, 0), min(x + 4, width), min(y + 4, height)]
        confidence = models.AttributeValRequest(
            spec_id=cvat_aa.InteractionResultAttributes.CONFIDENCE,
            value=str(1 / (1 + len(prompts.neg_points))),
        )
        return [
            cvat_aa.InteractionResultShape(type="rectangle", points=points, attributes=[confidence])
        ]


class Follower:
    """A tracker of rectangles around a white square on a black frame: on each frame, the box
    keeps its size and is centred on the white pixels within 12 pixels of where it was (the
    state it updates); none there, no shape."""

    spec = cvat_aa.TrackingFunctionSpec(supported_shape_types=["rectangle"])

    def __init__(self) -> None:
        self.preprocessed = 0

    def preprocess_image(self, context: Any, image: PIL.Image.Image) -> numpy.ndarray:
        self.preprocessed += 1
        return numpy.asarray(image.convert("L")) > 128

    def init_tracking_state(self, context: Any, white: numpy.ndarray, shape: Any) -> list[float]:
        return list(shape.points)

    def track(self, context: Any, white: numpy.ndarray, box: list[float]) -> Any:
        x1, y1, x2, y2 = box
        ys, xs = numpy.nonzero(white)
        near = (xs >= x1 - 12) & (xs <= x2 + 12) & (ys >= y1 - 12) & (ys <= y2 + 12)
        if not near.any():
            return None
        cx, cy = float(xs[near].mean()) + 0.5, float(ys[near].mean()) + 0.5
        w, h = x2 - x1, y2 - y1
        box[:] = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        return cvat_aa.TrackableShape(type="rectangle", points=list(box))


class Raising(Square):
    def detect(self, context: Any, size: Any, prompts: Any) -> list[Any]:
        raise ValueError("the model cannot take this click")


class ThreePointRectangle(Square):
    def detect(self, context: Any, size: Any, prompts: Any) -> list[Any]:
        return [cvat_aa.InteractionResultShape(type="rectangle", points=[1, 2, 3])]


def moving_square(frames: int, *, step: int = 12, size: tuple[int, int] = (64, 48)) -> list:
    """Black frames with a white 8x8 square at x = 4 + step * i, y = 20."""
    images = []
    for i in range(frames):
        image = PIL.Image.new("RGB", size)
        image.paste((255, 255, 255), (4 + step * i, 20, 12 + step * i, 28))
        images.append(image)
    return images


# --- the agent and the UI ---------------------------------------------------------------------


def wait_for(condition: Callable[[], Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.fixture
def serve(cvat_server: TestServer, cvat_client) -> Iterator[Callable[..., int]]:
    """``serve(function)``: registers a native function for ``function`` as ``cvat-aa agent
    create`` does, starts an agent for it in a thread and returns the function's id once the
    agent listens to the queue's events. The agents stop when the test ends."""
    running: list[tuple[Agent, threading.Thread]] = []

    def start(function: Any, **fields: Any) -> int:
        runner = runner_for(cvat_client, LocalExecutor(), function, name="test", batch_size=1)
        record = create_native_function(
            cvat_client, name=f"f{len(running)}", **{**native_fields(runner.spec), **fields}
        )
        agent = Agent(cvat_client, record["id"], runner)
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        running.append((agent, thread))
        watch = f"/function:{record['id']}/watch$"
        wait_for(lambda: cvat_server.request_log.entries(method="GET", path=watch))
        return record["id"]

    yield start
    for agent, thread in running:
        agent.stop()
        thread.join(10)


def run(server: TestServer, function_id: int, body: dict[str, Any]) -> requests.Response:
    """What CVAT's UI sends for a click or a tracked frame; the agent's answer."""
    return requests.post(
        f"{server.url}/api/functions/{function_id}/run",
        json=body,
        auth=(server.username, server.password),
        timeout=60,
    )


def failure(answer: requests.Response) -> str:
    assert answer.status_code == 500, answer.text
    return answer.json()["detail"]


def frame_reads(server: TestServer, task_id: int) -> int:
    return len(server.request_log.entries(method="GET", path=f"^/api/tasks/{task_id}/data/?$"))


@pytest.fixture
def task(cvat_server: TestServer) -> int:
    """Three 64x48 frames with a white square moving 12 pixels right each frame."""
    return cvat_server.create_task(
        "square", images=moving_square(3), labels=[{"name": "thing", "type": "rectangle"}]
    )


# --- the native function ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        cvat_aa.InteractionFunctionSpec(min_pos_points=1),
        cvat_aa.InteractionFunctionSpec(min_pos_points=2, min_neg_points=0, min_bounding_boxes=0),
        cvat_aa.InteractionFunctionSpec(min_pos_points=0, min_neg_points=3, min_bounding_boxes=1),
    ],
)
def test_an_interactor_is_registered_with_the_fields_cvat_cli_gives_it(spec) -> None:
    from cvat_cli._internal.agent_driver_interaction import AgentInteractionFunctionDriver

    theirs = AgentInteractionFunctionDriver.get_remote_function_fields(spec)
    assert native_fields(spec) == {"kind": "interactor", **theirs}


def test_a_tracker_is_registered_with_its_shape_types_sorted_as_cvat_cli_does() -> None:
    from cvat_cli._internal.agent_driver_tracking import AgentTrackingFunctionDriver

    spec = cvat_aa.TrackingFunctionSpec(supported_shape_types=["rectangle", "polygon", "points"])
    theirs = AgentTrackingFunctionDriver.get_remote_function_fields(spec)
    assert native_fields(spec) == {"kind": "tracker", **theirs}
    assert native_fields(spec)["supported_shape_types"] == ["points", "polygon", "rectangle"]


def _remote(kind: str, **fields: Any) -> dict[str, Any]:
    """A native function as the server describes it (the test server's defaults)."""
    return {
        "id": 7,
        "name": "remote",
        "provider": "native",
        "kind": kind,
        "min_pos_points": 0,
        "min_neg_points": -1,
        "startswith_box": False,
        "startswith_box_optional": False,
        "supported_shape_types": [],
        **fields,
    }


INCOMPATIBLE = [
    (cvat_aa.InteractionFunctionSpec(min_pos_points=2), _remote("interactor", min_pos_points=1)),
    (cvat_aa.InteractionFunctionSpec(min_pos_points=0), _remote("interactor", min_neg_points=0)),
    (
        cvat_aa.InteractionFunctionSpec(min_pos_points=0, min_neg_points=2),
        _remote("interactor", min_neg_points=1),
    ),
    (cvat_aa.InteractionFunctionSpec(min_pos_points=0, min_neg_points=1), _remote("interactor")),
    (cvat_aa.InteractionFunctionSpec(min_pos_points=0), _remote("interactor", startswith_box=True)),
    (
        cvat_aa.InteractionFunctionSpec(min_pos_points=0, min_bounding_boxes=1),
        _remote("interactor", startswith_box_optional=True),
    ),
    (
        cvat_aa.TrackingFunctionSpec(supported_shape_types=["rectangle"]),
        _remote("tracker", supported_shape_types=["rectangle", "polygon"]),
    ),
]


@pytest.mark.parametrize(("spec", "remote"), INCOMPATIBLE)
def test_a_native_function_asking_what_the_function_cannot_do_is_refused_as_cvat_cli_refuses_it(
    spec, remote
) -> None:
    from cvat_cli._internal.agent import get_function_driver_class
    from cvat_cli._internal.agent_driver import IncompatibleFunctionError as TheirError

    driver = get_function_driver_class(spec)(None, None, spec)
    with pytest.raises(TheirError) as theirs:
        driver.validate_function_compatibility(remote)
    with pytest.raises(IncompatibleFunctionError) as ours:
        check_compatible(remote, spec)
    assert f"does not fit the function this agent runs: {theirs.value}." in str(ours.value)
    assert "Run the agent with the function it was created from" in str(ours.value)


def test_a_native_function_of_another_kind_is_refused() -> None:
    with pytest.raises(IncompatibleFunctionError, match="kind is 'detector' \\(expected 'tracker'"):
        check_compatible(_remote("detector", labels_v2=[]), Follower.spec)


@pytest.mark.parametrize(
    ("spec", "remote"),
    [
        (Square.spec, _remote("interactor", min_pos_points=1, min_neg_points=0)),
        (Square.spec, _remote("interactor", min_pos_points=3, startswith_box=True)),
        (Follower.spec, _remote("tracker", supported_shape_types=["rectangle"])),
        (Follower.spec, _remote("tracker")),
    ],
)
def test_a_native_function_asking_no_more_than_the_function_can_do_is_served(spec, remote) -> None:
    check_compatible(remote, spec)


def test_an_agent_refuses_to_start_on_an_incompatible_native_function(cvat_client) -> None:
    strict = Square(cvat_aa.InteractionFunctionSpec(min_pos_points=2))
    runner = runner_for(cvat_client, LocalExecutor(), strict, name="strict", batch_size=1)
    record = create_native_function(cvat_client, name="lax", kind="interactor", min_pos_points=1)
    with pytest.raises(IncompatibleFunctionError, match="requires at least 2"):
        Agent(cvat_client, record["id"], runner)


# --- interactors ------------------------------------------------------------------------------


def test_a_click_is_answered_with_the_interactors_shapes(cvat_server, serve, task) -> None:
    function_id = serve(Square())
    answer = run(
        cvat_server,
        function_id,
        {"type": "interact", "task": task, "frame": 1, "pos_points": [[10, 20]]},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "shapes": [
            {
                "type": "rectangle",
                "points": [6.0, 16.0, 14.0, 24.0],
                "attributes": [{"spec_id": 0, "value": "1.0"}],
            }
        ]
    }


def test_negative_points_and_a_box_reach_the_function(cvat_server, serve, task) -> None:
    function_id = serve(Square())
    answer = run(
        cvat_server,
        function_id,
        {
            "type": "interact",
            "task": task,
            "frame": 0,
            "pos_points": [[10, 20]],
            "neg_points": [[1, 1], [2, 2], [3, 3]],
            "obj_bbox": [[5, 6], [30, 40]],
        },
    )
    assert answer.status_code == 200, answer.text
    (shape,) = answer.json()["shapes"]
    assert shape["points"] == [5.0, 6.0, 30.0, 40.0]
    assert shape["attributes"] == [{"spec_id": 0, "value": "0.25"}]


def test_clicks_on_one_frame_preprocess_and_read_it_once(cvat_server, serve, task) -> None:
    function = Square()
    function_id = serve(function)
    click = {"type": "interact", "task": task, "frame": 2, "pos_points": [[10, 20]]}
    reads_before = frame_reads(cvat_server, task)
    for x in (10, 20, 30):
        answer = run(cvat_server, function_id, {**click, "pos_points": [[x, 20]]})
        assert answer.json()["shapes"][0]["points"][0] == x - 4
    assert function.preprocessed == [(64, 48)]
    assert frame_reads(cvat_server, task) == reads_before + 1
    # Another frame, or the same frame cut to another region, is another image.
    run(cvat_server, function_id, {**click, "frame": 1})
    run(cvat_server, function_id, {**click, "roi": [0, 0, 40, 30]})
    assert function.preprocessed == [(64, 48), (64, 48), (40, 30)]
    assert frame_reads(cvat_server, task) == reads_before + 3


def test_a_click_in_a_region_of_interest_sees_the_region_only(cvat_server, serve, task) -> None:
    function_id = serve(Square())
    body = {"type": "interact", "task": task, "frame": 0, "pos_points": [[30, 24]]}
    answer = run(cvat_server, function_id, {**body, "roi": [8, 4, 40, 30]})
    # The frame is cut to the region's 32x26 pixels, as cvat-cli cuts it; points are the
    # region's.
    assert answer.json()["shapes"][0]["points"] == [26.0, 20.0, 32.0, 26.0]
    outside = run(cvat_server, function_id, {**body, "roi": [8, 4, 80, 30]})
    assert failure(outside) == "Invalid annotation request: Invalid ROI"


@pytest.mark.parametrize(
    ("spec", "prompts", "message"),
    [
        (
            cvat_aa.InteractionFunctionSpec(min_pos_points=2),
            {"pos_points": [[1, 1]]},
            "not enough positive points",
        ),
        (
            cvat_aa.InteractionFunctionSpec(min_pos_points=1),
            {"pos_points": [[1, 1]], "neg_points": [[2, 2]]},
            "negative points are not supported",
        ),
        (
            cvat_aa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=2),
            {"pos_points": [[1, 1]], "neg_points": [[2, 2]]},
            "not enough negative points",
        ),
        (
            cvat_aa.InteractionFunctionSpec(min_pos_points=1),
            {"pos_points": [[1, 1]], "obj_bbox": [[1, 1], [5, 5]]},
            "bounding boxes are not supported",
        ),
        (
            cvat_aa.InteractionFunctionSpec(min_pos_points=0, min_bounding_boxes=1),
            {"pos_points": [[1, 1]]},
            "a bounding box is required",
        ),
    ],
)
def test_prompts_the_function_refuses_fail_the_click_and_the_agent_serves_on(
    cvat_server, serve, task, spec, prompts, message
) -> None:
    function = Square(spec)
    function_id = serve(function)
    answer = run(
        cvat_server, function_id, {"type": "interact", "task": task, "frame": 0, **prompts}
    )
    assert failure(answer) == f"Invalid annotation request: {message}"
    assert function.preprocessed == []  # refused before the frame is read
    good = {"pos_points": [[1, 1], [2, 2]], "neg_points": [[3, 3], [4, 4]]}
    if spec.min_bounding_boxes is not None:
        good["obj_bbox"] = [[1, 1], [5, 5]]
    if spec.min_neg_points is None:
        del good["neg_points"]
    answer = run(cvat_server, function_id, {"type": "interact", "task": task, "frame": 0, **good})
    assert answer.status_code == 200, answer.text


def test_an_interactor_that_raises_fails_the_click_with_its_message(
    cvat_server, serve, task
) -> None:
    function_id = serve(Raising())
    answer = run(
        cvat_server,
        function_id,
        {"type": "interact", "task": task, "frame": 1, "pos_points": [[1, 1]]},
    )
    message = failure(answer)
    assert "ValueError: the model cannot take this click" in message
    assert "frame 1" in message


def test_a_malformed_shape_is_refused_before_it_is_sent(cvat_server, serve, task) -> None:
    function_id = serve(ThreePointRectangle())
    answer = run(
        cvat_server,
        function_id,
        {"type": "interact", "task": task, "frame": 0, "pos_points": [[1, 1]]},
    )
    assert failure(answer).startswith("Underlying function returned incorrect result:")


# --- trackers ---------------------------------------------------------------------------------


def _track(server: TestServer, function_id: int, task: int, frame: int, states: list) -> dict:
    answer = run(
        server, function_id, {"type": "track", "task": task, "frame": frame, "states": states}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_tracker_follows_the_square_over_three_frames_with_its_states_fed_back(
    cvat_server, serve, task
) -> None:
    function = Follower()
    function_id = serve(function)
    start = {"type": "rectangle", "points": [4, 20, 12, 28]}
    elsewhere = {"type": "rectangle", "points": [56, 0, 64, 8]}  # nothing white near it
    answer = run(
        cvat_server,
        function_id,
        {"type": "init_tracking", "task": task, "frame": 0, "shapes": [start, elsewhere]},
    )
    assert answer.status_code == 200, answer.text
    states = answer.json()["states"]
    assert len(states) == 2 and len(set(states)) == 2
    for frame in (1, 2):
        tracked = _track(cvat_server, function_id, task, frame, states)
        assert tracked["states"] == states
        x = 4 + 12 * frame
        assert tracked["shapes"] == [
            {"type": "rectangle", "points": [x, 20.0, x + 8.0, 28.0]},
            None,
        ]
    assert function.preprocessed == 3  # once a frame, for both states


def test_a_tracker_state_moves_only_when_it_is_tracked(cvat_server, serve, task) -> None:
    function_id = serve(Follower())
    init = {"type": "init_tracking", "task": task, "frame": 0}
    first = run(
        cvat_server,
        function_id,
        {**init, "shapes": [{"type": "rectangle", "points": [4, 20, 12, 28]}]},
    )
    (state,) = first.json()["states"]
    # The square on frame 2 is too far from where it was on frame 0 for this tracker, and
    # near enough to where it was on frame 1.
    assert _track(cvat_server, function_id, task, 2, [state])["shapes"] == [None]
    _track(cvat_server, function_id, task, 1, [state])
    assert _track(cvat_server, function_id, task, 2, [state])["shapes"] == [
        {"type": "rectangle", "points": [28.0, 20.0, 36.0, 28.0]}
    ]


def test_an_unknown_state_fails_the_track_request(cvat_server, serve, task) -> None:
    function_id = serve(Follower())
    answer = run(
        cvat_server, function_id, {"type": "track", "task": task, "frame": 1, "states": ["made-up"]}
    )
    assert failure(answer) == (
        "Invalid annotation request: Tracking state 'made-up' not found - possibly expired"
    )


def test_a_state_made_on_one_task_is_refused_on_another(cvat_server, serve, task) -> None:
    other = cvat_server.create_task("other", images=moving_square(2), labels=[{"name": "thing"}])
    function_id = serve(Follower())
    init = {"type": "init_tracking", "task": task, "frame": 0}
    answer = run(
        cvat_server,
        function_id,
        {**init, "shapes": [{"type": "rectangle", "points": [4, 20, 12, 28]}]},
    )
    (state,) = answer.json()["states"]
    answer = run(
        cvat_server, function_id, {"type": "track", "task": other, "frame": 1, "states": [state]}
    )
    assert failure(answer) == (
        f"Invalid annotation request: Tracking state {state!r} is not for task #{other}"
    )
    assert _track(cvat_server, function_id, task, 1, [state])["shapes"][0] is not None


def test_a_shape_type_the_tracker_does_not_support_fails_init_tracking(
    cvat_server, serve, task
) -> None:
    function_id = serve(Follower())
    answer = run(
        cvat_server,
        function_id,
        {
            "type": "init_tracking",
            "task": task,
            "frame": 0,
            "shapes": [{"type": "polygon", "points": [1, 1, 5, 1, 5, 5]}],
        },
    )
    assert failure(answer) == "Invalid annotation request: Unsupported shape type 'polygon'"


def test_a_frame_of_another_size_fails_the_track_request(cvat_server, serve) -> None:
    images = moving_square(1) + moving_square(1, size=(80, 48))
    task = cvat_server.create_task("sizes", images=images, labels=[{"name": "thing"}])
    function_id = serve(Follower())
    init = {"type": "init_tracking", "task": task, "frame": 0}
    answer = run(
        cvat_server,
        function_id,
        {**init, "shapes": [{"type": "rectangle", "points": [4, 20, 12, 28]}]},
    )
    answer = run(
        cvat_server,
        function_id,
        {"type": "track", "task": task, "frame": 1, "states": answer.json()["states"]},
    )
    assert failure(answer) == (
        "Invalid annotation request:"
        " Image sizes of the start frame and the current frame are different"
    )


def test_clicks_and_tracked_frames_survive_gateway_errors_on_frame_reads(
    cvat_server, serve, task
) -> None:
    interactor_id, tracker_id = serve(Square()), serve(Follower())
    frame = f"^/api/tasks/{task}/data/?$"
    cvat_server.faults.fail_next(1, status=502, path=frame)
    click = {"type": "interact", "task": task, "frame": 0, "pos_points": [[8, 24]]}
    assert run(cvat_server, interactor_id, click).status_code == 200
    cvat_server.faults.fail_next(1, status=503, path=frame)
    init = {"type": "init_tracking", "task": task, "frame": 0}
    answer = run(
        cvat_server,
        tracker_id,
        {**init, "shapes": [{"type": "rectangle", "points": [4, 20, 12, 28]}]},
    )
    assert answer.status_code == 200, answer.text
    cvat_server.faults.fail_next(1, status=504, path=frame)
    tracked = _track(cvat_server, tracker_id, task, 1, answer.json()["states"])
    assert tracked["shapes"] == [{"type": "rectangle", "points": [16.0, 20.0, 24.0, 28.0]}]
    faulted = [e.fault for e in cvat_server.request_log if e.fault]
    assert len(faulted) == 3
