"""Failures are survivable: retries, lost replies, clear_existing, resume, skipped frames, secrets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import PIL.Image
import pytest
from cvat_sdk.api_client.exceptions import ApiException

import cvat_aa
from cvat_aa.driver.retry import RetryPolicy
from cvat_aa_testing import TestServer

LABELS = [{"name": "car", "type": "rectangle"}]
FAST_RETRY = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)


class Boxes:
    """One box per frame, its size set by the frame number."""

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])

    def detect(self, context, image):
        n = int(context.frame_name.split("_")[1].split(".")[0])
        return [cvat_aa.rectangle(0, [n, n, n + 5, n + 5])]


def expected(frames) -> list[tuple[int, tuple[float, ...]]]:
    return [(n, (n, n, n + 5, n + 5)) for n in frames]


def uploaded(server: TestServer, task: int) -> list[tuple[int, tuple[float, ...]]]:
    return sorted((s["frame"], tuple(s["points"])) for s in server.annotations(task)["shapes"])


@pytest.fixture
def task(cvat_server: TestServer) -> int:
    images = [PIL.Image.new("RGB", (24, 24), (i, 0, 0)) for i in range(12)]
    return cvat_server.create_task("reliability", images=images, labels=LABELS, chunk_size=4)


def small_pieces(monkeypatch):
    """Upload every two frames, so that faults hit uploads in the middle of a run."""
    original = cvat_aa.annotate_task

    def annotate_task(*args, **kwargs):
        return original(*args, **{"upload_frames": 2, **kwargs})

    monkeypatch.setattr(cvat_aa, "annotate_task", annotate_task)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_on_downloads_are_retried(cvat_server, cvat_client, task, status):
    cvat_server.faults.fail_next(2, status=status, method="GET", path=r"/data/?$")
    cvat_aa.annotate_task(cvat_client, task, Boxes(), retry=FAST_RETRY)
    assert uploaded(cvat_server, task) == expected(range(12))


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_statuses_on_uploads_are_retried_without_duplicates(
    cvat_server, cvat_client, task, status, monkeypatch
):
    small_pieces(monkeypatch)
    cvat_server.faults.fail_next(3, status=status, method="PATCH")
    cvat_aa.annotate_task(cvat_client, task, Boxes(), retry=FAST_RETRY)
    assert uploaded(cvat_server, task) == expected(range(12))


def test_dropped_connections_on_downloads_are_retried(cvat_server, cvat_client, task):
    cvat_server.faults.close_connection_next(2, when="before", method="GET", path=r"/data/?$")
    cvat_aa.annotate_task(cvat_client, task, Boxes(), retry=FAST_RETRY)
    assert uploaded(cvat_server, task) == expected(range(12))


def test_an_upload_applied_before_its_reply_was_lost_is_not_duplicated(
    cvat_server, cvat_client, task, monkeypatch
):
    small_pieces(monkeypatch)
    cvat_server.faults.close_connection_next(2, when="after", method="PATCH")
    cvat_aa.annotate_task(cvat_client, task, Boxes(), retry=FAST_RETRY)
    assert uploaded(cvat_server, task) == expected(range(12))


def test_an_upload_lost_before_it_was_applied_is_sent_again(
    cvat_server, cvat_client, task, monkeypatch
):
    small_pieces(monkeypatch)
    cvat_server.faults.close_connection_next(2, when="before", method="PATCH")
    cvat_aa.annotate_task(cvat_client, task, Boxes(), retry=FAST_RETRY)
    assert uploaded(cvat_server, task) == expected(range(12))


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_permanent_statuses_are_not_retried(cvat_server, cvat_client, task, status):
    cvat_server.faults.fail_next(1, status=status, method="GET", path=r"/data/?$")
    with pytest.raises(ApiException) as info:
        cvat_aa.annotate_task(cvat_client, task, Boxes(), retry=FAST_RETRY)
    assert info.value.status == status
    assert uploaded(cvat_server, task) == []


def test_retries_honour_retry_after():
    error = ApiException(status=429, reason="Too Many Requests")
    error.headers = {"Retry-After": "7"}
    assert RetryPolicy().delay(1, error) == 7


def test_backoff_grows_and_is_capped():
    error = ApiException(status=503, reason="Service Unavailable")
    policy = RetryPolicy(base_delay=1, max_delay=8)
    assert 0.5 <= policy.delay(1, error) <= 1
    assert 4 <= policy.delay(4, error) <= 8
    assert 4 <= policy.delay(10, error) <= 8


def test_clear_existing_keeps_old_annotations_when_the_run_fails(cvat_server, cvat_client, task):
    cvat_aa.annotate_task(cvat_client, task, Boxes())
    before = cvat_server.annotations(task)["shapes"]

    class FailsLate(Boxes):
        def detect(self, context, image):
            if context.frame_name.endswith("10.png"):
                raise RuntimeError("GPU fell off the bus")
            return [cvat_aa.rectangle(0, [1, 1, 2, 2])]

    with pytest.raises(RuntimeError, match="GPU fell off the bus"):
        cvat_aa.annotate_task(cvat_client, task, FailsLate(), clear_existing=True, batch_size=1)
    assert cvat_server.annotations(task)["shapes"] == before


def test_clear_existing_keeps_old_annotations_when_uploads_fail(
    cvat_server, cvat_client, task, monkeypatch
):
    cvat_aa.annotate_task(cvat_client, task, Boxes())
    before = uploaded(cvat_server, task)
    small_pieces(monkeypatch)
    cvat_server.faults.fail_next(50, status=503, method="PATCH", path="annotations")
    with pytest.raises(ApiException):
        cvat_aa.annotate_task(cvat_client, task, Boxes(), clear_existing=True, retry=FAST_RETRY)
    assert uploaded(cvat_server, task) == before


def test_skip_records_failed_frames_and_uploads_the_rest(cvat_server, cvat_client, task):
    class FailsOnSome(Boxes):
        def detect(self, context, image):
            if context.frame_name.endswith(("03.png", "07.png")):
                raise ValueError("corrupt input")
            return super().detect(context, image)

    summary = cvat_aa.annotate_task(cvat_client, task, FailsOnSome(), on_error="skip", batch_size=4)
    assert summary.failed_frames == {3: "ValueError: corrupt input", 7: "ValueError: corrupt input"}
    assert uploaded(cvat_server, task) == expected([f for f in range(12) if f not in (3, 7)])


def test_a_resumed_run_does_not_recompute_or_duplicate(
    cvat_server, cvat_client, task, tmp_path, monkeypatch
):
    small_pieces(monkeypatch)
    seen: list[int] = []

    class Interrupted(Boxes):
        def detect(self, context, image):
            n = int(context.frame_name.split("_")[1].split(".")[0])
            if n == 9 and not seen.count(-1):
                seen.append(-1)
                raise KeyboardInterrupt
            seen.append(n)
            return super().detect(context, image)

    function = Interrupted()
    journal = {
        "journal_dir": tmp_path / "journals",
        "journal_key": "interrupted-test",
        "batch_size": 1,
    }
    with pytest.raises(KeyboardInterrupt):
        cvat_aa.annotate_task(cvat_client, task, function, **journal)
    assert uploaded(cvat_server, task) == [], "a stopped run removes what it uploaded"
    first = [n for n in seen if n >= 0]
    seen.clear()
    seen.append(-1)
    summary = cvat_aa.annotate_task(cvat_client, task, function, **journal)
    assert summary.resumed and summary.frames == 12
    assert [n for n in seen if n >= 0] == [n for n in range(12) if n not in first]
    assert uploaded(cvat_server, task) == expected(range(12))
    assert not list((tmp_path / "journals").glob("*.sqlite3")), "a finished run removes its journal"


def test_a_different_parameter_set_never_reuses_a_journal(cvat_server, cvat_client, task, tmp_path):
    class Fails(Boxes):
        def detect(self, context, image):
            raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        cvat_aa.annotate_task(
            cvat_client, task, Fails(), journal_dir=tmp_path, journal_key={"f": "x", "p": 1}
        )
    summary = cvat_aa.annotate_task(
        cvat_client, task, Boxes(), journal_dir=tmp_path, journal_key={"f": "x", "p": 2}
    )
    assert not summary.resumed
    summary = cvat_aa.annotate_task(
        cvat_client,
        task,
        Boxes(),
        journal_dir=tmp_path,
        journal_key={"f": "x", "p": 2},
        conf_threshold=0.5,
    )
    assert not summary.resumed


def test_resume_without_a_journal_is_an_error(cvat_client, task, tmp_path):
    with pytest.raises(ValueError, match="no interrupted run"):
        cvat_aa.annotate_task(
            cvat_client, task, Boxes(), journal_dir=tmp_path, journal_key="k", resume=True
        )


# --- the CLI, killed and resumed ---------------------------------------------------------------

SLOW_FUNCTION = """
import os, time
import cvat_aa

spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])

def detect(context, image):
    n = int(context.frame_name.split("_")[1].split(".")[0])
    with open(os.environ["SEEN_LOG"], "a") as log:
        log.write(f"{n}\\n")
    time.sleep(float(os.environ.get("FRAME_DELAY", "0")))
    return [cvat_aa.rectangle(0, [n, n, n + 5, n + 5])]
"""


def run_cli(server: TestServer, *args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cvat_aa", *args, *server.cli_args()],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_a_cli_run_killed_with_sigkill_resumes_to_exactly_the_expected_annotations(
    cvat_server, tmp_path
):
    images = [PIL.Image.new("RGB", (48, 48), (i, 0, 0)) for i in range(40)]
    task = cvat_server.create_task("killed", images=images, labels=LABELS, chunk_size=4)
    function_file = tmp_path / "slow.py"
    function_file.write_text(SLOW_FUNCTION)
    seen_log = tmp_path / "seen.log"
    env = {
        "SEEN_LOG": str(seen_log),
        "FRAME_DELAY": "0.05",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    args = (
        "annotate",
        str(task),
        "--function-file",
        str(function_file),
        "--batch-size",
        "1",
        "--upload-frames",
        "4",
    )

    process = run_cli(cvat_server, *args, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = seen_log.read_text().split() if seen_log.exists() else []
        if len(done) >= 25 and cvat_server.annotations(task)["shapes"]:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = [int(n) for n in seen_log.read_text().split()]
    assert 0 < len(cvat_server.annotations(task)["shapes"]) < 40, "killed in the middle"

    env["FRAME_DELAY"] = "0"
    seen_log.write_text("")
    resumed = run_cli(cvat_server, *args, "--resume", env=env)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "(resumed: " in out
    recomputed = [int(n) for n in seen_log.read_text().split()]
    # At most the frame in flight at the kill is computed twice.
    assert len(set(first) & set(recomputed)) <= 1
    assert sorted(set(first) | set(recomputed)) == list(range(40))
    assert uploaded(cvat_server, task) == expected(range(40))


def test_cli_skip_lists_failed_frames_and_exits_6(cvat_server, tmp_path):
    images = [PIL.Image.new("RGB", (24, 24), (i, 0, 0)) for i in range(5)]
    task = cvat_server.create_task("skip", images=images, labels=LABELS)
    function_file = tmp_path / "flaky.py"
    function_file.write_text(
        "import cvat_aa\n"
        "spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec('car', 0)])\n"
        "def detect(context, image):\n"
        "    if context.frame_name.endswith('2.png'):\n"
        "        raise ValueError('bad pixels')\n"
        "    return [cvat_aa.rectangle(0, [1, 1, 4, 4])]\n"
    )
    process = run_cli(
        cvat_server,
        "annotate",
        str(task),
        "--function-file",
        str(function_file),
        "--on-error",
        "skip",
        env={"XDG_STATE_HOME": str(tmp_path / "state")},
    )
    out, err = process.communicate(timeout=120)
    assert process.returncode == 6, err
    assert "frame 2 (frame_000002.png): the function failed: ValueError: bad pixels" in out
    assert len(cvat_server.annotations(task)["shapes"]) == 4


def test_secrets_never_appear_in_output_logs_or_journals(cvat_server, tmp_path):
    password = "Pa55-" + "w0rd-known-to-the-test"
    cvat_server.create_user("alice", password, is_superuser=True)
    token = cvat_server.create_access_token("alice")
    images = [PIL.Image.new("RGB", (24, 24), (i, 0, 0)) for i in range(3)]
    task = cvat_server.create_task("secrets", images=images, labels=LABELS)
    function_file = tmp_path / "raises.py"
    function_file.write_text(
        "import cvat_aa\n"
        "spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec('car', 0)])\n"
        "def detect(context, image):\n"
        "    raise RuntimeError('boom')\n"
    )
    state = tmp_path / "state"
    host = ["--server-host", cvat_server.host, "--server-port", str(cvat_server.port)]
    runs = [
        # password: a good run, a failing run, a wrong password
        (["--auth", f"alice:{password}"], {}, "boxes"),
        (["--auth", f"alice:{password}"], {}, "raises"),
        (["--auth", f"alice:{password}x"], {}, "boxes"),
        # token: a good run and a failing one
        ([], {"CVAT_ACCESS_TOKEN": token}, "boxes"),
        ([], {"CVAT_ACCESS_TOKEN": token}, "raises"),
        ([], {"CVAT_ACCESS_TOKEN": token + "x"}, "boxes"),
    ]
    boxes = tmp_path / "boxes.py"
    boxes.write_text(SLOW_FUNCTION)
    written = []
    for auth, extra_env, which in runs:
        function = boxes if which == "boxes" else function_file
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cvat_aa",
                "--debug",
                "annotate",
                str(task),
                "--function-file",
                str(function),
                *host,
                *auth,
            ],
            env={
                **os.environ,
                "XDG_STATE_HOME": str(state),
                "SEEN_LOG": str(tmp_path / "seen"),
                "CVAT_AA_TRACE_HOOKS": "1",
                **extra_env,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        written += [result.stdout, result.stderr]
    written += [p.read_bytes().decode("latin-1") for p in state.rglob("*") if p.is_file()]
    everything = "\n".join(written)
    assert "DEBUG" in everything, "debug output was produced"
    for secret in (password, token):
        assert secret not in everything
    assert "sessionid=" not in everything and "csrftoken=" not in everything


def test_editing_a_function_module_starts_a_new_journal(tmp_path, monkeypatch):
    import argparse

    from cvat_aa.cli.options import function_identity

    module = tmp_path / "my_module_for_identity.py"
    module.write_text("VERSION = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    args = argparse.Namespace(
        function=None,
        function_file=None,
        function_module="my_module_for_identity",
        function_parameters=[("a", 1)],
    )
    before = function_identity(args, "my_module_for_identity")
    module.write_text("VERSION = 2\n")
    assert function_identity(args, "my_module_for_identity") != before
