"""--frames SPEC: numbers, ranges and stepped ranges, and a selection that matches nothing."""

from __future__ import annotations

import cvat_aa
import PIL.Image
import pytest
from cvat_aa import FrameSelection
from cvat_aa.frames import EmptySelectionError


def selected(spec: str, size: int = 30) -> list[int]:
    selection = FrameSelection.parse(spec)
    return [f for f in range(size) if f in selection]


def test_single_frames_and_lists():
    assert selected("3") == [3]
    assert selected("1,5,9") == [1, 5, 9]


def test_ranges_include_both_ends():
    assert selected("2-5") == [2, 3, 4, 5]


def test_stepped_ranges_count_from_their_start():
    assert selected("1-20:5") == [1, 6, 11, 16]


def test_parts_combine():
    assert selected("0-4:2, 10, 20-22") == [0, 2, 4, 10, 20, 21, 22]


@pytest.mark.parametrize("spec", ["", "a", "5-2", "1-9:0", "1--3", "-1"])
def test_malformed_selections_are_refused_with_the_bad_part(spec):
    with pytest.raises(ValueError, match="frame selection"):
        FrameSelection.parse(spec)


@pytest.mark.parametrize("spec", ["3", "1,5,9", "2-5", "1-20:5", "0-4:2,10,20-22"])
def test_a_selection_reads_as_it_was_written(spec):
    assert str(FrameSelection.parse(spec)) == spec


def test_a_long_list_is_shortened():
    text = str(FrameSelection.parse(",".join(str(f) for f in range(0, 200, 3))))
    assert len(text) == 60 and text.endswith("...")


# --- a selection that matches no frame of the task or job -------------------------------------


class Box:
    spec = cvat_aa.DetectionFunctionSpec(labels=[cvat_aa.label_spec("car", 0, type="rectangle")])

    def detect(self, context, image):
        return [cvat_aa.rectangle(0, [1, 1, 5, 5])]


def make_task(server, frames: int, **options) -> int:
    return server.create_task(
        "frames",
        images=[PIL.Image.new("RGB", (20, 20)) for _ in range(frames)],
        labels=[{"name": "car", "type": "rectangle"}],
        **options,
    )


def test_a_selection_past_the_last_frame_of_a_task_is_refused_naming_its_frames(
    cvat_server, cvat_client
):
    task = make_task(cvat_server, 5)
    with pytest.raises(
        EmptySelectionError,
        match=rf"frame selection 500-600 matches no frame of task {task} \(frames 0-4\)",
    ):
        cvat_aa.annotate_task(cvat_client, task, Box(), frames="500-600", journal_dir=None)


def test_a_selection_of_deleted_frames_only_is_refused(cvat_server, cvat_client):
    task = make_task(cvat_server, 5, deleted_frames=[3])
    with pytest.raises(EmptySelectionError, match=r"\(frames 0-4, deleted ones excluded\)"):
        cvat_aa.annotate_task(cvat_client, task, Box(), frames="3", journal_dir=None)


def test_a_selection_outside_a_job_is_refused_naming_the_jobs_frames(cvat_server, cvat_client):
    task = make_task(cvat_server, 6, segment_size=3)
    second = sorted(cvat_server.jobs(task), key=lambda j: j["start_frame"])[1]
    with pytest.raises(EmptySelectionError, match=rf"matches no frame of the job \(frames 3-5 of task {task}\)"):
        cvat_aa.annotate_job(cvat_client, second["id"], Box(), frames="0-2", journal_dir=None)


def test_tasks_a_selection_misses_are_left_alone_in_a_run_over_several(cvat_server, cvat_client):
    short, long = make_task(cvat_server, 2), make_task(cvat_server, 6)
    summary = cvat_aa.annotate_tasks(cvat_client, [short, long], Box(), frames="4-5")
    assert [(t.task_id, t.frames) for t in summary.tasks] == [(long, 2)]
    assert cvat_server.annotations(short)["shapes"] == []


def test_a_selection_that_misses_every_task_of_a_run_is_refused(cvat_server, cvat_client):
    tasks = [make_task(cvat_server, 2), make_task(cvat_server, 3)]
    with pytest.raises(EmptySelectionError, match="matches no frame of any of the tasks"):
        cvat_aa.annotate_tasks(cvat_client, tasks, Box(), frames="10")
