"""One listening socket per worker of ``lsr serve --workers N``, so the kernel spreads connections over the workers.

uvicorn's workers share one listening socket, and the worker whose event loop wakes first accepts every connection
waiting then: clients that connect one after another all land on one worker (16 of 16 keep-alive clients in
tests/slow/test_service_listeners.py), and so did 4 text-ingest clients connecting together while another process
loaded the cores (4 of 4 with ``--workers 2``), whose encoder then did all their work while the other's idled. Here
the parent binds one socket per worker with SO_REUSEPORT, and the kernel deals new connections over the listening
ones by a hash of their addresses (random for a few connections: 4 all on one of 2 workers has odds 1 in 8).

The sockets travel to the workers inside the list uvicorn hands each one (``Listeners``), and unpickling it in a
worker is where the worker claims one: the first slot whose lock file it can flock (``slot-<i>`` in a private
folder). The kernel releases a dead worker's lock, so its replacement takes the same socket; connections dealt to it
meanwhile wait in its accept queue. A worker that finds no slot free (a restart's new worker while the old one
still runs) listens on all of them.
"""

from __future__ import annotations

import fcntl
import socket
import sys
import tempfile
from pathlib import Path
from typing import IO

_HELD: list[IO] = []   # the claimed slot's lock, open for the worker's lifetime


class Listeners(list):
    """Every worker's socket; unpickled in a worker, the one socket it claimed."""

    def __init__(self, sockets: list[socket.socket], folder: Path):
        super().__init__(sockets)
        self.folder = folder

    def __reduce__(self):
        return claim, (str(self.folder), list(self))


def supported() -> bool:
    """Linux deals connections over SO_REUSEPORT sockets; elsewhere the option means something else."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int, workers: int) -> Listeners:
    """``workers`` sockets bound to (host, port) with SO_REUSEPORT (listening starts in the workers). A port in use
    is refused (OSError) as a plain bind would: a probe without SO_REUSEPORT binds it first, so these sockets never
    join another server's group."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    def new(reuse_port: bool) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return sock

    with new(False) as probe:
        probe.bind((host, port))
        port = probe.getsockname()[1]   # port 0: the one the system chose
    sockets = []
    for _ in range(workers):
        sockets.append(new(True))
        sockets[-1].bind((host, port))
    return Listeners(sockets, Path(tempfile.mkdtemp(prefix="lsr-listeners-")))


def claim(folder: str, sockets: list[socket.socket]) -> list[socket.socket]:
    """The socket of the first free slot (the others closed in this process), or all when none is free."""
    for i, sock in enumerate(sockets):
        lock = open(Path(folder) / f"slot-{i}", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _HELD.append(lock)
        for other in sockets:
            if other is not sock:
                other.close()
        return [sock]
    return list(sockets)
