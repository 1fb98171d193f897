"""Seismic beside pyseismic-lsr on the same vectors and queries: recall@10 against exact vs mean latency per query
(one thread, one query per call, through each side's Python API), build seconds and index bytes, plus our exact
search and scipy brute force as references.

Every configuration of every engine is built first and kept in memory; then the queries run one at a time and,
for each query, every configuration runs once, in an order that rotates with the query. The machine is shared and
noisy, so interleaving is what makes the latencies of two configurations comparable.

    python -m lsr bench seismic --docs scifact.npz --queries queries.npz --query-prefix beir/scifact/ \\
        --output bench/results/seismic-scifact.json --plot bench/results/seismic-scifact.png
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from lsr.sparse import SparseBatch

OUR_BUILDS = [{"n_postings": 4000, "centroid_fraction": 0.1, "summary_energy": 0.4}]
PEER_BUILDS = [{"n_postings": 4000, "centroid_fraction": 0.1, "summary_energy": 0.4}]
QUERY_GRID = [{"query_cut": c, "heap_factor": h} for c, h in itertools.product((3, 5, 8, 12, 20), (0.7, 0.8, 0.9, 1.0))]
TARGETS = (0.95, 0.99)


@dataclass
class Entry:
    """One engine configuration: ``call(i)`` (timed) searches query i, ``decode`` maps its result to doc numbers."""

    name: str
    params: dict
    build_s: float
    index_bytes: int
    call: Callable[[int], Any]
    decode: Callable[[Any], np.ndarray]
    latencies: list = field(default_factory=list)
    results: list = field(default_factory=list)


def true_topk_floor(docs: SparseBatch, queries: SparseBatch, k: int, chunk: int = 64) -> np.ndarray:
    """The k-th best exact (float) score of each query: a hit counts as relevant when it reaches it (ties count)."""
    dt = docs.to_scipy().T.tocsr()
    floor = np.zeros(len(queries), dtype=np.float64)
    for lo in range(0, len(queries), chunk):
        scores = (queries.take(np.arange(lo, min(lo + chunk, len(queries)))).to_scipy() @ dt).toarray()
        kk = min(k, scores.shape[1])
        floor[lo:lo + len(scores)] = -np.partition(-scores, kk - 1, axis=1)[:, kk - 1]
    return floor


def recall_at_k(docs: SparseBatch, queries: SparseBatch, hits: list[np.ndarray], floor: np.ndarray, k: int) -> float:
    """Mean fraction of the k slots filled by a document scoring at least the exact k-th best score."""
    d = docs.to_scipy()
    total = 0.0
    for i, found in enumerate(hits):
        found = np.unique(found[found >= 0])[:k]
        if len(found):
            q = queries.take([i]).to_scipy()
            true = np.asarray((d[found] @ q.T).todense()).ravel()
            total += np.count_nonzero(true >= floor[i] * (1 - 1e-5) - 1e-6) / k
    return total / max(len(hits), 1)


def our_entries(docs: SparseBatch, queries: SparseBatch, workdir: Path, builds: list[dict], query_grid: list[dict],
                k: int, quantization: str, with_exact: bool) -> list[Entry]:
    from index import Index

    rows = [queries.row(i) for i in range(len(queries))]
    ids = [str(i) for i in range(len(docs))]
    entries = []
    for b, params in enumerate(builds):
        start = time.perf_counter()
        idx = Index.build(workdir / f"ours-{b}", docs, ids, methods=("exact", "seismic"), quantization=quantization,
                          **params)
        build_s = time.perf_counter() - start
        seg = idx.segments[0]
        nbytes = sum(a.nbytes for name, a in seg.arrays.items() if name.startswith(("seismic.", "fwd_")))
        original = np.array([int(x) for x in idx.doc_ids], dtype=np.int64)

        def decode(res, original=original):
            return original[res[1][res[1] >= 0]]

        for qp in query_grid:
            entries.append(Entry("seismic", {**params, **qp, "quantization": quantization}, build_s, nbytes,
                                 lambda i, idx=idx, qp=qp: idx.search_one(*rows[i], k, "seismic", **qp), decode))
        if with_exact and b == 0:
            exact_bytes = sum(a.nbytes for name, a in seg.arrays.items() if name.startswith(("post_", "term_max")))
            entries.append(Entry("exact", {"quantization": quantization}, build_s, exact_bytes,
                                 lambda i, idx=idx: idx.search_one(*rows[i], k, "exact"), decode))
    return entries


def peer_entries(docs: SparseBatch, queries: SparseBatch, builds: list[dict], query_grid: list[dict],
                 k: int) -> list[Entry]:
    from bench.peer_seismic import PeerSeismic

    entries = []
    for params in builds:
        peer = PeerSeismic(docs, **params)
        prepared = [peer.query(*queries.row(i)) for i in range(len(queries))]
        for qp in query_grid:
            entries.append(Entry("peer-seismic", {**params, **qp}, peer.build_s, peer.index_bytes,
                                 lambda i, peer=peer, qp=qp: peer.search_one(prepared[i], k, qp["query_cut"],
                                                                             qp["heap_factor"]),
                                 peer.doc_numbers))
    return entries


def scipy_entry(docs: SparseBatch, queries: SparseBatch, k: int) -> Entry:
    """Brute force: query row times the term-major (CSR of D^T) matrix, then a partial sort."""
    start = time.perf_counter()
    dt = docs.to_scipy().T.tocsr()
    build_s = time.perf_counter() - start
    rows = [queries.take([i]).to_scipy() for i in range(len(queries))]

    def call(i):
        scores = (rows[i] @ dt).toarray().ravel()
        top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
        return top[np.argsort(-scores[top], kind="stable")]

    return Entry("scipy", {}, build_s, dt.data.nbytes + dt.indices.nbytes + dt.indptr.nbytes, call, lambda r: r)


def run_interleaved(entries: list[Entry], n_queries: int, warmup: int = 20) -> None:
    """Runs every entry on every query, rotating the order per query; records latencies (ns) and results."""
    for i in range(min(warmup, n_queries)):
        for e in entries:
            e.call(i)
    n = len(entries)
    for i in range(n_queries):
        for j in range(n):
            e = entries[(i + j) % n]
            start = time.perf_counter_ns()
            result = e.call(i)
            e.latencies.append(time.perf_counter_ns() - start)
            e.results.append(result)


def report(entries: list[Entry], docs: SparseBatch, queries: SparseBatch, k: int, meta: dict) -> dict:
    floor = true_topk_floor(docs, queries, k)
    methods = []
    for e in entries:
        lat = np.array(e.latencies) / 1e6
        methods.append({"name": e.name, "params": e.params,
                        f"recall@{k}": round(recall_at_k(docs, queries, [e.decode(r) for r in e.results], floor, k), 4),
                        "mean_ms": round(float(lat.mean()), 4), "p99_ms": round(float(np.percentile(lat, 99)), 4),
                        "build_s": round(e.build_s, 2), "index_bytes": int(e.index_bytes)})
    return {**meta, "docs": len(docs), "queries": len(queries), "k": k, "methods": methods}


def best_at(methods: list[dict], name: str, recall: float, k: int = 10) -> dict | None:
    """The fastest configuration of ``name`` reaching ``recall``."""
    ok = [m for m in methods if m["name"] == name and m[f"recall@{k}"] >= recall]
    return min(ok, key=lambda m: m["mean_ms"]) if ok else None


def targets(rep: dict) -> dict:
    """The issue's ratios: latency at recall >= 0.95 and 0.99, build time and size of the 0.95 configurations."""
    k = rep["k"]
    out = {}
    for r in TARGETS:
        ours, peer = best_at(rep["methods"], "seismic", r, k), best_at(rep["methods"], "peer-seismic", r, k)
        row = {"seismic_ms": ours and ours["mean_ms"], "peer_ms": peer and peer["mean_ms"],
               "seismic_params": ours and ours["params"], "peer_params": peer and peer["params"]}
        if ours and peer:
            row["latency_ratio"] = round(ours["mean_ms"] / peer["mean_ms"], 3)
            row["build_ratio"] = round(ours["build_s"] / peer["build_s"], 3)
            row["bytes_ratio"] = round(ours["index_bytes"] / peer["index_bytes"], 3)
        exact = next((m for m in rep["methods"] if m["name"] == "exact"), None)
        if ours and exact:
            row["speedup_vs_exact"] = round(exact["mean_ms"] / ours["mean_ms"], 2)
        out[f"recall>={r}"] = row
    return out


def print_table(rep: dict) -> None:
    k = rep["k"]
    print(f"{rep['docs']} docs, {rep['queries']} queries, k={k}")
    print(f"{'method':14} {'params':58} {'recall':>7} {'mean ms':>8} {'p99 ms':>8} {'build s':>8} {'MB':>8}")
    for m in sorted(rep["methods"], key=lambda m: (m["name"], -m[f"recall@{k}"])):
        params = ",".join(f"{a}={b}" for a, b in m["params"].items() if a != "quantization")
        print(f"{m['name']:14} {params[:58]:58} {m[f'recall@{k}']:7.4f} {m['mean_ms']:8.3f} {m['p99_ms']:8.3f} "
              f"{m['build_s']:8.1f} {m['index_bytes'] / 1e6:8.1f}")
    print(json.dumps(rep.get("targets", {}), indent=1))


def plot(rep: dict, path: Path) -> None:
    """Recall@k against mean latency; each engine's Pareto front as a line over all its configurations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = rep["k"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"seismic": ("tab:blue", "o"), "peer-seismic": ("tab:orange", "s"), "exact": ("black", "*"),
              "scipy": ("gray", "X"), "bmp": ("tab:green", "^"), "peer-bmp": ("tab:red", "v")}
    for name in dict.fromkeys(m["name"] for m in rep["methods"]):
        pts = sorted((m[f"recall@{k}"], m["mean_ms"]) for m in rep["methods"] if m["name"] == name)
        color, marker = styles.get(name, ("tab:purple", "d"))
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=color, marker=marker, alpha=0.25, s=14)
        front, best = [], np.inf
        for r, t in sorted(pts, key=lambda p: -p[0]):
            if t < best:
                front.append((r, t))
                best = t
        ax.plot([p[0] for p in front], [p[1] for p in front], color=color, marker=marker, label=name)
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{k} against exact")
    ax.set_ylabel("mean latency per query, ms (one thread)")
    ax.set_title(f"{rep.get('corpus', '')}: {rep['docs']:,} docs, {rep['queries']} queries")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(docs: SparseBatch, queries: SparseBatch, *, k: int = 10, our_builds: list[dict] = OUR_BUILDS,
        peer_builds: list[dict] = PEER_BUILDS, query_grid: list[dict] = QUERY_GRID, quantization: str = "uint8",
        with_scipy: bool = True, meta: dict | None = None) -> dict:
    """Builds everything, runs the interleaved timing, returns the report (with the issue's target ratios)."""
    with tempfile.TemporaryDirectory(prefix="lsr-bench-seismic-") as tmp:
        entries = our_entries(docs, queries, Path(tmp), our_builds, query_grid, k, quantization, with_exact=True)
        entries += peer_entries(docs, queries, peer_builds, query_grid, k)
        if with_scipy:
            entries.append(scipy_entry(docs, queries, k))
        run_interleaved(entries, len(queries))
        rep = report(entries, docs, queries, k, meta or {})
    rep["targets"] = targets(rep)
    return rep
