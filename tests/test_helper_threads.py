"""The run's helper threads yield the processor to the model (cvat_aa.pipeline.threads)."""

from __future__ import annotations

import os
import sys
import threading

import PIL.Image
import pytest

from cvat_aa.pipeline.threads import yield_to_the_model

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def _priority_in_a_thread(action) -> tuple[int, int]:
    """(the thread's nice value before, after) ``action`` ran in a new thread."""
    seen: list[int] = []

    def body() -> None:
        tid = threading.get_native_id()
        seen.append(os.getpriority(os.PRIO_PROCESS, tid))
        action()
        seen.append(os.getpriority(os.PRIO_PROCESS, tid))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return seen[0], seen[1]


def test_a_helper_thread_gets_a_lower_priority(monkeypatch):
    monkeypatch.delenv("CVAT_AA_HELPER_NICE", raising=False)
    before, after = _priority_in_a_thread(yield_to_the_model)
    assert after == min(19, before + 10)
    # only that thread: the process's (main thread's) priority is unchanged
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


def test_the_main_thread_keeps_its_priority():
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    yield_to_the_model()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


@pytest.mark.parametrize(("setting", "increment"), [("0", 0), ("3", 3), ("x", 10)])
def test_the_setting_turns_it_off_or_changes_it(monkeypatch, setting, increment):
    monkeypatch.setenv("CVAT_AA_HELPER_NICE", setting)
    before, after = _priority_in_a_thread(yield_to_the_model)
    assert after == min(19, before + increment)


def test_the_uploader_thread_yields(cvat_client, cvat_server, tmp_path, monkeypatch):
    from cvat_aa.driver.journal import Journal
    from cvat_aa.driver.upload import AnnotationTarget, Uploader

    monkeypatch.delenv("CVAT_AA_HELPER_NICE", raising=False)
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    images = [PIL.Image.new("RGB", (8, 8))]
    task = cvat_server.create_task("t", images=images, labels=[{"name": "a"}])
    journal = Journal(tmp_path / "j.sqlite", describe={})
    uploader = Uploader(AnnotationTarget(cvat_client, "task", task), journal)
    try:
        for _ in range(100):  # the thread lowers its priority as it starts
            if os.getpriority(os.PRIO_PROCESS, uploader._thread.native_id) != base:
                break
            threading.Event().wait(0.01)
        assert os.getpriority(os.PRIO_PROCESS, uploader._thread.native_id) == min(19, base + 10)
    finally:
        uploader.close()
        journal.close()


def test_the_download_and_decoding_threads_yield(cvat_client, cvat_server, monkeypatch):
    from cvat_aa.driver.task_frames import TaskFrames

    monkeypatch.delenv("CVAT_AA_HELPER_NICE", raising=False)
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    images = [PIL.Image.new("RGB", (8, 8), (i, 0, 0)) for i in range(6)]
    task = cvat_server.create_task("t", images=images, labels=[{"name": "a"}], chunk_size=2)
    seen: dict[str, int] = {}
    frames = TaskFrames.for_task(cvat_client.tasks.retrieve(task))
    iterator = frames.iter_frames(prefetch=2, workers=2, decode_ahead=2)
    next(iterator)  # a pool thread has run its initializer before its first work item
    for thread in threading.enumerate():
        if thread.name.startswith(("cvat-aa-download", "cvat-aa-decode")):
            seen[thread.name] = os.getpriority(os.PRIO_PROCESS, thread.native_id)
    list(iterator)
    assert seen and all(nice == min(19, base + 10) for nice in seen.values()), seen
