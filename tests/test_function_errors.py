"""What a function (or a plugin) raises: callers get the function's own exception, naming the
frame, as from cvat-sdk; and plugin code never decides how cvat-aa ends."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import cvat_aa
import PIL.Image
import pytest
from cvat_aa import plugins
from cvat_aa.pipeline.detection import FunctionFailedError, failure_of
from cvat_aa_testing import TestServer

LABELS = [{"name": "car", "type": "rectangle"}]


class CorruptPixels(ValueError):
    """An exception class of the function's own."""


class RaisesOn:
    """Boxes every frame, but raises ``error`` on the frames named in ``on``."""

    def __init__(self, on: set[int], error: BaseException):
        self.spec = cvat_aa.DetectionFunctionSpec(
            labels=[cvat_aa.label_spec("car", 0, type="rectangle")]
        )
        self.on = on
        self.error = error

    def detect(self, context, image):
        if int(context.frame_name[6:12]) in self.on:
            raise self.error
        return [cvat_aa.rectangle(0, [0, 0, 2, 2])]


@pytest.fixture
def task(cvat_server: TestServer) -> int:
    images = [PIL.Image.new("RGB", (20, 16), (i * 20, 0, 0)) for i in range(10)]
    return cvat_server.create_task("errors", images=images, labels=LABELS, segment_size=10)


def shapes(server: TestServer, task_id: int) -> list[dict]:
    return server.annotations(task_id)["shapes"]


# --- the Python API: the function's own exception ------------------------------------------


def test_the_functions_own_exception_reaches_the_caller_naming_the_frame_of_its_batch(
    cvat_server, cvat_client, task
):
    function = RaisesOn({5}, ValueError("bad pixels"))
    with pytest.raises(ValueError, match="bad pixels") as info:
        cvat_aa.annotate_task(cvat_client, task, function, batch_size=8)
    assert info.value is function.error
    assert info.value.__notes__ == ["cvat-aa: the function failed on frame 5 (frame_000005.png)"]
    assert shapes(cvat_server, task) == []


def test_an_exception_class_of_the_functions_own_is_caught_by_its_class(cvat_client, task):
    try:
        cvat_aa.annotate_task(cvat_client, task, RaisesOn({0}, CorruptPixels("frame 0")))
    except CorruptPixels:
        pass
    else:
        pytest.fail("CorruptPixels was not raised")


def test_a_job_run_raises_the_functions_own_exception(cvat_server, cvat_client, task):
    [job] = cvat_server.jobs(task)
    with pytest.raises(KeyError) as info:
        cvat_aa.annotate_job(cvat_client, job["id"], RaisesOn({7}, KeyError("no such class")))
    assert "frame 7 (frame_000007.png)" in info.value.__notes__[0]


def test_a_run_over_several_tasks_raises_the_functions_own_exception(
    cvat_server, cvat_client, task
):
    with pytest.raises(ZeroDivisionError):
        cvat_aa.annotate_tasks(cvat_client, [task], RaisesOn({2}, ZeroDivisionError()))


def test_skip_still_records_failed_frames_of_a_batch_and_uploads_the_rest(
    cvat_server, cvat_client, task
):
    summary = cvat_aa.annotate_task(
        cvat_client, task, RaisesOn({3, 4}, ValueError("bad")), batch_size=8, on_error="skip"
    )
    assert summary.failed_frames == {3: "ValueError: bad", 4: "ValueError: bad"}
    assert sorted(s["frame"] for s in shapes(cvat_server, task)) == [0, 1, 2, 5, 6, 7, 8, 9]


def test_a_failure_pickles_with_the_functions_exception():
    failure = FunctionFailedError("failed on frame 1 (a.png): X", [1], "X", KeyError(3))
    copy = pickle.loads(pickle.dumps(failure))
    assert (str(copy), copy.frames, copy.reason) == (str(failure), [1], "X")
    assert isinstance(copy.original, KeyError) and copy.original.args == (3,)


def test_a_failure_whose_exception_does_not_pickle_pickles_without_it():
    class Local(Exception):  # defined in a function: pickle cannot find it
        pass

    copy = pickle.loads(pickle.dumps(FunctionFailedError("m", [1], "r", Local())))
    assert copy.original is None and copy.frames == [1]


# --- plugin code never decides how a run ends ----------------------------------------------


@pytest.mark.parametrize("error", [SystemExit(0), SystemExit(3), GeneratorExit()])
def test_system_exit_from_detect_is_a_failure_on_its_frame(cvat_server, cvat_client, task, error):
    with pytest.raises(FunctionFailedError, match=r"on frame 5 \(frame_000005.png\)") as info:
        cvat_aa.annotate_task(cvat_client, task, RaisesOn({5}, error), batch_size=4)
    assert info.value.__cause__ is error
    assert shapes(cvat_server, task) == []


def test_system_exit_from_detect_is_skipped_like_any_failure(cvat_client, task):
    summary = cvat_aa.annotate_task(
        cvat_client, task, RaisesOn({1}, SystemExit(0)), on_error="skip"
    )
    assert summary.failed_frames == {1: "SystemExit: 0"}


def test_system_exit_from_a_spec_is_a_bad_function(cvat_client, task):
    class ExitingSpec:
        @property
        def spec(self):
            sys.exit(0)

        def detect(self, context, image):
            return []

    with pytest.raises(cvat_aa.BadFunctionError, match="spec raised SystemExit: 0"):
        cvat_aa.annotate_task(cvat_client, task, ExitingSpec())


OBSERVER_THAT_EXITS = """
    import sys
    import cvat_aa

    @cvat_aa.hookimpl
    def cvat_aa_frames_done(frames, annotations):
        sys.exit(0)
"""

WRAPPER_THAT_EXITS = """
    import sys
    import cvat_aa

    @cvat_aa.hookimpl(wrapper=True)
    def cvat_aa_detect(function, contexts, images):
        results = yield
        if any(c.frame_name == "frame_000006.png" for c in contexts):
            raise SystemExit(0)
        return results
"""


def test_system_exit_from_a_hook_plugins_observer_is_a_bad_function(
    cvat_server, cvat_client, task, make_distribution
):
    make_distribution(
        "cvat-aa-quitter",
        modules={"quitter_hooks_a": OBSERVER_THAT_EXITS},
        entry_points={plugins.HOOK_PLUGINS_GROUP: {"quitter": "quitter_hooks_a"}},
    )
    with pytest.raises(
        cvat_aa.BadFunctionError, match="'quitter' raised SystemExit: 0 in cvat_aa_frames_done"
    ):
        cvat_aa.annotate_task(cvat_client, task, RaisesOn(set(), ValueError()))
    assert shapes(cvat_server, task) == []


def test_system_exit_from_a_hook_plugins_detect_wrapper_is_a_failure_on_its_frame(
    cvat_client, task, make_distribution
):
    make_distribution(
        "cvat-aa-quitter",
        modules={"quitter_hooks_b": WRAPPER_THAT_EXITS},
        entry_points={plugins.HOOK_PLUGINS_GROUP: {"quitter": "quitter_hooks_b"}},
    )
    with pytest.raises(FunctionFailedError, match=r"frame 6 \(frame_000006.png\): SystemExit"):
        cvat_aa.annotate_task(cvat_client, task, RaisesOn(set(), ValueError()), batch_size=4)


# --- the CLI: exit 6 naming the one frame ----------------------------------------------------

FUNCTION_FILE = """
import sys
import cvat_aa

spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])

def detect(context, image):
    if context.frame_name == "frame_000005.png":
        {action}
    return [cvat_aa.rectangle(0, [0, 0, 2, 2])]
"""


def run_cli(server: TestServer, tmp_path: Path, *args: str, env=None):
    return subprocess.run(
        [sys.executable, "-m", "cvat_aa", *args, *server.cli_args()],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), **(env or {})},
        timeout=120,
    )


def function_file(tmp_path: Path, action: str) -> str:
    path = tmp_path / "function.py"
    path.write_text(FUNCTION_FILE.format(action=action))
    return str(path)


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("raise ValueError('bad pixels')", "ValueError: bad pixels"),
        ("sys.exit(3)", "SystemExit: 3"),
        ("sys.exit(0)", "SystemExit: 0"),
    ],
)
def test_the_cli_exits_6_naming_the_one_frame_of_the_batch_that_failed(
    cvat_server, task, tmp_path, action, reason
):
    path = function_file(tmp_path, action)
    result = run_cli(
        cvat_server, tmp_path, "annotate", str(task), "--function-file", path, "--batch-size", "8"
    )
    assert result.returncode == 6, result.stderr
    assert f"the function failed on frame 5 (frame_000005.png): {reason}" in result.stderr
    assert "Traceback" not in result.stderr
    assert shapes(cvat_server, task) == []


def test_the_cli_exits_5_when_a_hook_plugin_exits(cvat_server, task, tmp_path, make_distribution):
    dist_info = make_distribution(
        "cvat-aa-quitter",
        modules={"quitter_hooks_c": OBSERVER_THAT_EXITS},
        entry_points={plugins.HOOK_PLUGINS_GROUP: {"quitter": "quitter_hooks_c"}},
    )
    path = function_file(tmp_path, "pass")
    result = run_cli(
        cvat_server,
        tmp_path,
        "annotate",
        str(task),
        "--function-file",
        path,
        env={"PYTHONPATH": str(dist_info.parent)},
    )
    assert result.returncode == 5, result.stderr
    assert "hook plugin 'quitter' raised SystemExit: 0 in cvat_aa_frames_done" in result.stderr
    assert shapes(cvat_server, task) == []


def test_failure_of_finds_the_failure_behind_the_functions_own_exception(cvat_client, task):
    with pytest.raises(ValueError) as info:
        cvat_aa.annotate_task(cvat_client, task, RaisesOn({2}, ValueError("x")))
    failure = failure_of(info.value)
    assert failure is not None and failure.frames == [2]
    assert failure_of(ValueError("not from a function")) is None
