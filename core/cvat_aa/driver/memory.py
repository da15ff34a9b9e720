"""Keeping a long run's memory flat: large frame buffers go back to the system when freed.

glibc serves large allocations with mmap and returns them on free, but after the first such
free it raises its mmap threshold to the size of that buffer, so later frame-sized buffers
(a 640x480 RGB frame is 900 KiB) come from the heap instead, where fragmentation across the
decoding threads makes the resident size creep up with every thousand frames. Fixing the
threshold at glibc's own initial value (128 KiB) turns that adjustment off: measured with
benchmarks/driver_vs_sdk.py, peak RSS at 2,000 and 6,000 frames then stays within a few
percent of that at 200. The cost is a few page faults a frame.

Set ``CVAT_AA_MALLOC_TUNING=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

__all__ = ["keep_large_buffers_unpooled"]

logger = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3
_THRESHOLD = 128 * 1024
_done = False


def keep_large_buffers_unpooled() -> None:
    """Fix glibc's mmap threshold for this process (once; a no-op elsewhere)."""
    global _done
    if (
        _done
        or not sys.platform.startswith("linux")
        or os.environ.get("CVAT_AA_MALLOC_TUNING") == "0"
    ):
        return
    _done = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, say): nothing to tune
        return
    if mallopt(_M_MMAP_THRESHOLD, _THRESHOLD) != 1:
        logger.debug("mallopt(M_MMAP_THRESHOLD) was refused")
