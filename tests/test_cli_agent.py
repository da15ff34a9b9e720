"""``cvat-aa agent`` as a user runs it, against the test server: ``main()`` in this process,
and a subprocess for signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import PIL.Image
import pytest
from agent_queue import Queues
from cvat_aa.agent import labels_v2
from cvat_aa.cli import main
from cvat_aa.plugins import load_function

BOXES = """
    import cvat_aa

    def create(label: str = "thing", margin: int = 2):
        class Boxes:
            spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec(label, 0)])
            def detect(self, context, image):
                return [cvat_aa.rectangle(0, [margin, margin, image.width - margin, image.height - margin])]
        return Boxes()
"""


@pytest.fixture
def queues(cvat_client) -> Queues:
    return Queues(cvat_client)


@pytest.fixture
def boxes(tmp_path: Path) -> Path:
    path = tmp_path / "boxes.py"
    path.write_text(textwrap.dedent(BOXES))
    return path


def cvat_aa(server, *args: str) -> int:
    return main(
        [
            *args,
            "--server-host",
            server.host,
            "--server-port",
            str(server.port),
            "--auth",
            f"{server.username}:{server.password}",
        ]
    )


def test_a_native_function_is_created_from_an_installed_function_by_name(
    cvat_server, queues, capsys
) -> None:
    code = cvat_aa(cvat_server, "agent", "create", "face_detection", "--display-name", "Faces")
    out, err = capsys.readouterr()
    assert code == 0, err
    function = queues.function(int(out))
    assert (function["name"], function["provider"], function["kind"]) == (
        "Faces",
        "native",
        "detector",
    )
    spec_labels = labels_v2(load_function("face_detection").spec)
    assert [label["name"] for label in function["labels_v2"]] == [l["name"] for l in spec_labels]


def test_one_command_creates_the_native_function_then_serves_it(
    cvat_server, queues, boxes, capsys
) -> None:
    task = cvat_server.create_task(
        "cli", images=[PIL.Image.new("RGB", (30, 20))] * 2, labels=[{"name": "thing"}]
    )
    args = ["agent", "run", "--function-file", str(boxes), "-p", "margin=int:3", "--burst"]
    assert cvat_aa(cvat_server, *args, "--create") == 0
    created = capsys.readouterr().err
    assert "created native function #" in created
    function_id = int(created.split("created native function #")[1].split()[0])

    ar = queues.submit_task(function_id, task, mapping={"thing": {"name": "thing"}})
    # Again, without --create: the same native function, found by its name.
    assert cvat_aa(cvat_server, *args) == 0
    err = capsys.readouterr().err
    assert "created" not in err
    assert f"serving native function #{function_id} ('boxes')" in err
    assert "1 requests completed, 0 failed, 0 dropped" in err
    assert queues.request(ar)["status"] == "finished"
    shapes = cvat_server.annotations(task)["shapes"]
    assert sorted(s["points"] for s in shapes) == [[3, 3, 27, 17]] * 2


def test_without_create_a_missing_native_function_is_exit_4(cvat_server, queues, boxes, capsys):
    code = cvat_aa(cvat_server, "agent", "run", "--function-file", str(boxes), "--burst")
    assert code == 4
    assert "add --create to create one" in capsys.readouterr().err


def test_a_native_function_that_does_not_fit_is_exit_2(cvat_server, queues, boxes, capsys):
    assert cvat_aa(cvat_server, "agent", "create", "--function-file", str(boxes)) == 0
    function_id = capsys.readouterr().out.strip()
    args = ["agent", "run", "--function-file", str(boxes), "-p", "label=str:other"]
    assert cvat_aa(cvat_server, *args, "--function-id", function_id, "--burst") == 2
    assert "label 'thing' is not supported" in capsys.readouterr().err
    # Found by name, it does not fit either: none is found.
    assert cvat_aa(cvat_server, *args, "--burst") == 4


def test_native_functions_are_listed_and_deleted(cvat_server, queues, boxes, capsys) -> None:
    assert cvat_aa(cvat_server, "agent", "create", "--function-file", str(boxes)) == 0
    function_id = int(capsys.readouterr().out)
    assert cvat_aa(cvat_server, "agent", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(f["id"], f["name"]) for f in listed] == [(function_id, "boxes")]
    assert cvat_aa(cvat_server, "agent", "list") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["ID", "KIND", "LABELS", "NAME"]
    assert table[1].split() == [str(function_id), "detector", "1", "boxes"]
    assert cvat_aa(cvat_server, "agent", "delete", str(function_id), "999") == 0
    err = capsys.readouterr().err
    assert f"deleted function #{function_id}" in err
    assert "there is no function #999" in err
    assert cvat_aa(cvat_server, "agent", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_run_options_are_checked_before_connecting(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["agent", "run", "--function", "x", "--create", "--function-id", "3"])
    assert exit_info.value.code == 2
    assert main(["agent", "run", "--function", "face_detection", "--actors", "2"]) == 2
    assert "--actors needs --executor ray" in capsys.readouterr().err


CLICKS = """
    import cvat_aa

    spec = cvat_aa.InteractionFunctionSpec(min_pos_points=1, min_bounding_boxes=1)

    def detect(context, image, prompts):
        (x1, y1), (x2, y2) = prompts.bounding_box
        return [cvat_aa.InteractionResultShape(type="rectangle", points=[x1, y1, x2, y2])]
"""

TRACKER = """
    import cvat_aa

    def create(types: str = "rectangle"):
        class Still:
            spec = cvat_aa.TrackingFunctionSpec(supported_shape_types=types.split(","))
            def init_tracking_state(self, context, image, shape):
                return shape
            def track(self, context, image, shape):
                return shape
        return Still()
"""


def test_an_interactor_is_registered_with_its_prompts_and_served_by_name(
    cvat_server, queues, tmp_path, capsys
) -> None:
    clicks = tmp_path / "clicks.py"
    clicks.write_text(textwrap.dedent(CLICKS))
    assert cvat_aa(cvat_server, "agent", "create", "--function-file", str(clicks)) == 0
    function = queues.function(int(capsys.readouterr().out))
    assert function["kind"] == "interactor"
    assert (function["min_pos_points"], function["min_neg_points"]) == (1, -1)
    assert (function["startswith_box"], function["startswith_box_optional"]) == (True, False)
    task = cvat_server.create_task(
        "clicked", images=[PIL.Image.new("RGB", (30, 20))], labels=[{"name": "thing"}]
    )
    answers: list = []
    click = {"type": "interact", "task": task, "frame": 0, "pos_points": [[5, 5]]}
    click["obj_bbox"] = [[2, 3], [12, 13]]
    caller = threading.Thread(target=lambda: answers.append(queues.run(function["id"], click)))
    caller.start()
    deadline = time.monotonic() + 30
    while not cvat_server.function_requests():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert cvat_aa(cvat_server, "agent", "run", "--function-file", str(clicks), "--burst") == 0
    caller.join(30)
    assert f"serving native function #{function['id']} ('clicks')" in capsys.readouterr().err
    assert answers == [
        {"shapes": [{"type": "rectangle", "points": [2.0, 3.0, 12.0, 13.0], "attributes": []}]}
    ]


def test_a_tracker_is_created_with_its_shape_types_and_refused_by_a_narrower_one(
    cvat_server, queues, tmp_path, capsys
) -> None:
    tracker = tmp_path / "still.py"
    tracker.write_text(textwrap.dedent(TRACKER))
    args = ["agent", "run", "--function-file", str(tracker), "--burst"]
    assert cvat_aa(cvat_server, *args, "-p", "types=str:rectangle,polygon", "--create") == 0
    err = capsys.readouterr().err
    function_id = int(err.split("created native function #")[1].split()[0])
    function = queues.function(function_id)
    assert (function["kind"], function["supported_shape_types"]) == (
        "tracker",
        ["polygon", "rectangle"],
    )
    assert "the tracking states this agent gives out are lost when it exits" in err
    assert cvat_aa(cvat_server, "agent", "list") == 0
    assert capsys.readouterr().out.splitlines()[1].split() == [
        str(function_id),
        "tracker",
        "-",
        "still",
    ]
    assert cvat_aa(cvat_server, *args, "--function-id", str(function_id)) == 2
    err = capsys.readouterr().err
    assert "does not support the following shape types: 'polygon'" in err
    assert "Run the agent with the function it was created from" in err


SLOW = """
    import time
    import cvat_aa

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("thing", 0)])

    def detect(context, image):
        time.sleep(0.3)
        return [cvat_aa.rectangle(0, [1, 1, 5, 5])]
"""


@pytest.mark.parametrize("signals", [1, 2])
def test_sigterm_finishes_the_request_in_progress_and_a_second_drops_it(
    cvat_server, cvat_client, tmp_path, capsys, signals
) -> None:
    queues = Queues(cvat_client)
    slow = tmp_path / "slow.py"
    slow.write_text(textwrap.dedent(SLOW))
    images = [PIL.Image.new("RGB", (30, 20))] * 8
    task = cvat_server.create_task("slow", images=images, labels=[{"name": "thing"}])
    assert cvat_aa(cvat_server, "agent", "create", "--function-file", str(slow)) == 0
    function_id = int(capsys.readouterr().out)
    ar = queues.submit_task(function_id, task, mapping={"thing": {"name": "thing"}})
    command = [sys.executable, "-m", "cvat_aa", "agent", "run", "--function-file", str(slow)]
    command += ["--function-id", str(function_id), "--batch-size", "1"]
    command += ["--server-host", cvat_server.host, "--server-port", str(cvat_server.port)]
    command += ["--auth", f"{cvat_server.username}:{cvat_server.password}"]
    agent = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while queues.request(ar)["status"] != "started":
            assert time.monotonic() < deadline and agent.poll() is None
            time.sleep(0.05)
        for _ in range(signals):
            agent.send_signal(signal.SIGTERM)
            time.sleep(0.1)
        _, err = agent.communicate(timeout=60)
    finally:
        agent.kill()
    assert agent.returncode == 0, err
    if signals == 1:
        assert "1 requests completed, 0 failed, 0 dropped" in err
        assert queues.request(ar)["status"] == "finished"
        assert len(cvat_server.annotations(task)["shapes"]) == 8
    else:
        assert "0 requests completed, 0 failed, 1 dropped" in err
        assert cvat_server.annotations(task)["shapes"] == []
