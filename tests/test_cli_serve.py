"""``cvat-aa serve`` on the command line: choosing functions of every kind, errors, running and
stopping, and serving from Ray actors."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import PIL.Image
import pytest
import urllib3
from cvat_aa.cli import main

FUNCTION = '''
"""Boxes the top-left corner, as big as the "size" parameter says."""
import os
from pathlib import Path

import cvat_aa


def create(size: int = 5, label: str = "thing", die_marker: str = ""):
    class Corner:
        spec = cvat_aa.DetectionFunctionSpec(
            labels=[
                cvat_aa.label_spec(
                    label, 0, type="rectangle", attributes=[cvat_aa.text_attribute_spec("pid", 0)]
                )
            ]
        )

        def detect(self, context, image):
            if die_marker and not Path(die_marker).exists():
                Path(die_marker).write_text(str(os.getpid()))
                os._exit(1)
            from cvat_sdk import models

            pid = models.AttributeValRequest(spec_id=0, value=str(os.getpid()))
            return [cvat_aa.rectangle(0, [0, 0, size, size], attributes=[pid])]

    return Corner()
'''

INTERACTOR = '''
"""Boxes the points it is given."""
import cvat_aa

spec = cvat_aa.InteractionFunctionSpec(min_pos_points=2)


def detect(context, image, prompts):
    (x1, y1), (x2, y2) = prompts.pos_points[:2]
    return [cvat_aa.InteractionResultShape(type="rectangle", points=[x1, y1, x2, y2])]
'''

TRACKER = '''
"""Moves rectangles and polygons one pixel right a frame."""
import cvat_aa

spec = cvat_aa.TrackingFunctionSpec(supported_shape_types=["rectangle", "polygon"])


def init_tracking_state(context, pp_image, shape):
    return list(shape.points)


def track(context, pp_image, state):
    state[:] = [p + (1 if i % 2 == 0 else 0) for i, p in enumerate(state)]
    return cvat_aa.TrackableShape(type=context.original_shape_type, points=state)
'''

http = urllib3.PoolManager(retries=False, timeout=60)


@pytest.fixture
def function_file(tmp_path: Path) -> Path:
    path = tmp_path / "corner.py"
    path.write_text(FUNCTION)
    return path


@pytest.fixture
def interactor_file(tmp_path: Path) -> Path:
    path = tmp_path / "clicks.py"
    path.write_text(INTERACTOR)
    return path


@pytest.fixture
def tracker_file(tmp_path: Path) -> Path:
    path = tmp_path / "follow.py"
    path.write_text(TRACKER)
    return path


def frame() -> str:
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (40, 30), (10, 20, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def invoke(
    url: str, function_id: str, headers: dict | None = None, payload: dict | None = None
) -> urllib3.BaseHTTPResponse:
    return http.request(
        "POST",
        url + "/api/function_invocations",
        body=json.dumps({"image": frame(), **(payload or {})}).encode(),
        headers={"x-nuclio-function-name": function_id, **(headers or {})},
    )


class Served:
    """``cvat-aa serve`` in a subprocess, with the URL it printed."""

    def __init__(self, args: list[str], env: dict | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cvat_aa", "serve", "--port", "0", *args],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.url = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                self.url = found.group(1)
            if line.startswith("Stop with Ctrl-C"):
                return
        self.process.kill()
        raise AssertionError("cvat-aa serve did not start:\n" + "".join(self.lines))

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(signum)
        _, rest = self.process.communicate(timeout=60)
        return self.process.returncode, "".join(self.lines) + rest


def test_serve_runs_until_sigterm_and_exits_0(function_file: Path) -> None:
    served = Served(["-f", str(function_file)])
    try:
        listed = http.request("GET", served.url + "/api/functions").json()
        assert list(listed) == ["corner"]
        assert listed["corner"]["spec"]["description"].startswith("Boxes the top-left corner")
        reply = invoke(served.url, "corner")
        assert reply.status == 200
        assert reply.json()[0]["points"] == [0, 0, 5, 5]
    finally:
        code, output = served.stop()
    assert code == 0
    assert "cvat-aa serve: stopping" in output
    assert "CVAT_NUCLIO_PORT=" in output and "CVAT_NUCLIO_INVOKE_METHOD=dashboard" in output
    assert re.search(r"corner frame=40x30 status=200 \d+\.\d{3}s", output)


def test_ctrl_c_stops_it_too(function_file: Path) -> None:
    served = Served(["-f", str(function_file)])
    code, output = served.stop(signal.SIGINT)
    assert code == 0
    assert "stopping" in output


def test_each_function_takes_the_options_that_follow_it(function_file: Path) -> None:
    served = Served(
        [
            "-f", str(function_file), "-p", "size=int:3", "--id", "small",
            "--display-name", "Small corner",
            "-f", str(function_file), "-p", "size=int:9", "-p", "label=str:big",
            "--id", "big", "--description", "the big one",
        ]
    )  # fmt: skip
    try:
        listed = http.request("GET", served.url + "/api/functions").json()
        small, big = listed["small"], listed["big"]
        assert small["metadata"]["annotations"]["name"] == "Small corner"
        assert big["metadata"]["annotations"]["name"] == "big"
        assert big["spec"]["description"] == "the big one"
        assert json.loads(big["metadata"]["annotations"]["spec"])[0]["name"] == "big"
        assert invoke(served.url, "small").json()[0]["points"] == [0, 0, 3, 3]
        assert invoke(served.url, "big").json()[0]["points"] == [0, 0, 9, 9]
        # A direct port each, one after the other.
        ports = [small["status"]["httpPort"], big["status"]["httpPort"]]
        assert all(ports)
    finally:
        served.stop()


def test_one_command_serves_a_detector_an_interactor_and_a_tracker(
    function_file: Path, interactor_file: Path, tracker_file: Path
) -> None:
    served = Served(
        [
            "-f", str(function_file),
            "-f", str(interactor_file), "--help-message", "Click two corners.",
            "-f", str(tracker_file), "--display-name", "Follower",
        ]
    )  # fmt: skip
    try:
        listed = http.request("GET", served.url + "/api/functions").json()
        kinds = {name: f["metadata"]["annotations"]["type"] for name, f in listed.items()}
        assert kinds == {"corner": "detector", "clicks": "interactor", "follow": "tracker"}
        clicks = listed["clicks"]["metadata"]["annotations"]
        assert (clicks["min_pos_points"], clicks["help_message"]) == ("2", "Click two corners.")
        assert listed["follow"]["metadata"]["annotations"]["supported_shape_types"] == (
            "polygon,rectangle"
        )
        clicked = invoke(
            served.url,
            "clicks",
            payload={"pos_points": [[1, 2], [9, 8]], "neg_points": [], "obj_bbox": None},
        )
        assert clicked.json() == {
            "shapes": [{"type": "rectangle", "points": [1, 2, 9, 8], "attributes": []}]
        }
        start = invoke(
            served.url,
            "follow",
            payload={"shapes": [{"type": "rectangle", "points": [1, 2, 5, 6]}], "states": []},
        )
        followed = invoke(
            served.url,
            "follow",
            payload={"shapes": [None], "states": start.json()["states"]},
        )
        assert followed.json()["shapes"] == [{"type": "rectangle", "points": [2, 2, 6, 6]}]
    finally:
        code, output = served.stop()
    assert code == 0
    assert "  clicks: 'clicks' (interactor, direct port" in output
    assert "  follow: 'Follower' (tracker of polygon, rectangle, direct port" in output
    assert "  corner: 'corner' (detector, 1 labels, direct port" in output
    # Every call is logged, whatever its kind.
    assert re.search(r"INFO clicks frame=40x30 status=200 ", output)
    assert len(re.findall(r"INFO follow frame=40x30 status=200 ", output)) == 2


def test_a_token_file_is_required_on_every_call(function_file: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    served = Served(["-f", str(function_file), "--token-file", str(token)])
    try:
        assert http.request("GET", served.url + "/api/functions").status == 401
        ok = invoke(served.url, "corner", {"x-nuclio-function-namespace": "tok-123"})
        assert ok.status == 200
        listed = http.request(
            "GET", served.url + "/api/functions", headers={"x-nuclio-function-namespace": "tok-123"}
        ).json()
        assert "httpPort" not in listed["corner"]["status"]
    finally:
        _, output = served.stop()
    assert "tok-123" not in output
    assert "CVAT_NUCLIO_FUNCTION_NAMESPACE=<the token>" in output


def test_the_token_can_come_from_the_environment(function_file: Path) -> None:
    served = Served(["-f", str(function_file)], env={"CVAT_AA_SERVE_TOKEN": "env-tok"})
    try:
        assert http.request("GET", served.url + "/api/functions").status == 401
        assert invoke(served.url, "corner", {"Authorization": "Bearer env-tok"}).status == 200
    finally:
        served.stop()


def test_listing_on_another_address_without_a_token_warns(function_file: Path) -> None:
    served = Served(["-f", str(function_file), "--host", "0.0.0.0", "--no-direct"])
    _, output = served.stop()
    assert "warning: listening on 0.0.0.0 without a token" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "size=int:3", "-f", "X"], "-p must follow the --function it is for"),
        (["-f", "X", "--id", "a", "--id", "b"], "--id is given twice"),
        (["-f", "no_such_function_anywhere"], "no function named 'no_such_function_anywhere'"),
        (["-f", "F", "-f", "F"], "two functions would have the id 'corner'"),
        (["-f", "F", "--id", "has space"], "CVAT accepts only letters"),
        (["-f", "F", "-p", "size=str:big"], "size"),
        (["-f", "F", "--no-direct", "--direct-port-start", "9000"], "--direct-port-start"),
        (["-f", "F", "--actors", "2"], "--actors needs --executor ray"),
        (["--help-message", "x", "-f", "F"], "--help-message must follow the --function"),
    ],
)
def test_bad_usage_exits_2_with_one_message(
    function_file: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    args = [str(function_file) if a == "F" else a for a in args]
    with pytest.raises(SystemExit) as raised:
        code = main(["serve", "--port", "0", *args])
        raise SystemExit(code)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_port_in_use_says_which_options_choose_others(
    function_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "-f", str(function_file), "--port", str(port)])
    assert code == 2
    assert "choose others with --port" in capsys.readouterr().err


def test_an_empty_token_file_is_refused(
    function_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    code = main(["serve", "-f", str(function_file), "--token-file", str(empty)])
    assert code == 2
    assert "is empty" in capsys.readouterr().err


# --- Ray ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_on_ray_calls_are_spread_over_replicas_and_a_dead_ones_call_runs_on_another(
    function_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    marker = tmp_path / "died"
    served = Served(
        [
            "-f", str(function_file), "-p", f"die_marker=str:{marker}",
            "--executor", "ray", "--actors", "2", "--no-direct",
        ]
    )  # fmt: skip
    try:
        # The first call kills the actor that takes it; it runs again on another and succeeds.
        first = invoke(served.url, "corner")
        assert first.status == 200, first.reason
        assert first.json()[0]["points"] == [0, 0, 5, 5]
        assert marker.exists()
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: invoke(served.url, "corner"), range(8)))
        assert all(r.status == 200 for r in replies)
        pids = {r.json()[0]["attributes"][0]["value"] for r in replies}
        assert len(pids) == 2, "the calls did not reach both actors"
        assert int(marker.read_text()) not in {int(p) for p in pids}
        metrics = http.request("GET", served.url + "/api/metrics").json()["corner"]
        assert metrics["requests"] == 9 and metrics["errors"] == {}
    finally:
        code, output = served.stop()
    assert code == 0
    assert "died; starting a new one" in output
    assert "Running the frame of this call again on another actor" in output


@pytest.mark.slow
def test_on_ray_interactors_and_trackers_run_in_the_serve_process(
    function_file: Path, interactor_file: Path, tracker_file: Path
) -> None:
    pytest.importorskip("ray")
    served = Served(
        [
            "-f", str(function_file), "-f", str(interactor_file), "-f", str(tracker_file),
            "--executor", "ray", "--actors", "1", "--no-direct",
        ]
    )  # fmt: skip
    try:
        detected = invoke(served.url, "corner")
        clicked = invoke(served.url, "clicks", payload={"pos_points": [[1, 2], [9, 8]]})
    finally:
        code, output = served.stop()
    assert code == 0
    assert detected.status == clicked.status == 200
    # The detector ran on the actor, the interactor here.
    assert int(detected.json()[0]["attributes"][0]["value"]) != served.process.pid
    assert (
        "'clicks' is an interaction function: it runs in this process (--executor ray runs"
        " detection functions)" in output
    )
    assert "'follow' is a tracking function: it runs in this process" in output
