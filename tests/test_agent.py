"""The agent (``cvat_aa.agent``) against a CVAT server with native functions.

Everything comes from cvat-aa's test server: tasks, frames, and CVAT Online's native functions
and their queues (``cvat_aa_testing.native_functions``). cvat-cli 2.80's own agent, run on the same function and requests, is the reference for what a
request's result must be.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import PIL.Image
import pytest
import serve_functions
from agent_queue import Queues
from cvat_aa.agent import Agent, RequestRunner, create_native_function, labels_v2
from cvat_aa.agent import agent as agent_module
from cvat_aa.agent.native import IncompatibleFunctionError, check_compatible
from cvat_aa.agent.queue import Backoff, FunctionQueue, parse_event_stream
from cvat_aa.agent.requests import label_map_of
from cvat_aa.pipeline.executors import LocalExecutor
from cvat_aa_testing import TestServer
from cvat_sdk.api_client import ApiClient
from cvat_sdk.api_client.exceptions import ApiException

HERE = Path(__file__).parent

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

IDENTITY = {
    "car": {"name": "car", "attributes": {"color": "color", "doors": "doors"}},
    "lake": {"name": "lake"},
    "spot": {"name": "spot"},
    "blob": {"name": "blob"},
    "animal": {"name": "animal", "sublabels": {"head": {"name": "head"}, "tail": {"name": "tail"}}},
    "night": {"name": "night"},
}


def frames(count: int) -> list[PIL.Image.Image]:
    return [PIL.Image.new("RGB", (64 + i, 48), (i * 30 % 256, 90, 10)) for i in range(count)]


@pytest.fixture
def queues(cvat_client) -> Queues:
    return Queues(cvat_client)


def register(client: Any, function: Any, name: str = "every-kind") -> int:
    return create_native_function(client, name=name, labels_v2=labels_v2(function.spec))["id"]


def make_agent(client: Any, function_id: int, function: Any, **kw: Any) -> Agent:
    runner = RequestRunner(
        client, LocalExecutor(), function, name="test", batch_size=kw.pop("batch_size", 4)
    )
    return Agent(client, function_id, runner, **kw)


def comparable(server: TestServer, task_id: int) -> list[Any]:
    """The task's annotations by label name, without ids."""
    names: dict[int, str] = {}
    for label in server.labels(task_id):
        names[label["id"]] = label["name"]
        for sub in label.get("sublabels", []):
            names[sub["id"]] = sub["name"]

    def clean(annotation: dict) -> dict:
        data = {k: v for k, v in annotation.items() if k != "id"}
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


def run_cvat_cli_agent(client: Any, function_id: int, monkeypatch) -> None:
    """cvat-cli's ``function run-agent ID --function-file agent_every_kind.py --burst``."""
    from cvat_cli._internal.agent import run_agent
    from cvat_cli._internal.common import FunctionLoader

    monkeypatch.syspath_prepend(str(HERE))
    headers = client.api_client.default_headers
    monkeypatch.setitem(headers, "User-Agent", "cvat_cli/2.80.0 " + headers["User-Agent"])
    loader = FunctionLoader(None, HERE / "agent_every_kind.py", {})
    run_agent(client, loader, function_id, burst=True)


def in_thread(target: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = target(*args)
        except BaseException as ex:  # for the test to see
            out["error"] = ex
            raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


# --- the native function ----------------------------------------------------------------------


def test_a_native_function_gets_the_labels_cvat_cli_gives_it() -> None:
    from cvat_cli._internal.agent_driver_detection import AgentDetectionFunctionDriver

    spec = serve_functions.EveryKind.spec
    theirs = AgentDetectionFunctionDriver.get_remote_function_fields(spec)["labels_v2"]
    assert labels_v2(spec) == ApiClient.sanitize_for_serialization(theirs)


def test_an_agent_refuses_a_native_function_its_function_does_not_fit() -> None:
    remote = {
        "id": 3,
        "name": "x",
        "provider": "native",
        "kind": "detector",
        "labels_v2": [{"name": "car", "type": "polygon", "attributes": []}],
    }
    with pytest.raises(IncompatibleFunctionError, match="label 'car' has type 'polygon'"):
        check_compatible(remote, serve_functions.EveryKind.spec)
    remote["labels_v2"] = [{"name": "boat", "type": "any", "attributes": []}]
    with pytest.raises(IncompatibleFunctionError, match="label 'boat' is not supported"):
        check_compatible(remote, serve_functions.EveryKind.spec)
    remote["labels_v2"] = labels_v2(serve_functions.EveryKind.spec)
    check_compatible(remote, serve_functions.EveryKind.spec)


def test_a_request_mapping_leaves_out_what_it_does_not_name() -> None:
    spec = serve_functions.EveryKind.spec
    label_map = label_map_of(
        {"car": {"name": "vehicle", "attributes": {"color": "paint"}}, "animal": {"name": "dog"}},
        spec.labels,
    )
    assert label_map.to_dict() == {
        "animal": {"name": "dog"},
        "blob": None,
        "car": {"name": "vehicle", "attributes": {"color": "paint", "doors": None}},
        "lake": None,
        "night": None,
        "spot": None,
    }


# --- the protocol -----------------------------------------------------------------------------


def test_the_event_stream_is_read_as_server_sent_events() -> None:
    lines = iter(
        [b"retry: 2500\n", b": keep-alive\n", b"event: newrequest\n", b'data: {"a":\n']
        + [b"data: 1}\n", b"\n", b""]
    )
    messages = list(parse_event_stream(lambda: next(lines)))
    assert [type(m).__name__ for m in messages] == ["NewReconnectionDelay", "Event"]
    assert messages[0].delay.total_seconds() == 2.5
    assert (messages[1].type, messages[1].data) == ("newrequest", '{"a":\n1}')


def test_back_off_doubles_up_to_its_limit() -> None:
    from datetime import timedelta

    backoff = Backoff(timedelta(seconds=5), timedelta(seconds=30))
    assert [backoff.next().total_seconds() for _ in range(5)] == [5, 10, 20, 30, 30]


class _Replies:
    """An api_client whose call_api raises the given errors, then answers."""

    def __init__(self, *errors: ApiException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

        class Answer:
            data = b'{"ar_assignment": null}'

        return None, Answer()


def _queue(replies: _Replies, waits: list[float]) -> FunctionQueue:
    class Client:
        api_client = replies

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        return False

    return FunctionQueue(Client(), 1, "agent", sleep=sleep)  # type: ignore[arg-type]


def _http_error(status: int, retry_after: str | None = None) -> ApiException:
    error = ApiException(status=status, reason="x")
    error.headers = {"Retry-After": retry_after} if retry_after else {}
    return error


def test_acquiring_waits_out_rate_limits_and_server_errors() -> None:
    waits: list[float] = []
    replies = _Replies(_http_error(429, "7"), _http_error(503), _http_error(502))
    assert _queue(replies, waits).acquire("batch") is None
    assert replies.calls == 4
    assert waits[0] == 7
    assert 5 <= waits[1] <= 5 * 1.15 and 10 <= waits[2] <= 10 * 1.15


def test_a_refused_acquire_is_not_retried() -> None:
    waits: list[float] = []
    with pytest.raises(ApiException):
        _queue(_Replies(_http_error(403)), waits).acquire("batch")
    assert waits == []


def test_submitting_a_result_is_tried_four_times() -> None:
    waits: list[float] = []
    replies = _Replies(*(_http_error(500) for _ in range(5)))
    with pytest.raises(ApiException):
        _queue(replies, waits).complete("ar", {"annotations": {}})
    assert replies.calls == 4


# --- requests, compared with cvat-cli's agent -------------------------------------------------


def test_a_whole_task_request_leaves_what_cvat_clis_agent_leaves(
    cvat_server, cvat_client, queues, monkeypatch
) -> None:
    ours = cvat_server.create_task("ours", images=frames(5), labels=LABELS, segment_size=2)
    theirs = cvat_server.create_task("theirs", images=frames(5), labels=LABELS, segment_size=2)
    function_id = register(cvat_client, serve_functions.EveryKind())

    ar = queues.submit_task(function_id, ours, mapping=IDENTITY)
    summary = make_agent(cvat_client, function_id, serve_functions.EveryKind()).run(burst=True)
    assert summary.completed == [ar]
    assert queues.request(ar)["status"] == "finished"

    queues.submit_task(function_id, theirs, mapping=IDENTITY)
    run_cvat_cli_agent(cvat_client, function_id, monkeypatch)

    assert len(comparable(cvat_server, ours)) == 5 * 6
    assert comparable(cvat_server, ours) == comparable(cvat_server, theirs)


def test_a_single_frame_request_answers_what_cvat_clis_agent_answers(
    cvat_server, cvat_client, queues, monkeypatch
) -> None:
    task = cvat_server.create_task("online", images=frames(3), labels=LABELS)
    function_id = register(cvat_client, serve_functions.EveryKind())

    def served_by(run_agent: Any) -> Any:
        thread, out = in_thread(lambda: queues.run_frame(function_id, task, 2, mapping=IDENTITY))
        time.sleep(0.3)  # for the request to be queued
        run_agent()
        thread.join(30)
        assert "error" not in out, out.get("error")
        return out["result"]

    ours = served_by(
        lambda: make_agent(cvat_client, function_id, serve_functions.EveryKind()).run(burst=True)
    )
    theirs = served_by(lambda: run_cvat_cli_agent(cvat_client, function_id, monkeypatch))
    assert {s["frame"] for s in ours["annotations"]["shapes"]} == {2}
    assert ours == theirs


# --- what the agent does with requests --------------------------------------------------------


def test_a_request_maps_labels_as_asked_and_applies_its_threshold(
    cvat_server, cvat_client, queues
) -> None:
    labels = [{"name": "vehicle", "type": "rectangle"}, {"name": "pond", "type": "polygon"}]
    task = cvat_server.create_task("mapped", images=frames(2), labels=labels)
    function_id = register(cvat_client, serve_functions.EveryKind())
    mapping = {"car": {"name": "vehicle", "attributes": {}}, "lake": {"name": "pond"}}
    low = queues.submit_task(function_id, task, mapping=mapping, threshold=0.5)
    make_agent(cvat_client, function_id, serve_functions.EveryKind()).run(burst=True)
    assert queues.request(low)["status"] == "finished"
    shapes = cvat_server.annotations(task)["shapes"]
    # The lake (score 0.3) is under the threshold; what the mapping leaves out is left out.
    assert sorted((s["frame"], s["type"]) for s in shapes) == [(0, "rectangle"), (1, "rectangle")]
    assert all(s["attributes"] == [] for s in shapes)


def test_a_function_that_raises_fails_the_request_with_its_message(
    cvat_server, cvat_client, queues
) -> None:
    red = [PIL.Image.new("RGB", (32, 32), (0, 0, 255)), PIL.Image.new("RGB", (32, 32), (255, 0, 0))]
    task = cvat_server.create_task("raising", images=red, labels=[{"name": "thing"}])
    function_id = register(cvat_client, serve_functions.Raising(), "raising")
    ar = queues.submit_task(function_id, task, mapping={"thing": {"name": "thing"}})
    summary = make_agent(cvat_client, function_id, serve_functions.Raising()).run(burst=True)
    assert summary.failed == [ar]
    failed = queues.request(ar)
    assert failed["status"] == "failed"
    assert "ValueError: the model cannot take red frames" in failed["exc_info"]
    assert "frame 1" in failed["exc_info"]
    assert cvat_server.annotations(task)["shapes"] == []


def test_a_bad_result_is_refused_before_it_is_submitted(cvat_server, cvat_client, queues) -> None:
    task = cvat_server.create_task("invalid", images=frames(1), labels=[{"name": "thing"}])
    function_id = register(cvat_client, serve_functions.Invalid(), "invalid")
    ar = queues.submit_task(function_id, task, mapping={"thing": {"name": "thing"}})
    submitted: list[Any] = []
    original = FunctionQueue.complete
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            FunctionQueue, "complete", lambda self, *a: (submitted.append(a), original(self, *a))
        )
        make_agent(cvat_client, function_id, serve_functions.Invalid()).run(burst=True)
    assert submitted == []
    failed = queues.request(ar)
    assert failed["status"] == "failed"
    assert failed["exc_info"].startswith("Underlying function returned incorrect result:")
    assert "rectangle" in failed["exc_info"]


def test_an_unknown_frame_fails_a_single_frame_request(cvat_server, cvat_client, queues) -> None:
    task = cvat_server.create_task("one", images=frames(1), labels=LABELS)
    function_id = register(cvat_client, serve_functions.EveryKind())
    agent = make_agent(cvat_client, function_id, serve_functions.EveryKind())
    failure = agent.runner.result
    with pytest.raises(Exception, match="Frame with index 5 does not exist"):
        failure({"type": "annotate_frame", "task": task, "frame": 5, "mapping": {}}, None)


class _Slow(serve_functions.Batching):
    """Boxes, ``delay`` seconds a batch; records the frames it was called on."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.seen: list[tuple[int, int]] = []

    def detect_batch(self, contexts, images):
        self.seen.extend(image.size for image in images)
        return super().detect_batch(contexts, images)


def test_a_single_frame_request_is_served_while_a_task_request_runs(
    cvat_server, cvat_client, queues
) -> None:
    long_task = cvat_server.create_task("long", images=frames(20), labels=[{"name": "thing"}])
    clicked = cvat_server.create_task(
        "clicked", images=[PIL.Image.new("RGB", (99, 77))], labels=[{"name": "thing"}]
    )
    function = _Slow(0.2)
    function_id = register(cvat_client, function, "slow")
    ar = queues.submit_task(function_id, long_task, mapping={"thing": {"name": "thing"}})
    agent = make_agent(cvat_client, function_id, function, batch_size=1, interactive_poll=0.5)
    agent_thread, out = in_thread(lambda: agent.run(burst=True))
    wait_for(lambda: len(function.seen) >= 2 or not agent_thread.is_alive())
    assert "error" not in out, out.get("error")
    assert agent_thread.is_alive(), out
    started = time.monotonic()
    answer = queues.run_frame(function_id, clicked, 0, mapping={"thing": {"name": "thing"}})
    answered_after = time.monotonic() - started
    assert queues.request(ar)["status"] != "finished"  # the task request is still running
    assert answered_after < 2
    assert answer["annotations"]["shapes"][0]["points"] == [0.0, 0.0, 49.5, 38.5]
    agent_thread.join(30)
    assert queues.request(ar)["status"] == "finished"
    assert len(cvat_server.annotations(long_task)["shapes"]) == 20


def test_two_agents_on_one_queue_serve_each_request_once(cvat_server, cvat_client, queues) -> None:
    tasks = [
        cvat_server.create_task(f"t{i}", images=frames(2), labels=[{"name": "thing"}])
        for i in range(6)
    ]
    function_id = register(cvat_client, _Slow(0.05), "shared")
    ars = [queues.submit_task(function_id, t, mapping={"thing": {"name": "thing"}}) for t in tasks]
    agents = [make_agent(cvat_client, function_id, _Slow(0.05)) for _ in range(2)]
    threads = [in_thread(lambda a=agent: a.run(burst=True))[0] for agent in agents]
    for thread in threads:
        thread.join(60)
    served = [ar for agent in agents for ar in agent.summary.completed]
    assert sorted(served) == sorted(ars)
    assert all(agent.summary.completed for agent in agents)  # both took part
    for task in tasks:
        assert len(cvat_server.annotations(task)["shapes"]) == 2


def test_a_cancelled_request_is_dropped_not_submitted(
    cvat_server, cvat_client, queues, monkeypatch
) -> None:
    monkeypatch.setattr(agent_module, "UPDATE_INTERVAL", agent_module.timedelta(0))
    task = cvat_server.create_task("cancelled", images=frames(10), labels=[{"name": "thing"}])
    function = _Slow(0.1)
    function_id = register(cvat_client, function, "cancelled")
    ar = queues.submit_task(function_id, task, mapping={"thing": {"name": "thing"}})
    agent = make_agent(cvat_client, function_id, function, batch_size=1)
    thread, _ = in_thread(lambda: agent.run(burst=True))
    wait_for(lambda: len(function.seen) >= 2)
    queues.cancel(ar)
    thread.join(30)
    assert agent.summary.lost == [ar]
    assert agent.summary.completed == []
    assert cvat_server.annotations(task)["shapes"] == []


def test_stopping_finishes_the_request_in_progress(cvat_server, cvat_client, queues) -> None:
    task = cvat_server.create_task("stopped", images=frames(6), labels=[{"name": "thing"}])
    waiting = cvat_server.create_task("waiting", images=frames(1), labels=[{"name": "thing"}])
    function = _Slow(0.1)
    function_id = register(cvat_client, function, "stopped")
    first = queues.submit_task(function_id, task, mapping={"thing": {"name": "thing"}})
    second = queues.submit_task(function_id, waiting, mapping={"thing": {"name": "thing"}})
    agent = make_agent(cvat_client, function_id, function, batch_size=1)
    thread, _ = in_thread(lambda: agent.run(burst=False))
    wait_for(lambda: len(function.seen) >= 1)
    agent.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert agent.summary.completed == [first]
    assert queues.request(second)["status"] == "queued"


def test_abandoning_drops_the_request_in_progress_for_another_agent(
    cvat_server, cvat_client, queues
) -> None:
    task = cvat_server.create_task("abandoned", images=frames(6), labels=[{"name": "thing"}])
    function = _Slow(0.1)
    function_id = register(cvat_client, function, "abandoned")
    ar = queues.submit_task(function_id, task, mapping={"thing": {"name": "thing"}})
    agent = make_agent(cvat_client, function_id, function, batch_size=1)
    thread, _ = in_thread(lambda: agent.run(burst=False))
    wait_for(lambda: len(function.seen) >= 1)
    agent.abandon()
    thread.join(30)
    assert agent.summary.lost == [ar]
    assert cvat_server.annotations(task)["shapes"] == []


def test_a_job_request_reads_only_the_jobs_frames(cvat_server, cvat_client) -> None:
    queues = Queues(cvat_client)
    task = cvat_server.create_task(
        "jobs", images=frames(5), labels=[{"name": "thing"}], segment_size=2
    )
    job = max(cvat_server.jobs(task), key=lambda j: j["start_frame"])
    function = _Slow(0)
    function_id = register(cvat_client, function, "job")
    ar = queues.submit_task(function_id, task, job=job["id"], mapping={"thing": {"name": "thing"}})
    make_agent(cvat_client, function_id, function).run(burst=True)
    assert queues.request(ar)["status"] == "finished"
    assert len(function.seen) == job["stop_frame"] - job["start_frame"] + 1
    frames_annotated = sorted(s["frame"] for s in cvat_server.annotations(task)["shapes"])
    assert frames_annotated == list(range(job["start_frame"], job["stop_frame"] + 1))


@pytest.mark.parametrize("roi", [None, [10, 5, 50, 40]])
def test_a_single_frame_request_with_a_region_answers_as_cvat_cli(
    cvat_server, cvat_client, queues, monkeypatch, roi
) -> None:
    task = cvat_server.create_task("roi", images=frames(2), labels=LABELS)
    function_id = register(cvat_client, serve_functions.EveryKind())
    extra = {} if roi is None else {"roi": roi}
    answers = []
    for run_agent in (
        lambda: make_agent(cvat_client, function_id, serve_functions.EveryKind()).run(burst=True),
        lambda: run_cvat_cli_agent(cvat_client, function_id, monkeypatch),
    ):
        thread, out = in_thread(
            lambda: queues.run_frame(function_id, task, 1, mapping=IDENTITY, **extra)
        )
        time.sleep(0.3)
        run_agent()
        thread.join(30)
        answers.append(out["result"])
    assert answers[0] == answers[1]


def test_an_agent_for_a_deleted_function_stops_with_not_found(
    cvat_server, cvat_client, queues
) -> None:
    from cvat_aa.errors import NotFoundError

    function_id = register(cvat_client, serve_functions.EveryKind())
    agent = make_agent(cvat_client, function_id, serve_functions.EveryKind())
    queues.delete(function_id)
    with pytest.raises(NotFoundError, match="deleted on the server"):
        agent.run(burst=True)


RAY_BOXES = """
import cvat_aa

spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("thing", 0)])

def detect(context, image):
    return [cvat_aa.rectangle(0, [1, 2, image.width - 3, image.height - 4])]
"""


def test_requests_run_on_ray_actors_as_they_run_here(cvat_server, cvat_client, tmp_path) -> None:
    ray = pytest.importorskip("ray")
    from cvat_aa.pipeline.ray_executor import RayExecutor

    queues = Queues(cvat_client)
    path = tmp_path / "boxes.py"
    path.write_text(RAY_BOXES)
    tasks = [
        cvat_server.create_task(name, images=frames(7), labels=[{"name": "thing"}], chunk_size=3)
        for name in ("here", "ray")
    ]
    function_id = create_native_function(
        cvat_client, name="boxes", labels_v2=[{"name": "thing", "attributes": []}]
    )["id"]
    mapping = {"thing": {"name": "thing"}}
    queues.submit_task(function_id, tasks[0], mapping=mapping)
    local = LocalExecutor()
    here = RequestRunner(cvat_client, local, local.load(str(path)), name="boxes", batch_size=3)
    Agent(cvat_client, function_id, here).run(burst=True)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        executor = RayExecutor(str(path), {}, actors=1)
        try:
            runner = RequestRunner(
                cvat_client, executor, executor.load(str(path)), name="boxes", batch_size=3
            )
            queues.submit_task(function_id, tasks[1], mapping=mapping)
            summary = Agent(cvat_client, function_id, runner).run(burst=True)
        finally:
            executor.close()
    finally:
        ray.shutdown()
    assert len(summary.completed) == 1
    assert comparable(cvat_server, tasks[0]) == comparable(cvat_server, tasks[1])
    assert len(comparable(cvat_server, tasks[1])) == 7
