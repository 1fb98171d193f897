"""A listening socket of its own for each worker of ``lsr serve --workers N``, so the kernel deals connections over
the workers.

uvicorn's workers share one listening socket, and the worker whose event loop wakes first accepts every connection
waiting then: clients that connect one after another all land on one worker (16 of 16 keep-alive clients in
tests/slow/test_service_listeners.py), and 4 ingest clients connecting together on busy cores did too, so one
worker's encoder did all their work while the other's idled.

Here each worker binds a fresh socket to the port with SO_REUSEPORT when it starts (the list uvicorn hands a worker
unpickles into it: ``Listeners``), and the kernel deals new connections over the listening ones by a hash of their
addresses. A worker's socket lives and dies with it: a dead worker's connections are refused at once (its clients
reconnect to the survivors) and its replacement adds its own socket when it starts. The supervisor holds only a
bound, never-listening socket, which keeps the port for the server and receives no connection.
"""

from __future__ import annotations

import socket
import sys


def supported() -> bool:
    """Linux deals connections over SO_REUSEPORT sockets; elsewhere the option means something else."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _socket(family: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def own(host: str, port: int, family: int) -> list[socket.socket]:
    """A worker's own socket, bound to the server's port (asyncio starts listening on it)."""
    sock = _socket(family, True)
    sock.bind((host, port))
    return [sock]


class Listeners(list):
    """The supervisor's placeholder socket; unpickled in a worker (uvicorn spawns them), that worker's own socket."""

    def __init__(self, placeholder: socket.socket):
        super().__init__([placeholder])
        self.placeholder = placeholder

    def __reduce__(self):
        host, port = self.placeholder.getsockname()[:2]
        return own, (host, port, self.placeholder.family)


def bind(host: str, port: int) -> Listeners:
    """The port held for the workers' sockets. A port in use is refused (OSError) as a plain bind would: a probe
    without SO_REUSEPORT binds it first, so the workers never join another server's group."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with _socket(family, False) as probe:
        probe.bind((host, port))
        port = probe.getsockname()[1]   # port 0: the one the system chose
    placeholder = _socket(family, True)
    placeholder.bind((host, port))
    return Listeners(placeholder)
