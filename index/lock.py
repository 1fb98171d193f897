"""One writer per index folder across processes: an exclusive ``flock`` on ``write.lock``, any number of readers.

The kernel drops the lock when its holder exits, however it dies (SIGKILL included), so a crashed writer never
leaves the index locked. The holder writes its pid into the file only to make the error message useful.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from lsr.index.errors import IndexLocked

LOCK_FILE = "write.lock"


class WriterLock:
    """Held from ``acquire`` until ``release`` (or the process ends)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, timeout: float = 0.0) -> "WriterLock":
        """Takes the lock, waiting up to ``timeout`` seconds; raises IndexLocked when another writer keeps it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise IndexLocked(f"{self.path.parent} is open for writing by another writer (pid {holder}); "
                                      "an index takes one writer at a time") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)   # closing the descriptor drops the flock

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
