"""Native functions and their agents' queue, driven by cvat-cli 2.80's own agent.

``cvat-cli function create-native`` registers the function and ``cvat-cli function run-agent
--burst`` serves every request queued, unchanged, as subprocesses; the requests are queued as
CVAT's UI queues them (``POST /api/functions/requests/`` and ``/api/functions/{id}/run``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import PIL.Image
import pytest
import requests
from cvat_aa_testing import TestServer

FUNCTION = """
import os
import time

import cvat_sdk.auto_annotation as cvataa

spec = cvataa.DetectionFunctionSpec(
    labels=[cvataa.label_spec("cat", 0, type="rectangle"), cvataa.label_spec("dog", 1)]
)


def detect(context, image):
    time.sleep(float(os.environ.get("AGENT_TEST_DELAY", "0")))
    gate = os.environ.get("AGENT_TEST_GATE")
    while gate and not os.path.exists(gate):  # held until the test opens the gate
        time.sleep(0.02)
    found = [cvataa.rectangle(0, [0, 0, image.width, image.height])]
    if context.conf_threshold is None or context.conf_threshold < 0.5:
        found.append(cvataa.rectangle(1, [1, 1, 2, 2]))
    return found
"""


@pytest.fixture
def function_file(tmp_path: Path) -> Path:
    path = tmp_path / "cat_finder.py"
    path.write_text(textwrap.dedent(FUNCTION))
    return path


@pytest.fixture
def task_id(cvat_server: TestServer) -> int:
    """Four frames of widths 64 to 67 in two jobs; labels "cat" (rectangle) and "pet"."""
    images = [PIL.Image.new("RGB", (64 + i, 48)) for i in range(4)]
    return cvat_server.create_task(
        "pets",
        images=images,
        labels=[{"name": "cat", "type": "rectangle"}, {"name": "pet", "type": "rectangle"}],
        segment_size=2,
    )


#: What ``cvat-cli function create-native "cat finder" --function-file F`` sends for FUNCTION.
CREATE_NATIVE_BODY = {
    "provider": "native",
    "name": "cat finder",
    "visibility": "private",
    "kind": "detector",
    "labels_v2": [
        {"name": "cat", "attributes": [], "type": "rectangle"},
        {"name": "dog", "attributes": []},
    ],
}


@pytest.fixture
def cli_function_id(cvat_cli, function_file: Path) -> int:
    """The function, as cvat-cli's ``function create-native`` registers it."""
    result = cvat_cli(
        "function", "create-native", "cat finder", "--function-file", str(function_file)
    )
    return int(result.stdout.split()[-1])


@pytest.fixture
def function_id(cvat_server: TestServer) -> int:
    """The same function, registered over HTTP (quicker than starting cvat-cli)."""
    return _post(cvat_server, "/api/functions", CREATE_NATIVE_BODY).json()["id"]


def _post(
    server: TestServer, path: str, body: dict, auth: tuple[str, str] | None = None
) -> requests.Response:
    return requests.post(
        server.url + path, json=body, auth=auth or (server.username, server.password), timeout=30
    )


def _agent_command(
    server: TestServer, function_id: int, function_file: Path, *, password: bool = True
) -> list[str]:
    """cvat-cli's run-agent --burst, with the superuser's password or (``password=False``)
    the token in the environment variable CVAT_ACCESS_TOKEN."""
    connection = server.cli_args() if password else server.cli_args()[:4]
    return [
        sys.executable,
        "-m",
        "cvat_cli",
        *connection,
        "function",
        "run-agent",
        str(function_id),
        "--function-file",
        str(function_file),
        "--burst",
    ]


def _boxes(server: TestServer, task_id: int) -> list[tuple[int, list[float]]]:
    return sorted((s["frame"], s["points"]) for s in server.annotations(task_id)["shapes"])


def test_create_native_registers_the_function_with_its_labels(
    cvat_server: TestServer, cvat_client, cli_function_id: int
) -> None:
    _, response = cvat_client.api_client.call_api(
        "/api/functions/{id}", "GET", path_params={"id": cli_function_id}
    )
    function = json.loads(response.data)
    assert (function["provider"], function["kind"], function["name"]) == (
        "native",
        "detector",
        "cat finder",
    )
    assert function["visibility"] == "private"
    assert function["owner"]["username"] == cvat_server.username
    assert [(label["name"], label["type"]) for label in function["labels_v2"]] == [
        ("cat", "rectangle"),
        ("dog", "any"),
    ]


def test_burst_agent_annotates_the_task_and_answers_a_single_frame(
    cvat_server: TestServer, cvat_cli, cli_function_id: int, function_file: Path, task_id: int
) -> None:
    function_id = cli_function_id
    whole_task = cvat_server.submit_function_request(function_id, task_id)
    one_frame = cvat_server.submit_function_request(
        function_id, task_id, type="annotate_frame", frame=2
    )
    cvat_cli(
        "function", "run-agent", str(function_id), "--function-file", str(function_file), "--burst"
    )

    assert cvat_server.wait_function_request(whole_task)["status"] == "finished"
    # Only "cat" is in both the function and the task: "dog" is left out of the mapping.
    assert _boxes(cvat_server, task_id) == [(i, [0.0, 0.0, 64.0 + i, 48.0]) for i in range(4)]
    single = cvat_server.wait_function_request(one_frame)
    assert single["status"] == "finished"
    assert [(s["frame"], s["points"]) for s in single["result"]["annotations"]["shapes"]] == [
        (2, [0.0, 0.0, 66.0, 48.0])
    ]


def _until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not come true in time")
        time.sleep(0.05)


def test_requests_made_over_http_keep_their_job_threshold_and_mapping(
    cvat_server: TestServer,
    cvat_client,
    cvat_cli,
    function_id: int,
    function_file: Path,
    task_id: int,
) -> None:
    second_job = cvat_server.jobs(task_id)[1]["id"]
    mapping = {"cat": {"name": "pet"}, "dog": {"name": "cat"}}
    _, response = cvat_client.api_client.call_api(
        "/api/functions/requests/",
        "POST",
        body={
            "function": function_id,
            "task": task_id,
            "job": second_job,
            "threshold": 0.7,
            "mapping": mapping,
        },
    )
    assert response.status == 201
    batch = json.loads(response.data)
    assert (batch["status"], batch["function"]) == ("queued", {"id": function_id, "task": task_id})
    answers: list[requests.Response] = []
    call = threading.Thread(
        target=lambda: answers.append(
            requests.post(
                f"{cvat_server.url}/api/functions/{function_id}/run",
                json={"type": "annotate_frame", "task": task_id, "frame": 1, "mapping": mapping},
                auth=(cvat_server.username, cvat_server.password),
                timeout=60,
            )
        )
    )
    call.start()
    _until(lambda: len(cvat_server.function_requests()) == 2)
    cvat_cli(
        "function", "run-agent", str(function_id), "--function-file", str(function_file), "--burst"
    )
    call.join(30)

    # The job's frames only, "cat" found as "pet", "dog" under the threshold.
    pet = cvat_server.label_id(task_id, "pet")
    shapes = cvat_server.annotations(task_id)["shapes"]
    assert sorted((s["frame"], s["label_id"]) for s in shapes) == [(2, pet), (3, pet)]
    _, response = cvat_client.api_client.call_api(
        "/api/functions/requests/{id}", "GET", path_params={"id": batch["id"]}
    )
    assert json.loads(response.data)["status"] == "finished"
    assert answers[0].status_code == 200
    found = answers[0].json()["annotations"]["shapes"]
    cat = cvat_server.label_id(task_id, "cat")
    assert sorted((s["label_id"], s["points"]) for s in found) == sorted(
        [(pet, [0.0, 0.0, 65.0, 48.0]), (cat, [1.0, 1.0, 2.0, 2.0])]
    )


def test_two_burst_agents_do_every_request_exactly_once(
    cvat_server: TestServer, function_id: int, function_file: Path, tmp_path: Path
) -> None:
    images = [PIL.Image.new("RGB", (32, 24)) for _ in range(2)]
    tasks = [
        cvat_server.create_task(f"t{i}", images=images, labels=[{"name": "cat"}]) for i in range(6)
    ]
    ids = [cvat_server.submit_function_request(function_id, task) for task in tasks]
    # Both agents wait at their first frame until both hold a request; then all run at once.
    gate = tmp_path / "gate"
    env = {**os.environ, "AGENT_TEST_GATE": str(gate), "AGENT_TEST_DELAY": "0.05"}
    command = _agent_command(cvat_server, function_id, function_file)
    agents = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    _until(lambda: sum(r["status"] == "started" for r in cvat_server.function_requests()) == 2)
    gate.touch()
    for agent in agents:
        _, stderr = agent.communicate(timeout=60)
        assert agent.returncode == 0, stderr.decode()

    ended = [cvat_server.function_request(i) for i in ids]
    assert [r["status"] for r in ended] == ["finished"] * 6
    assert all(len(r["assignments"]) == 1 for r in ended)
    assert len({r["completed_by"] for r in ended}) == 2
    for task in tasks:
        assert _boxes(cvat_server, task) == [
            (0, [0.0, 0.0, 32.0, 24.0]),
            (1, [0.0, 0.0, 32.0, 24.0]),
        ]


def test_a_waiting_agent_hears_of_a_new_request_through_the_watch_stream(
    cvat_server: TestServer, function_id: int, function_file: Path, task_id: int
) -> None:
    command = _agent_command(cvat_server, function_id, function_file)[:-1]  # no --burst
    agent = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _until(lambda: cvat_server.request_log.entries(method="GET", path="/watch$"))
        time.sleep(0.5)  # the stream is open and the agent's first polls are done
        request_id = cvat_server.submit_function_request(function_id, task_id)
        # Without the event, cvat-cli would poll again only after about a minute.
        assert cvat_server.wait_function_request(request_id, timeout=15)["status"] == "finished"
    finally:
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait()


def test_a_killed_agents_request_goes_to_the_next_agent_after_its_lease(
    cvat_server: TestServer, function_id: int, function_file: Path, task_id: int
) -> None:
    cvat_server.agent_lease_seconds = 1
    request_id = cvat_server.submit_function_request(function_id, task_id)
    command = _agent_command(cvat_server, function_id, function_file)
    stuck = subprocess.Popen(
        command,
        env={**os.environ, "AGENT_TEST_DELAY": "60"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _until(lambda: cvat_server.function_request(request_id)["status"] == "started")
        first_agent = cvat_server.function_request(request_id)["assignments"][0]
    finally:
        os.killpg(stuck.pid, signal.SIGKILL)  # the agent and its worker process
        stuck.wait()
    _until(lambda: cvat_server.function_request(request_id)["status"] == "queued", timeout=10)
    cvat_server.agent_lease_seconds = 60  # however slow the next agent is on this machine
    subprocess.run(command, check=True, capture_output=True, timeout=60)

    ended = cvat_server.function_request(request_id)
    assert ended["status"] == "finished"
    assert ended["assignments"][0] == first_agent
    assert len(ended["assignments"]) == 2
    assert ended["completed_by"] == ended["assignments"][1]
    assert _boxes(cvat_server, task_id) == [(i, [0.0, 0.0, 64.0 + i, 48.0]) for i in range(4)]


def test_requests_are_done_exactly_once_despite_failing_server_calls(
    cvat_server: TestServer, function_id: int, function_file: Path
) -> None:
    images = [PIL.Image.new("RGB", (32, 24))]
    tasks = [
        cvat_server.create_task(f"t{i}", images=images, labels=[{"name": "cat"}]) for i in range(4)
    ]
    ids = [cvat_server.submit_function_request(function_id, task) for task in tasks]
    # 10% of every call fails with a gateway error or a dropped connection: cvat-cli retries
    # GETs at once and the queue's POSTs after 5 s (a 500 on reading frames would fail the
    # request instead). A token saves the login POST, which cvat-cli does not retry. The seed
    # (35-odd calls) drops the reply to an acquire the server has acted on, and hits frames,
    # labels and tasks.
    token = cvat_server.create_access_token()
    cvat_server.faults.fail_randomly(0.1, statuses=(502, 503, 504), seed=75)
    subprocess.run(
        _agent_command(cvat_server, function_id, function_file, password=False),
        env={**os.environ, "CVAT_ACCESS_TOKEN": token},
        check=True,
        capture_output=True,
        timeout=60,
    )
    cvat_server.faults.fail_randomly(0)

    faulted = [(e.path, e.fault) for e in cvat_server.request_log if e.fault]
    assert (f"/api/functions/queues/function:{function_id}/requests/acquire", "close-after") in (
        faulted
    )
    assert any(not path.startswith("/api/functions/") for path, _ in faulted)
    ended = [cvat_server.function_request(i) for i in ids]
    assert [(r["status"], len(r["assignments"])) for r in ended] == [("finished", 1)] * 4
    for task in tasks:
        assert _boxes(cvat_server, task) == [(0, [0.0, 0.0, 32.0, 24.0])]


INTERACTOR = """
import cvat_sdk.auto_annotation as cvataa

spec = cvataa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=0, min_bounding_boxes=0)


def detect(context, image, prompts):
    (x, y), *_ = prompts.pos_points
    return [cvataa.InteractionResultShape(type="rectangle", points=[x - 1, y - 1, x + 1, y + 1])]
"""

TRACKER = """
import cvat_sdk.auto_annotation as cvataa

spec = cvataa.TrackingFunctionSpec(supported_shape_types=["rectangle"])


def preprocess_image(context, image):
    return image.width


def init_tracking_state(context, width, shape):
    return shape.points


def track(context, width, points):
    return cvataa.TrackableShape(type="rectangle", points=[p + width for p in points])
"""


@pytest.fixture
def start_agent(
    cvat_server: TestServer, cvat_cli, tmp_path: Path
) -> Iterator[Callable[[str], int]]:
    """Registers a function's source with cvat-cli and starts its agent (not in burst mode);
    returns its id. The agents are killed when the test ends."""
    agents: list[subprocess.Popen] = []

    def start(source: str) -> int:
        path = tmp_path / f"function_{len(agents)}.py"
        path.write_text(textwrap.dedent(source))
        result = cvat_cli("function", "create-native", "f", "--function-file", str(path))
        function_id = int(result.stdout.split()[-1])
        command = _agent_command(cvat_server, function_id, path)[:-1]  # no --burst
        agents.append(
            subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        # Requests queued from now on reach the agent through its event stream.
        watch = f"/function:{function_id}/watch$"
        _until(lambda: cvat_server.request_log.entries(method="GET", path=watch))
        return function_id

    yield start
    for agent in agents:
        os.killpg(agent.pid, signal.SIGKILL)  # the agent and its worker process
        agent.wait()


def _run(server: TestServer, function_id: int, body: dict) -> requests.Response:
    return _post(server, f"/api/functions/{function_id}/run", body)


def test_an_interactor_answers_the_run_call_with_its_shapes(
    cvat_server: TestServer, start_agent, task_id: int
) -> None:
    function_id = start_agent(INTERACTOR)
    function = requests.get(
        f"{cvat_server.url}/api/functions/{function_id}",
        auth=(cvat_server.username, cvat_server.password),
        timeout=30,
    ).json()
    assert (function["kind"], function["min_pos_points"], function["min_neg_points"]) == (
        "interactor",
        1,
        0,
    )
    assert function["startswith_box_optional"] is True
    answer = _run(
        cvat_server,
        function_id,
        {"type": "interact", "task": task_id, "frame": 1, "pos_points": [[10, 20]]},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "shapes": [{"type": "rectangle", "points": [9.0, 19.0, 11.0, 21.0], "attributes": []}]
    }


def test_a_tracker_answers_run_calls_and_its_failures_reach_the_caller(
    cvat_server: TestServer, start_agent, task_id: int
) -> None:
    function_id = start_agent(TRACKER)
    shape = {"type": "rectangle", "points": [1, 2, 3, 4]}
    init = {"type": "init_tracking", "task": task_id, "frame": 0, "shapes": [shape]}
    answer = _run(cvat_server, function_id, init)
    assert answer.status_code == 200, answer.text
    (state,) = answer.json()["states"]
    track = {"type": "track", "task": task_id, "frame": 0, "states": [state]}
    answer = _run(cvat_server, function_id, track)
    assert answer.json() == {
        "states": [state],
        "shapes": [{"type": "rectangle", "points": [65.0, 66.0, 67.0, 68.0]}],
    }
    # Frame 1 is wider than frame 0: cvat-cli's agent fails the request with a message.
    answer = _run(cvat_server, function_id, {**track, "frame": 1})
    assert (answer.status_code, answer.json()) == (
        500,
        {
            "detail": "Invalid annotation request:"
            " Image sizes of the start frame and the current frame are different"
        },
    )


# The queue's protocol, call by call


def _queue(function_id: int, call: str) -> str:
    return f"/api/functions/queues/function:{function_id}/requests/{call}"


def _acquire(server: TestServer, function_id: int, agent: str, category: str = "batch") -> dict:
    response = _post(
        server, _queue(function_id, "acquire"), {"agent_id": agent, "request_category": category}
    )
    assert response.status_code == 200, response.text
    return response.json()["ar_assignment"]


def test_acquire_hands_out_the_request_with_the_agents_parameters(
    cvat_server: TestServer, function_id: int, task_id: int
) -> None:
    assert _acquire(cvat_server, function_id, "a") is None
    request_id = cvat_server.submit_function_request(function_id, task_id, threshold=0.25)
    assert _acquire(cvat_server, function_id, "a", "interactive") is None
    assert _acquire(cvat_server, function_id, "a") == {
        "function_id": function_id,
        "ar_id": request_id,
        "ar_params": {
            "type": "annotate_task",
            "task": task_id,
            "threshold": 0.25,
            "conv_mask_to_poly": False,
            # By name: the function's "dog" is not in the task.
            "mapping": {"cat": {"name": "cat", "attributes": {}}},
            "cleanup": False,
        },
    }
    assert _acquire(cvat_server, function_id, "b") is None
    # The same agent asking again lost the first answer: it gets the same request.
    assert _acquire(cvat_server, function_id, "a")["ar_id"] == request_id
    assert cvat_server.function_request(request_id)["assignments"] == ["a"]


def test_only_the_agent_holding_a_request_may_update_complete_or_fail_it(
    cvat_server: TestServer, function_id: int, task_id: int
) -> None:
    request_id = cvat_server.submit_function_request(function_id, task_id)
    _acquire(cvat_server, function_id, "a")
    done = {"annotations": {"shapes": []}}
    for call, body in (("update", {"progress": 0.5}), ("complete", done), ("fail", {})):
        answer = _post(
            cvat_server, _queue(function_id, f"{request_id}/{call}"), {"agent_id": "b", **body}
        )
        assert answer.status_code == 409, call
    assert (
        _post(
            cvat_server,
            _queue(function_id, f"{request_id}/update"),
            {"agent_id": "a", "progress": 0.5},
        ).status_code
        == 204
    )
    assert cvat_server.function_request(request_id)["progress"] == 50
    unknown = _post(
        cvat_server, _queue(function_id, "0000-1111/complete"), {"agent_id": "a", **done}
    )
    assert unknown.status_code == 404


def test_a_completed_request_applies_its_annotations_once(
    cvat_server: TestServer, function_id: int, task_id: int
) -> None:
    request_id = cvat_server.submit_function_request(function_id, task_id)
    _acquire(cvat_server, function_id, "a")
    cat = cvat_server.label_id(task_id, "cat")
    shape = {"type": "rectangle", "label_id": cat, "frame": 3, "points": [1, 2, 3, 4]}
    bad = {"agent_id": "a", "annotations": {"shapes": [{**shape, "label_id": 999}]}}
    assert _post(cvat_server, _queue(function_id, f"{request_id}/complete"), bad).status_code == 400
    good = {"agent_id": "a", "annotations": {"tags": [], "shapes": [shape]}}
    for _ in range(2):  # the second is a retry after a lost reply: accepted, not applied
        assert (
            _post(cvat_server, _queue(function_id, f"{request_id}/complete"), good).status_code
            == 204
        )
    assert _boxes(cvat_server, task_id) == [(3, [1.0, 2.0, 3.0, 4.0])]
    assert cvat_server.function_request(request_id)["status"] == "finished"


def test_a_failed_request_keeps_the_agents_message(
    cvat_server: TestServer, function_id: int, task_id: int
) -> None:
    request_id = cvat_server.submit_function_request(function_id, task_id)
    _acquire(cvat_server, function_id, "a")
    body = {"agent_id": "a", "exc_info": "Worker process crashed"}
    assert _post(cvat_server, _queue(function_id, f"{request_id}/fail"), body).status_code == 204
    response = requests.get(
        f"{cvat_server.url}/api/functions/requests/{request_id}",
        auth=(cvat_server.username, cvat_server.password),
        timeout=30,
    )
    assert (response.json()["status"], response.json()["exc_info"]) == (
        "failed",
        "Worker process crashed",
    )


@pytest.mark.cvat_server(agent_lease_seconds=0.3)
def test_a_lease_that_runs_out_returns_the_request_to_the_queue(
    cvat_server: TestServer, function_id: int, task_id: int
) -> None:
    request_id = cvat_server.submit_function_request(function_id, task_id)
    _acquire(cvat_server, function_id, "a")
    time.sleep(0.4)
    assert cvat_server.function_request(request_id)["status"] == "queued"
    assert _acquire(cvat_server, function_id, "b")["ar_id"] == request_id
    late = {"agent_id": "a", "annotations": {"shapes": []}}
    assert (
        _post(cvat_server, _queue(function_id, f"{request_id}/complete"), late).status_code == 409
    )
    assert cvat_server.function_request(request_id)["assignments"] == ["a", "b"]


def test_the_watch_stream_announces_new_requests_and_ends_with_the_function(
    cvat_server: TestServer, function_id: int, task_id: int
) -> None:
    stream = requests.get(
        f"{cvat_server.url}/api/functions/queues/function:{function_id}/watch",
        auth=(cvat_server.username, cvat_server.password),
        stream=True,
        timeout=30,
    )
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    lines = stream.iter_lines(decode_unicode=True)
    assert next(lines).startswith("retry: ")
    cvat_server.submit_function_request(function_id, task_id, type="annotate_frame", frame=0)
    assert [next(lines) for _ in range(3)] == [
        "",
        "event: newrequest",
        'data: {"request_category": "interactive"}',
    ]
    deleted = requests.delete(
        f"{cvat_server.url}/api/functions/{function_id}",
        auth=(cvat_server.username, cvat_server.password),
        timeout=30,
    )
    assert deleted.status_code == 204
    assert list(lines) == [""]
    gone = _post(
        cvat_server, _queue(function_id, "acquire"), {"agent_id": "a", "request_category": "batch"}
    )
    assert gone.status_code == 404
    assert [r["status"] for r in cvat_server.function_requests()] == ["failed"]


def test_a_private_function_is_hidden_from_other_users_and_a_public_one_is_not(
    cvat_server: TestServer, function_id: int
) -> None:
    cvat_server.create_user("other", "secret-pass")
    other = ("other", "secret-pass")
    url = f"{cvat_server.url}/api/functions/{function_id}"
    assert requests.get(url, auth=other, timeout=30).status_code == 403
    body = {"agent_id": "x", "request_category": "batch"}
    assert _post(cvat_server, _queue(function_id, "acquire"), body, auth=other).status_code == 403
    public = _post(cvat_server, "/api/functions", {**CREATE_NATIVE_BODY, "visibility": "public"})
    listed = requests.get(f"{cvat_server.url}/api/functions", auth=other, timeout=30).json()
    assert [f["id"] for f in listed["results"]] == [public.json()["id"]]


def test_injected_faults_reach_the_queue(cvat_server: TestServer, function_id: int) -> None:
    cvat_server.faults.fail_next(1, status=503, path="/acquire$")
    body = {"agent_id": "a", "request_category": "batch"}
    assert _post(cvat_server, _queue(function_id, "acquire"), body).status_code == 503
    assert _post(cvat_server, _queue(function_id, "acquire"), body).status_code == 200
