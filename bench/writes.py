"""``lsr bench service-writes``: the service as a write target (issue 16), on a real ``lsr serve`` (uvicorn, 127.0.0.1,
``--workers 2``) over an index of the first windows vectors, with 4 clients.

1. Idle search latency: one client in a process of its own, sparse queries (k=10, exact), nothing written.
2. Pre-encoded ingest: 4 clients post NDJSON bodies of ``per_request`` documents with their windows vectors (and
   texts, stored) while the search client goes on: documents/s acknowledged, request p50/p99, search p99 during
   ingest against idle; a prober takes the newest acknowledged document every 0.25 s and searches for it (a
   has_id filter, fresh connections: any worker) until it is found: its time to searchable after the
   acknowledgement; /stats every second gives the segment count over the run. Then, once no merge runs, the idle
   searches again on the index ingest left: search p99 during ingest is also set against that idle p99, as the
   index grows ~150x during ingest (a search over 150,000 documents is not one over 1,000).
3. Text ingest: the same clients post the windows texts (20 per request), encoded by the service's workers;
   against the encoder's own documents/s (the service's numpy encoder, one thread, in as many processes as the
   server has workers, on the same texts), measured just before the server starts. Then half as long again with the
   search client going on: search p99 during text ingest against idle, and the ingest rate it leaves.
4. /healthz under the heaviest search load the limits allow: 4 clients post /search/batch at max_batch queries of
   max_k hits; another client times /healthz.
5. With ``split``: phase 2 again, on a fresh index, with writes and searches served apart (``split_trial``).
6. Kills (``kill_trial``): the whole server (its process group) is SIGKILLed at a random moment while 4 clients
   ingest, and started again, ``kills`` times; then every acknowledged document must be there with its vector,
   and every request that got no answer must be there whole or not at all.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.load import REPO, free_port, load_avg
from lsr.service import listeners

KEY = "bench-writes"
AUTH = {"Authorization": f"Bearer {KEY}"}
NDJSON = {**AUTH, "Content-Type": "application/x-ndjson"}


def _pct(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    if not len(a):
        return {"n": 0}
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)),
                                                                                           2),
            "max_ms": round(float(a.max()), 2)}


class Corpus:
    """The windows vectors and texts, handed out in batches with fresh ids (the vectors cycle when the run outlasts
    them: ingestion does not depend on their diversity)."""

    def __init__(self, vectors, texts: list[str] | None = None, meta: dict | None = None):
        self.vectors, self.texts, self.meta = vectors, texts, meta or {}
        self._next = 0
        self._lock = threading.Lock()
        self._rendered: dict[int, bytes] = {}   # row -> its document's JSON after the id

    @classmethod
    def load(cls, vectors_path: Path, texts_path: Path | None) -> "Corpus":
        """A vectors file (``lsr bench data windows``) and the texts of its ids (its JSONL), when there."""
        from lsr.core.vectors import load_vectors

        vf = load_vectors(vectors_path)
        texts = None
        if texts_path is not None and texts_path.exists():
            by_id = {}
            with open(texts_path, encoding="utf-8") as f:
                for line in f:
                    r = json.loads(line)
                    by_id[str(r.get("_id", r.get("id")))] = r.get("text", "")
            texts = [by_id.get(str(i), "") for i in vf.ids]
        return cls(vf.vectors, texts, vf.meta)

    def take(self, n: int, tag: str) -> list[tuple[str, int]]:
        """``n`` (new id, row) pairs."""
        with self._lock:
            start, self._next = self._next, self._next + n
        return [(f"{tag}-{i}", i % len(self.vectors)) for i in range(start, start + n)]

    def vector_lines(self, docs: list[tuple[str, int]]) -> bytes:
        """NDJSON of ``docs`` (id, row) with their vectors (and texts). Each row is rendered to JSON once and reused
        with every id it gets: the clients share the server's cores, and rendering every body took 29 ms per 100
        documents, 0.7 of this machine's 2 cores at 2,000 documents/s."""
        out = []
        for doc_id, row in docs:
            rendered = self._rendered.get(row)
            if rendered is None:
                terms, weights = self.vectors.row(row)
                doc = {"vector": {"indices": terms.tolist(), "values": weights.tolist()}}
                if self.texts is not None:
                    doc["text"] = self.texts[row]
                rendered = self._rendered[row] = json.dumps(doc).encode()[1:]
            out.append(b'{"id": ' + json.dumps(doc_id).encode() + b", " + rendered + b"\n")
        return b"".join(out)

    def text_doc(self, doc_id: str, row: int) -> dict:
        return {"id": doc_id, "text": self.texts[row]}


def ndjson(docs: list[dict]) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in docs)


class Server:
    """``lsr serve --workers N`` in its own process group (a SIGKILL of the group takes the whole server)."""

    def __init__(self, folder: Path, workers: int, env: dict[str, str] | None = None, nice: int = 0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        cmd = [sys.executable, "-m", "lsr", "serve", "--index", str(folder), "--port", str(self.port), "--workers",
               str(workers), "--log-level", "warning"]
        cmd = ["nice", "-n", str(nice), *cmd] if nice else cmd
        self.sockets = workers if listeners.supported() else 1   # lsr serve's listeners: one per worker on Linux
        self.proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "LSR_API_KEYS": KEY, **(env or {})},
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, path: str = "/readyz", timeout: float = 300) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.output()[-2000:]}")
            try:   # one worker answers; every worker listening (its own socket: lsr serve) before a client connects
                if httpx.get(self.url + path, timeout=2).status_code == 200 and self.listening() >= self.sockets:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer {path} within {timeout:g} s")

    def listening(self) -> int:
        """Listening sockets on the server's port (one per worker once all have started; uvicorn's shared one: 1)."""
        return len(_port_sockets(self.port, "0A"))

    def workers(self) -> list[int]:
        """The worker processes' pids (children of uvicorn's supervisor started by multiprocessing)."""
        pids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return [int(p) for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]

    def connections(self) -> list[int]:
        """Per worker, the established connections to the server's port it holds (from /proc)."""
        return [_held_connections(w, self.port) for w in self.workers()]

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM (uvicorn stops its workers gracefully; the writer commits)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def _held_connections(pid: int, port: int) -> int:
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            held.add(target[8:-1])
    return len(held.intersection(_port_sockets(port, "01")))   # 01: established


def _port_sockets(port: int, state: str) -> list[str]:
    """Inodes of the TCP sockets on local ``port`` in ``state`` (hex, as /proc/net/tcp and tcp6 write it). A row
    there: slot, local address, remote address, state, ..., inode (field 9)."""
    rows = [line.split() for table in ("tcp", "tcp6")
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]]
    return [f[9] for f in rows if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == state]


class SearchClient:
    """One client timing sparse searches back to back in a process of its own: in the benchmark's process its
    requests would wait for the GIL behind the ingest clients' JSON encoding (measured: client-side p99 ~90 ms
    where the server's access log gave ~36 ms), timing the load generator instead of the server."""

    def __init__(self, url: str, bodies: list[dict]):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._parent, child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_search_loop, args=(url, bodies, self._stop, child), daemon=True)
        self._proc.start()

    def stop(self) -> list[float]:
        """Ends the loop; the latencies (ms) of the searches answered 200."""
        self._stop.set()
        out = self._parent.recv()
        self._proc.join()
        return out


def _search_loop(url: str, bodies: list[dict], stop, conn) -> None:
    import httpx

    out = []
    with httpx.Client(base_url=url, timeout=30) as c:
        i = 0
        while not stop.is_set():
            start = time.perf_counter()
            r = c.post("/search", json=bodies[i % len(bodies)])
            if r.status_code == 200:
                out.append((time.perf_counter() - start) * 1000)
            i += 1
    conn.send(out)


def _ingest(url: str, make, clients: int, seconds: float, acked: list, errors: list,
            server: Server | None = None, dealt: list | None = None) -> float:
    """``clients`` threads posting ``make()`` -> (ids, body) until ``seconds`` pass; returns the wall time. With
    ``server``, ``dealt`` gets its connections per worker 2 s in (how the kernel dealt the clients)."""
    import httpx

    deadline = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while time.monotonic() < deadline:
                docs, body = make()
                start = time.perf_counter()
                try:
                    r = c.post("/documents", content=body, headers=NDJSON)
                except httpx.TransportError as e:
                    errors.append(type(e).__name__)
                    continue
                if r.status_code == 200:
                    acked.append((time.monotonic(), (time.perf_counter() - start) * 1000, docs))
                else:
                    errors.append(r.status_code)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    if server is not None and dealt is not None:
        time.sleep(min(2.0, seconds / 2))
        dealt.extend(server.connections())
    for t in threads:
        t.join()
    return time.monotonic() - start


def _probe(url: str, corpus: Corpus, acked: list, stop: threading.Event, delays: list[float],
           when: list[float]) -> None:
    """Every 0.25 s: the newest acknowledged document not probed yet, searched by its own vector with a has_id
    filter on fresh connections (any worker) until found; its delay after the acknowledgement, and when (seconds
    into the run) it was acknowledged, to set beside the segment timeline. (Once ingest stops the newest document
    stays the same: probing it again would count the time since its acknowledgement, not its time to searchable.)"""
    import httpx

    start, probed = time.monotonic(), None
    while not stop.wait(0.25):
        if not acked or acked[-1] is probed:
            continue
        probed = acked[-1]
        at, _, docs = probed
        when.append(round(at - start, 2))
        doc_id, row = docs[0]
        terms, weights = corpus.vectors.row(row)
        body = {"indices": terms.tolist(), "values": weights.tolist(), "k": 1,
                "filter": {"must": [{"has_id": [doc_id]}]}}
        while time.monotonic() - at < 10:
            try:
                r = httpx.post(url + "/search", json=body, timeout=10)
                if r.status_code == 200 and r.json()["hits"]:
                    delays.append((time.monotonic() - at) * 1000)
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        else:
            delays.append(float("inf"))


def _quiet(url: str, timeout: float = 120.0) -> float:
    """Waits until the writer has no merge running (two owner answers in a row), so that searches measured next see the
    index ingest left with nothing writing; the seconds it took."""
    import httpx

    start, calm = time.monotonic(), 0
    while calm < 2 and time.monotonic() - start < timeout:
        time.sleep(1.0)
        writer = httpx.get(url + "/stats", timeout=30).json()["writer"]
        if "merging" in writer:   # the owner's answer (another worker's names no merge)
            calm = 0 if writer["merging"] else calm + 1
    return round(time.monotonic() - start, 1)


def _segments(url: str, stop: threading.Event, out: list[tuple[float, int, int]]) -> None:
    import httpx

    start = time.monotonic()
    while not stop.wait(1.0):
        try:
            s = httpx.get(url + "/stats", timeout=10).json()
            out.append((round(time.monotonic() - start, 1), len(s["segments"]), s["documents"]))
        except (httpx.TransportError, KeyError, ValueError):
            pass


def encoder_docs_per_second(texts: list[str], processes: int, seconds: float) -> float:
    """The service's document encoder (numpy, CPU, one thread) in ``processes`` processes side by side, as the
    service's workers run it: their documents/s over batches of 64, summed."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(processes) as pool:
        return sum(pool.map(_encode_for, [texts] * processes, [seconds] * processes))


def _encode_for(texts: list[str], seconds: float) -> float:
    from lsr.encoding.loader import load_query_encoder

    enc = load_query_encoder("splade-tiny", threads=1)
    enc.encode_documents(texts[:8])
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        batch = texts[done % len(texts):done % len(texts) + 64] or texts[:64]
        enc.encode_documents(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def healthz_under_load(url: str, body: dict, clients: int, seconds: float) -> dict:
    import httpx

    stop, health, answered = threading.Event(), [], []

    def heavy() -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            while not stop.is_set():
                answered.append(c.post("/search/batch", json=body).status_code)

    threads = [threading.Thread(target=heavy) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    with httpx.Client(base_url=url, timeout=30) as c:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.perf_counter()
            c.get("/healthz")
            health.append((time.perf_counter() - start) * 1000)
            time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join()
    return {"healthz": _pct(health), "batches_answered": len(answered),
            "batch_statuses": sorted(set(answered))}


def build(folder: Path, corpus: Corpus, start_docs: int) -> None:
    from lsr.index import Index

    rows = np.arange(start_docs)
    texts = [{"id": f"base-{i}", "text": corpus.texts[i] if corpus.texts else ""} for i in rows]
    Index.build(folder, corpus.vectors.take(rows), [f"base-{i}" for i in rows], texts=texts,
                model=corpus.meta.get("model"), vocab_fingerprint=corpus.meta.get("vocab_fingerprint"),
                methods=("exact", "bmp"), overwrite=True)


def vector_phase(corpus: Corpus, queries: list[dict], ingest: Server, search: Server, *, seconds: float,
                 per_request: int, clients: int) -> dict:
    """Phase 2 (the module's docstring): idle searches, pre-encoded ingest to ``ingest`` while the searches, the
    prober and /stats go to ``search`` (the same server, or one serving searches apart), then the idle searches
    again once no merge runs."""
    searching = SearchClient(search.url, queries)
    time.sleep(seconds / 2)
    idle = searching.stop()

    def vector_batch():
        docs = corpus.take(per_request, "v")
        return docs, corpus.vector_lines(docs)

    acked, errors, delays, when, segments = [], [], [], [], []
    stop, searching = threading.Event(), SearchClient(search.url, queries)
    side = [threading.Thread(target=_probe, args=(search.url, corpus, acked, stop, delays, when)),
            threading.Thread(target=_segments, args=(search.url, stop, segments))]
    for t in side:
        t.start()
    dealt: list[int] = []
    wall = _ingest(ingest.url, vector_batch, clients, seconds, acked, errors, ingest, dealt)
    during = searching.stop()   # searches while ingest ran, none after
    time.sleep(2.0)   # the last acknowledgements' probes
    stop.set()
    for t in side:
        t.join()
    docs = sum(len(a[2]) for a in acked)
    quiet_after = _quiet(ingest.url)
    searching = SearchClient(search.url, queries)   # the same searches on the index ingest left, nothing writing
    time.sleep(seconds / 2)
    idle_after = searching.stop()
    out = {"docs": docs, "docs_per_s": round(docs / wall, 1), "requests": _pct([a[1] for a in acked]),
           "errors": errors[:10], "error_count": len(errors),
           "searchable_after_ack": _pct(delays), "searchable_within_1s": sum(d <= 1000 for d in delays),
           "probes": len(delays), "probe_log": [[t, round(d) if d < float("inf") else None]
                                                for t, d in zip(when, delays)],
           "segments": segments,
           "search_idle": _pct(idle), "search_during_ingest": _pct(during), "search_idle_after": _pct(idle_after),
           "quiet_after_s": quiet_after,
           "connections_per_worker": dealt,   # the ingest clients' (and, one server, the others'), as dealt
           "load": load_avg()}
    return {**out, **p99_ratios(out["search_during_ingest"], out)}


def p99_ratios(during: dict, idle: dict) -> dict:
    """Search p99 during ingest against the idle p99 at the start and on the index ingest left (``idle`` holds
    ``vector_phase``'s ``search_idle`` and ``search_idle_after``)."""
    return {"search_p99_ratio": round(during["p99_ms"] / idle["search_idle"]["p99_ms"], 2),
            "search_p99_ratio_vs_after": round(during["p99_ms"] / idle["search_idle_after"]["p99_ms"], 2)}


def split_trial(folder: Path, corpus: Corpus, queries: list[dict], *, seconds: float, per_request: int,
                clients: int, workers: int, nice: int = 10) -> dict:
    """Phase 2 with writes and searches served apart, on one index: an ``lsr serve`` of one worker, ``nice``
    niced, takes the writes (its worker owns the writer); another of ``workers`` serves the searches, its workers
    following the writer's log. A search worker then spends its time on searches and on applying the log, not on
    parsing and logging write requests."""
    writer = Server(folder, 1, nice=nice)
    searcher = None
    try:
        writer.wait()
        searcher = Server(folder, workers)
        searcher.wait()
        out = vector_phase(corpus, queries, writer, searcher, seconds=seconds, per_request=per_request,
                           clients=clients)
    finally:
        for server in (searcher, writer):
            if server is not None:
                server.stop()
    return {"writer_workers": 1, "writer_nice": nice, "search_workers": workers, **out}


def run(vectors: Path, texts: Path, output: Path, *, seconds: float = 20.0, per_request: int = 100,
        clients: int = 4, workers: int = 2, start_docs: int = 1000, kills: int = 20, split: bool = False) -> dict:
    corpus = Corpus.load(vectors, texts)
    queries = []
    for row in range(0, 200, 2):
        terms, weights = corpus.vectors.row(row)
        top = np.argsort(-weights)[:16]
        queries.append({"indices": terms[top].tolist(), "values": weights[top].tolist(), "k": 10})
    report: dict = {"machine": {"cpus": os.cpu_count(), "load_before": load_avg()},
                    "settings": {"seconds": seconds, "per_request": per_request, "clients": clients,
                                 "workers": workers, "start_docs": start_docs}}
    report["encoder_docs_per_s"] = round(encoder_docs_per_second(corpus.texts, workers, min(seconds, 15)), 1)
    with tempfile.TemporaryDirectory(prefix="lsr-bench-writes-") as tmp:
        folder = Path(tmp) / "index"
        build(folder, corpus, start_docs)
        server = Server(folder, workers)
        try:
            server.wait()
            report["vector_ingest"] = vector_phase(corpus, queries, server, server, seconds=seconds,
                                                   per_request=per_request, clients=clients)

            def text_batch():
                docs = corpus.take(20, "t")
                return docs, ndjson([corpus.text_doc(d, r) for d, r in docs])

            def text_run(run_s: float, searching: SearchClient | None = None) -> dict:
                acked, errors, dealt = [], [], []
                wall = _ingest(server.url, text_batch, clients, run_s, acked, errors, server, dealt)
                docs = sum(len(a[2]) for a in acked)
                out = {"docs": docs, "docs_per_s": round(docs / wall, 1), "connections_per_worker": dealt,
                       "requests": _pct([a[1] for a in acked]), "error_count": len(errors),
                       "vs_encoder": round(docs / wall / report["encoder_docs_per_s"], 2)}
                if searching is not None:   # the encoder's threads on every core: searches must still come first
                    during = _pct(searching.stop())
                    out.update(search_during_ingest=during, **p99_ratios(during, report["vector_ingest"]))
                return {**out, "load": load_avg()}

            report["text_ingest"] = text_run(seconds)
            report["text_ingest_with_searches"] = text_run(seconds / 2, SearchClient(server.url, queries))
            heavy = {"queries": [{**queries[i], "k": 1000} for i in range(64)]}
            report["healthz_under_search_load"] = {**healthz_under_load(server.url, heavy, clients, seconds / 2),
                                                   "load": load_avg()}
            report["writer"] = __import__("httpx").get(server.url + "/stats", timeout=30).json()["writer"]
        finally:
            server.stop()
    if split:
        with tempfile.TemporaryDirectory(prefix="lsr-bench-split-") as tmp:
            folder = Path(tmp) / "index"
            build(folder, corpus, start_docs)
            report["split_serving"] = split_trial(folder, corpus, queries, seconds=seconds, per_request=per_request,
                                                  clients=clients, workers=workers)
    if kills:
        with tempfile.TemporaryDirectory(prefix="lsr-bench-kills-") as tmp:
            folder = Path(tmp) / "index"
            build(folder, corpus, 200)
            report["kills"] = kill_trial(folder, corpus, kills, clients=clients, workers=workers)
    report["machine"]["load_after"] = load_avg()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    return report


def kill_trial(folder: Path, corpus: Corpus, kills: int, *, clients: int = 4, workers: int = 2,
               per_request: int = 20, seed: int = 0) -> dict:
    """``kills`` SIGKILLs of the whole server, each at a random moment of 4-client ingest, then a restart; returns
    the acknowledged documents, those lost, and the unanswered requests found half-written (both must be 0)."""
    import httpx

    from lsr.index import Index

    rng = random.Random(seed)
    acked: list[tuple[str, int]] = []
    unanswered: list[list[tuple[str, int]]] = []
    lock = threading.Lock()
    for _ in range(kills):
        server = Server(folder, workers)
        server.wait("/healthz")
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                while not stop.is_set():
                    docs = corpus.take(per_request, "k")
                    try:
                        r = c.post("/documents", content=corpus.vector_lines(docs),
                                   headers=NDJSON)
                        ok = r.status_code == 200
                    except httpx.TransportError:
                        ok = False
                    with lock:
                        (acked.extend if ok else unanswered.append)(docs)
                    if not ok:
                        return   # the server is gone

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.5, 3.0))
        server.kill()
        stop.set()
        for t in threads:
            t.join()
    server = Server(folder, workers)   # a last start replays the log; SIGTERM commits it
    server.wait("/healthz")
    assert server.stop() == 0, server.output()[-3000:]
    idx = Index.open(folder)
    snap = idx.snapshot()
    ids = [i for i in snap.doc_ids() if i is not None]
    present = set(ids)
    lost = [d for d, _ in acked if d not in present]
    wrong = 0
    for doc_id, row in acked[:: max(1, len(acked) // 500)]:   # vectors of a sample: exactly the ones sent
        if doc_id in present:
            terms, _ = idx.vector(doc_id)
            wrong += not np.array_equal(terms, corpus.vectors.row(row)[0])
    half = [b for b in unanswered if 0 < sum(d in present for d, _ in b) < len(b)]
    return {"kills": kills, "acknowledged": len(acked), "lost": len(lost), "duplicates": len(ids) - len(present),
            "wrong_vectors": wrong, "unanswered_requests": len(unanswered),
            "unanswered_written_whole": sum(all(d in present for d, _ in b) for b in unanswered),
            "half_present": len(half), "documents": len(present), "generation": idx.generation}
