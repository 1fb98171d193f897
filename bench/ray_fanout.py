"""Fan-out overhead of sharded search on Ray Serve: the same documents as one shard and as N shards, both behind the
same front, queried one at a time and interleaved, plus the one index searched in-process for reference.

    python -m bench.ray_fanout --docs data/windows.npz --queries data/queries.npz --shards 4 \
        --n-queries 1000 --output bench/results/ray_fanout.json

Both deployments answer through ``cluster.serve`` (front -> shard replicas, one replica each), so their difference
is the fan-out: N shard calls instead of one, and the merge. Every sharded answer is checked against the one index
(the same documents with the same scores, up to float32 summation order and the order of equal scores).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "mean_ms": round(float(a.mean()), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=Path, required=True)
    p.add_argument("--queries", type=Path, required=True)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--n-queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--method", action="append", help="exact, bmp (repeat; default both)")
    p.add_argument("--output", type=Path, default=Path("bench/results/ray_fanout.json"))
    args = p.parse_args()
    methods = args.method or ["exact", "bmp"]

    from lsr.cluster.connect import connect
    from lsr.cluster.indexer import BuildSettings, shard_vectors
    from lsr.cluster.shards import disagreements
    from lsr.index import Index
    from lsr.core.vectors import load_vectors

    docs, queries = load_vectors(args.docs), load_vectors(args.queries)
    n = min(args.n_queries, len(queries.vectors))
    folder = Path(tempfile.mkdtemp(prefix="lsr-ray-fanout-"))
    build = BuildSettings(methods=("exact", "bmp"))
    t = time.perf_counter()
    shard_vectors(folder / "one", docs.vectors, docs.ids, 1, build=build)
    shard_vectors(folder / "many", docs.vectors, docs.ids, args.shards, build=build)
    build_s = time.perf_counter() - t
    one = Index.open(folder / "one" / "shard-000")

    connect(num_cpus=os.cpu_count())
    from lsr.cluster.serve import deploy

    fronts = {name: deploy(folder / name, name=name, route_prefix=f"/{name}", cpus_per_replica=0, port=None)
              for name in ("one", "many")}
    rows, mismatches = [], {}
    for method in methods:
        lat = {"in-process": [], "one": [], "many": []}
        mismatches[method] = 0
        for r in range(min(20, n)):   # warm-up: compiled kernels loaded here and in every replica
            one.search_one(*queries.vectors.row(r), k=args.k, method=method)
            for front in fronts.values():
                front.search.remote(*queries.vectors.row(r), args.k, method).result()
        for r in range(n):   # interleaved, query by query, so the three see the same load
            q = queries.vectors.row(r)
            t = time.perf_counter()
            one.search_one(*q, k=args.k, method=method)
            lat["in-process"].append((time.perf_counter() - t) * 1e3)
            got = {}
            for name, front in fronts.items():
                t = time.perf_counter()
                got[name] = front.search.remote(*q, args.k, method).result()
                lat[name].append((time.perf_counter() - t) * 1e3)
            for name in ("one", "many"):
                mismatches[method] += bool(disagreements(got[name], one, *q, args.k, method))
        for name, ms in lat.items():
            rows.append({"method": method, "setup": name if name != "many" else f"{args.shards} shards",
                         "shards": {"in-process": 0, "one": 1, "many": args.shards}[name], **percentiles(ms)})
    by = {(r["method"], r["shards"]): r for r in rows}
    for method in methods:
        one_p50, many_p50 = by[(method, 1)]["p50_ms"], by[(method, args.shards)]["p50_ms"]
        by[(method, args.shards)]["fanout_overhead_p50_ms"] = round(many_p50 - one_p50, 3)
        by[(method, args.shards)]["p50_vs_one_shard"] = round(many_p50 / one_p50, 2)
    report = {"docs": len(docs.vectors), "queries": n, "k": args.k, "shards": args.shards, "cpus": os.cpu_count(),
              "load": os.getloadavg(), "build_s": round(build_s, 1), "mismatches": mismatches, "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{len(docs.vectors)} docs, {n} queries, k={args.k}; answers differing from one index: {mismatches}")
    print(f"{'method':<8}{'setup':<14}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for r in rows:
        print(f"{r['method']:<8}{r['setup']:<14}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['mean_ms']:>9}")


if __name__ == "__main__":
    main()
