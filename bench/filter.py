"""``lsr bench filter``: filtered search inside every method, against post-filtering, on real vectors with synthetic
metadata.

Each document gets two numbers: ``rand``, uniform and independent of the text (uncorrelated), and ``topic``, the
rank of the document's heaviest term in a fixed random order of the vocabulary (correlated: documents about the
same thing share it, so a filter on it removes whole subjects). A filter ``range lt x`` on either keeps a chosen
share of the documents (50%, 10%, 1%, 0.1%; for ``topic`` the closest share whole topics allow, reported).

For every filter and method (exact, bmp safe, bmp approximate, seismic) the benchmark times the filtered search
(``Index.search_one(..., filter=...)``, one query per call on one thread, the filter given as a dict as a user
would) and, as OpenSearch's sparse ANN does, post-filtering: the method's unfiltered top-k' (k' = 10, 100, 1000)
with the disallowed hits dropped (its latency is the unfiltered top-k' search plus the dropping, timed apart).
Recall@10 is against scipy's exact top-10 over the allowed rows of the index's stored (quantized) weights, so
exact search that returns the filtered exact ranking scores 1.0 (ties at the cut count as hits).

The direct path's threshold (index/allowed.py, ``DIRECT_SHARE``) comes from the crossover part: at shares of 0.5%
to 20% (uncorrelated), each method timed with the direct path forced on and off.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
import numpy as np

from bench.harness import Runner, timed
from bench.index_search import exact_truth, recall_at_k, time_runners, true_scores
from lsr.core.sparse import SparseBatch

SHARES = (0.5, 0.1, 0.01, 0.001)
CROSSOVER = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
POST_K = (10, 100, 1000)
RAND = 1_000_000
SAFE = {"exact": ("exact", {}), "bmp-safe": ("bmp", {"alpha": 1.0})}
# The approximate methods run at operating points chosen on the unfiltered queries: for each recall floor, the
# fastest setting of its grid whose unfiltered recall@10 reaches it (``calibrate``). A fixed setting would say more
# about where it sits on the unfiltered curve than about filtering.
GRID = {"bmp-approx": ("bmp", [{"alpha": a, "beta": b} for a in (0.6, 0.7, 0.8, 0.9) for b in (0.7, 1.0)]),
        "seismic": ("seismic", [{"query_cut": q, "heap_factor": h} for q in (5, 8, 12, 16, 20)
                                for h in (0.7, 0.8, 0.9)])}
FLOORS = (0.95, 0.99)


def synthetic_metadata(docs: SparseBatch, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rand, topic) per document: a uniform integer in [0, RAND), and the rank of its heaviest term in a random
    order of the vocabulary."""
    rng = np.random.default_rng(seed)
    rand = rng.integers(0, RAND, len(docs))
    rank = rng.permutation(docs.vocab_size)
    top = np.array([docs.indices[lo + np.argmax(docs.values[lo:hi])] if hi > lo else 0
                    for lo, hi in zip(docs.indptr[:-1], docs.indptr[1:])])
    return rand, rank[top]


def make_filters(rand: np.ndarray, topic: np.ndarray, shares: tuple[float, ...]) -> list[dict]:
    """A filter per (correlation, share): its dict, the allowed documents (original numbers) and the share kept."""
    out = []
    for share in shares:
        out.append({"correlated": False, "target": share, "filter": {"must": [
            {"key": "rand", "range": {"lt": int(round(share * RAND))}}]}, "mask": rand < round(share * RAND)})
        values = np.sort(topic)
        cuts = np.append(np.unique(values)[1:], values[-1] + 1)   # x: keep the documents with topic < x (not none)
        kept = np.searchsorted(values, cuts, side="left") / len(values)
        x = int(cuts[np.argmin(np.abs(kept - share))])
        out.append({"correlated": True, "target": share, "filter": {"must": [{"key": "topic", "range": {"lt": x}}]},
                    "mask": topic < x})
    for f in out:
        f["share"] = float(f["mask"].mean())
    return out


def stored_vectors(docs: SparseBatch) -> SparseBatch:
    """The weights the index stores (uint8 levels x the index's scale): the ground truth's vectors."""
    from lsr.index.forward import ForwardIndex
    from lsr.index.quantize import dequantize

    fwd = ForwardIndex.from_vectors(docs, "uint8")
    return SparseBatch(docs.indptr, docs.indices, dequantize(fwd.values, fwd.scale).astype(np.float32),
                       docs.vocab_size)


def run(docs_path: Path, queries_path: Path, output: Path, n_queries: int = 300, rounds: int = 2,
        shares: tuple[float, ...] = SHARES, crossover: tuple[float, ...] = CROSSOVER, seed: int = 0,
        workdir: Path | None = None, limit: int | None = None) -> dict:
    from lsr.core.documents import Document
    from lsr.core.vectors import load_vectors
    from lsr.index import Index, allowed as allowed_module

    docs = load_vectors(docs_path).vectors
    if limit is not None and limit < len(docs):   # a prefix: the corpus files are in a seeded random order
        docs = docs.take(np.arange(limit))
    queries = load_vectors(queries_path).vectors
    queries = SparseBatch(queries.indptr, queries.indices, queries.values, docs.vocab_size).validate()
    queries = queries.take(np.arange(min(n_queries, len(queries))))
    rand, topic = synthetic_metadata(docs, seed)
    filters = make_filters(rand, topic, shares)
    cross = [f for f in make_filters(rand, topic, crossover) if not f["correlated"]]
    ids = [str(i) for i in range(len(docs))]
    texts = [Document(ids[i], "", metadata={"rand": int(rand[i]), "topic": int(topic[i])}) for i in range(len(docs))]
    tmp = Path(tempfile.mkdtemp(prefix="lsr-bench-filter-", dir=workdir))
    load_before = os.getloadavg()
    try:
        idx, build_s = timed(lambda: Index.build(tmp / "idx", docs, ids, texts=texts,
                                                 methods=("exact", "bmp", "seismic")))
        original = np.array([int(i) for i in idx.doc_ids], dtype=np.int64)   # index number -> document row
        rows = [queries.row(i) for i in range(len(queries))]

        measured = allowed_module.DIRECT_SHARE

        def runner(label: str, method: str, params: dict, k: int, flt: dict | None, extra: dict,
                   direct: float | None = None) -> Runner:
            share = measured if direct is None else direct   # set on every search: the runners interleave

            def search(i: int) -> np.ndarray:
                allowed_module.DIRECT_SHARE = share
                _, d = idx.search_one(*rows[i], k=k, method=method, params=params, filter=flt)
                return original[d[d >= 0]]
            return Runner(label, {"method": method, **params, "k": k, **extra}, build_s, idx.nbytes(), search)

        stored = stored_vectors(docs)
        true_score = true_scores(stored, queries)
        calibration, methods = calibrate(runner, stored, queries, true_score, rounds)

        runners = []
        for label, (method, params) in methods.items():
            for k in POST_K:
                runners.append(runner(label, method, params, k, None, {"filter": None}))
            for f_i, f in enumerate(filters):
                runners.append(runner(label, method, params, 10, f["filter"], {"filter": f_i}))
        for label, (method, params) in methods.items():
            for f_i, f in enumerate(cross):
                for direct in (1.0, 0.0):
                    runners.append(runner(label, method, params, 10, f["filter"],
                                          {"crossover": f_i, "direct": bool(direct)}, direct=direct))
        timing = time_runners(runners, len(queries), rounds)
        allowed_module.DIRECT_SHARE = measured
        report = _report(stored, queries, true_score, filters, cross, runners, timing, methods)
        report["calibration"] = calibration
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.update({"docs": len(docs), "queries": len(queries), "k": 10, "direct_share": measured,
                   "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_before": load_before,
                               "load_after": os.getloadavg(), "rounds": rounds, "docs_file": str(docs_path),
                               "queries_file": str(queries_path), "limit": limit, "build_s": round(build_s, 1)}})
    output.parent.mkdir(parents=True, exist_ok=True)
    from lsr.core.atomic import atomic_write_text

    atomic_write_text(output, json.dumps(report, indent=1) + "\n")
    print_table(report)
    return report


def calibrate(runner: Callable[..., Runner], stored: SparseBatch, queries: SparseBatch,
              true_score: Callable[[int, np.ndarray], np.ndarray], rounds: int) -> tuple[dict, dict]:
    """Times every GRID setting unfiltered (interleaved, ``runner`` as in ``run``) and picks, per recall floor, the
    fastest reaching it (the most accurate where none does). Returns the calibration report and the methods to run:
    SAFE plus ``<name>@<floor>`` per approximate method."""
    truth, kth = exact_truth(stored, queries, 10)
    grid = [(name, method, params) for name, (method, settings) in GRID.items() for params in settings]
    runners = [runner(name, method, params, 10, None, {}) for name, method, params in grid]
    timing = time_runners(runners, len(queries), rounds)
    points = [{"method": name, "params": params, "mean_ms": round(float(np.mean(timing[i]["lat"])), 4),
               "recall@10": round(recall_at_k(timing[i]["found"], truth, kth, true_score), 4)}
              for i, (name, _, params) in enumerate(grid)]
    methods, chosen = dict(SAFE), {}
    for name, (method, _) in GRID.items():
        mine = [p for p in points if p["method"] == name]
        for floor in FLOORS:
            ok = [p for p in mine if p["recall@10"] >= floor]
            pick = min(ok, key=lambda p: p["mean_ms"]) if ok else max(mine, key=lambda p: p["recall@10"])
            chosen[f"{name}@{floor}"] = pick
            methods[f"{name}@{floor}"] = (method, pick["params"])
    return {"grid": points, "chosen": chosen}, methods


def _report(stored: SparseBatch, queries: SparseBatch, true_score: Callable[[int, np.ndarray], np.ndarray],
            filters: list[dict], cross: list[dict], runners: list[Runner], timing: dict, methods: dict) -> dict:

    truths = []   # per filter: (top-10 document rows, -1 padded; the 10th score) over the allowed rows
    for f in filters:
        rows = np.flatnonzero(f["mask"])
        top, kth = exact_truth(stored.take(rows), queries, 10)
        truths.append((np.where(top >= 0, rows[np.maximum(top, 0)], -1), kth))
    stats = lambda lat: {"mean_ms": round(float(np.mean(lat)), 4),   # noqa: E731
                         "p99_ms": round(float(np.percentile(lat, 99)), 4)}
    entries, post, crossing = [], [], []
    unfiltered = {}
    for r_i, r in enumerate(runners):
        lat, found = timing[r_i]["lat"], timing[r_i]["found"]
        p = r.params
        if "crossover" in p:
            crossing.append({"method": r.name, "share": cross[p["crossover"]]["share"], "direct": p["direct"],
                             **stats(lat)})
        elif p["filter"] is None:
            unfiltered[r.name, p["k"]] = (lat, found)
        else:
            f = filters[p["filter"]]
            truth, kth = truths[p["filter"]]
            entries.append({"method": r.name, "correlated": f["correlated"], "target": f["target"],
                            "share": round(f["share"], 5), "recall@10": round(recall_at_k(found, truth, kth,
                                                                                           true_score), 4),
                            **stats(lat)})
    for f_i, f in enumerate(filters):
        truth, kth = truths[f_i]
        for (name, k), (lat, found) in unfiltered.items():
            t = time.perf_counter()
            kept = [hits[f["mask"][hits]][:10] for hits in found]
            drop_ms = (time.perf_counter() - t) * 1e3 / len(found)
            post.append({"method": name, "k_prime": k, "correlated": f["correlated"], "target": f["target"],
                         "recall@10": round(recall_at_k(kept, truth, kth, true_score), 4),
                         "mean_ms": round(float(np.mean(lat)) + drop_ms, 4),
                         "p99_ms": round(float(np.percentile(lat, 99)) + drop_ms, 4)})
    base = {name: stats(lat) for (name, k), (lat, _) in unfiltered.items() if k == 10}
    for e in entries:
        e["x_unfiltered"] = round(e["mean_ms"] / base[e["method"]]["mean_ms"], 3)
        e["x_unfiltered_exact"] = round(e["mean_ms"] / base["exact"]["mean_ms"], 3)
    return {"unfiltered": base, "filtered": entries, "post_filter": post, "crossover": crossing,
            "targets": targets(entries, post, methods)}


def targets(entries: list[dict], post: list[dict], methods: dict) -> dict:
    """The issue's targets, from this run's figures (approximate recall per operating point)."""
    by = lambda name: [e for e in entries if e["method"] == name]   # noqa: E731
    out = {f"{m}_min_recall": min(e["recall@10"] for e in by(m)) for m in methods}
    out["exact_and_bmp_safe_identical"] = all(e["recall@10"] == 1.0 for m in SAFE for e in by(m))
    for floor in FLOORS:
        out[f"approximate_recall_at_least_0.95_at_the_{floor}_points"] = all(
            e["recall@10"] >= 0.95 for m in methods if m.endswith(f"@{floor}") for e in by(m))
    out["post_filter_below_0.5"] = sorted({(p["method"], p["k_prime"], p["correlated"], p["target"])
                                           for p in post if p["recall@10"] < 0.5})
    wide = [e for e in entries if e["target"] >= 0.1]
    out["max_x_unfiltered_at_10_to_50_percent"] = max(e["x_unfiltered"] for e in wide)
    out["within_1.5x_at_10_to_50_percent"] = all(e["x_unfiltered"] <= 1.5 for e in wide)
    narrow = [e for e in entries if e["target"] == min(x["target"] for x in entries)]
    out["max_x_unfiltered_exact_at_smallest_share"] = max(e["x_unfiltered_exact"] for e in narrow)
    out["faster_than_unfiltered_exact_at_smallest_share"] = all(e["x_unfiltered_exact"] < 1.0 for e in narrow)
    return out


def print_table(report: dict) -> None:
    print(f"{report['docs']} docs, {report['queries']} queries, k=10, DIRECT_SHARE={report['direct_share']}")
    print("unfiltered: " + ", ".join(f"{m} {s['mean_ms']:.3f} ms" for m, s in report["unfiltered"].items()))
    print(f"{'method':<16} {'corr':<5} {'share':>8} {'recall':>7} {'mean ms':>8} {'p99 ms':>8} {'x unf':>6} "
          f"{'x exact':>7} | post-filter recall k'=10/100/1000")
    for e in report["filtered"]:
        post = [p["recall@10"] for p in report["post_filter"] if p["method"] == e["method"] and
                p["correlated"] == e["correlated"] and p["target"] == e["target"]]
        print(f"{e['method']:<16} {str(e['correlated'])[0]:<5} {e['share']:>8.4f} {e['recall@10']:>7.4f} "
              f"{e['mean_ms']:>8.3f} {e['p99_ms']:>8.3f} {e['x_unfiltered']:>6.2f} {e['x_unfiltered_exact']:>7.2f} | "
              + " / ".join(f"{x:.3f}" for x in post))
    print("operating points (unfiltered recall floor: setting, its recall and ms)")
    for name, c in report["calibration"]["chosen"].items():
        print(f"  {name:<16} {c['params']}  recall {c['recall@10']:.4f}  {c['mean_ms']:.3f} ms")
    print("crossover (share: direct ms / method ms)")
    for m in report["unfiltered"]:
        rows = [c for c in report["crossover"] if c["method"] == m]
        pairs = {}
        for c in rows:
            pairs.setdefault(c["share"], {})[c["direct"]] = c["mean_ms"]
        print(f"  {m:<16} " + "  ".join(f"{s:.3f}: {v.get(True, 0):.3f}/{v.get(False, 0):.3f}"
                                         for s, v in sorted(pairs.items())))
    print(json.dumps(report["targets"], indent=1))

