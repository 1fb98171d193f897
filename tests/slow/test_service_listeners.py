"""`lsr serve --workers 2` spreads connections over its workers (service/listeners.py): with uvicorn's one shared
socket, clients that connect together all landed on one worker. A dead worker's clients are tested in
tests/slow/test_service_writer.py (its writer taken over by the survivor)."""

from __future__ import annotations

import pickle
import socket

import httpx
import numpy as np
import pytest

from bench.writes import Server
from lsr.index import Index
from lsr.service import listeners

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not listeners.supported(), reason="SO_REUSEPORT dealing is Linux's")
def test_connections_opened_together_reach_every_worker(tmp_path, live_corpus):
    vectors = live_corpus[0]
    folder = tmp_path / "index"
    Index.build(folder, vectors.take(np.arange(20)), [f"d{i}" for i in range(20)], methods=["exact"])
    server = Server(folder, 2)
    clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(16)]
    try:
        server.wait("/healthz")
        for c in clients:   # 16 keep-alive connections: all on one worker has odds 2 / 2**16 when dealt evenly
            assert c.get("/healthz").status_code == 200
        held = server.connections()
        assert len(held) == 2 and sum(held) == 16 and min(held) > 0, held
    finally:
        for c in clients:
            c.close()
        assert server.stop() == 0, server.output()[-3000:]


def test_each_worker_binds_its_own_socket_and_the_supervisor_never_listens():
    held = listeners.bind("127.0.0.1", 0)
    port = held.placeholder.getsockname()[1]
    try:
        workers = [pickle.loads(pickle.dumps(held)) for _ in range(2)]   # what uvicorn's spawned workers get
        assert all(len(w) == 1 and w[0].getsockname() == ("127.0.0.1", port) for w in workers)
        for w in workers:
            w[0].listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass   # a worker's socket took it
        for w in workers:   # both workers gone: their sockets with them, and nothing listens on the port
            w[0].close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        with socket.socket() as other, pytest.raises(OSError):   # the port stays the server's
            other.bind(("127.0.0.1", port))
    finally:
        held.placeholder.close()


def test_a_port_in_use_is_refused(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            listeners.bind("127.0.0.1", busy.getsockname()[1])
