"""An Index's refresh thread starts a refresh every interval, start to start: a slow refresh does not push the next
one back, so a write acknowledged just after a refresh began is searchable within the interval plus one refresh."""

import threading
import time
import weakref

from lsr.index.index import _refresh_loop


class SlowRefresh:
    def __init__(self, takes: float):
        self.takes = takes
        self.starts: list[float] = []

    def refresh(self) -> None:
        self.starts.append(time.monotonic())
        time.sleep(self.takes)


def starts_of(takes: float, interval: float, seconds: float) -> list[float]:
    index, stop = SlowRefresh(takes), threading.Event()
    thread = threading.Thread(target=_refresh_loop, args=(weakref.ref(index), interval, stop), daemon=True)
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(timeout=10)
    return index.starts


def test_refreshes_start_every_interval_however_long_they_take():
    starts = starts_of(takes=0.3, interval=0.5, seconds=3.2)
    gaps = sorted(b - a for a, b in zip(starts, starts[1:]))
    assert len(gaps) >= 4
    assert gaps[len(gaps) // 2] < 0.65, f"start to start {gaps} (a pause after each refresh would give ~0.8 s)"


def test_a_refresh_longer_than_the_interval_is_followed_by_a_short_pause():
    starts = starts_of(takes=0.3, interval=0.2, seconds=2.0)
    gaps = sorted(b - a for a, b in zip(starts, starts[1:]))
    assert gaps and 0.3 <= gaps[0] and gaps[len(gaps) // 2] < 0.45
