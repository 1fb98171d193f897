"""Load figures of the HTTP service: a real uvicorn (``lsr serve``) on 127.0.0.1 over an index of real document
vectors, driven by ``wrk`` (Debian's, in its own process) with a Lua script that cycles through real query bodies.

Measured: sparse-vector queries and text queries (encoded by the service, micro-batched) at 1, 8 and 64 concurrent
connections (closed loop: each connection sends its next query when the last is answered): throughput, p50, p99,
errors, in rounds interleaved over the settings (the machine is shared: a burst of load then hits every setting
alike); the in-process ``Index.search_one`` p50 of the same sparse queries between rounds, so HTTP overhead =
HTTP p50 (1 client) - in-process p50; then two long runs at the highest load, with the server's resident memory
after each.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

_LUA = r"""
local bodies = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  n = math.random(#bodies)
end
request = function()
  n = n % #bodies + 1
  return wrk.format("POST", "/search", {["Content-Type"] = "application/json"}, bodies[n])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('LSRJSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


def load_avg() -> float:
    return os.getloadavg()[0]


def build_index(docs: Path, folder: Path, methods: tuple[str, ...]) -> Path:
    """An index of the vectors file (ids only: the load runs ask for no stored text)."""
    from lsr.index import Index
    from lsr.core.vectors import load_vectors

    vf = load_vectors(docs)
    Index.build(folder, vf.vectors, [str(i) for i in vf.ids], model=vf.meta.get("model"),
                vocab_fingerprint=vf.meta.get("vocab_fingerprint"), methods=methods, overwrite=True)
    return folder


def query_bodies(queries: Path, texts: Path, prefix: str, k: int, method: str, limit: int) -> dict[str, list[str]]:
    """JSON bodies of the same queries as sparse vectors and as text, ids starting with ``prefix``."""
    from lsr.core.vectors import load_vectors

    vf = load_vectors(queries)
    by_id = {}
    with open(texts, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            by_id[rec["id"]] = rec["text"]
    rows = [i for i, qid in enumerate(vf.ids) if str(qid).startswith(prefix) and str(qid) in by_id][:limit]
    if not rows:
        raise ValueError(f"{queries}: no query id starts with {prefix!r}")
    sparse, text = [], []
    for i in rows:
        terms, weights = vf.vectors.row(i)
        sparse.append(json.dumps({"indices": terms.tolist(), "values": [round(float(w), 6) for w in weights],
                                  "k": k, "method": method}))
        text.append(json.dumps({"query": by_id[str(vf.ids[i])], "k": k, "method": method}))
    return {"sparse": sparse, "text": text}


def in_process_ms(index_dir: Path, bodies: list[str], method: str, rounds: int = 3) -> dict:
    """Latency of ``Index.search_one`` on the same sparse queries, one at a time, in this process."""
    from lsr.index import Index

    idx = Index.open(index_dir)
    queries = [json.loads(b) for b in bodies]
    arrays = [(np.asarray(q["indices"], np.int32), np.asarray(q["values"], np.float32), q["k"]) for q in queries]
    for t, w, k in arrays[:50]:
        idx.search_one(t, w, k=k, method=method)
    times = []
    for _ in range(rounds):
        for t, w, k in arrays:
            start = time.perf_counter()
            idx.search_one(t, w, k=k, method=method)
            times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1000
    return {"queries": len(arrays), "rounds": rounds, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return out


def rss_mb(pid: int) -> dict[int, float]:
    """Resident memory (MiB) of the server process and its workers."""
    sizes = {}
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes[p] = int(line.split()[1]) / 1024
        except OSError:
            pass
    return sizes


class Server:
    """``python -m lsr serve`` on a free loopback port, until ``stop`` (SIGTERM, graceful)."""

    def __init__(self, index_dir: Path, workers: int, env: dict[str, str], args: tuple[str, ...] = ()):
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "lsr", "serve", "--index", str(index_dir), "--port", str(self.port),
                    "--workers", str(workers), "--log-level", "warning", *args]
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env={**os.environ, **env})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server was not ready within 300 s")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def wrk(url: str, bodies: list[str], connections: int, seconds: float, threads: int = 1) -> dict:
    """One closed-loop wrk run; returns throughput, latency percentiles (ms) and error counts."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        script, data = Path(tmp) / "bodies.lua", Path(tmp) / "bodies.jsonl"
        script.write_text(_LUA)
        data.write_text("\n".join(bodies) + "\n")
        load_before = load_avg()
        out = subprocess.run([exe, "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                              "--timeout", "10s", "-s", str(script), url, "--", str(data)],
                             capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("LSRJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    r = json.loads(line[len("LSRJSON "):])
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return {"connections": connections, "seconds": r["duration_us"] / 1e6, "requests": r["requests"],
            "qps": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000,
            "p99_ms": r["p99_us"] / 1000, "mean_ms": r["mean_us"] / 1000, "max_ms": r["max_us"] / 1000,
            "errors": errors, "error_kinds": {k: r[k] for k in ("connect", "read", "write", "status", "timeout")},
            "load_avg": [round(load_before, 2), round(load_avg(), 2)]}


_COUNTERS = ("lsr_encode_batch_size_sum", "lsr_encode_batch_size_count", "lsr_encode_seconds_sum")


def encoder_counters(url: str) -> dict[str, float]:
    """The server's encoder counters (from /metrics): texts encoded, batches, seconds spent encoding."""
    import httpx

    values = dict.fromkeys(_COUNTERS, 0.0)
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = float(value)
    return values


def in_flight(url: str) -> float:
    """Requests the server is serving now, the /metrics request that asks included."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return next((float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith("lsr_http_requests_in_flight")),
                0.0)


def settle(url: str, timeout: float = 60) -> None:
    """Waits until the server has finished the requests a stopped wrk left behind (a batch of texts still encoding
    would slow down the next run)."""
    deadline = time.monotonic() + timeout
    while in_flight(url) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)


def measured(url: str, bodies: list[str], connections: int, seconds: float) -> dict:
    """A wrk run plus what the encoder did meanwhile: mean texts per batch and milliseconds per batch."""
    settle(url)
    before = encoder_counters(url)
    r = wrk(url, bodies, connections, seconds)
    after = encoder_counters(url)
    texts, batches, busy = (after[k] - before[k] for k in _COUNTERS)
    if batches:
        r["encode"] = {"batches": int(batches), "texts_per_batch": texts / batches, "ms_per_batch": busy * 1000 / batches,
                       "busy_fraction": busy / r["seconds"]}
    return r


def _row(kind: str, r: dict) -> str:
    enc = r.get("encode")
    batching = f"   {enc['texts_per_batch']:.1f} texts/batch, {enc['ms_per_batch']:.1f} ms/batch" if enc else ""
    return (f"{kind:<7}{r['connections']:>6}{r['qps']:>10.1f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}"
            f"   load {r['load_avg'][0]:.1f}->{r['load_avg'][1]:.1f}{batching}")


def median_round(rounds: list[dict]) -> dict:
    """The round of median throughput (its latencies come with it), and the errors of all rounds."""
    chosen = sorted(rounds, key=lambda r: r["qps"])[len(rounds) // 2]
    return {**chosen, "errors_all_rounds": sum(r["errors"] for r in rounds), "qps_rounds": [r["qps"] for r in rounds]}


def run(docs: Path, queries: Path, texts: Path, output: Path, *, prefix: str = "beir/scifact/", k: int = 10,
        method: str = "exact", workers: int = 1, clients: tuple[int, ...] = (1, 8, 64), seconds: float = 5,
        rounds: int = 3, soak_seconds: float = 60, soak_kind: str = "text", limit: int = 1000,
        index_dir: Path | None = None, window_ms: float = 2.0) -> dict:
    """``rounds`` passes over every (kind, clients) setting, interleaved so that a change in the machine's load hits
    all settings alike; each setting reports its median round (by throughput)."""
    with tempfile.TemporaryDirectory(prefix="lsr-load-") as tmp:
        folder = index_dir or build_index(docs, Path(tmp) / "index", ("exact", "bmp", "seismic"))
        bodies = query_bodies(queries, texts, prefix, k, method, limit)
        report: dict = {"docs": str(docs), "queries": len(bodies["sparse"]), "k": k, "method": method,
                        "workers": workers, "batch_window_ms": window_ms, "cores": os.cpu_count(),
                        "load_generator": "wrk (1 thread, closed loop, Lua script cycling through real query bodies)",
                        "in_process": [], "runs": []}
        server = Server(folder, workers, {"LSR_BATCH_WINDOW_MS": str(window_ms), "LSR_MAX_BODY_BYTES": str(1 << 20)})
        report["server"] = " ".join(server.cmd[1:])
        try:
            for kind in ("sparse", "text"):
                wrk(server.url, bodies[kind], 8, 3)  # warm-up: compiled kernels, encoder, connections
            print(f"{'kind':<7}{'conns':>6}{'q/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
            for _ in range(rounds):
                report["in_process"].append(in_process_ms(folder, bodies["sparse"], method, rounds=1))
                for kind in ("sparse", "text"):
                    for c in clients:
                        r = {"kind": kind, **measured(server.url, bodies[kind], c, seconds)}
                        report["runs"].append(r)
                        print(_row(kind, r), flush=True)
            report["in_process"].append(in_process_ms(folder, bodies["sparse"], method, rounds=1))
            soak = []
            for i in range(2):
                r = {"kind": soak_kind, **measured(server.url, bodies[soak_kind], max(clients), soak_seconds)}
                r["rss_mb"] = sum(rss_mb(server.proc.pid).values())
                soak.append(r)
                print(_row(f"soak{i + 1}", r) + f"   rss {r['rss_mb']:.0f} MiB", flush=True)
            report["soak"] = soak
        finally:
            report["server_exit"] = server.stop()
    report["settings"] = [median_round([r for r in report["runs"] if (r["kind"], r["connections"]) == (kind, c)])
                          for kind in ("sparse", "text") for c in clients]
    sparse1 = next(r for r in report["settings"] if r["kind"] == "sparse" and r["connections"] == min(clients))
    text = {r["connections"]: r for r in report["settings"] if r["kind"] == "text"}
    in_p50 = float(np.median([p["p50_ms"] for p in report["in_process"]]))
    report["summary"] = {
        "in_process_p50_ms": in_p50,
        "http_overhead_p50_ms": sparse1["p50_ms"] - in_p50,
        "text_p50_ms_1_client": text[min(clients)]["p50_ms"],
        "text_qps_ratio_max_vs_1": text[max(clients)]["qps"] / text[min(clients)]["qps"],
        "soak_errors": sum(r["errors"] for r in report["soak"]),
        "soak_requests": sum(r["requests"] for r in report["soak"]),
        "rss_growth_mb": report["soak"][1]["rss_mb"] - report["soak"][0]["rss_mb"],
    }
    print(json.dumps(report["summary"], indent=1))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1))
    return report
