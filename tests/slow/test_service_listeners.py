"""`lsr serve --workers 2` spreads connections over its workers (service/listeners.py): with uvicorn's one shared
socket, clients that connect together all landed on one worker."""

from __future__ import annotations

import shutil
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


def test_each_worker_claims_its_own_socket_and_a_dead_ones_slot_is_free_again():
    sockets = listeners.bind("127.0.0.1", 0, 2)
    port = sockets[0].getsockname()[1]
    assert all(s.getsockname()[1] == port for s in sockets)
    first = listeners.claim(str(sockets.folder), list(sockets))
    assert first == [sockets[0]]
    held = listeners._HELD.pop()   # as a worker would hold it; a second claimant finds slot 0 taken
    second = listeners.claim(str(sockets.folder), [socket.socket(), socket.socket()])
    taken = listeners._HELD.pop()
    assert len(second) == 1 and taken.name.endswith("slot-1")
    third = [socket.socket(), socket.socket()]
    assert listeners.claim(str(sockets.folder), third) == third   # none free: all of them
    held.close()   # the first worker is gone: its slot is free for its replacement
    assert listeners.claim(str(sockets.folder), [socket.socket(), socket.socket()])[0].fileno() >= 0
    listeners._HELD.pop().close()
    taken.close()
    for s in sockets + third:
        s.close()
    shutil.rmtree(sockets.folder)


def test_a_port_in_use_is_refused(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            listeners.bind("127.0.0.1", busy.getsockname()[1], 2)
