"""A daemon thread that runs one step of the writer's upkeep (a merge, a flush) whenever woken or, with an
``interval``, at least that often, repeating the step while it reports work done; so upkeep never runs inside a
caller's write."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from lsr.core.priority import lower_thread_priority

log = logging.getLogger(__name__)


class Background:
    def __init__(self, step: Callable[[], bool], name: str, interval: float | None = None, nice: int = 0):
        """``nice``: added to the thread's nice value (``lsr.core.priority``), and so to its build threads'."""
        self._step = step
        self._nice = nice
        self._interval = interval
        self._wake = threading.Event()
        self._stop = False
        self.error: BaseException | None = None   # the last failure (logged; retried on the next wake)
        self.failures = 0                          # failed steps since start (the writer's stats report them)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        lower_thread_priority(self._nice)
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop:
                return
            try:
                while not self._stop and self._step():
                    pass
                self.error = None
            except Exception as e:   # a failed step leaves the index as it was: report it, keep serving
                self.error = e
                self.failures += 1
                log.exception("background %s failed", self._thread.name)

    def stop(self) -> None:
        """Lets a running step finish, then ends the thread."""
        self._stop = True
        self._wake.set()
        self._thread.join()
