"""Helper threads that yield the processor to the model.

A run's helper threads (downloading, decoding and uploading) do little work next to the
model's, but on a machine with few cores each time one of them runs it takes a core from one
of the model's intra-op threads, and the model's parallel sections wait for their slowest
thread: the whole model stalls. On a busy machine that compounds with the other processes'
load. So the helper threads run at a lower priority (a higher nice value, per thread, which
Linux allows): they get the processor whenever the model's threads leave it, which is all they
need, as they work ahead of the model within bounded buffers.

Set ``CVAT_AA_HELPER_NICE=0`` to leave the helper threads' priority alone (or another value to
change how much lower it is; the default is 10).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

__all__ = ["yield_to_the_model"]

logger = logging.getLogger(__name__)

_DEFAULT_NICE = 10


def yield_to_the_model() -> None:
    """Lower the calling thread's priority, if it is a helper thread (never the main one)."""
    if (
        not sys.platform.startswith("linux")
        or threading.current_thread() is threading.main_thread()
    ):
        return
    try:
        increment = int(os.environ.get("CVAT_AA_HELPER_NICE", _DEFAULT_NICE))
    except ValueError:
        increment = _DEFAULT_NICE
    if increment <= 0:
        return
    tid = threading.get_native_id()
    try:
        # On Linux, PRIO_PROCESS with a thread id changes that thread alone.
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + increment))
    except OSError as ex:  # e.g. a sandbox that refuses it: the run goes on as it is
        logger.debug("Could not lower the priority of thread %d: %s", tid, ex)
