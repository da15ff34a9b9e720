"""Nothing a user owns is lost or duplicated: ids per kind, clearing, locking, orphaned runs.

CVAT numbers tags, shapes and tracks in separate sequences, so a task routinely holds a tag, a
shape and a track that all have id 1. Every test here seeds such collisions on purpose.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

import cvat_aa
from cvat_aa.driver.journal import Journal, list_journals
from cvat_aa.driver.run_lock import RunInProgressError, RunLock
from cvat_aa.driver.server_url import normalize_server_url, redact_url
from cvat_aa.driver.upload import RollbackReport, Uploader
from cvat_aa_testing import TestServer

LABELS = [{"name": "car", "type": "rectangle"}, {"name": "night", "type": "tag"}]


def frame_number(context) -> int:
    return int(context.frame_name.split("_")[1].split(".")[0])


class Boxes:
    """One box per frame, ``size`` pixels wide."""

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])

    def __init__(self, fail_on: int | None = None, size: int = 5) -> None:
        self.fail_on = fail_on
        self.size = size

    def detect(self, context, image):
        n = frame_number(context)
        if n == self.fail_on:
            raise ValueError(f"cannot read frame {n}")
        return [cvat_aa.rectangle(0, [n, n, n + self.size, n + self.size])]


class Tags:
    """One tag per frame; fails on one frame if asked to."""

    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("night", 0, type="tag")])

    def __init__(self, fail_on: int | None = None) -> None:
        self.fail_on = fail_on

    def detect(self, context, image):
        if frame_number(context) == self.fail_on:
            raise ValueError("the model ran out of memory")
        return [cvat_aa.tag(0)]


def make_task(server: TestServer, frames: int, **kwargs) -> int:
    images = [PIL.Image.new("RGB", (48, 48), (i, 0, 0)) for i in range(frames)]
    return server.create_task("safety", images=images, labels=LABELS, chunk_size=4, **kwargs)


def box(label: int, frame: int, **extra) -> dict:
    return {
        "type": "rectangle",
        "frame": frame,
        "label_id": label,
        "points": [1, 1, 9, 9],
        "source": "manual",
        **extra,
    }


def track(label: int, keyframes: list[tuple[int, bool]]) -> dict:
    """A rectangle track with shapes at these (frame, outside) keyframes."""
    return {
        "frame": keyframes[0][0],
        "label_id": label,
        "source": "manual",
        "shapes": [
            {"type": "rectangle", "frame": f, "points": [2, 2, 8, 8], "outside": outside}
            for f, outside in keyframes
        ],
    }


def seed(
    server: TestServer,
    task: int,
    *,
    tags: list[int] = (),
    shapes: list[int] = (),
    tracks: list[list[tuple[int, bool]]] = (),
) -> dict[str, list[tuple[int, int]]]:
    """Give the task manual annotations; return (id, frame) of each, per kind."""
    car, night = server.label_id(task, "car"), server.label_id(task, "night")
    server.set_annotations(
        task,
        {
            "tags": [{"frame": f, "label_id": night, "source": "manual"} for f in tags],
            "shapes": [box(car, f) for f in shapes],
            "tracks": [track(car, keyframes) for keyframes in tracks],
        },
    )
    return manual(server, task)


def manual(server: TestServer, task: int) -> dict[str, list[tuple[int, int]]]:
    data = server.annotations(task)
    return {
        kind: sorted((a["id"], a["frame"]) for a in data[kind] if a["source"] == "manual")
        for kind in ("tags", "shapes", "tracks")
    }


def auto(server: TestServer, task: int, kind: str = "shapes") -> list[int]:
    """The frames of the run's annotations of one kind."""
    return sorted(a["frame"] for a in server.annotations(task)[kind] if a["source"] == "auto")


# --- 1. ids are per kind ---------------------------------------------------------------------


def test_clearing_a_task_with_tags_keeps_the_new_shapes_that_share_their_ids(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 6)
    before = seed(cvat_server, task, tags=range(6))
    assert [i for i, _ in before["tags"]] == [1, 2, 3, 4, 5, 6]

    cvat_aa.annotate_task(cvat_client, task, Boxes(), clear_existing=True)

    shapes = cvat_server.annotations(task)["shapes"]
    assert sorted(s["id"] for s in shapes) == [1, 2, 3, 4, 5, 6], "ids collide with the old tags"
    assert auto(cvat_server, task) == list(range(6))
    assert manual(cvat_server, task) == {"tags": [], "shapes": [], "tracks": []}


def test_a_failed_run_that_uploaded_tags_keeps_the_users_shapes_with_the_same_ids(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 8)
    before = seed(cvat_server, task, shapes=range(4))

    with pytest.raises(Exception, match="ran out of memory"):
        cvat_aa.annotate_task(
            cvat_client, task, Tags(fail_on=6), batch_size=1, upload_frames=2
        )

    assert manual(cvat_server, task) == before
    assert auto(cvat_server, task, "tags") == [], "the run's tags were rolled back"


def test_a_failed_job_run_keeps_the_users_tracks_with_the_same_ids(cvat_server, cvat_client):
    task = make_task(cvat_server, 8, segment_size=4)
    before = seed(cvat_server, task, tracks=[[(0, False), (3, True)], [(1, False), (2, True)]])
    job = cvat_server.jobs(task)[0]["id"]

    with pytest.raises(Exception, match="cannot read frame 3"):
        cvat_aa.annotate_job(cvat_client, job, Boxes(fail_on=3), batch_size=1, upload_frames=1)

    assert manual(cvat_server, task) == before
    assert auto(cvat_server, task) == []


def test_clearing_a_job_removes_its_track_and_keeps_new_shapes_with_the_tracks_id(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 6, segment_size=3)
    seed(cvat_server, task, tracks=[[(0, False), (2, True)], [(3, False), (5, True)]])
    first_job = cvat_server.jobs(task)[0]["id"]

    cvat_aa.annotate_job(cvat_client, first_job, Boxes(), clear_existing=True)

    shapes = cvat_server.annotations(task)["shapes"]
    assert sorted((s["id"], s["frame"]) for s in shapes) == [(1, 0), (2, 1), (3, 2)]
    # The first job's track is replaced; the second job's is not touched.
    assert [f for _, f in manual(cvat_server, task)["tracks"]] == [3]


def test_clearing_a_job_touches_only_its_own_part_of_a_track_across_jobs(
    cvat_server, cvat_client
):
    # As on CVAT, a track sent to a task across jobs is stored as one track per job: the
    # first job's part (frames 2-3) and the second's (4-6) have ids of their own.
    task = make_task(cvat_server, 8, segment_size=4)
    first, _second = seed(cvat_server, task, tracks=[[(2, False), (6, False)]])["tracks"]
    second_job = cvat_server.jobs(task)[1]["id"]

    cvat_aa.annotate_job(cvat_client, second_job, Boxes(), clear_existing=True)

    assert manual(cvat_server, task)["tracks"] == [first]
    assert auto(cvat_server, task) == [4, 5, 6, 7]


# --- 2. clearing touches only the frames the run processed ----------------------------------


def test_clearing_with_frames_replaces_only_the_selected_frames(cvat_server, cvat_client):
    task = make_task(cvat_server, 10)
    seed(cvat_server, task, shapes=range(10), tags=[3, 8])

    cvat_aa.annotate_task(cvat_client, task, Boxes(), frames="2-4", clear_existing=True)

    left = manual(cvat_server, task)
    assert [f for _, f in left["shapes"]] == [0, 1, 5, 6, 7, 8, 9]
    assert [f for _, f in left["tags"]] == [8]
    assert auto(cvat_server, task) == [2, 3, 4]


def test_clearing_removes_only_tracks_that_lie_wholly_in_the_processed_frames(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 10)
    seed(
        cvat_server,
        task,
        tracks=[
            [(2, False), (4, False), (5, True)],  # frames 2-5: inside the selection
            [(3, False), (7, True)],  # frames 3-7: goes beyond it
            [(4, False)],  # never closed: runs to the end of the task
        ],
    )

    cvat_aa.annotate_task(cvat_client, task, Boxes(), frames="2-5", clear_existing=True)

    assert [f for _, f in manual(cvat_server, task)["tracks"]] == [3, 4]


def test_clearing_a_job_with_frames_keeps_the_rest_of_the_job_and_the_other_jobs(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 8, segment_size=4)
    seed(cvat_server, task, shapes=range(8))
    job = cvat_server.jobs(task)[1]["id"]

    cvat_aa.annotate_job(cvat_client, job, Boxes(), frames="5,6", clear_existing=True)

    assert [f for _, f in manual(cvat_server, task)["shapes"]] == [0, 1, 2, 3, 4, 7]
    assert auto(cvat_server, task) == [5, 6]


def test_clearing_keeps_the_annotations_of_frames_the_function_failed_on(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 5)
    seed(cvat_server, task, shapes=range(5))

    summary = cvat_aa.annotate_task(
        cvat_client, task, Boxes(fail_on=2), clear_existing=True, on_error="skip"
    )

    assert list(summary.failed_frames) == [2]
    assert [f for _, f in manual(cvat_server, task)["shapes"]] == [2]
    assert auto(cvat_server, task) == [0, 1, 3, 4]


# --- 3. one run at a time per task -----------------------------------------------------------


def test_a_run_on_a_task_another_live_run_holds_is_refused_naming_that_run(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 3)
    server = normalize_server_url(cvat_server.url)
    with RunLock.acquire(server, task, what=f"task {task}", function="other_function"):
        with pytest.raises(RunInProgressError) as caught:
            cvat_aa.annotate_task(cvat_client, task, Boxes())
    message = str(caught.value)
    assert f"process {os.getpid()} on {socket.gethostname()}" in message
    assert "other_function" in message and "started" in message
    assert auto(cvat_server, task) == []
    # Released: the next run goes ahead.
    cvat_aa.annotate_task(cvat_client, task, Boxes())
    assert auto(cvat_server, task) == [0, 1, 2]


def test_a_job_run_is_refused_while_a_run_on_its_task_is_live(cvat_server, cvat_client):
    task = make_task(cvat_server, 4, segment_size=2)
    job = cvat_server.jobs(task)[1]["id"]
    server = normalize_server_url(cvat_server.url)
    with RunLock.acquire(server, task, what=f"task {task}", function="f"):
        with pytest.raises(RunInProgressError, match=f"task {task}"):
            cvat_aa.annotate_job(cvat_client, job, Boxes())


def test_a_dry_run_does_not_need_the_lock(cvat_server, cvat_client):
    task = make_task(cvat_server, 2)
    server = normalize_server_url(cvat_server.url)
    with RunLock.acquire(server, task, what=f"task {task}", function="f"):
        summary = cvat_aa.annotate_task(cvat_client, task, Boxes(), dry_run=True)
    assert summary.frames == 2


def test_the_lock_of_a_killed_run_does_not_block(cvat_server, cvat_client, tmp_path):
    task = make_task(cvat_server, 2)
    ready = tmp_path / "locked"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib\n"
            "from cvat_aa.driver.run_lock import RunLock\n"
            f"lock = RunLock.acquire({normalize_server_url(cvat_server.url)!r}, {task},"
            " what='task', function='f')\n"
            f"pathlib.Path({str(ready)!r}).touch()\n"
            "time.sleep(60)\n",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(RunInProgressError, match=f"process {holder.pid} "):
            cvat_aa.annotate_task(cvat_client, task, Boxes())
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    cvat_aa.annotate_task(cvat_client, task, Boxes())
    assert auto(cvat_server, task) == [0, 1]


SLOW_FUNCTION = """
import os, time
import cvat_aa


class Slow:
    spec = cvat_aa.DetectionFunctionSpec(
        labels=[cvat_aa.label_spec("car", 0, type="rectangle")]
    )

    def detect(self, context, image):
        n = int(context.frame_name.split("_")[1].split(".")[0])
        with open(os.environ["SEEN_LOG"], "a") as log:
            log.write(f"{n}\\n")
        time.sleep(float(os.environ.get("FRAME_DELAY", "0")))
        if os.environ.get("INTERRUPT_AT") == str(n):
            raise KeyboardInterrupt
        return [cvat_aa.rectangle(0, [n, n, n + 5, n + 5])]


def create(api_key: str = ""):
    return Slow()
"""


@pytest.fixture
def slow_cli(cvat_server, tmp_path):
    """Start ``cvat-aa annotate`` with a slow function as a subprocess."""
    function_file = tmp_path / "slow.py"
    function_file.write_text(SLOW_FUNCTION)
    seen = tmp_path / "seen.log"
    env = {
        **os.environ,
        "SEEN_LOG": str(seen),
        "FRAME_DELAY": "0.05",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }

    def start(*args: str, host: list[str] | None = None, **extra_env: str) -> subprocess.Popen:
        connection = host or cvat_server.cli_args()[:4]
        auth = ["--auth", f"{cvat_server.username}:{cvat_server.password}"]
        return subprocess.Popen(
            [sys.executable, "-m", "cvat_aa", *args, "--function-file", str(function_file)]
            + ["--batch-size", "1", "--upload-frames", "4", *connection, *auth],
            env={**env, **extra_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    start.seen = seen
    start.state = tmp_path / "state"
    return start


def wait_for_uploads(server: TestServer, task: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not auto(server, task):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run uploaded nothing"
        time.sleep(0.02)


def test_two_cli_runs_at_once_the_second_exits_7_and_nothing_is_duplicated(
    cvat_server, slow_cli
):
    task = make_task(cvat_server, 30)
    seed(cvat_server, task, shapes=[0])
    first = slow_cli("annotate", str(task), "--clear-existing")
    wait_for_uploads(cvat_server, task, first)

    second = slow_cli("annotate", str(task), "--clear-existing")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 7, err
    assert f"process {first.pid} on {socket.gethostname()}" in err
    assert "Traceback" not in err

    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert auto(cvat_server, task) == list(range(30))
    assert manual(cvat_server, task)["shapes"] == []


# --- 4. unfinished runs: seen, warned about, undone ------------------------------------------


def kill_after_uploads(server: TestServer, task: int, process: subprocess.Popen) -> None:
    wait_for_uploads(server, task, process)
    process.send_signal(signal.SIGKILL)
    process.wait()


def runs(slow_cli, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cvat_aa", "runs", *args],
        env={**os.environ, "XDG_STATE_HOME": str(slow_cli.state)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_killed_run_is_listed_warned_about_and_rolled_back_without_touching_anything_else(
    cvat_server, slow_cli
):
    task = make_task(cvat_server, 20)
    before = seed(cvat_server, task, tags=range(5), shapes=[19])
    # Slow enough that the kill, right after the first upload appears, lands long before the
    # next piece is sent: the one piece it may catch in doubt is on the server (rolling back
    # finds it by its boxes, among the same boxes of the run below).
    killed = slow_cli("annotate", str(task), "--conf-threshold", "0.5", FRAME_DELAY="0.25")
    kill_after_uploads(cvat_server, task, killed)
    left_behind = len(auto(cvat_server, task))
    assert 0 < left_behind < 20

    listing = runs(slow_cli, "list", "--json")
    assert listing.returncode == 0, listing.stderr
    [run] = json.loads(listing.stdout)
    assert run["target"] == f"task {task}"
    # What the journal confirmed, plus the piece it was sending when it was killed (the server
    # may have applied it before the run could record the reply): together, what it left.
    confirmed = run["uploaded"].get("shape", 0)
    assert confirmed == left_behind or (confirmed < left_behind and run["pieces_in_doubt"] == 1)

    # Another run with other options: warned, and it does not adopt the killed run's uploads.
    other = slow_cli("annotate", str(task), FRAME_DELAY="0")
    out, err = other.communicate(timeout=120)
    assert other.returncode == 0, err
    assert f"runs rollback {run['id']}" in err
    assert len(auto(cvat_server, task)) == left_behind + 20

    # The server defaults to the run's own.
    auth = f"{cvat_server.username}:{cvat_server.password}"
    rolled_back = runs(slow_cli, "rollback", run["id"], "--auth", auth)
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert f"Removed the {left_behind} annotations" in rolled_back.stdout
    assert auto(cvat_server, task) == list(range(20))
    assert manual(cvat_server, task) == before
    assert json.loads(runs(slow_cli, "list", "--json").stdout) == []


def test_a_run_resumes_whether_the_server_is_named_localhost_or_127_0_0_1(
    cvat_server, slow_cli
):
    task = make_task(cvat_server, 20)
    killed = slow_cli("annotate", str(task), host=["--server-host", cvat_server.host,
                                                    "--server-port", str(cvat_server.port)])
    kill_after_uploads(cvat_server, task, killed)

    localhost = cvat_server.host.replace("127.0.0.1", "localhost")
    resumed = slow_cli(
        "annotate",
        str(task),
        "--resume",
        host=["--server-host", localhost, "--server-port", str(cvat_server.port)],
        FRAME_DELAY="0",
    )
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "(resumed: " in out
    assert auto(cvat_server, task) == list(range(20))


def test_forgetting_a_run_keeps_its_uploads_and_drops_its_journal(cvat_server, slow_cli):
    task = make_task(cvat_server, 20)
    killed = slow_cli("annotate", str(task))
    kill_after_uploads(cvat_server, task, killed)
    left_behind = auto(cvat_server, task)
    [run] = json.loads(runs(slow_cli, "list", "--json").stdout)

    forgot = runs(slow_cli, "forget", run["id"][:6])
    assert forgot.returncode == 0, forgot.stderr
    assert f"stays in task {task}" in forgot.stdout
    assert auto(cvat_server, task) == left_behind
    assert json.loads(runs(slow_cli, "list", "--json").stdout) == []


def test_an_unknown_run_id_is_a_usage_error(slow_cli):
    result = runs(slow_cli, "rollback", "0123abc")
    assert result.returncode == 2
    assert "no unfinished run '0123abc'" in result.stderr


def test_rollback_finds_and_removes_a_piece_whose_reply_the_killed_run_never_got(
    cvat_server, cvat_client, tmp_path, monkeypatch
):
    task = make_task(cvat_server, 6)
    before = seed(cvat_server, task, tags=[0, 1], shapes=[5])
    journal_dir = tmp_path / "journals"

    class Killed(BaseException):
        pass

    # What a SIGKILL between the server's reply and the journal's record leaves: the second
    # piece is on the server, the journal says it was being sent, and nothing was rolled back.
    recorded = Journal.piece_uploaded

    def piece_uploaded(self, piece, keys):
        if piece == 2:
            raise Killed
        recorded(self, piece, keys)

    monkeypatch.setattr(Journal, "piece_uploaded", piece_uploaded)
    monkeypatch.setattr(Uploader, "rollback", lambda self: RollbackReport("task", 0, 0))
    with pytest.raises(Killed):
        cvat_aa.annotate_task(
            cvat_client, task, Boxes(), batch_size=1, upload_frames=2,
            journal_dir=journal_dir, journal_key="k",
        )
    monkeypatch.undo()
    assert auto(cvat_server, task) == [0, 1, 2, 3]
    [info] = list_journals(journal_dir)
    assert info.uploaded == {"shape": 2} and info.pieces_in_doubt == 1

    result = subprocess.run(
        [sys.executable, "-m", "cvat_aa", "runs", "rollback", info.id,
         "--journal-dir", str(journal_dir), "--auth",
         f"{cvat_server.username}:{cvat_server.password}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Removed the 4 annotations" in result.stdout
    assert auto(cvat_server, task) == []
    assert manual(cvat_server, task) == before
    assert list_journals(journal_dir) == []


class Killed(BaseException):
    """What a SIGKILL does to a run, in the test's process: it stops where it is."""


def killed_while_sending(patch: pytest.MonkeyPatch, piece: int, *, applied: bool) -> None:
    """Make the next run stop as a SIGKILL does while ``piece`` is being sent: the journal
    says it is being sent, and the server has it (``applied``) or never got it. Nothing is
    rolled back and the journal stays."""
    if applied:
        recorded = Journal.piece_uploaded

        def piece_uploaded(self, number, keys):
            if number == piece:
                raise Killed
            recorded(self, number, keys)

        patch.setattr(Journal, "piece_uploaded", piece_uploaded)
    else:
        sending = Journal.piece_sending

        def piece_sending(self, number, frames, annotations):
            sending(self, number, frames, annotations)
            if number == piece:
                raise Killed

        patch.setattr(Journal, "piece_sending", piece_sending)
    patch.setattr(Uploader, "rollback", lambda self: RollbackReport("task", 0, 0))


def auto_boxes(server: TestServer, task: int) -> dict[int, tuple[int, tuple[float, ...]]]:
    """The runs' boxes: id -> (frame, points)."""
    return {
        s["id"]: (s["frame"], tuple(s["points"]))
        for s in server.annotations(task)["shapes"]
        if s["source"] == "auto"
    }


def kill_a_run_while_it_sends_frames_2_3(
    server: TestServer, client, task: int, journal_dir: Path, *, applied: bool
) -> dict[int, tuple[int, tuple[float, ...]]]:
    """Run Boxes over the task in pieces of two frames and kill it while it sends frames 2-3;
    return the boxes it left."""
    with pytest.MonkeyPatch.context() as patch:
        killed_while_sending(patch, piece=2, applied=applied)
        with pytest.raises(Killed):
            cvat_aa.annotate_task(
                client, task, Boxes(), batch_size=1, upload_frames=2,
                journal_dir=journal_dir, journal_key="k",
            )
    [info] = list_journals(journal_dir)
    assert info.pieces_in_doubt == 1
    left = auto_boxes(server, task)
    assert sorted(frame for frame, _ in left.values()) == ([0, 1, 2, 3] if applied else [0, 1])
    return left


def roll_back(server: TestServer, journal_dir: Path, capsys) -> str:
    from cvat_aa.cli import main

    [info] = list_journals(journal_dir)
    code = main(["runs", "rollback", info.id, "--journal-dir", str(journal_dir),
                 *server.cli_args()])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_rolling_back_a_killed_run_finds_its_piece_among_a_later_runs_identical_annotations(
    cvat_server, cvat_client, tmp_path, capsys
):
    task = make_task(cvat_server, 6)
    before = seed(cvat_server, task, tags=[0, 1], shapes=[5])
    journal_dir = tmp_path / "journals"
    killed = kill_a_run_while_it_sends_frames_2_3(
        cvat_server, cvat_client, task, journal_dir, applied=True
    )
    # Another run (with no journal kept: not the killed one's) makes the same boxes again.
    cvat_aa.annotate_task(cvat_client, task, Boxes())
    later = {i: box for i, box in auto_boxes(cvat_server, task).items() if i not in killed}
    assert set(killed.values()) < set(later.values()), "the same boxes on frames 0-3"

    out = roll_back(cvat_server, journal_dir, capsys)

    assert "Removed the 4 annotations" in out
    assert auto_boxes(cvat_server, task) == later
    assert manual(cvat_server, task) == before
    assert list_journals(journal_dir) == []


def test_rolling_back_a_killed_run_whose_piece_never_arrived_keeps_a_later_runs_annotations(
    cvat_server, cvat_client, tmp_path, capsys
):
    task = make_task(cvat_server, 6)
    before = seed(cvat_server, task, tags=[0, 1], shapes=[5])
    journal_dir = tmp_path / "journals"
    killed = kill_a_run_while_it_sends_frames_2_3(
        cvat_server, cvat_client, task, journal_dir, applied=False
    )
    # As many boxes on frames 2-3 as the piece held, but other ones.
    cvat_aa.annotate_task(cvat_client, task, Boxes(size=3))
    later = {i: box for i, box in auto_boxes(cvat_server, task).items() if i not in killed}

    out = roll_back(cvat_server, journal_dir, capsys)

    assert "Removed the 2 annotations" in out
    assert auto_boxes(cvat_server, task) == later
    assert manual(cvat_server, task) == before


def test_a_resumed_run_records_its_piece_in_doubt_not_a_later_runs_identical_annotations(
    cvat_server, cvat_client, tmp_path, monkeypatch
):
    task = make_task(cvat_server, 6)
    journal_dir = tmp_path / "journals"
    killed = kill_a_run_while_it_sends_frames_2_3(
        cvat_server, cvat_client, task, journal_dir, applied=True
    )
    cvat_aa.annotate_task(cvat_client, task, Boxes())
    recorded = {}
    record = Journal.piece_uploaded

    def piece_uploaded(self, number, keys):
        recorded[number] = set(keys)
        record(self, number, keys)

    monkeypatch.setattr(Journal, "piece_uploaded", piece_uploaded)
    summary = cvat_aa.annotate_task(
        cvat_client, task, Boxes(), batch_size=1, upload_frames=2,
        journal_dir=journal_dir, journal_key="k",
    )

    assert summary.resumed
    assert recorded[2] == {("shape", i) for i, (frame, _) in killed.items() if frame in (2, 3)}
    frames = sorted(frame for frame, _ in auto_boxes(cvat_server, task).values())
    assert frames == sorted([*range(6), *range(6)]), "each run's box once on every frame"


def test_a_resumed_run_sends_again_a_piece_that_never_arrived_though_a_later_run_annotated_there(
    cvat_server, cvat_client, tmp_path
):
    task = make_task(cvat_server, 6)
    journal_dir = tmp_path / "journals"
    kill_a_run_while_it_sends_frames_2_3(cvat_server, cvat_client, task, journal_dir, applied=False)
    cvat_aa.annotate_task(cvat_client, task, Boxes(size=3))

    summary = cvat_aa.annotate_task(
        cvat_client, task, Boxes(), batch_size=1, upload_frames=2,
        journal_dir=journal_dir, journal_key="k",
    )

    assert summary.resumed
    boxes = sorted(auto_boxes(cvat_server, task).values())
    assert boxes == sorted((n, (n, n, n + size, n + size)) for n in range(6) for size in (3, 5))


def test_rolling_back_a_killed_run_whose_piece_was_partly_removed_stops_and_says_what_to_check(
    cvat_server, cvat_client, tmp_path, capsys
):
    from cvat_aa.cli import main
    from cvat_aa.driver.upload import AnnotationTarget

    task = make_task(cvat_server, 6)
    journal_dir = tmp_path / "journals"
    killed = kill_a_run_while_it_sends_frames_2_3(
        cvat_server, cvat_client, task, journal_dir, applied=True
    )
    [on_frame_3] = [i for i, (frame, _) in killed.items() if frame == 3]
    AnnotationTarget(cvat_client, "task", task).delete([("shape", on_frame_3)])
    left = auto_boxes(cvat_server, task)

    [info] = list_journals(journal_dir)
    code = main(["runs", "rollback", info.id, "--journal-dir", str(journal_dir),
                 *cvat_server.cli_args()])  # fmt: skip

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("cvat-aa: error: task ")
    assert "unexpected" not in err
    assert "frames 2-3 hold 1 of the 2 annotations this run was sending there" in err
    assert "'cvat-aa runs forget'" in err
    assert auto_boxes(cvat_server, task) == left, "nothing removed"
    [kept] = list_journals(journal_dir)
    assert (kept.id, kept.pieces_in_doubt) == (info.id, 1)


class EveryKind:
    """A tag, a polygon, a mask and a skeleton on every frame, each placed by the frame's
    number (so that runs of it make the same annotations)."""

    spec = cvat_aa.DetectionFunctionSpec(
        labels=[
            cvat_aa.label_spec("night", 0, type="tag"),
            cvat_aa.label_spec("thing", 1),
            cvat_aa.skeleton_label_spec(
                "person", 2, [cvat_aa.keypoint_spec("head", 0), cvat_aa.keypoint_spec("foot", 1)]
            ),
        ]
    )

    def detect(self, context, image):
        from cvat_sdk.masks import encode_mask

        n = frame_number(context)
        bitmap = np.zeros((48, 48), bool)
        bitmap[n : n + 4, n : n + 6] = True
        return [
            cvat_aa.tag(0),
            cvat_aa.polygon(1, [n, n, n + 7.25, n, n, n + 3.5]),
            cvat_aa.mask(1, encode_mask(bitmap)),
            cvat_aa.skeleton(
                2, [cvat_aa.keypoint(1, [n + 2, n + 9]), cvat_aa.keypoint(0, [n + 0.125, n + 1])]
            ),
        ]


KINDS = ("tags", "shapes")


def test_a_piece_in_doubt_of_tags_polygons_masks_and_skeletons_is_found_by_its_content(
    cvat_server, cvat_client, tmp_path, capsys
):
    labels = [
        *LABELS,
        {"name": "thing"},
        {
            "name": "person",
            "type": "skeleton",
            "sublabels": [{"name": "head", "type": "points"}, {"name": "foot", "type": "points"}],
        },
    ]
    images = [PIL.Image.new("RGB", (48, 48), (i, 0, 0)) for i in range(6)]
    task = cvat_server.create_task("kinds", images=images, labels=labels, chunk_size=4)
    journal_dir = tmp_path / "journals"
    with pytest.MonkeyPatch.context() as patch:
        killed_while_sending(patch, piece=2, applied=True)
        with pytest.raises(Killed):
            cvat_aa.annotate_task(
                cvat_client, task, EveryKind(), batch_size=1, upload_frames=2,
                journal_dir=journal_dir, journal_key="k",
            )
    killed = {kind: {a["id"] for a in cvat_server.annotations(task)[kind]} for kind in KINDS}
    assert [len(killed[kind]) for kind in KINDS] == [4, 12]
    cvat_aa.annotate_task(cvat_client, task, EveryKind())
    later = {
        kind: [a for a in cvat_server.annotations(task)[kind] if a["id"] not in killed[kind]]
        for kind in KINDS
    }

    out = roll_back(cvat_server, journal_dir, capsys)

    assert "Removed the 16 annotations" in out
    assert {kind: cvat_server.annotations(task)[kind] for kind in KINDS} == later

# --- 15. what an interrupted run did, and the rate of a resumed one -------------------------


def test_an_interrupt_says_what_was_rolled_back_and_that_rerunning_resumes(
    cvat_server, slow_cli
):
    task = make_task(cvat_server, 12)
    interrupted = slow_cli("annotate", str(task), INTERRUPT_AT="9", FRAME_DELAY="0")
    out, err = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130, err
    assert re.search(r"removed the [48] annotations this run had uploaded to task \d+", err)
    assert "run the same command again to resume: 9 finished frames are kept" in err
    assert auto(cvat_server, task) == []


def test_a_resumed_runs_rate_counts_only_the_frames_it_processed():
    summary = cvat_aa.AnnotationSummary(
        target="task", target_id=1, task_id=1, frames=100, annotations=0, per_label={},
        elapsed_s=2.0, resumed=True, frames_resumed=90,
    )
    assert "(5.0 frames/s) (resumed: 90 frames were done before)" in summary.format()


# --- 16. secrets and private files -----------------------------------------------------------


def test_journals_are_private_and_hold_no_parameter_values(cvat_server, slow_cli):
    task = make_task(cvat_server, 20)
    secret = "sk-" + "do-not-store-me-0123"
    killed = slow_cli("annotate", str(task), "-p", f"api_key=str:{secret}")
    kill_after_uploads(cvat_server, task, killed)

    journals = slow_cli.state / "cvat-aa" / "journals"
    assert stat.S_IMODE(journals.stat().st_mode) == 0o700
    files = list(journals.iterdir())
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert secret.encode() not in path.read_bytes()
    [info] = list_journals(journals)
    assert info.run["function"]["parameters"] == ["api_key"]


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("http://user:secret@LOCALHOST:8080/", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://127.0.0.1:8080"),
        ("https://cvat.example.com:443/", "https://cvat.example.com"),
        ("cvat.example.com", "https://cvat.example.com"),
        ("HTTPS://Cvat.Example.com:8443/sub/", "https://cvat.example.com:8443/sub"),
    ],
)
def test_server_urls_are_normalised_without_credentials(given, normal):
    assert normalize_server_url(given) == normal


def test_credentials_are_redacted_from_urls():
    assert redact_url("https://me:pw@cvat.example.com/x") == "https://cvat.example.com/x"
    assert redact_url("https://cvat.example.com") == "https://cvat.example.com"


# --- 11. the journal directory is checked before any work -----------------------------------


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_an_unusable_journal_directory_fails_before_any_work(cvat_server, tmp_path, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    journal_dir = blocker if where == "file" else blocker / "journals"
    marker = tmp_path / "loaded"
    function_file = tmp_path / "f.py"
    function_file.write_text(f"open({str(marker)!r}, 'w')\n" + SLOW_FUNCTION)
    task = make_task(cvat_server, 2)
    result = subprocess.run(
        [sys.executable, "-m", "cvat_aa", "annotate", str(task), "--function-file",
         str(function_file), "--journal-dir", str(journal_dir), *cvat_server.cli_args()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "journal directory" in result.stderr and "--journal-dir" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists(), "the function was loaded before the check"


def test_a_failure_while_clearing_keeps_the_new_annotations_and_a_rerun_finishes(
    cvat_server, cvat_client, tmp_path, monkeypatch
):
    from cvat_sdk.api_client.exceptions import ApiException

    from cvat_aa.driver.upload import AnnotationTarget

    task = make_task(cvat_server, 4)
    before = seed(cvat_server, task, shapes=range(4), tags=[1])
    options = dict(clear_existing=True, journal_dir=tmp_path / "journals", journal_key="k")

    calls = []
    delete = AnnotationTarget.delete

    def server_refuses(self, keys, **kwargs):
        # The clear fails; anything asked after it (a rollback) would go through.
        calls.append(keys)
        if len(calls) == 1:
            raise ApiException(status=400, reason="Bad Request")
        return delete(self, keys, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(AnnotationTarget, "delete", server_refuses)
        with pytest.raises(ApiException) as caught:
            cvat_aa.annotate_task(cvat_client, task, Boxes(), **options)

    # The old annotations could not be removed; the new ones stay: nothing is lost.
    assert manual(cvat_server, task) == before
    assert auto(cvat_server, task) == [0, 1, 2, 3]
    stopped = caught.value.cvat_aa_stopped
    assert stopped.clearing and stopped.removed == 0

    summary = cvat_aa.annotate_task(cvat_client, task, Boxes(), **options)
    assert summary.resumed
    assert manual(cvat_server, task) == {"tags": [], "shapes": [], "tracks": []}
    assert auto(cvat_server, task) == [0, 1, 2, 3], "nothing uploaded twice"


# --- 17. tracking runs: the same guarantees for tracks ---------------------------------------

TRACK_SCENE = Path(__file__).with_name("track_scene.py")


def _square_paths(k: int, n: int):
    """Square 0 is gone from frame 3 on (its track ends first); squares 1 and 2 stay."""
    if k == 0:
        return None if n >= 3 else (4 + 3 * n, 6 + 2 * n)
    return (80 - 2 * n, 40) if k == 1 else (40, 50)


def make_tracking_task(server: TestServer, frames: int = 30) -> int:
    """Three squares (tests/track_scene.py) and the user's box on each on frame 0, plus a
    manual shape and a manual track elsewhere that no run may touch."""
    from track_scene import box as true_box
    from track_scene import frames as scene

    task = server.create_task(
        "tracking", images=scene(frames, 3, _square_paths), labels=LABELS, chunk_size=4
    )
    car = server.label_id(task, "car")
    server.set_annotations(
        task,
        {
            "shapes": [
                box(car, 0, points=true_box(k, 0, _square_paths)) for k in range(3)
            ] + [box(car, 7)],
            "tracks": [track(car, [(5, False), (9, True)])],
        },
    )
    return task


def track_contents(server: TestServer, task: int) -> list[tuple]:
    """The run's tracks without their ids: first frame and keyframes."""
    return sorted(
        (t["frame"], tuple((s["frame"], s["outside"], tuple(s["points"])) for s in t["shapes"]))
        for t in server.annotations(task)["tracks"]
        if t["source"] == "auto"
    )


@pytest.fixture
def track_cli(cvat_server, tmp_path):
    """Start ``cvat-aa track`` with the scene's tracker, slowed down, as a subprocess."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}

    def start(*args: str, delay: float = 0.1) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "cvat_aa", "track", str(TRACK_SCENE), "--upload-tracks",
             "1", *args, *cvat_server.cli_args()],
            env={**env, "TRACK_SCENE_DELAY": str(delay)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    start.state = tmp_path / "state"
    return start


def wait_for_tracks(server: TestServer, task: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not any(t["source"] == "auto" for t in server.annotations(task)["tracks"]):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run uploaded no track"
        time.sleep(0.02)


def test_a_killed_tracking_run_resumes_to_what_an_uninterrupted_run_leaves(
    cvat_server, cvat_client, track_cli
):
    from track_scene import ColourTracker

    uninterrupted = make_tracking_task(cvat_server)
    cvat_aa.track_task(cvat_client, uninterrupted, ColourTracker())
    assert len(track_contents(cvat_server, uninterrupted)) == 3

    task = make_tracking_task(cvat_server)
    users = manual(cvat_server, task)
    killed = track_cli("--task", str(task))
    wait_for_tracks(cvat_server, task, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert len(track_contents(cvat_server, task)) < 3

    resumed = track_cli("--task", str(task), "--resume", delay=0)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "(resumed: 1 tracks were uploaded before)" in out
    assert track_contents(cvat_server, task) == track_contents(cvat_server, uninterrupted)
    assert manual(cvat_server, task) == users


def test_a_killed_tracking_run_is_rolled_back_without_touching_the_users_annotations(
    cvat_server, track_cli
):
    task = make_tracking_task(cvat_server)
    users = manual(cvat_server, task)
    killed = track_cli("--task", str(task))
    wait_for_tracks(cvat_server, task, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()

    listing = subprocess.run(
        [sys.executable, "-m", "cvat_aa", "runs", "list", "--json"],
        env={**os.environ, "XDG_STATE_HOME": str(track_cli.state)},
        capture_output=True, text=True, timeout=120, check=False,
    )
    [run] = json.loads(listing.stdout)
    assert run["uploaded"].get("track", 0) + run["pieces_in_doubt"] >= 1
    rolled_back = subprocess.run(
        [sys.executable, "-m", "cvat_aa", "runs", "rollback", run["id"], "--auth",
         f"{cvat_server.username}:{cvat_server.password}"],
        env={**os.environ, "XDG_STATE_HOME": str(track_cli.state)},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert track_contents(cvat_server, task) == []
    assert manual(cvat_server, task) == users


def test_two_tracking_runs_at_once_the_second_exits_7_and_no_track_is_duplicated(
    cvat_server, track_cli
):
    task = make_tracking_task(cvat_server)
    first = track_cli("--task", str(task))
    wait_for_tracks(cvat_server, task, first)

    second = track_cli("--task", str(task), delay=0)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 7, err
    assert f"process {first.pid} on {socket.gethostname()}" in err

    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert len(track_contents(cvat_server, task)) == 3


def test_a_tracking_runs_lost_reply_is_found_not_sent_again(cvat_server, cvat_client):
    from cvat_aa.driver.retry import RetryPolicy
    from track_scene import ColourTracker

    task = make_tracking_task(cvat_server, frames=12)
    users = manual(cvat_server, task)
    cvat_server.faults.close_connection_next(2, when="after", method="PATCH")

    cvat_aa.track_task(
        cvat_client, task, ColourTracker(), upload_tracks=1,
        retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.02),
    )

    lost = [
        e for e in cvat_server.request_log.entries(method="PATCH")
        if "action=create" in e.query and e.status is None
    ]
    assert lost, "no upload of tracks lost its reply"
    assert len(track_contents(cvat_server, task)) == 3
    assert manual(cvat_server, task) == users
