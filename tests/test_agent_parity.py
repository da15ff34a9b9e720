"""Parity: one function, served by cvat-cli 2.80's agent unchanged and by ``cvat-aa agent run``,
answers CVAT alike.

For each kind of function (a detector, an interactor, a tracker, and the installed plugins'
functions) the native function is registered once, with ``cvat-cli function create-native``
(``cvat-aa agent create`` must register the same record). Then each agent serves it in turn,
as a process started the way a user starts it (``cvat-cli ... function run-agent ID
--function-file F`` and ``cvat-aa agent run --function-file F --function-id ID``; not
``--burst``, since a tracker's states live in its agent), and gets the same requests, sent as
CVAT's UI sends them (``POST /api/functions/{id}/run``, and a whole-task request for the
detector) to cvat-aa's test server. The transcripts must be equal: status codes, shapes,
attributes, the messages of refused requests, and states that behave alike (state ids are
random, so each is written as the order in which it first appeared).

What cvat-aa does differently on purpose is left out: a function's own exception (cvat-cli
answers ``Unknown error``, cvat-aa the exception's type and message), and shapes that stray
outside the frame (cvat-aa fits or drops them; cvat-cli sends them as they are).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import PIL.Image
import pytest
import requests
from cvat_aa_testing import TestServer
from test_agent import IDENTITY, LABELS, comparable, frames

HERE = Path(__file__).parent

INTERACTOR = """
    import cvat_sdk.auto_annotation as cvataa
    import numpy
    from cvat_sdk import models
    from cvat_sdk.masks import encode_mask

    spec = cvataa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=0, min_bounding_boxes=0)


    def preprocess_image(context, image):
        return numpy.asarray(image.convert("L")) > 128


    def detect(context, white, prompts):
        # The white pixels in the box, or within 12 pixels of the clicks, less 5x5 pixels
        # around each negative point: as a mask, and the rectangle around it.
        height, width = white.shape
        if prompts.bounding_box is not None:
            (x1, y1), (x2, y2) = prompts.bounding_box
        else:
            xs = [x for x, _ in prompts.pos_points]
            ys = [y for _, y in prompts.pos_points]
            x1, y1, x2, y2 = min(xs) - 12, min(ys) - 12, max(xs) + 12, max(ys) + 12
        x1, y1 = max(int(x1), 0), max(int(y1), 0)
        x2, y2 = min(int(x2), width), min(int(y2), height)
        found = numpy.zeros_like(white)
        found[y1:y2, x1:x2] = white[y1:y2, x1:x2]
        for x, y in prompts.neg_points:
            found[max(int(y) - 2, 0) : int(y) + 3, max(int(x) - 2, 0) : int(x) + 3] = False
        ys, xs = numpy.nonzero(found)
        if not len(xs):
            return []
        share = models.AttributeValRequest(
            spec_id=cvataa.InteractionResultAttributes.CONFIDENCE,
            value=f"{found.sum() / white.sum():.4f}",
        )
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
        return [
            cvataa.InteractionResultShape(
                type="mask", points=encode_mask(found), attributes=[share]
            ),
            cvataa.InteractionResultShape(type="rectangle", points=box),
        ]
"""

TRACKER = """
    import cvat_sdk.auto_annotation as cvataa
    import numpy

    spec = cvataa.TrackingFunctionSpec(supported_shape_types=["rectangle", "polygon"])


    def preprocess_image(context, image):
        return numpy.asarray(image.convert("L")) > 128


    def _centre(points):
        return (
            (min(points[0::2]) + max(points[0::2])) / 2,
            (min(points[1::2]) + max(points[1::2])) / 2,
        )


    def init_tracking_state(context, white, shape):
        return {"points": list(shape.points), "centre": _centre(shape.points)}


    def track(context, white, state):
        # The shape moves with the white pixels within 12 pixels of where it was; none
        # there, it is lost.
        points = state["points"]
        x1, x2 = min(points[0::2]) - 12, max(points[0::2]) + 12
        y1, y2 = min(points[1::2]) - 12, max(points[1::2]) + 12
        ys, xs = numpy.nonzero(white)
        near = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
        if not near.any():
            return None
        cx, cy = float(xs[near].mean()) + 0.5, float(ys[near].mean()) + 0.5
        dx, dy = cx - state["centre"][0], cy - state["centre"][1]
        state["points"] = [p + (dx if i % 2 == 0 else dy) for i, p in enumerate(points)]
        state["centre"] = (cx, cy)
        return cvataa.TrackableShape(type=context.original_shape_type, points=state["points"])
"""


def moving_square(count: int, *, size: tuple[int, int] = (64, 48), step: int = 12) -> list:
    """Black frames with a white 8x8 square at x = 4 + step * i, y = 20."""
    images = []
    for i in range(count):
        image = PIL.Image.new("RGB", size)
        image.paste((255, 255, 255), (4 + step * i, 20, 12 + step * i, 28))
        images.append(image)
    return images


def textured_square(count: int) -> list:
    """160x120 noise frames with a checkered 24x24 square moving 4 pixels right a frame:
    something for OpenCV's trackers to follow."""
    import numpy

    rng = numpy.random.default_rng(3)
    background = rng.integers(0, 80, (120, 160, 3), dtype=numpy.uint8)
    pattern = numpy.kron(numpy.indices((6, 6)).sum(axis=0) % 2, numpy.ones((4, 4)))
    square = (pattern[..., None] * 200 + 40).astype(numpy.uint8).repeat(3, axis=2)
    images = []
    for i in range(count):
        pixels = background.copy()
        pixels[40:64, 30 + 4 * i : 54 + 4 * i] = square
        images.append(PIL.Image.fromarray(pixels))
    return images


# --- agents, as processes ---------------------------------------------------------------------


def _until(condition: Callable[[], Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not come true in time")
        time.sleep(0.05)


def cvat_cli_agent(server: TestServer, function_id: int, source: list[str]) -> list[str]:
    return [
        *(sys.executable, "-m", "cvat_cli", *server.cli_args()),
        *("function", "run-agent", str(function_id), *source),
    ]


def cvat_aa_agent(server: TestServer, function_id: int, source: list[str]) -> list[str]:
    return [
        *(sys.executable, "-m", "cvat_aa", "agent", "run", *source),
        *("--function-id", str(function_id), *server.cli_args()),
    ]


AGENTS = {"cvat-cli": cvat_cli_agent, "cvat-aa": cvat_aa_agent}


def _pythonpath() -> str:
    """This folder (functions the agents import) before the caller's PYTHONPATH."""
    return os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])


@contextmanager
def serving(server: TestServer, command: list[str], function_id: int, tmp: Path) -> Iterator[None]:
    """The agent ``command`` runs while the block runs; it has connected to the function's
    queue (its event stream) when the block starts."""
    watch = f"/function:{function_id}/watch$"
    watches = len(server.request_log.entries(method="GET", path=watch))
    log = tmp / f"agent-{time.monotonic_ns()}.log"
    env = {
        **os.environ,
        "PYTHONPATH": _pythonpath(),
        "XDG_CACHE_HOME": str(tmp / "cache"),  # cvat-cli's dataset cache
    }
    with log.open("w") as stderr:
        agent = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, env=env, start_new_session=True
        )
    try:
        _until(
            lambda: (
                agent.poll() is not None
                or len(server.request_log.entries(method="GET", path=watch)) > watches
            )
        )
        assert agent.poll() is None, log.read_text()
        yield
    finally:
        os.killpg(agent.pid, signal.SIGKILL)  # the agent and any worker process
        agent.wait()


Call = Callable[[dict[str, Any]], tuple[int, Any]]


def _caller(server: TestServer, function_id: int) -> Call:
    def call(body: dict[str, Any]) -> tuple[int, Any]:
        answer = requests.post(
            f"{server.url}/api/functions/{function_id}/run",
            json=body,
            auth=(server.username, server.password),
            timeout=60,
        )
        return answer.status_code, answer.json()

    return call


def transcripts(
    server: TestServer,
    function_id: int,
    source: dict[str, list[str]],
    script: Callable[[Call, str], Any],
    tmp: Path,
) -> dict[str, Any]:
    """What each agent answered to ``script(call, agent)``, served from ``source[agent]``."""
    answers = {}
    for name, command in AGENTS.items():
        with serving(server, command(server, function_id, source[name]), function_id, tmp):
            answers[name] = script(_caller(server, function_id), name)
    return answers


class States:
    """State ids written as the order in which they first appeared, wherever they are."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def add(self, ids: list[str]) -> None:
        for state in ids:
            self.names.setdefault(state, f"<state {len(self.names)}>")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for state, name in self.names.items():
                value = value.replace(state, name)
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        return value


# --- the native functions ---------------------------------------------------------------------


def _register(cvat_cli, cvat_server: TestServer, source: list[str], capsys) -> int:
    """The native function as cvat-cli registers it; checks that cvat-aa registers the same."""
    from cvat_aa.cli import main

    theirs = cvat_cli(
        "function", "create-native", "parity", *source, env={"PYTHONPATH": _pythonpath()}
    )
    function_id = int(theirs.stdout.split()[-1])
    capsys.readouterr()  # what the test printed before (Ultralytics' greeting, say)
    code = main(
        ["agent", "create", *source, "--display-name", "parity", "--json", *cvat_server.cli_args()]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    ours = json.loads(out)
    record = requests.get(
        f"{cvat_server.url}/api/functions/{function_id}",
        auth=(cvat_server.username, cvat_server.password),
        timeout=30,
    ).json()
    differ = {"id", "created_date", "updated_date", "url"}
    assert {k: v for k, v in ours.items() if k not in differ} == {
        k: v for k, v in record.items() if k not in differ
    }
    return function_id


def _file(tmp_path: Path, name: str, source: str) -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return ["--function-file", str(path)]


# --- detectors --------------------------------------------------------------------------------


def test_a_detector_answers_alike_through_both_agents(
    cvat_server, cvat_cli, capsys, tmp_path
) -> None:
    source = ["--function-file", str(HERE / "agent_every_kind.py")]
    function_id = _register(cvat_cli, cvat_server, source, capsys)
    # Single frames on one task (their answers name its label ids); a whole task each.
    shared = cvat_server.create_task("frames", images=frames(4), labels=LABELS)
    tasks = {
        name: cvat_server.create_task(name, images=frames(4), labels=LABELS, segment_size=2)
        for name in AGENTS
    }

    def script(call: Call, agent: str) -> Any:
        task = tasks[agent]
        single = [
            call({"type": "annotate_frame", "task": shared, "frame": 3, "mapping": IDENTITY}),
            call(
                {
                    "type": "annotate_frame",
                    "task": shared,
                    "frame": 1,
                    "mapping": {"car": {"name": "car"}},
                    "roi": [4, 2, 40, 30],
                }
            ),
        ]
        request_id = cvat_server.submit_function_request(function_id, task, mapping=IDENTITY)
        whole = cvat_server.wait_function_request(request_id, timeout=60)
        return single, whole["status"], comparable(cvat_server, task)

    answers = transcripts(cvat_server, function_id, dict.fromkeys(AGENTS, source), script, tmp_path)
    single, status, annotations = answers["cvat-aa"]
    assert [code for code, _ in single] == [200, 200]
    assert status == "finished" and len(annotations) == 4 * 6
    assert answers["cvat-aa"] == answers["cvat-cli"]


# --- interactors ------------------------------------------------------------------------------


def _clicks(task: int, other_frame_task: int) -> Callable[[Call, str], Any]:
    def script(call: Call, agent: str) -> Any:
        click = {"type": "interact", "task": task, "frame": 1}
        return [
            call({**click, "pos_points": [[20, 24]]}),
            # The same frame again, with a negative point inside the square.
            call({**click, "pos_points": [[20, 24]], "neg_points": [[17, 21]]}),
            call({**click, "pos_points": [[20, 24]], "obj_bbox": [[10, 10], [20, 40]]}),
            call({**click, "pos_points": [[10, 20]], "roi": [8, 0, 64, 40]}),
            call({**click, "frame": 2, "pos_points": [[50, 5]]}),  # nothing white near
            call(
                {"type": "interact", "task": other_frame_task, "frame": 0, "pos_points": [[8, 24]]}
            ),
            # Refused: no positive point; a region outside the frame.
            call({**click, "pos_points": []}),
            call({**click, "pos_points": [[20, 24]], "roi": [0, 0, 65, 48]}),
            call({**click, "pos_points": [[21, 25]]}),  # and it serves on
        ]

    return script


def test_an_interactor_answers_alike_through_both_agents(
    cvat_server, cvat_cli, capsys, tmp_path
) -> None:
    source = _file(tmp_path, "square_mask.py", INTERACTOR)
    function_id = _register(cvat_cli, cvat_server, source, capsys)
    task = cvat_server.create_task("clicks", images=moving_square(3), labels=[{"name": "thing"}])
    other = cvat_server.create_task("other", images=moving_square(1), labels=[{"name": "thing"}])

    answers = transcripts(
        cvat_server, function_id, dict.fromkeys(AGENTS, source), _clicks(task, other), tmp_path
    )
    ours = answers["cvat-aa"]
    assert [code for code, _ in ours] == [200] * 6 + [500, 500, 200]
    assert [shape["type"] for shape in ours[0][1]["shapes"]] == ["mask", "rectangle"]
    assert ours[0][1]["shapes"][1]["points"] == [16.0, 20.0, 24.0, 28.0]
    assert ours[4][1] == {"shapes": []}
    assert ours[6][1]["detail"] == "Invalid annotation request: not enough positive points"
    assert answers["cvat-aa"] == answers["cvat-cli"]


# --- trackers ---------------------------------------------------------------------------------


def _tracking(task: int, other: int, resized: int, shapes: list[dict]) -> Callable:
    def script(call: Call, agent: str) -> Any:
        states = States()
        transcript = []

        def record(answer: tuple[int, Any]) -> Any:
            status, body = answer
            if status == 200 and "shapes" not in body:  # init_tracking: new states
                states.add(body["states"])
            transcript.append([status, states(body)])
            return body

        started = record(
            call({"type": "init_tracking", "task": task, "frame": 0, "shapes": shapes})
        )
        ids = started["states"]
        for frame in (1, 2):
            record(call({"type": "track", "task": task, "frame": frame, "states": ids}))
        # Refused: a state on another task, an unknown state, a shape type the function does
        # not track, a frame of another size than the state's first.
        record(call({"type": "track", "task": other, "frame": 0, "states": ids[:1]}))
        record(call({"type": "track", "task": task, "frame": 1, "states": ["made-up"]}))
        record(
            call(
                {
                    "type": "init_tracking",
                    "task": task,
                    "frame": 0,
                    "shapes": [{"type": "points", "points": [1, 2]}],
                }
            )
        )
        again = record(
            call({"type": "init_tracking", "task": resized, "frame": 0, "shapes": shapes[:1]})
        )
        record(call({"type": "track", "task": resized, "frame": 1, "states": again["states"]}))
        # The first states still work, and go on from where they were.
        record(call({"type": "track", "task": task, "frame": 2, "states": ids}))
        return transcript

    return script


def _tracking_tasks(server: TestServer, images: list) -> tuple[int, int, int]:
    labels = [{"name": "thing"}]
    task = server.create_task("tracked", images=images, labels=labels)
    other = server.create_task("other", images=images[:1], labels=labels)
    width, height = images[0].size
    resized = server.create_task(
        "resized",
        images=[images[0], images[1].resize((width + 16, height))],
        labels=labels,
    )
    return task, other, resized


def test_a_tracker_answers_alike_through_both_agents(
    cvat_server, cvat_cli, capsys, tmp_path
) -> None:
    source = _file(tmp_path, "square_follower.py", TRACKER)
    function_id = _register(cvat_cli, cvat_server, source, capsys)
    shapes = [
        {"type": "rectangle", "points": [4, 20, 12, 28]},
        {"type": "polygon", "points": [4, 20, 12, 20, 8, 28]},
        {"type": "rectangle", "points": [56, 0, 64, 8]},  # nothing white near: lost
    ]
    tasks = _tracking_tasks(cvat_server, moving_square(3))

    answers = transcripts(
        cvat_server, function_id, dict.fromkeys(AGENTS, source), _tracking(*tasks, shapes), tmp_path
    )
    ours = answers["cvat-aa"]
    assert [code for code, _ in ours] == [200, 200, 200, 500, 500, 500, 200, 500, 200]
    assert ours[0][1] == {"states": ["<state 0>", "<state 1>", "<state 2>"]}
    assert ours[2][1]["shapes"] == [
        {"type": "rectangle", "points": [28.0, 20.0, 36.0, 28.0]},
        {"type": "polygon", "points": [28.0, 20.0, 36.0, 20.0, 32.0, 28.0]},
        None,
    ]
    assert ours[3][1]["detail"] == (
        f"Invalid annotation request: Tracking state '<state 0>' is not for task #{tasks[1]}"
    )
    assert answers["cvat-aa"] == answers["cvat-cli"]


def test_the_opencv_tracker_plugin_answers_alike_through_both_agents(
    cvat_server, cvat_cli, capsys, tmp_path
) -> None:
    pytest.importorskip("cvat_aa_opencv_tracker")
    module = ["--function-module", "cvat_aa_opencv_tracker"]
    function_id = _register(cvat_cli, cvat_server, module, capsys)
    tasks = _tracking_tasks(cvat_server, textured_square(3))
    shapes = [{"type": "rectangle", "points": [30, 40, 54, 64]}]
    # cvat-aa finds the plugin by its name, as users name it.
    sources = {"cvat-cli": module, "cvat-aa": ["--function", "opencv-tracker"]}

    answers = transcripts(cvat_server, function_id, sources, _tracking(*tasks, shapes), tmp_path)
    ours = answers["cvat-aa"]
    assert [code for code, _ in ours][:3] == [200, 200, 200]
    (moved,) = ours[2][1]["shapes"]
    assert moved["points"][0] > 30  # it followed the square to the right
    assert answers["cvat-aa"] == answers["cvat-cli"]


# --- the example plugins ----------------------------------------------------------------------

EXAMPLES = "cvat_aa_simple_interactors_trackers"


def test_the_example_interactor_answers_alike_through_both_agents(
    cvat_server, cvat_cli, capsys, tmp_path
) -> None:
    pytest.importorskip(EXAMPLES)
    source = ["--function-module", f"{EXAMPLES}.colour_region"]
    function_id = _register(cvat_cli, cvat_server, source, capsys)
    task = cvat_server.create_task("clicks", images=moving_square(3), labels=[{"name": "thing"}])
    other = cvat_server.create_task("other", images=moving_square(1), labels=[{"name": "thing"}])

    answers = transcripts(
        cvat_server, function_id, dict.fromkeys(AGENTS, source), _clicks(task, other), tmp_path
    )
    ours = answers["cvat-aa"]
    assert ours[0][0] == 200 and ours[0][1]["shapes"]
    assert answers["cvat-aa"] == answers["cvat-cli"]


def test_the_example_tracker_answers_alike_through_both_agents(
    cvat_server, cvat_cli, capsys, tmp_path
) -> None:
    pytest.importorskip(EXAMPLES)
    source = ["--function-module", f"{EXAMPLES}.template_tracker"]
    function_id = _register(cvat_cli, cvat_server, source, capsys)
    tasks = _tracking_tasks(cvat_server, textured_square(3))
    shapes = [{"type": "rectangle", "points": [30, 40, 54, 64]}]

    answers = transcripts(
        cvat_server, function_id, dict.fromkeys(AGENTS, source), _tracking(*tasks, shapes), tmp_path
    )
    ours = answers["cvat-aa"]
    assert ours[2][1]["shapes"] == [{"type": "rectangle", "points": [38.0, 40.0, 62.0, 64.0]}]
    assert answers["cvat-aa"] == answers["cvat-cli"]


@pytest.mark.slow
def test_the_segment_anything_plugin_answers_alike_through_both_agents(
    cvat_server, cvat_cli, capsys, tmp_path, monkeypatch
) -> None:
    pytest.importorskip("cvat_aa_segment_anything")
    import numpy
    import torch

    # Ultralytics offline, its settings out of the user's folder (here and in the agents).
    monkeypatch.setenv("YOLO_OFFLINE", "true")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    from cvat_aa_segment_anything.models import build_model

    torch.manual_seed(0)
    weights = tmp_path / "mobile_sam-random.pt"
    torch.save(build_model("mobile_sam").state_dict(), weights)
    params = ["-p", f"weights=str:{weights}", "-p", "device=str:cpu"]
    module = ["--function-module", "cvat_aa_segment_anything", *params]
    function_id = _register(cvat_cli, cvat_server, module, capsys)
    # A grey picture with a bright, textured square in it (the plugin's own test picture).
    pixels = numpy.full((120, 160, 3), 90, dtype=numpy.uint8)
    pixels[30:80, 50:110] = numpy.random.default_rng(0).integers(180, 255, (50, 60, 3))
    task = cvat_server.create_task(
        "sam", images=[PIL.Image.fromarray(pixels)], labels=[{"name": "thing"}], image_quality=100
    )

    def script(call: Call, agent: str) -> Any:
        click = {"type": "interact", "task": task, "frame": 0}
        return [
            call({**click, "pos_points": [[80, 55]]}),
            call({**click, "pos_points": [[80, 55], [70, 40]], "neg_points": [[10, 10]]}),
            call({**click, "pos_points": [[80, 55]], "obj_bbox": [[40, 20], [120, 90]]}),
            call({**click, "pos_points": [[60, 45]], "roi": [20, 10, 140, 100]}),
        ]

    sources = {"cvat-cli": module, "cvat-aa": ["--function", "segment-anything", *params]}
    answers = transcripts(cvat_server, function_id, sources, script, tmp_path)
    assert [code for code, _ in answers["cvat-aa"]] == [200] * 4
    assert answers["cvat-aa"] == answers["cvat-cli"]
