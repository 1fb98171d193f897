"""Ingest work at a lower CPU priority than searches.

Document encoding and a writer's upkeep (flushes, merges) can use every core, and searches must not wait behind
them: the threads doing that work raise their own nice value, so when both want a core the scheduler gives the
search most of it, and otherwise the ingest takes every idle cycle. Linux only (there a thread has its own nice
value); elsewhere nothing changes.
"""

from __future__ import annotations

import os
import sys
import threading


def lower_thread_priority(nice: int) -> bool:
    """Adds ``nice`` (0-19) to the calling thread's nice value; threads it starts inherit it. Returns whether it
    changed anything."""
    if nice <= 0 or sys.platform != "linux":
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:   # a sandbox without setpriority: keep running at the same priority
        return False
    return True
