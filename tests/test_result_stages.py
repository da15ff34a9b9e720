"""Result stages: hook plugins that take a run's results frame by frame and make tracks of them.

The stage here is the smallest one that spans batches: it follows the one square of each label
from frame to frame (one track per label while the square is seen; a frame without it ends the
track with an ``outside`` keyframe). The detector finds squares by colour (tests/track_scene.py),
so every track can be checked against the truth. What is checked is the core's side of the
contract: options, uploads, the journal (a killed run resumes to the tracks an uninterrupted run
leaves), rollback, ``clear_existing``, dry runs and runs over files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import cvat_aa
import numpy as np
import pytest
from cvat_aa.driver.journal import Journal, list_journals
from cvat_aa.driver.retry import RetryPolicy
from cvat_aa.driver.upload import RollbackReport, Uploader
from cvat_aa.plugins import get_plugin_manager
from cvat_aa.result_stages import FrameResult, RunOption, StageOutput, StageRun, StageTrack
from cvat_aa_testing import TestServer
from cvat_sdk import models
from track_scene import COLOURS, box, frames

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.02)

LABELS = [
    {"name": "car", "type": "rectangle"},
    {"name": "person", "type": "rectangle"},
    {"name": "scene", "type": "tag"},
]


class SquareDetector:
    """A rectangle for each coloured square (car: red, person: green) and a 'scene' tag."""

    spec = cvat_aa.DetectionFunctionSpec(
        labels=[
            cvat_aa.label_spec("car", 0, type="rectangle"),
            cvat_aa.label_spec("person", 1, type="rectangle"),
            cvat_aa.label_spec("scene", 2, type="tag"),
        ]
    )

    def detect(self, context, image):
        pixels = np.asarray(image)
        found: list = [cvat_aa.tag(2)]
        for label, colour in enumerate(COLOURS[:2]):
            ys, xs = np.nonzero(np.all(pixels == colour, axis=-1))
            if len(xs):
                found.append(
                    cvat_aa.rectangle(
                        label, [float(xs.min()), float(ys.min()), xs.max() + 1.0, ys.max() + 1.0]
                    )
                )
        return found


class FollowEachLabel:
    """The stage: one open track per label, continued on every frame that has that label's
    rectangle, ended (outside) on the first frame that has none."""

    def __init__(self, run: StageRun) -> None:
        self.run = run
        self.open: dict[int, list[models.TrackedShapeRequest]] = {}
        self.numbers: dict[int, int] = {}
        self.last = None

    def _end(self, label: int, frame: int | None) -> StageTrack:
        shapes = self.open.pop(label)
        if frame is not None:
            last = shapes[-1]
            shapes.append(
                models.TrackedShapeRequest(
                    type=last.type, frame=frame, points=list(last.points), outside=True
                )
            )
        number = self.numbers[label]
        return StageTrack(
            f"{label}:{number}",
            models.LabeledTrackRequest(
                label_id=label, frame=shapes[0].frame, shapes=shapes, source="auto"
            ),
        )

    def add(self, frames: Sequence[FrameResult]) -> StageOutput:
        out, ended = [], []
        for result in frames:
            seen = {s.label_id: s for s in result.shapes if s.type.value == "rectangle"}
            for label in sorted(set(self.open) - set(seen)):
                ended.append(self._end(label, result.frame))
            for label, shape in sorted(seen.items()):
                if label not in self.open:
                    self.numbers[label] = self.numbers.get(label, 0) + 1
                    self.open[label] = []
                self.open[label].append(
                    models.TrackedShapeRequest(
                        type="rectangle", frame=result.frame, points=list(shape.points)
                    )
                )
            out.append(
                FrameResult(
                    result.frame,
                    result.size,
                    result.tags,
                    [],
                    [(f"#{self.numbers[label]}", s) for label, s in sorted(seen.items())],
                )
            )
            self.last = result.frame
        return StageOutput(out, ended)

    def finish(self) -> list[StageTrack]:
        after = None if self.last in (None, self.run.stop_frame) else self.last + 1
        return [self._end(label, after) for label in sorted(self.open)]


class FollowPlugin:
    """A hook plugin with a switch, ``follow``, and a number, ``follow_gap``."""

    def __init__(self) -> None:
        self.runs: list[StageRun] = []

    @cvat_aa.hookimpl
    def cvat_aa_run_options(self):
        return [
            RunOption(name="follow", help="follow each label's square as a track", default=False),
            RunOption(name="follow_gap", help="unused", default=1, type=int),
        ]

    @cvat_aa.hookimpl
    def cvat_aa_result_stage(self, run: StageRun):
        self.runs.append(run)
        if run.options["follow_gap"] < 0:
            raise ValueError("follow_gap cannot be negative")
        return FollowEachLabel(run) if run.options["follow"] else None


@pytest.fixture
def plugin():
    pm = get_plugin_manager()
    plugin = FollowPlugin()
    pm.register(plugin, name="follow")
    yield plugin
    pm.unregister(plugin)


def leaves_at(frame: int):
    """The car square leaves on ``frame`` and comes back 2 frames later; the person stays."""

    def path(k: int, n: int):
        if k == 0:
            return None if frame <= n < frame + 2 else (4 + 3 * n, 6 + 2 * n)
        return (80 - 2 * n, 40)

    return path


def make_task(server: TestServer, count: int = 10, path=None, **layout) -> int:
    images = frames(count, 2) if path is None else frames(count, 2, path)
    return server.create_task("stages", images=images, labels=LABELS, chunk_size=4, **layout)


def tracks_of(server: TestServer, task: int) -> list[tuple]:
    """Every track as (label name, [(frame, outside, points)...]), without ids, sorted."""
    names = {label["id"]: label["name"] for label in server.labels(task)}
    return sorted(
        (
            names[t["label_id"]],
            [(s["frame"], s["outside"], [round(p, 3) for p in s["points"]]) for s in t["shapes"]],
        )
        for t in server.annotations(task)["tracks"]
    )


def test_a_run_options_switch_turns_the_stage_on_and_tracks_are_uploaded(
    plugin, cvat_server, cvat_client
):
    task = make_task(cvat_server, 10, path=leaves_at(4))

    summary = cvat_aa.annotate_task(cvat_client, task, SquareDetector(), follow=True)

    data = cvat_server.annotations(task)
    assert data["shapes"] == []  # every rectangle went into a track
    assert len(data["tags"]) == 10  # tags pass through, one a frame
    car = [t for name, t in tracks_of(cvat_server, task) if name == "car"]
    # The car is seen on 0-3, gone on 4-5, back on 6-9: two tracks, the first closed on 4.
    assert [[(f, o) for f, o, _ in t] for t in car] == [
        [(0, False), (1, False), (2, False), (3, False), (4, True)],
        [(n, False) for n in range(6, 10)],
    ]
    assert car[0][2][2] == box(0, 2)
    assert (summary.tracks, summary.annotations) == (3, 13)
    assert summary.per_label == {"scene": 10, "car": 2, "person": 1}
    [run] = plugin.runs
    assert (run.target, run.target_id, run.stop_frame) == ("task", task, 9)
    assert (run.options["follow"], run.options["follow_gap"]) == (True, 1)


def test_without_the_option_the_run_is_what_it_always_was(plugin, cvat_server, cvat_client):
    task = make_task(cvat_server, 4)

    summary = cvat_aa.annotate_task(cvat_client, task, SquareDetector())

    assert cvat_server.annotations(task)["tracks"] == []
    assert len(cvat_server.annotations(task)["shapes"]) == 8
    assert summary.tracks == 0


def test_tracks_span_batches_and_upload_pieces(plugin, cvat_server, cvat_client):
    one = make_task(cvat_server, 10, path=leaves_at(4))
    other = make_task(cvat_server, 10, path=leaves_at(4))

    cvat_aa.annotate_task(cvat_client, one, SquareDetector(), follow=True, batch_size=8)
    cvat_aa.annotate_task(
        cvat_client, other, SquareDetector(), follow=True, batch_size=1, upload_frames=1
    )

    assert tracks_of(cvat_server, one) == tracks_of(cvat_server, other)


def test_a_range_that_ends_before_the_task_closes_open_tracks_on_the_next_frame(
    plugin, cvat_server, cvat_client
):
    task = make_task(cvat_server, 10)

    cvat_aa.annotate_task(cvat_client, task, SquareDetector(), follow=True, frames="0-5")

    for _, shapes in tracks_of(cvat_server, task):
        assert shapes[-1][:2] == (6, True)


def test_options_of_hook_plugins_are_checked_like_cvat_aas_own(plugin, cvat_server, cvat_client):
    task = make_task(cvat_server, 2)
    before = cvat_server.annotations(task)

    with pytest.raises(TypeError, match="unexpected keyword argument 'folow'"):
        cvat_aa.annotate_task(cvat_client, task, SquareDetector(), folow=True)
    with pytest.raises(ValueError, match="follow is True or False"):
        cvat_aa.annotate_task(cvat_client, task, SquareDetector(), follow="yes")
    with pytest.raises(ValueError, match="--follow-gap: invalid literal"):
        cvat_aa.annotate_task(cvat_client, task, SquareDetector(), follow_gap="x")
    with pytest.raises(ValueError, match="follow_gap cannot be negative"):
        cvat_aa.annotate_task(cvat_client, task, SquareDetector(), follow_gap=-1)
    assert cvat_server.annotations(task) == before


def test_only_values_other_than_the_defaults_are_in_the_journal_key(plugin):
    from cvat_aa.pipeline.options import RunOptions, Runs

    plain = RunOptions.for_runs(Runs.SERVER, "annotate_task").key_parts()
    default = RunOptions.for_runs(Runs.SERVER, "annotate_task", follow=False).key_parts()
    on = RunOptions.for_runs(Runs.SERVER, "annotate_task", follow=True).key_parts()

    assert plain == default and "plugin_options" not in plain
    assert on["plugin_options"] == {"follow": True}


def test_a_failed_run_removes_its_tracks_and_leaves_the_users_annotations(
    plugin, cvat_server, cvat_client
):
    task = make_task(cvat_server, 10, path=leaves_at(2))
    car = cvat_server.label_id(task, "car")
    users = {"shapes": [{"type": "rectangle", "frame": 1, "label_id": car, "points": [1, 1, 5, 5]}]}
    cvat_server.set_annotations(task, users)
    before = cvat_server.annotations(task)

    class Failing(SquareDetector):
        def detect(self, context, image):
            if context.frame_name.endswith("7.png"):
                raise RuntimeError("broken frame")
            return super().detect(context, image)

    with pytest.raises(RuntimeError, match="broken frame"):
        cvat_aa.annotate_task(
            cvat_client, task, Failing(), follow=True, batch_size=1, upload_frames=1
        )

    assert cvat_server.annotations(task)["tracks"] == []
    assert cvat_server.annotations(task)["shapes"] == before["shapes"]
    assert cvat_server.annotations(task)["tags"] == []


closed = Journal.close


class Killed(BaseException):
    pass


def kill_after(pieces: int, monkeypatch):
    """A run that is killed right after its ``pieces``-th upload was recorded."""
    recorded = Journal.piece_uploaded
    count = [0]

    def piece_uploaded(self, piece, keys):
        recorded(self, piece, keys)
        count[0] += 1
        if count[0] == pieces:
            raise Killed

    monkeypatch.setattr(Journal, "piece_uploaded", piece_uploaded)
    # A killed run neither rolls back nor drops its journal.
    monkeypatch.setattr(Uploader, "rollback", lambda self: RollbackReport("task", 0, 0))
    monkeypatch.setattr(Journal, "close", lambda self, delete=False: closed(self))


@pytest.mark.parametrize("pieces", [1, 2, 3, 5])
def test_a_killed_run_resumes_to_the_tracks_and_tags_an_uninterrupted_run_leaves(
    plugin, cvat_server, cvat_client, tmp_path, monkeypatch, pieces
):
    path = leaves_at(3)
    uninterrupted = make_task(cvat_server, 12, path=path)
    cvat_aa.annotate_task(cvat_client, uninterrupted, SquareDetector(), follow=True)
    options = {
        "follow": True,
        "journal_dir": tmp_path / "journals",
        "journal_key": "k",
        "batch_size": 2,
        "upload_frames": 2,
    }

    task = make_task(cvat_server, 12, path=path)
    with monkeypatch.context() as patch:
        kill_after(pieces, patch)
        with pytest.raises(Killed):
            cvat_aa.annotate_task(cvat_client, task, SquareDetector(), **options)
    [info] = list_journals(tmp_path / "journals")
    assert info.may_have_uploads

    summary = cvat_aa.annotate_task(cvat_client, task, SquareDetector(), **options)

    assert summary.resumed
    assert tracks_of(cvat_server, task) == tracks_of(cvat_server, uninterrupted)
    tags = sorted(t["frame"] for t in cvat_server.annotations(task)["tags"])
    assert tags == list(range(12))
    assert (summary.tracks, summary.per_label) == (3, {"scene": 12, "car": 2, "person": 1})
    assert list_journals(tmp_path / "journals") == []


def test_a_lost_reply_to_an_upload_of_tracks_does_not_duplicate_them(
    plugin, cvat_server, cvat_client
):
    task = make_task(cvat_server, 10, path=leaves_at(3))
    # Every upload (of a frame's tag, or of tracks) loses its reply once or more: each is
    # applied, and looked up before it would be sent again.
    cvat_server.faults.close_connection_next(12, when="after", method="PATCH", path="annotations")

    cvat_aa.annotate_task(
        cvat_client,
        task,
        SquareDetector(),
        follow=True,
        batch_size=1,
        upload_frames=1,
        retry=RetryPolicy(attempts=20, base_delay=0.001, max_delay=0.002),
    )

    assert any(
        "action=create" in e.query and e.status is None
        for e in cvat_server.request_log.entries(method="PATCH")
    ), "no upload lost its reply"
    assert len(cvat_server.annotations(task)["tracks"]) == 3
    assert len(cvat_server.annotations(task)["tags"]) == 10


def test_clear_existing_replaces_the_tracks_of_an_earlier_run_and_keeps_the_rest(
    plugin, cvat_server, cvat_client
):
    task = make_task(cvat_server, 10, path=leaves_at(4))
    car = cvat_server.label_id(task, "car")
    # The user's track on frames 8-9 of a range the runs below do not process.
    users = {
        "tracks": [
            {
                "label_id": car,
                "frame": 8,
                "shapes": [{"type": "rectangle", "frame": 8, "points": [1, 1, 5, 5]}],
            }
        ]
    }
    cvat_server.set_annotations(task, users)
    [kept] = cvat_server.annotations(task)["tracks"]
    cvat_aa.annotate_task(cvat_client, task, SquareDetector(), follow=True, frames="0-7")
    first = tracks_of(cvat_server, task)

    cvat_aa.annotate_task(
        cvat_client, task, SquareDetector(), follow=True, frames="0-7", clear_existing=True
    )

    assert tracks_of(cvat_server, task) == first, "replaced, not added again"
    assert [t for t in cvat_server.annotations(task)["tracks"] if t["id"] == kept["id"]] == [kept]
    assert len(cvat_server.annotations(task)["tags"]) == 8


def test_a_dry_run_uploads_nothing_but_counts_the_tracks(plugin, cvat_server, cvat_client):
    task = make_task(cvat_server, 10, path=leaves_at(4))

    summary = cvat_aa.annotate_task(cvat_client, task, SquareDetector(), follow=True, dry_run=True)

    assert cvat_server.annotations(task)["tracks"] == []
    assert summary.tracks == 3 and summary.dry_run


def test_tracks_are_refused_on_a_task_whose_jobs_share_frames_but_made_on_its_jobs(
    plugin, cvat_server, cvat_client
):
    task = make_task(cvat_server, 10, segment_size=5, overlap=2)

    with pytest.raises(ValueError, match=r"jobs that share frames.*--job"):
        cvat_aa.annotate_task(cvat_client, task, SquareDetector(), follow=True)
    assert cvat_server.annotations(task)["tracks"] == []

    job = cvat_client.tasks.retrieve(task).get_jobs()[0].id
    cvat_aa.annotate_job(cvat_client, job, SquareDetector(), follow=True)
    assert len(cvat_server.annotations(task)["tracks"]) == 2


def test_a_stage_that_breaks_its_contract_ends_the_run_naming_the_plugin(
    plugin, cvat_server, cvat_client, monkeypatch
):
    task = make_task(cvat_server, 4)
    monkeypatch.setattr(FollowEachLabel, "add", lambda self, frames: StageOutput(frames[:-1]))

    with pytest.raises(cvat_aa.BadFunctionError, match="hook plugin 'follow'.*one FrameResult"):
        cvat_aa.annotate_task(cvat_client, task, SquareDetector(), follow=True, batch_size=2)
    assert cvat_server.annotations(task)["tags"] == []


def test_a_stage_that_raises_system_exit_does_not_end_cvat_aa(
    plugin, cvat_server, cvat_client, monkeypatch
):
    task = make_task(cvat_server, 4)

    def exits(self):
        raise SystemExit(0)

    monkeypatch.setattr(FollowEachLabel, "finish", exits)
    with pytest.raises(cvat_aa.BadFunctionError, match=r"hook plugin 'follow' failed in finish"):
        cvat_aa.annotate_task(cvat_client, task, SquareDetector(), follow=True)
    assert cvat_server.annotations(task)["tracks"] == []


def test_a_run_over_files_gets_the_stage_too(plugin, tmp_path):
    for n, image in enumerate(frames(6, 2, leaves_at(2))):
        image.save(tmp_path / f"frame_{n:02d}.png")

    result = cvat_aa.annotate_images(SquareDetector(), [tmp_path], follow=True)

    assert result.summary.tracks == 3
    [run] = plugin.runs
    assert (run.target, run.stop_frame) == ("images", None)


def test_the_command_line_has_the_plugins_options_in_a_group_of_their_own(plugin, capsys):
    from cvat_aa.cli import main

    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    out = capsys.readouterr().out
    assert "run options of hook plugin follow" in out
    assert "--follow " in out and "--follow-gap X" in out


def test_the_command_line_passes_the_plugins_options_on(plugin, cvat_server, tmp_path, capsys):
    from cvat_aa.cli import main

    task = make_task(cvat_server, 6, path=leaves_at(2))
    function = tmp_path / "squares.py"
    here = str(__file__.rsplit("/", 1)[0])
    function.write_text(
        f"import sys\nsys.path.insert(0, {here!r})\n"
        "from test_result_stages import SquareDetector\n"
        "spec = SquareDetector.spec\ndetect = SquareDetector().detect\n"
    )

    code = main(
        [
            "annotate",
            str(task),
            "--function-file",
            str(function),
            "--follow",
            "--follow-gap",
            "0",
            "--no-journal",
            "--json",
            *cvat_server.cli_args(),
        ]
    )

    assert code == 0
    assert json.loads(capsys.readouterr().out)["tracks"] == 3
    # 0 is a value given (it equals False, which a switch not given is).
    assert plugin.runs[-1].options["follow_gap"] == 0
    assert len(cvat_server.annotations(task)["tracks"]) == 3


def test_rolling_back_a_killed_run_removes_its_tracks_and_tags_and_nothing_else(
    plugin, cvat_server, cvat_client, tmp_path, monkeypatch, capsys
):
    from cvat_aa.cli import main

    task = make_task(cvat_server, 12, path=leaves_at(3))
    car = cvat_server.label_id(task, "car")
    users = {
        "tags": [{"frame": 1, "label_id": cvat_server.label_id(task, "scene")}],
        "shapes": [{"type": "rectangle", "frame": 1, "label_id": car, "points": [1, 1, 5, 5]}],
        "tracks": [
            {
                "label_id": car,
                "frame": 2,
                "shapes": [{"type": "rectangle", "frame": 2, "points": [1, 1, 5, 5]}],
            }
        ],
    }
    cvat_server.set_annotations(task, users)
    before = cvat_server.annotations(task)
    journals = tmp_path / "journals"
    with monkeypatch.context() as patch:
        kill_after(3, patch)
        with pytest.raises(Killed):
            cvat_aa.annotate_task(
                cvat_client,
                task,
                SquareDetector(),
                follow=True,
                journal_dir=journals,
                journal_key="k",
                batch_size=2,
                upload_frames=2,
            )
    assert cvat_server.annotations(task)["tracks"] != before["tracks"], "the run uploaded tracks"
    [info] = list_journals(journals)

    code = main(["runs", "rollback", info.id, "--journal-dir", str(journals),
                 *cvat_server.cli_args()])  # fmt: skip

    assert code == 0, capsys.readouterr().err
    assert cvat_server.annotations(task) == before
    assert list_journals(journals) == []


def test_every_task_of_a_project_gets_its_own_stage_and_tracks(plugin, cvat_server, cvat_client):
    project = cvat_server.create_project("stages", labels=LABELS)
    tasks = [
        cvat_server.create_task(
            "stages", images=frames(6, 2, leaves_at(3)), project_id=project, chunk_size=4
        )
        for _ in range(2)
    ]

    summary = cvat_aa.annotate_project(cvat_client, project, SquareDetector(), follow=True)

    assert summary.tracks == 6 and summary.to_dict()["tracks"] == 6
    assert "(6 of them tracks)" in summary.format()
    for task in tasks:
        assert len(cvat_server.annotations(task)["tracks"]) == 3
    assert [run.target_id for run in plugin.runs] == tasks


def test_the_journal_gives_back_every_detected_frame_in_order_a_page_at_a_time(tmp_path):
    journal = Journal.open(tmp_path, "k", describe={})
    tag = models.LabeledImageRequest(frame=0, label_id=1)
    frames_done = range(1200, 0, -1)  # recorded out of order, in several transactions
    for chunk in (frames_done[:700], frames_done[700:]):
        journal.record_frames((n, [], [], FrameResult(n, (4, 3), [tag], [])) for n in chunk)

    given = list(journal.detected_results())

    assert [r.frame for r in given] == list(range(1, 1201))
    assert {(r.size, len(r.tags)) for r in given} == {((4, 3), 1)}
