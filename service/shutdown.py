"""Graceful shutdown under uvicorn: a drain between SIGTERM and uvicorn's own shutdown.

On SIGTERM uvicorn closes its listening socket, which resets the connections still in the accept queue, and closes
every connection with no request in progress, including those whose next request has arrived but is not read yet.
A request a client sent just before the signal can therefore be dropped. So the signal is held for
``LSR_SHUTDOWN_DRAIN_S`` (0.5 s): the server goes on accepting and reading (every request sent before the signal
is read, and answered), then uvicorn's shutdown runs as usual: it stops accepting and finishes every request it
has read within ``--graceful-timeout``. Requests sent during the drain are answered too; the guarantee is for those
sent before the signal.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any


def defer_termination(drain_s: float) -> None:
    """Holds SIGTERM for ``drain_s`` seconds before passing it to the handler uvicorn installed. Does nothing off
    the main thread (an app under a test client) or when no Python handler is installed."""
    handler = signal.getsignal(signal.SIGTERM)
    if drain_s <= 0 or threading.current_thread() is not threading.main_thread() or not callable(handler):
        return
    loop = asyncio.get_running_loop()
    pending: list[Any] = []

    def received() -> None:
        if not pending:   # a second SIGTERM during the drain changes nothing
            pending.append(loop.call_later(drain_s, handler, signal.SIGTERM, None))

    loop.add_signal_handler(signal.SIGTERM, received)
