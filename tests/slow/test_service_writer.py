"""The service's one long-lived writer across `lsr serve --workers 2` (issue 16), on a real uvicorn over 127.0.0.1:
the worker owning the writer dies and another takes it over, nothing acknowledged is lost, and the whole server
SIGKILLed again and again during 4-client ingest loses no acknowledged document and leaves none half-written."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.writes import AUTH, NDJSON, Corpus, Server, kill_trial
from lsr.index import Index

pytestmark = pytest.mark.slow


@pytest.fixture()
def corpus(live_corpus) -> Corpus:
    vectors, ids, docs, _ = live_corpus
    return Corpus(vectors, [d.text for d in docs], {"model": "splade-tiny"})


def make_index(folder: Path, corpus: Corpus, n: int = 100) -> Path:
    Index.build(folder, corpus.vectors.take(np.arange(n)), [f"base-{i}" for i in range(n)], methods=["exact"])
    return folder


def owner_pid(folder: Path) -> int:
    """The process holding the index's writer lock (from /proc/locks)."""
    inode = (folder / "write.lock").stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if parts[1] == "FLOCK" and parts[5].endswith(f":{inode}"):
            return int(parts[4])
    raise AssertionError("no process holds the writer lock")


def test_the_writer_worker_dies_and_another_takes_over(tmp_path, corpus):
    """Two clients write through both workers; the worker owning the writer is SIGKILLed mid-ingest; the other
    takes the writer over (replaying the log) and the clients' writes go on; every acknowledged document is then
    searchable in both workers and in snapshots made through either, and committed at shutdown, which leaks no
    semaphore."""
    folder = make_index(tmp_path / "index", corpus)
    server = Server(folder, 2)
    server.wait("/healthz")
    first = owner_pid(folder)
    acked, stop = [], threading.Event()

    def client(tag: str) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                docs = corpus.take(10, tag)
                body = corpus.vector_lines(docs)
                for _ in range(50):   # a request its worker died with gets no answer: send it again
                    try:
                        if c.post("/documents", content=body, headers=NDJSON).status_code == 200:
                            acked.extend(d for d, _ in docs)
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60   # ingest runs niced: on a loaded host the first writes can take seconds
    while not acked and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    before = len(acked)
    os.kill(first, signal.SIGKILL)
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join()
    assert before > 0 and len(acked) > before
    second = owner_pid(folder)
    assert second != first
    time.sleep(1.5)   # every worker's refresh
    seen = {}
    for _ in range(20):   # fresh connections: both workers (the survivor, and the one uvicorn restarted)
        stats = httpx.get(server.url + "/stats", timeout=10).json()
        seen[stats["writer"]["owner"]] = stats["documents"]
    assert set(seen.values()) == {100 + len(acked)}
    for i in range(4):   # snapshots are made by the writer too, whichever worker takes the request
        r = httpx.post(server.url + "/snapshots", json={"name": f"s{i}"}, headers=AUTH, timeout=60)
        assert r.status_code == 201 and r.json()["documents"] == 100 + len(acked), r.text
    assert server.stop() == 0
    out = server.output()
    assert "leaked semaphore" not in out and "Traceback" not in out, out[-3000:]
    assert "took over the index's writer" in out
    idx = Index.open(folder)
    assert idx.num_docs == 100 + len(acked) and all(idx.document(d) for d in acked[::17])


def test_sigkills_of_the_whole_server_lose_no_acknowledged_document(tmp_path, corpus):
    report = kill_trial(make_index(tmp_path / "index", corpus), corpus, kills=4)
    assert report["acknowledged"] > 0 and report["unanswered_requests"] > 0, report
    assert report["lost"] == 0 and report["half_present"] == 0 and report["duplicates"] == 0, report
    assert report["wrong_vectors"] == 0, report
