"""Reading a task's frames: chunks go through temporary files, and none is left behind."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import PIL.Image
import pytest
from cvat_aa.driver.task_frames import TaskFrames
from cvat_aa_testing import TestServer

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts open files through /proc"
)

COLOURS = [(200, 10, 10), (10, 200, 10), (10, 10, 200), (200, 200, 10), (10, 200, 200)]


def frames(count: int) -> list[PIL.Image.Image]:
    return [PIL.Image.new("RGB", (40 + i, 30), COLOURS[i % len(COLOURS)]) for i in range(count)]


def open_files() -> set[str]:
    """What this process has open, but sockets and pipes (the test server's connections)."""
    targets = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed while listing (this listing's own descriptor)
            continue
        if not target.startswith(("socket:", "pipe:", "anon_inode:")):
            targets.add(target)
    return targets


@pytest.fixture
def task_frames(cvat_server: TestServer, cvat_client) -> TaskFrames:
    task = cvat_server.create_task(
        "eleven frames", images=frames(11), labels=[{"name": "car"}], chunk_size=4
    )
    return TaskFrames.for_task(cvat_client.tasks.retrieve(task))


def test_frames_come_out_of_the_chunks_in_order_with_their_pixels(task_frames):
    got = list(task_frames.iter_frames(prefetch=2, decode_ahead=3))
    assert [f.index for f in got] == list(range(11))
    assert [f.image.size for f in got] == [(40 + i, 30) for i in range(11)]
    assert [f.image.getpixel((0, 0)) for f in got] == [COLOURS[i % 5] for i in range(11)]


def test_a_run_read_to_the_end_leaves_no_chunk_file_open(task_frames):
    before = open_files()
    assert len(list(task_frames.iter_frames(prefetch=3))) == 11
    assert open_files() == before


def test_a_run_stopped_early_leaves_no_chunk_file_open(task_frames):
    before = open_files()
    reading = task_frames.iter_frames(prefetch=3, decode_ahead=1)
    assert next(reading).index == 0
    reading.close()
    assert open_files() == before


def test_a_job_is_read_from_its_own_chunks(cvat_server: TestServer, cvat_client):
    task = cvat_server.create_task(
        "jobs", images=frames(10), labels=[{"name": "car"}], segment_size=6, chunk_size=4
    )
    job = max(cvat_server.jobs(task), key=lambda j: j["start_frame"])
    before = open_files()
    got = list(TaskFrames.for_job(cvat_client.jobs.retrieve(job["id"])).iter_frames())
    assert [f.index for f in got] == [6, 7, 8, 9]
    assert [f.image.getpixel((0, 0)) for f in got] == [COLOURS[i % 5] for i in range(6, 10)]
    assert open_files() == before
