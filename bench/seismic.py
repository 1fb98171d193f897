"""The Seismic suites of ``lsr bench index``: our ``seismic`` method and pyseismic-lsr over a grid of build and query
parameters, on the same (graph-bisection reordered) vectors and queries as every other suite, plus the issue's ratios.

The grid comes from ``--seismic-grid FILE`` (JSON with any of the keys of ``DEFAULT_GRID``); the defaults below span
the recall range 0.85 to 0.999 on splade-tiny vectors. Index bytes count what a Seismic search reads: for us the
forward index and the ``seismic.*`` arrays, for pyseismic-lsr the total it prints (forward index, postings,
summaries). Build seconds include our reordering, as for the other methods.
"""

from __future__ import annotations

import itertools

import numpy as np

_BUILD = {"n_postings": 4000, "centroid_fraction": 0.1, "summary_energy": 0.4}
DEFAULT_GRID = {
    "builds": [_BUILD],
    "peer_builds": [_BUILD],
    "queries": [{"query_cut": c, "heap_factor": h}
                for c, h in itertools.product((3, 5, 8, 12, 20), (0.7, 0.8, 0.9, 1.0))],
}
RECALLS = (0.95, 0.99)


def grid(ctx) -> dict:
    return {**DEFAULT_GRID, **(ctx.seismic_grid or {})}


def seismic_suite(ctx) -> list:
    """Our index with the seismic method: one build per build setting, one runner per query setting."""
    from bench.harness import Runner, timed
    from lsr.index import Index

    g = grid(ctx)
    reordered = ctx.reordered
    ids = [str(i) for i in range(len(reordered))]
    quant = ctx.quantizations[0]
    k = ctx.k
    # compile the build and search kernels on a few documents first: JIT time is not build time
    Index.build(ctx.workdir / "seismic-warmup", reordered.take(np.arange(min(64, len(reordered)))), ids[:64],
                quantization=quant, reorder=False, methods=("exact", "seismic")).search_one(
        *ctx.queries.row(0), k=k, method="seismic")
    runners = []
    for b, params in enumerate(g["builds"]):
        idx, seconds = timed(lambda: Index.build(ctx.workdir / f"seismic-{b}", reordered, ids, quantization=quant,
                                                  reorder=False, methods=("exact", "seismic"), **params))
        files = {f: m["bytes"] for seg in idx.manifest.segments for f, m in seg.files.items()}
        nbytes = sum(v for f, v in files.items() if f.startswith(("fwd_", "seismic.")))
        for qp in g["queries"]:
            def search(i: int, idx=idx, qp=qp) -> np.ndarray:
                _, d = idx.search_one(*ctx.queries.row(i), k=k, method="seismic", **qp)
                return ctx.order[d[d >= 0]]

            runners.append(Runner("seismic", {**params, **qp, "quantization": quant}, seconds + ctx.reorder_s, nbytes,
                                  search, {"reorder_s": round(ctx.reorder_s, 2)}))
    return runners


def peer_seismic_suite(ctx) -> list:
    """pyseismic-lsr given the same reordered documents (its ids are positions in that order)."""
    try:
        from bench.peer_seismic import PeerSeismic
    except ImportError:
        return []
    from bench.harness import Runner, version

    g = grid(ctx)
    reordered = ctx.reordered
    rows = [ctx.queries.row(i) for i in range(len(ctx.queries))]
    runners = []
    for params in g["peer_builds"]:
        peer = PeerSeismic(reordered, **params)
        prepared = [peer.query(*row) for row in rows]
        for qp in g["queries"]:
            def search(i: int, peer=peer, qp=qp) -> np.ndarray:
                hits = peer.search_one(prepared[i], ctx.k, qp["query_cut"], qp["heap_factor"])
                return ctx.order[peer.doc_numbers(hits)]

            runners.append(Runner("peer-seismic", {**params, **qp}, peer.build_s, peer.index_bytes, search,
                                  {"order": "our graph bisection", "version": version("pyseismic-lsr")}))
    return runners


def seismic_targets(entries: list[dict]) -> dict:
    """The issue's ratios: our fastest setting at recall@10 >= r against pyseismic-lsr's, build and size of those
    two settings, and our speed-up over exact search (uint8)."""
    def fastest(name: str, recall: float) -> dict | None:
        ok = [e for e in entries if e["name"] == name and e["recall@10"] >= recall]
        return min(ok, key=lambda e: e["mean_ms"]) if ok else None

    exact = [e for e in entries if e["name"] == "exact" and e["params"].get("quantization") == "uint8"]
    out = {}
    for r in RECALLS:
        ours, peer = fastest("seismic", r), fastest("peer-seismic", r)
        row = {"seismic": ours and {**ours["params"], "recall@10": ours["recall@10"], "mean_ms": ours["mean_ms"]},
               "peer": peer and {**peer["params"], "recall@10": peer["recall@10"], "mean_ms": peer["mean_ms"]}}
        if ours and peer:
            row["latency_ratio"] = round(ours["mean_ms"] / peer["mean_ms"], 3)
            row["build_ratio"] = round(ours["build_s"] / peer["build_s"], 3)
            row["bytes_ratio"] = round(ours["index_bytes"] / peer["index_bytes"], 3)
        if ours and exact:
            row["speedup_vs_exact"] = round(exact[0]["mean_ms"] / ours["mean_ms"], 2)
        out[f"seismic_at_recall_{r}"] = row
    return out
