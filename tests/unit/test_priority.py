"""Ingest threads run nicer than searches: the calling thread's own nice value rises, no other thread's does."""

import os
import sys
import threading

import pytest

from lsr.core.priority import lower_thread_priority
from lsr.index.background import Background

linux = pytest.mark.skipif(sys.platform != "linux", reason="a thread has its own nice value on Linux only")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


@linux
def test_only_the_calling_thread_and_threads_it_starts_get_nicer():
    base = _nice()

    def lowered():
        changed = lower_thread_priority(5)
        return changed, _nice(), _in_thread(_nice)

    assert _in_thread(lowered) == (True, min(19, base + 5), min(19, base + 5))
    assert _nice() == base   # the caller of the thread that lowered itself is untouched


def test_zero_changes_nothing():
    base = _nice()
    assert _in_thread(lambda: (lower_thread_priority(0), _nice())) == (False, base)


@linux
def test_a_background_step_runs_at_its_nice_value():
    seen = []
    done = threading.Event()

    def step():
        seen.append(_nice())
        done.set()
        return False

    base = _nice()
    bg = Background(step, "test-upkeep", nice=3)
    try:
        bg.wake()
        assert done.wait(5)
    finally:
        bg.stop()
    assert seen[0] == min(19, base + 3)
