"""``lsr bench ingest``: live-update throughput and search latency while ingesting, on real vectors.

1. Bulk build (the peer): ``Index.build`` of all documents at once, documents per second (at the start and again at
   the end of the run, averaged: the load of a shared machine drifts).
2. Ingestion alone: an index built from the first ``start`` documents takes the rest through ``Index.add`` in
   batches of ``batch`` documents (vectors given, one writer), each write fsynced before it returns; flushes every
   ``flush_docs`` documents and tiered merges in the background. Documents per second until the last write is
   acknowledged, and until everything is committed and merged; then the time of ``compact`` (one segment).
3. Small writes: ``Index.add`` of 1, 10 and 100 documents per call (the fsync per write dominates).
4. Search while ingesting, interleaved: a writer thread alternates bursts of ingestion with pauses of the same
   length on a fresh copy of the start index, while the main thread runs queries one at a time (``search_one``, one
   thread, alternating the search methods, NRT refresh every second). Each query is labelled by what the writer did
   throughout it: ingesting (a burst: adds, fsyncs, flushes), merging (a background merge, no burst) or idle, so all
   latencies come from the same index, the same minutes and the same load on a shared machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from lsr.index import Index
from lsr.index.merge import TieredMergePolicy
from lsr.core.sparse import SparseBatch
from lsr.core.vectors import load_vectors


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"queries": len(a), "mean_ms": round(float(a.mean()), 3), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3)} if len(a) else {"queries": 0}


def _ingest(idx: Index, docs: SparseBatch, ids: list[str], lo: int, hi: int, batch: int,
            stop: threading.Event | None = None) -> int:
    """Adds documents lo..hi in batches; returns how many were added before ``stop`` was set."""
    for start in range(lo, hi, batch):
        if stop is not None and stop.is_set():
            return start - lo
        rows = np.arange(start, min(start + batch, hi))
        idx.add([ids[i] for i in rows], docs.take(rows))
    return hi - lo


def _query_loop(idx: Index, queries: SparseBatch, k: int, methods: tuple[str, ...], state: dict,
                stop: threading.Event) -> list[tuple[str, int, str, float]]:
    """Queries one at a time until ``stop``: (method, phase number, activity, ms) of each query during which the
    writer's activity did not change. Phases alternate: even = pause, odd = burst of adds."""
    def activity() -> tuple[int, str]:
        phase = state["changes"]
        return phase, "ingesting" if phase % 2 else "merging" if idx.stats()["merging"] else "idle"

    records, q = [], 0
    while not stop.is_set():
        m = methods[q % len(methods)]
        before = activity()
        t = time.perf_counter()
        idx.search_one(*queries.row(q // len(methods) % len(queries)), k=k, method=m)
        ms = 1000 * (time.perf_counter() - t)
        if activity() == before:
            records.append((m, *before, ms))
        q += 1
    return records


def _compare(records: list[tuple[str, int, str, float]], method: str) -> dict:
    """Latency per activity, and per burst against the pauses just before and after it: the index grows during
    a burst, so the two pauses around it bracket its size (a burst against all pauses would favour the burst)."""
    mine = [r for r in records if r[0] == method]
    out = {label: _stats([r[3] for r in mine if r[2] == label]) for label in ("idle", "ingesting", "merging")}
    by_phase: dict[int, list[float]] = {}
    for _, phase, label, ms in mine:
        if label != "merging":
            by_phase.setdefault(phase, []).append(ms)
    ratios = {"mean": [], "p50": []}
    for phase in [p for p in by_phase if p % 2 and p - 1 in by_phase and p + 1 in by_phase]:
        for stat, f in (("mean", np.mean), ("p50", np.median)):
            around = (f(by_phase[phase - 1]) + f(by_phase[phase + 1])) / 2
            ratios[stat].append(f(by_phase[phase]) / around)
    out["bursts_compared"] = len(ratios["mean"])
    out["ingesting_vs_idle_around"] = {f"{stat}_ratio_median": round(float(np.median(v)), 3) if v else None
                                       for stat, v in ratios.items()}
    if out["idle"]["queries"] and out["ingesting"]["queries"]:
        out["ingesting_vs_idle_p99_ratio"] = round(out["ingesting"]["p99_ms"] / out["idle"]["p99_ms"], 3)
    return out


def _bulk_build(work: Path, docs: SparseBatch, ids: list[str], methods: tuple[str, ...]) -> tuple[float, float]:
    """The peer: one Index.build of every document; returns its scale and seconds."""
    t = time.perf_counter()
    full = Index.build(work / "bulk", docs, ids, methods=methods)
    seconds = time.perf_counter() - t
    scale = full.scale
    del full
    shutil.rmtree(work / "bulk")
    return scale, seconds


def _settle(idx: Index) -> None:
    """Commits the buffer and runs the merges the policy still wants."""
    idx.flush()
    idx.merge()


def run(docs_path: Path, queries_path: Path, output: Path, *, limit: int | None = None, start: int = 10_000,
        batch: int = 1_000, flush_docs: int = 10_000, methods: tuple[str, ...] = ("exact", "bmp"),
        n_queries: int = 1_000, burst_s: float = 2.0, k: int = 10,
        search_methods: tuple[str, ...] = ("exact", "bmp")) -> dict:
    vf = load_vectors(docs_path)
    docs = vf.vectors if limit is None else vf.vectors.take(np.arange(min(limit, len(vf.vectors))))
    ids = [str(i) for i in vf.ids[:len(docs)]]
    queries = load_vectors(queries_path).vectors
    queries = queries.take(np.arange(min(n_queries, len(queries))))
    n = len(docs)
    work = Path(tempfile.mkdtemp(prefix="lsr-bench-ingest-"))
    report: dict = {"docs": n, "queries": len(queries), "start_docs": start, "batch": batch, "flush_docs": flush_docs,
                    "methods": list(methods), "k": k, "search_methods": list(search_methods), "cpus": os.cpu_count(),
                    "machine": platform.machine(), "load_before": os.getloadavg()[0]}
    policy = TieredMergePolicy()
    try:
        _bulk_build(work, docs.take(np.arange(min(n, 500))), ids[:500], methods)   # warm-up: Numba caches load once
        scale, bulk_s = _bulk_build(work, docs, ids, methods)   # every index below shares the scale
        report["bulk_build"] = {"seconds": round(bulk_s, 2), "docs_per_s": round(n / bulk_s, 1)}

        base = work / "base"
        Index.build(base, docs.take(np.arange(start)), ids[:start], methods=methods, scale=scale)

        # 2. ingestion alone
        shutil.copytree(base, work / "alone")
        idx = Index.open(work / "alone", writable=True, flush_docs=flush_docs, merge_policy=policy)
        t = time.perf_counter()
        _ingest(idx, docs, ids, start, n, batch)
        acked_s = time.perf_counter() - t
        _settle(idx)
        settled_s = time.perf_counter() - t
        report["ingest_alone"] = {
            "docs": n - start, "acked_s": round(acked_s, 2), "docs_per_s_acked": round((n - start) / acked_s, 1),
            "committed_s": round(settled_s, 2), "docs_per_s_committed": round((n - start) / settled_s, 1),
            "flushes": idx.stats()["flushes"], "merges": idx.stats()["merges"], "segments": len(idx.segments)}
        t = time.perf_counter()
        idx.compact()
        compact_s = time.perf_counter() - t
        report["compact"] = {"seconds": round(compact_s, 2), "segments_before": report["ingest_alone"]["segments"],
                             "ingest_and_compact_docs_per_s": round((n - start) / (settled_s + compact_s), 1)}
        idx.close()

        # 3. small writes: one fsynced record per call
        small = []
        idx = Index.open(work / "alone", writable=True, flush_docs=flush_docs, merge_policy=policy)
        for size in (1, 10, 100):
            count = {1: 300, 10: 1_000, 100: 3_000}[size]
            new = [f"small-{size}-{i}" for i in range(count)]
            t = time.perf_counter()
            for lo in range(0, count, size):
                rows = np.arange(lo, lo + size) % n
                idx.add(new[lo:lo + size], docs.take(rows))
            s = time.perf_counter() - t
            small.append({"batch": size, "docs": count, "docs_per_s": round(count / s, 1),
                          "ms_per_write": round(1000 * s / (count // size), 3)})
        idx.close()
        report["small_writes"] = small

        # 4. searches while ingesting, interleaved with pauses
        shutil.copytree(base, work / "live")
        idx = Index.open(work / "live", writable=True, flush_docs=flush_docs, merge_policy=policy,
                         refresh_interval=1.0)
        state = {"busy": False, "changes": 0}
        stop = threading.Event()
        ingested = {"docs": 0, "busy_s": 0.0}

        def writer() -> None:
            lo = start
            while lo < n and not stop.is_set():
                state["busy"], state["changes"] = True, state["changes"] + 1
                t0 = time.perf_counter()
                while lo < n and time.perf_counter() - t0 < burst_s:
                    hi = min(lo + batch, n)
                    _ingest(idx, docs, ids, lo, hi, batch)
                    lo = hi
                ingested["busy_s"] += time.perf_counter() - t0
                ingested["docs"] = lo - start
                state["busy"], state["changes"] = False, state["changes"] + 1
                if stop.wait(burst_s):
                    break
            stop.set()

        thread = threading.Thread(target=writer)
        for m in search_methods:   # warm-up
            idx.search_one(*queries.row(0), k=k, method=m)
        thread.start()
        records = _query_loop(idx, queries, k, search_methods, state, stop)
        thread.join()
        report["search_while_ingesting"] = {
            "methods": {m: _compare(records, m) for m in search_methods}, "segments_at_end": len(idx.segments),
            "ingest_docs_per_s_while_searching": round(ingested["docs"] / ingested["busy_s"], 1)}
        idx.close()
        _, again_s = _bulk_build(work, docs, ids, methods)   # once more at the end: the machine's load drifts
        bulk = report["bulk_build"]
        bulk.update({"seconds_at_end": round(again_s, 2), "docs_per_s": round(2 * n / (bulk_s + again_s), 1)})
        report["ingest_alone"]["vs_bulk_build"] = round(report["ingest_alone"]["docs_per_s_committed"]
                                                        / bulk["docs_per_s"], 3)
        report["load_after"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1) + "\n")
    _print(report)
    return report


def _print(r: dict) -> None:
    a = r["ingest_alone"]
    print(f"documents {r['docs']} (start {r['start_docs']}, batches of {r['batch']}, flush every {r['flush_docs']}, "
          f"methods {'+'.join(r['methods'])})")
    print(f"bulk build              {r['bulk_build']['docs_per_s']:>10.0f} docs/s  ({r['bulk_build']['seconds']} s, "
          f"{r['bulk_build']['seconds_at_end']} s at the end)")
    print(f"ingest, acknowledged    {a['docs_per_s_acked']:>10.0f} docs/s")
    print(f"ingest, committed+merged{a['docs_per_s_committed']:>10.0f} docs/s  ({a['vs_bulk_build']:.2f} x bulk, "
          f"{a['flushes']} flushes, {a['merges']} merges, {a['segments']} segments)")
    c = r["compact"]
    print(f"then compact            {c['seconds']:>10.1f} s     ({c['segments_before']} -> 1 segment; ingest + compact "
          f"{c['ingest_and_compact_docs_per_s']:.0f} docs/s)")
    for s in r["small_writes"]:
        print(f"add of {s['batch']:>3} per call      {s['docs_per_s']:>10.0f} docs/s  {s['ms_per_write']:.2f} ms/write")
    w = r["search_while_ingesting"]
    for m, x in w["methods"].items():
        for label in ("idle", "ingesting", "merging"):
            y = x[label]
            if y["queries"]:
                print(f"{m:<6} {label:<9} {y['queries']:>6} q  mean {y['mean_ms']:.3f} ms  p50 {y['p50_ms']:.3f}  "
                      f"p99 {y['p99_ms']:.3f}")
        print(f"{m:<6} ingesting / idle around it ({x['bursts_compared']} bursts): {x['ingesting_vs_idle_around']}, "
              f"p99 {x.get('ingesting_vs_idle_p99_ratio')}")
    print(f"ingestion while searching {w['ingest_docs_per_s_while_searching']:.0f} docs/s")
