"""Query encoding figures for BENCHMARKS.md (issue 14, targets 2 and 7; issue 13's CLI start-up): the numpy query
encoder beside the torch Encoder, on the same queries in the same run.

- Latency: distinct scifact + nfcorpus queries, one at a time on one thread each (``torch.set_num_threads(1)``,
  numpy's BLAS capped by threadpoolctl), interleaved query by query with the order alternating, so that both see the
  same load; wall time, and the calling thread's CPU time (what a query costs a core, whatever the neighbours). Each query's two vectors are checked equal (same non-zero terms, max |difference|) before any time is
  reported.
- Memory and start-up: a fresh process per encoder loads it and encodes the queries; its resident memory and the
  seconds to the first vector.
- With ``--index``: a real ``lsr serve`` on 127.0.0.1 driven by ``wrk`` with one connection (text queries, and the
  same queries as sparse vectors: the difference is the encoding), the resident memory of each worker, and the
  wall time and peak memory of ``lsr search`` with a text query (what issue 13 measured).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

QUERY_SETS = ("beir/scifact", "beir/nfcorpus")


def distinct_queries(n: int, sets: tuple[str, ...] = QUERY_SETS) -> list[str]:
    """The first n distinct query texts, taken from the sets in turn."""
    import ir_datasets

    pools = [[q.text for q in ir_datasets.load(s).queries_iter()] for s in sets]
    seen: dict[str, None] = {}
    for group in zip(*pools):
        for text in group:
            seen.setdefault(text, None)
            if len(seen) == n:
                return list(seen)
    return list(seen)


def _percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def latency(texts: list[str], model: str, max_length: int) -> dict:
    """Single-query latency of both encoders on one thread, interleaved, vectors compared query by query."""
    import torch
    from threadpoolctl import threadpool_limits

    from lsr.encoding import screen
    from lsr.encoding.encoder import Encoder
    from lsr.encoding.query import QueryEncoder

    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")
    fast = QueryEncoder.from_pretrained(model)
    ref = Encoder.from_pretrained(model, device="cpu")
    def float32_head(q: str):   # the numpy encoder with the integer screen off (as on a CPU without AVX2)
        before = os.environ.get(screen.ISA_ENV)
        os.environ[screen.ISA_ENV] = "generic"
        try:
            return fast.encode_queries([q], max_length=max_length)
        finally:
            os.environ.pop(screen.ISA_ENV) if before is None else os.environ.__setitem__(screen.ISA_ENV, before)

    sides = {"numpy": lambda q: fast.encode_queries([q], max_length=max_length), "numpy-float32-head": float32_head,
             "torch": lambda q: ref.encode([q], max_length=max_length)}   # encode: the torch forward itself
    for q in texts[:20]:
        for f in sides.values():
            f(q)
    ms: dict[str, list[float]] = {k: [] for k in sides}
    cpu: dict[str, list[float]] = {k: [] for k in sides}
    same, max_diff, truncated, tokens = True, 0.0, 0, 0
    for i, q in enumerate(texts):
        out = {}
        names = list(sides)
        for name in names[i % 3:] + names[:i % 3]:   # each side first, second and last in turn
            t, c = time.perf_counter(), time.thread_time()
            out[name] = sides[name](q)
            ms[name].append((time.perf_counter() - t) * 1000)
            cpu[name].append((time.thread_time() - c) * 1000)
        b = out["torch"].to_scipy().toarray()[0]
        for k in ("numpy", "numpy-float32-head"):
            a = out[k].to_scipy().toarray()[0]
            same &= bool(np.array_equal(a > 0, b > 0))
            max_diff = max(max_diff, float(np.abs(a - b).max()))
        truncated += fast.stats.truncated
        tokens += fast.stats.tokens
    stats = {k: {**_percentiles(v), "cpu": _percentiles(cpu[k])} for k, v in ms.items()}
    return {"queries": len(texts), "max_length": max_length, "mean_tokens": tokens / len(texts),
            "truncated": truncated, "same_nonzeros": same, "max_abs_diff": max_diff, **stats,
            "p50_speedup": stats["torch"]["p50_ms"] / stats["numpy"]["p50_ms"],
            "cpu_p50_speedup": stats["torch"]["cpu"]["p50_ms"] / stats["numpy"]["cpu"]["p50_ms"], "threads": 1}


_PROCESS = """
import sys, time, json
t = time.perf_counter()
kind, model, texts = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
if kind == "numpy":
    from lsr.encoding.query import QueryEncoder
    encode = QueryEncoder.from_pretrained(model, threads=1).encode_queries
else:
    import torch
    from lsr.encoding.encoder import Encoder
    torch.set_num_threads(1)
    enc = Encoder.from_pretrained(model, device="cpu")
    encode = lambda q: enc.encode(q, max_length=enc.query_max_length)
encode(texts[:1])
first = time.perf_counter() - t
for q in texts:
    encode([q])
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"first_vector_s": first, "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
                  "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024, "torch_loaded": "torch" in sys.modules}))
"""


def process_memory(texts: list[str], model: str, tmp: Path) -> dict:
    """Resident memory and seconds to the first vector of a fresh process per encoder (each encodes the texts)."""
    data = tmp / "queries.json"
    data.write_text(json.dumps(texts))
    out = {}
    for kind in ("numpy", "torch"):
        r = subprocess.run([sys.executable, "-c", _PROCESS, kind, model, str(data)], capture_output=True, text=True,
                           timeout=600, check=True)
        out[kind] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def cli_search(index: Path, text: str, runs: int) -> list[dict]:
    """Wall seconds and peak memory of `lsr search --index INDEX TEXT` (GNU time, as issue 13 measured)."""
    out = []
    for _ in range(runs):
        r = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", sys.executable, "-m", "lsr", "search", "--index",
                            str(index), text, "-k", "5"], capture_output=True, text=True, timeout=300, check=True)
        wall, kb = r.stderr.strip().splitlines()[-1].split()[1:]
        out.append({"wall_s": float(wall), "max_rss_mb": int(kb) / 1024,
                    "loading_weights_printed": "Loading weights" in r.stderr, "load_avg": os.getloadavg()[0]})
    return out


def _is_worker(pid: int) -> bool:
    """A uvicorn worker process, not multiprocessing's resource tracker."""
    try:
        return b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def http(index: Path, texts: list[str], workers: int, seconds: float, rounds: int) -> dict:
    """Text and sparse queries over HTTP with one client (wrk, one connection): median round of each, interleaved;
    then the resident memory of each worker."""
    from lsr.index import Index

    from bench.load import Server, measured, rss_mb
    from lsr.encoding.query import QueryEncoder

    enc = QueryEncoder.from_pretrained(Index.open(index).model)
    vectors = enc.encode_queries(texts)
    bodies = {"text": [json.dumps({"query": q, "k": 10}) for q in texts],
              "sparse": [json.dumps({"indices": vectors.row(i)[0].tolist(),
                                     "values": [round(float(w), 6) for w in vectors.row(i)[1]], "k": 10})
                         for i in range(len(texts))]}
    server = Server(index, workers, {"LSR_ENCODE_THREADS": "1"})
    try:
        for kind_bodies in bodies.values():
            measured(server.url, kind_bodies, 1, 2)   # warm-up: kernels, encoder, connections
        runs: dict[str, list[dict]] = {k: [] for k in bodies}
        for _ in range(rounds):
            for kind, kind_bodies in bodies.items():
                runs[kind].append(measured(server.url, kind_bodies, 1, seconds))
        sizes = rss_mb(server.proc.pid)
        parent_mb = sizes.get(server.proc.pid)
        # with one worker uvicorn serves in the main process itself, which is then the worker
        workers_mb = {server.proc.pid: parent_mb} if workers == 1 else {
            pid: mb for pid, mb in sizes.items() if pid != server.proc.pid and _is_worker(pid)}
    finally:
        server.stop()
    median = {k: sorted(v, key=lambda r: r["p50_ms"])[len(v) // 2] for k, v in runs.items()}
    return {"server": " ".join(server.cmd[1:]), "workers": workers, "rounds": rounds, "seconds": seconds,
            "text_p50_ms": median["text"]["p50_ms"], "text_p99_ms": median["text"]["p99_ms"],
            "sparse_p50_ms": median["sparse"]["p50_ms"], "text_p50_rounds": [r["p50_ms"] for r in runs["text"]],
            "errors": sum(r["errors"] for v in runs.values() for r in v), "runs": runs,
            "worker_rss_mb": sorted(workers_mb.values()), "parent_rss_mb": parent_mb}


def run(*, n_queries: int, model: str, max_length: int, index: Path | None, workers: int, seconds: float,
        rounds: int, cli_runs: int, output: Path) -> dict:
    import tempfile

    texts = distinct_queries(n_queries)
    result: dict = {"model": model, "query_sets": list(QUERY_SETS), "cores": os.cpu_count(),
                    "load_avg_start": os.getloadavg()[0]}
    result["latency"] = lat = latency(texts, model, max_length)
    print(f"{len(texts)} distinct queries, {lat['mean_tokens']:.1f} tokens on average, {lat['truncated']} truncated "
          f"at {max_length}; same non-zeros: {lat['same_nonzeros']}, max |diff| {lat['max_abs_diff']:.1e}")
    print(f"{'one thread, ms':24}{'p50':>8}{'p99':>8}{'mean':>8}{'CPU p50':>9}{'CPU p99':>9}")
    for name in ("numpy", "numpy-float32-head", "torch"):
        s = lat[name]
        print(f"{name + ' encoder':24}{s['p50_ms']:>8.2f}{s['p99_ms']:>8.2f}{s['mean_ms']:>8.2f}"
              f"{s['cpu']['p50_ms']:>9.2f}{s['cpu']['p99_ms']:>9.2f}")
    print(f"p50 speed-up {lat['p50_speedup']:.2f}x, CPU time {lat['cpu_p50_speedup']:.2f}x "
          f"(load {os.getloadavg()[0]:.1f})")
    with tempfile.TemporaryDirectory() as tmp:
        result["process"] = proc = process_memory(texts[:100], model, Path(tmp))
    for name in ("numpy", "torch"):
        p = proc[name]
        print(f"{name} process: first vector after {p['first_vector_s']:.2f} s, RSS {p['rss_mb']:.0f} MiB "
              f"(peak {p['peak_rss_mb']:.0f}), torch loaded: {p['torch_loaded']}")
    if index is not None:
        result["cli"] = cli = cli_search(index, "read a JSON file", cli_runs)
        print("lsr search (text): " + ", ".join(f"{c['wall_s']:.2f} s / {c['max_rss_mb']:.0f} MiB" for c in cli))
        result["http"] = h = http(index, texts, workers, seconds, rounds)
        print(f"HTTP, 1 client: text p50 {h['text_p50_ms']:.2f} ms (rounds {h['text_p50_rounds']}), p99 "
              f"{h['text_p99_ms']:.2f} ms; sparse p50 {h['sparse_p50_ms']:.2f} ms; errors {h['errors']}; worker RSS "
              f"{', '.join(f'{mb:.0f}' for mb in h['worker_rss_mb'])} MiB")
    result["load_avg_end"] = os.getloadavg()[0]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    return result
