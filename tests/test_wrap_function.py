"""``cvat_aa_wrap_function``: a hook plugin runs a detection function its own way for a run
(on tiles of each frame, say), with run options of its own, wherever the function is loaded:
task, job, project and file runs, Ray actors, ``cvat-aa serve`` and the agent.

The wrapper here, ``Shift``, moves every box ``shift`` pixels right: enough to see that the
wrapper ran, exactly once, and with the run's value.
"""

from __future__ import annotations

import json

import cvat_aa
import pytest
from cvat_aa.pipeline.options import RunOptions, Runs
from cvat_aa.plugins import get_plugin_manager, hooks
from cvat_aa.result_stages import RunOption
from cvat_aa.serve import FunctionChoice, Gateway, ServedFunction
from test_serve import frame, invoke
from track_scene import frames

LABELS = [{"name": "car", "type": "rectangle"}]


class Box:
    """A 4x4 box at (10, 10) on every frame."""

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0)])

    def detect(self, context, image):
        return [cvat_aa.rectangle(0, [10, 10, 14, 14])]


class Shift:
    """Runs the function, then moves its boxes ``by`` pixels to the right."""

    def __init__(self, function, by: int) -> None:
        self.function = function
        self.by = by
        self.spec = hooks().spec(function)

    def detect_batch(self, contexts, images):
        results = hooks().detect(self.function, contexts, images)
        for shapes in results:
            for shape in shapes:
                shape.points = [p + self.by * (i % 2 == 0) for i, p in enumerate(shape.points)]
        return results

    def detect(self, context, image):
        return self.detect_batch([context], [image])[0]


class ShiftPlugin:
    def __init__(self) -> None:
        self.wrapped = 0

    @cvat_aa.hookimpl
    def cvat_aa_run_options(self):
        return [
            RunOption(name="shift", help="move boxes right", default=None, type=int, serve=True)
        ]

    @cvat_aa.hookimpl
    def cvat_aa_wrap_function(self, function, options):
        if options["shift"] is None:
            return None
        self.wrapped += 1
        return Shift(function, options["shift"])


@pytest.fixture
def plugin():
    pm = get_plugin_manager()
    plugin = ShiftPlugin()
    pm.register(plugin, name="shift")
    yield plugin
    pm.unregister(plugin)


def xs(server, task: int) -> list[float]:
    return sorted(s["points"][0] for s in server.annotations(task)["shapes"])


def test_a_task_run_with_the_option_runs_the_wrapped_function_once(
    plugin, cvat_server, cvat_client
):
    task = cvat_server.create_task("wrap", images=frames(3), labels=LABELS)

    cvat_aa.annotate_task(cvat_client, task, Box(), shift=5)

    assert xs(cvat_server, task) == [15, 15, 15]
    assert plugin.wrapped == 1


def test_without_the_option_the_function_runs_as_it_is(plugin, cvat_server, cvat_client):
    task = cvat_server.create_task("wrap", images=frames(2), labels=LABELS)

    cvat_aa.annotate_task(cvat_client, task, Box())

    assert xs(cvat_server, task) == [10, 10]
    assert plugin.wrapped == 0


def test_a_project_run_wraps_the_function_once_for_all_its_tasks(plugin, cvat_server, cvat_client):
    project = cvat_server.create_project("wrap", labels=LABELS)
    tasks = [
        cvat_server.create_task("wrap", images=frames(2), project_id=project) for _ in range(2)
    ]

    cvat_aa.annotate_project(cvat_client, project, Box(), shift=1)

    assert [xs(cvat_server, t) for t in tasks] == [[11, 11], [11, 11]]
    assert plugin.wrapped == 1


def test_a_run_over_files_is_wrapped_too(plugin, tmp_path):
    for n, image in enumerate(frames(2)):
        image.save(tmp_path / f"{n}.png")

    result = cvat_aa.annotate_images(Box(), [tmp_path], shift=2)

    assert [s.points[0] for f in result.annotations.frames for s in f.shapes] == [12, 12]


def test_the_options_are_part_of_the_journal_key(plugin):
    def key(**options):
        return RunOptions.for_runs(Runs.SERVER, "annotate_task", **options).key_parts()

    assert key(shift=3) != key(shift=4) != key()
    assert key() == key(shift=None)


def test_serve_serves_the_wrapped_function(plugin):
    choice = FunctionChoice(source=Box(), id="box", plugin_options={"shift": 7})
    with Gateway([ServedFunction(choice)], port=0) as gateway:
        reply = invoke(gateway, "box", {"image": frame()})

    assert reply.status == 200, reply.data
    [item] = reply.json()
    assert item["points"][0] == 17


def test_serve_and_agent_run_take_the_options_declared_for_serving(plugin, capsys):
    from cvat_aa.cli import main

    for command in (["serve"], ["agent", "run"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        assert "--shift X" in capsys.readouterr().out


class Broken:
    @cvat_aa.hookimpl
    def cvat_aa_wrap_function(self, function, options):
        return 42


def test_a_wrapper_that_is_no_function_is_refused_naming_the_plugin(
    plugin, cvat_server, cvat_client
):
    task = cvat_server.create_task("wrap", images=frames(2), labels=LABELS)
    broken = Broken()
    get_plugin_manager().register(broken, name="broken")
    try:
        with pytest.raises(cvat_aa.BadFunctionError, match="broken's wrapper"):
            cvat_aa.annotate_task(cvat_client, task, Box())
    finally:
        get_plugin_manager().unregister(broken)
    assert cvat_server.annotations(task)["shapes"] == []


def test_the_agent_serves_the_wrapped_function(plugin, cvat_server, cvat_client, tmp_path, capsys):
    from agent_queue import Queues
    from cvat_aa.cli import main

    task = cvat_server.create_task("wrap", images=frames(2), labels=LABELS)
    function = tmp_path / "box.py"
    function.write_text(
        "import cvat_aa\n"
        "spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec('car', 0)])\n"
        "def detect(context, image):\n"
        "    return [cvat_aa.rectangle(0, [10, 10, 14, 14])]\n"
    )
    args = ["agent", "run", "--function-file", str(function), "--burst", *cvat_server.cli_args()]
    assert main([*args, "--create"]) == 0
    created = capsys.readouterr().err
    function_id = int(created.split("created native function #")[1].split()[0])
    Queues(cvat_client).submit_task(function_id, task, mapping={"car": {"name": "car"}})

    code = main([*args, "--shift", "4"])

    assert code == 0, capsys.readouterr().err
    assert xs(cvat_server, task) == [14, 14]


def test_serve_with_tile_finds_the_small_objects_the_whole_frame_misses():
    pytest.importorskip("cvat_aa_sliced_inference", reason="scripts/setup.sh installs it")
    import base64
    import io

    import numpy as np
    import PIL.Image

    class Shrinking:
        """Sees its input shrunk to 64 pixels across: a 6-pixel square in a 640-pixel frame
        becomes less than one pixel, and is not found."""

        spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0)])

        def detect(self, context, image):
            scale = image.width / 64
            small = np.asarray(image.resize((64, round(image.height / scale))))[..., 0]
            ys, xs = np.nonzero(small > 100)
            if not len(xs):
                return []
            box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            return [cvat_aa.rectangle(0, [float(v * scale) for v in box])]

    image = PIL.Image.new("RGB", (640, 480))
    image.paste((255, 255, 255), (300, 200, 306, 206))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    payload = {"image": base64.b64encode(buffer.getvalue()).decode()}

    found = {}
    for tile in (None, 64):
        options = {} if tile is None else {"tile": tile, "tile_overlap": 0.25}
        choice = FunctionChoice(source=Shrinking(), id="cars", plugin_options=options)
        with Gateway([ServedFunction(choice)], port=0) as gateway:
            reply = invoke(gateway, "cars", payload)
        assert reply.status == 200, reply.data
        found[tile] = reply.json()

    assert found[None] == []
    [car] = found[64]
    assert car["label"] == "car" and [round(p) for p in car["points"]] == [300, 200, 306, 206]
