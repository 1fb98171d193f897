"""``lsr bench index``: every search method and every installed peer on the same vectors and queries.

Each *suite* builds one engine and returns *runners* (one per parameter setting); every runner answers one query per
call on one thread, and runners are timed in interleaved chunks of queries so that a noisy, shared machine slows
all of them alike. Recall@k is measured against exact float32 scores computed by scipy; a returned document counts
as relevant when its true score reaches the true k-th score (ties at the cut are not misses).

Suites here: scipy brute force, ours (exact at each quantization; bmp at each block size over an alpha/beta grid),
splade-index, the bmp package; ``seismic`` and ``peer-seismic`` (pyseismic-lsr) from bench/seismic.py.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from numba import njit

from bench.harness import Context, Runner, timed, version
from bench.seismic import peer_seismic_suite, seismic_suite, seismic_targets
from lsr.core.sparse import SparseBatch


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ---- ground truth -------------------------------------------------------------------------------------------------
def exact_truth(docs: SparseBatch, queries: SparseBatch, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(top-k doc numbers of ``docs``, true score of every query's k-th hit) from scipy float32 products."""
    chunk = max(1, min(256, 2**26 // max(len(docs), 1)))   # dense score blocks of at most 256 MB
    dt = docs.to_scipy().T.tocsr()
    top = np.full((len(queries), k), -1, dtype=np.int64)
    kth = np.zeros(len(queries), dtype=np.float32)
    q = queries.to_scipy()
    for lo in range(0, len(queries), chunk):
        scores = (q[lo:lo + chunk] @ dt).toarray()
        part = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        for r in range(len(part)):
            row = part[r][np.argsort(-scores[r, part[r]], kind="stable")]
            row = row[scores[r, row] > 0]
            top[lo + r, :len(row)] = row
            kth[lo + r] = scores[r, row[-1]] if len(row) else 0.0
    return top, kth


def true_scores(docs: SparseBatch, queries: SparseBatch,
                order: np.ndarray | None = None) -> Callable[[int, np.ndarray], np.ndarray]:
    """score(i, rows): query i's float32 scores of the given original document numbers (scipy), for
    ``recall_at_k``; ``docs`` are in ``order`` (new position -> original number; None: the original order)."""
    dm, qm = docs.to_scipy(), queries.to_scipy()
    position = np.arange(len(docs))
    if order is not None:
        position[order] = np.arange(len(order))

    def score(i: int, got: np.ndarray) -> np.ndarray:
        return np.asarray((qm[i] @ dm[position[got]].T).todense()).ravel()
    return score


def recall_at_k(found: list[np.ndarray], truth: np.ndarray, kth: np.ndarray, true_score: Callable) -> float:
    """Mean over queries of |found hits scoring >= the true k-th score| / |true hits| (ties at the cut count)."""
    values = []
    for i, got in enumerate(found):
        want = int(np.sum(truth[i] >= 0))
        if want == 0:
            continue
        got = np.asarray(got)[:truth.shape[1]]
        got = got[got >= 0]
        hits = int(np.sum(true_score(i, got) >= kth[i] * (1 - 1e-6))) if len(got) else 0
        values.append(min(hits, want) / want)
    return float(np.mean(values)) if values else 1.0


# ---- suites -------------------------------------------------------------------------------------------------------
def scipy_suite(ctx: Context) -> list[Runner]:
    """Brute force: one sparse row times the term-major matrix, then argpartition."""
    dt, build_s = timed(lambda: ctx.reordered.to_scipy().T.tocsr())
    q = ctx.queries.to_scipy()
    k = ctx.k

    def search(i: int) -> np.ndarray:
        s = (q[i] @ dt).toarray().ravel()
        top = np.argpartition(-s, k)[:k]
        return ctx.order[top[np.argsort(-s[top])]]

    nbytes = dt.data.nbytes + dt.indices.nbytes + dt.indptr.nbytes
    return [Runner("scipy", {"layout": "term-major csr, float32"}, build_s, nbytes, search)]


def _grid(ctx: Context) -> list[tuple[float, float]]:
    """(alpha, beta) settings: alpha alone, beta alone, and the mildest alphas with each beta."""
    return [(a, b) for a in ctx.alphas for b in ctx.betas if a == 1.0 or b == 1.0 or a >= 0.9]


def _ours(ctx: Context):
    """(make, build) for our index over the pre-reordered documents: a search function of (index, method, params),
    and a build returning (index, build seconds with the reordering, core bytes, all bytes, note)."""
    from lsr.index import Index

    reordered = ctx.reordered
    ids = [str(i) for i in range(len(reordered))]

    def make(idx, method: str, **params) -> Callable[[int], np.ndarray]:
        def search(i: int) -> np.ndarray:
            _, d = idx.search_one(*ctx.queries.row(i), k=ctx.k, method=method, **params)
            return ctx.order[d[d >= 0]]
        return search

    def build(name: str, quant: str, methods: tuple[str, ...], **params):
        idx, seconds = timed(lambda: Index.build(ctx.workdir / name, reordered, ids, quantization=quant,
                                                  reorder=False, methods=methods, **params))
        files = {f: m["bytes"] for seg in idx.manifest.segments for f, m in seg.files.items()}
        core = sum(v for f, v in files.items() if "." not in f.removesuffix(".npy"))
        return idx, seconds + ctx.reorder_s, core, sum(files.values()), {"reorder_s": round(ctx.reorder_s, 2)}

    return make, build


def exact_suite(ctx: Context) -> list[Runner]:
    """Our exact search at every quantization, and its batch speed-up at the first."""
    make, build = _ours(ctx)
    runners = []
    for quant in ctx.quantizations:
        idx, build_s, core, _, note = build(f"exact-{quant}", quant, ("exact",))
        runners.append(Runner("exact", {"quantization": quant}, build_s, core, make(idx, "exact"), note))
        if quant == ctx.quantizations[0]:
            ctx.batch += batch_speedup(idx, ctx.queries, ctx.k, "exact")
    return runners


def bmp_suite(ctx: Context) -> list[Runner]:
    """Our BMP at every block size and alpha/beta, at the first quantization (documents pre-reordered)."""
    from lsr.index import bmp

    make, build = _ours(ctx)
    runners = []
    quant = ctx.quantizations[0]
    for bs in ctx.block_sizes:
        idx, build_s, _, total, note = build(f"bmp-{bs}", quant, ("exact", "bmp"), block_size=bs)
        for alpha, beta in _grid(ctx):
            for exhaustive in (bmp.EXHAUSTIVE, 1.0):   # the default switch, and pure block-at-a-time
                params = {"alpha": alpha, "beta": beta, "exhaustive": exhaustive}
                runners.append(Runner("bmp", {"block_size": bs, **params, "quantization": quant}, build_s, total,
                                      make(idx, "bmp", **params), note))
    return runners


def batch_speedup(idx, queries: SparseBatch, k: int, method: str, rounds: int = 3, min_s: float = 1.0) -> list[dict]:
    """Queries per second of ``idx.search`` on 1 and 2 threads, interleaved rounds, best of each; the query set is
    repeated so that one pass on one thread lasts about ``min_s`` (a 0.1 s pass measures the scheduler, not us).

    Each best run also reports the CPU it got: ``cpu_per_wall`` (this process's CPU seconds / wall seconds; 2.0 =
    both cores all the time), ``others_cpu_per_wall`` (other processes' CPU over the same time, from /proc/stat) and
    ``qps_per_cpu_s``. Between them, a pure-compute ``nogil`` loop on the same kind of thread pool (name "ceiling")
    shows the speed-up the machine allowed at that moment: on a shared 2-core machine that is often far below 2."""
    _, once = timed(lambda: idx.search(queries, k=k, method=method, threads=1))
    queries = queries.take(np.tile(np.arange(len(queries)), max(1, int(np.ceil(min_s / max(once, 1e-6))))))
    spin_n = _spin_size(min_s)
    work = {method: lambda threads: idx.search(queries, k=k, method=method, threads=threads),
            "ceiling": lambda threads: _spin_on(threads, spin_n)}
    n = len(queries)   # the ceiling's "qps" is passes per second x n: only its speed-up means anything
    idx.search(queries, k=k, method=method, threads=2)
    runs = {(name, t): [] for name in work for t in (1, 2)}
    for _ in range(rounds):
        for threads in (1, 2):
            for name, f in work.items():
                runs[name, threads].append(_cpu_timed(lambda: f(threads)))
    out = []
    for name in work:
        best = {t: min(runs[name, t], key=lambda r: r[0]) for t in (1, 2)}
        qps = {t: n / b[0] for t, b in best.items()}
        out += [{"name": name, "threads": t, "queries": n, "qps": round(q, 1),
                 "speedup": round(q / qps[1], 3), "cpu_per_wall": round(best[t][1] / best[t][0], 2),
                 "others_cpu_per_wall": None if best[t][2] is None else round(best[t][2] / best[t][0], 2),
                 "qps_per_cpu_s": round(n / max(best[t][1], 1e-9), 1)} for t, q in qps.items()]
    return out


@njit(cache=True, nogil=True)
def _spin(n: int) -> float:
    x = 0.0
    for i in range(n):
        x += np.sqrt(i + x * 1e-9)
    return x


def _spin_size(seconds: float) -> int:
    """Iterations of ``_spin`` that take about ``seconds`` on one thread."""
    _spin(10)
    _, t = timed(lambda: _spin(10**6))
    return int(10**6 * seconds / max(t, 1e-9))


def _spin_on(threads: int, n: int, tasks: int = 64) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(_spin, [n // tasks] * tasks))


def _machine_busy_s() -> float | None:
    """CPU seconds all processes have used since boot (Linux /proc/stat), None elsewhere."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")   # all but idle and iowait


def _cpu_timed(f: Callable) -> tuple[float, float, float | None]:
    """(wall s, this process's CPU s, other processes' CPU s or None) of f()."""
    busy, cpu, t = _machine_busy_s(), time.process_time(), time.perf_counter()
    f()
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    after = _machine_busy_s()
    return wall, cpu, None if busy is None or after is None else max(0.0, after - busy - cpu)


def splade_index_suite(ctx: Context) -> list[Runner]:
    """splade-index's exact Numba retrieval, called directly on our vectors (its indexer wants a model)."""
    try:
        import numba
        from splade_index.numba.retrieve_utils import _retrieve_internal_jitted_parallel as retrieve
    except ImportError:
        return []
    csc, build_s = timed(lambda: ctx.reordered.to_scipy().tocsc())
    data, indptr, indices = csc.data.astype(np.float32), csc.indptr, csc.indices
    n, k = len(ctx.reordered), ctx.k
    f32, i32 = np.dtype("float32"), np.dtype("int32")

    def search(i: int) -> np.ndarray:
        t, w = ctx.queries.row(i)
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            _, docs = retrieve(t, w, np.array([0, len(t)], np.int32), k, True, f32, i32, data, indptr, indices, n)
        finally:
            numba.set_num_threads(threads)
        return ctx.order[docs[0][docs[0] >= 0]]

    search(0)   # compile outside the timing
    nbytes = data.nbytes + indptr.nbytes + indices.nbytes
    return [Runner("peer-splade-index", {"version": version("splade-index")}, build_s, nbytes, search)]


def bmp_levels(docs: SparseBatch, qint: SparseBatch) -> int:
    """The most document levels (<= 255) for which no query's best integer score reaches 2^16 (bmp sums in u16)."""
    top = float(docs.values.max())
    dense = qint.to_scipy().T.toarray()   # (vocabulary, queries): documents x queries in slices, never transposed
    m, step = docs.to_scipy(), 100_000
    best = max(float((m[lo:lo + step] @ dense).max(initial=0)) for lo in range(0, len(docs), step)) / top
    return int(max(1, min(255, np.floor(60000 / max(best, 1e-9)))))


def bmp_peer_suite(ctx: Context) -> list[Runner]:
    """The bmp package (Rust, the paper's authors) given our reordered documents and integer impacts that fit u16."""
    try:
        import bmp as bmp_pkg
    except ImportError:
        return []
    reordered = ctx.reordered
    # queries: bmp keeps at most 32 integer levels per query (it rescales larger weights the same way, rounding up)
    rows = [ctx.queries.row(i) for i in range(len(ctx.queries))]
    qint = SparseBatch.from_rows([(t, np.ceil(w / w.max() * 32) if len(w) else w) for t, w in rows],
                                 ctx.queries.vocab_size)
    levels = bmp_levels(reordered, qint)
    dint = np.maximum(1, np.rint(reordered.values / reordered.values.max() * levels)).astype(np.int32)
    queries = [{str(t): int(w) for t, w in zip(*qint.row(i))} for i in range(len(qint))]
    runners = []
    for bs in ctx.block_sizes:
        path = ctx.workdir / f"peer-bmp-{bs}.bmp"

        def build() -> object:
            ix = bmp_pkg.Indexer(str(path), bs, False)
            for d in range(len(reordered)):
                lo, hi = reordered.indptr[d], reordered.indptr[d + 1]
                ix.add_document(str(d), dict(zip(map(str, reordered.indices[lo:hi]), map(int, dint[lo:hi]))))
            ix.finish()
            return bmp_pkg.Searcher(str(path))

        searcher, build_s = timed(build)
        own = _own_quantized_check(searcher, qint, reordered, dint, ctx.k)
        for alpha, beta in _grid(ctx):
            def search(i: int, s=searcher, a=alpha, b=beta) -> np.ndarray:
                names, _ = s.search(queries[i], ctx.k, a, b)
                return ctx.order[np.fromiter(map(int, names), dtype=np.int64, count=len(names))]
            runners.append(Runner("peer-bmp", {"block_size": bs, "alpha": alpha, "beta": beta}, build_s,
                                  path.stat().st_size, search,
                                  {"order": "our graph bisection", "doc_levels": levels, "query_levels": 32,
                                   "version": version("bmp"), "safe_equals_own_integer_exact": own}))
    return runners


def _own_quantized_check(searcher, qint: SparseBatch, dint_docs: SparseBatch, dint: np.ndarray, k: int,
                         sample: int = 200) -> float:
    """Fraction of sampled queries where bmp's safe top-k scores equal the exact top-k of its own integer scores."""
    m = SparseBatch(dint_docs.indptr, dint_docs.indices, dint.astype(np.float32), dint_docs.vocab_size).to_scipy()
    picks = np.linspace(0, len(qint) - 1, min(sample, len(qint))).astype(int)
    ok = 0
    for i in picks:
        t, w = qint.row(i)
        q = np.zeros(qint.vocab_size, dtype=np.float32)
        q[t] = w
        want = np.sort(m @ q)[::-1][:k]   # every document's integer score (m is documents x terms: no transpose)
        _, got = searcher.search({str(a): int(b) for a, b in zip(t, w)}, k, 1.0, 1.0)
        ok += np.array_equal(np.asarray(got, dtype=np.float64), want[want > 0][:len(got)]) and len(got) == (want > 0).sum()
    return round(ok / len(picks), 4)


SUITES: list[Callable[[Context], list[Runner]]] = [scipy_suite, exact_suite, bmp_suite, splade_index_suite,
                                                   bmp_peer_suite, seismic_suite, peer_seismic_suite]
SUITE_GROUPS = {"ours": ("exact", "bmp")}   # a name that selects several suites


# ---- timing and report --------------------------------------------------------------------------------------------
def time_runners(runners: list[Runner], n_queries: int, rounds: int, chunk: int = 50) -> dict[int, dict]:
    """Per runner: latencies (ms) of every timed call and the last answer to each query. Interleaved in chunks."""
    out = {r_i: {"lat": [], "found": [None] * n_queries} for r_i in range(len(runners))}
    for r in runners:   # compile / load caches / touch the index outside the timing
        r.search(0)
    for _ in range(rounds):
        for lo in range(0, n_queries, chunk):
            for r_i, r in enumerate(runners):
                lat, found = out[r_i]["lat"], out[r_i]["found"]
                for i in range(lo, min(lo + chunk, n_queries)):
                    t = time.perf_counter()
                    found[i] = r.search(i)
                    lat.append((time.perf_counter() - t) * 1e3)
    return out


def targets(entries: list[dict], batch: list[dict]) -> dict:
    """The issue's ratios, from this run's entries."""
    def pick(name, cond=lambda e: True):
        c = [e for e in entries if e["name"] == name and cond(e)]
        return min(c, key=lambda e: e["mean_ms"]) if c else None

    out = {}
    exact = pick("exact", lambda e: e["params"].get("quantization") == "uint8")
    scipy_e, si = pick("scipy"), pick("peer-splade-index")
    if exact and scipy_e:
        out["exact_speedup_vs_scipy"] = round(scipy_e["mean_ms"] / exact["mean_ms"], 3)
    if exact and si:
        out["exact_latency_vs_splade_index"] = round(exact["mean_ms"] / si["mean_ms"], 3)
    safe = lambda e: e["params"].get("alpha") == 1.0 and e["params"].get("beta") == 1.0   # noqa: E731
    pure = lambda e: e["params"].get("exhaustive", 1.0) == 1.0   # noqa: E731
    ours_safe, peer_safe = pick("bmp", safe), pick("peer-bmp", safe)
    ours_pure = pick("bmp", lambda e: safe(e) and pure(e))
    if ours_safe and peer_safe:
        out["bmp_safe_latency_vs_peer"] = round(ours_safe["mean_ms"] / peer_safe["mean_ms"], 3)
        out["bmp_safe_best"] = {"ours": ours_safe["params"], "peer": peer_safe["params"]}
    if ours_pure and peer_safe:   # block-at-a-time only, never the exhaustive switch
        out["bmp_safe_block_at_a_time_latency_vs_peer"] = round(ours_pure["mean_ms"] / peer_safe["mean_ms"], 3)
    good = lambda e: e["recall@10"] >= 0.95   # noqa: E731
    ours_apx, peer_apx = pick("bmp", good), pick("peer-bmp", good)
    ours_apx_pure = pick("bmp", lambda e: good(e) and pure(e))
    if ours_apx and peer_apx:
        out["bmp_approx_latency_vs_peer_at_recall_0.95"] = round(ours_apx["mean_ms"] / peer_apx["mean_ms"], 3)
        out["bmp_approx_best"] = {"ours": {**ours_apx["params"], "recall@10": ours_apx["recall@10"]},
                                  "peer": {**peer_apx["params"], "recall@10": peer_apx["recall@10"]}}
    out.update(seismic_targets(entries))
    if ours_apx_pure and peer_apx:
        out["bmp_approx_block_at_a_time_latency_vs_peer"] = round(ours_apx_pure["mean_ms"] / peer_apx["mean_ms"], 3)
        out["bmp_approx_block_at_a_time_best"] = {**ours_apx_pure["params"], "recall@10": ours_apx_pure["recall@10"]}
    two = [b for b in batch if b["threads"] == 2 and b["name"] != "ceiling"]
    if two:
        out["batch_2_thread_speedup"] = {b["name"]: b["speedup"] for b in two}
        out["batch_2_thread_ceiling"] = next((b["speedup"] for b in batch if b["threads"] == 2
                                              and b["name"] == "ceiling"), None)
    return out


def run(docs_path: Path, queries_path: Path, k: int, output: Path, n_queries: int | None = 1000, rounds: int = 2,
        block_sizes: tuple[int, ...] = (16, 32, 64, 128), alphas: tuple[float, ...] = (1.0, 0.95, 0.9, 0.8, 0.7, 0.6),
        betas: tuple[float, ...] = (1.0, 0.7, 0.5), quantizations: tuple[str, ...] = ("uint8", "float16", "float32"),
        suites: tuple[str, ...] | None = None, workdir: Path | None = None, seismic_grid: dict | None = None) -> dict:
    from lsr.index.forward import ForwardIndex
    from lsr.index.reorder import bisection_order
    from lsr.core.vectors import load_vectors

    docs, queries_file = load_vectors(docs_path).vectors, load_vectors(queries_path)
    queries = queries_file.vectors
    if queries.vocab_size != docs.vocab_size:
        queries = SparseBatch(queries.indptr, queries.indices, queries.values, docs.vocab_size).validate()
    if n_queries:
        queries = queries.take(np.arange(min(n_queries, len(queries))))
    order, reorder_s = timed(lambda: bisection_order(ForwardIndex.from_vectors(docs, "float32")))
    n_docs = len(docs)
    docs = docs.take(order)   # the original order is not kept: at 1M passages each copy is 2.4 GB
    tmp = Path(tempfile.mkdtemp(prefix="lsr-bench-index-", dir=workdir))
    ctx = Context(docs, queries, k, tmp, order, reorder_s, list(block_sizes), list(alphas), list(betas),
                  list(quantizations), seismic_grid=seismic_grid or {})
    load_before = os.getloadavg()
    try:
        wanted = None if suites is None else {n for s in suites for n in SUITE_GROUPS.get(s, (s,))}
        chosen = [s for s in SUITES if wanted is None or s.__name__.removesuffix("_suite") in wanted]
        truth, kth = exact_truth(docs, queries, k)   # before the builds: its transposed copy is gone by then
        truth = np.where(truth >= 0, order[np.maximum(truth, 0)], -1)   # original document numbers
        true_score = true_scores(docs, queries, order)
        runners = [r for suite in chosen for r in suite(ctx)]

        timing = time_runners(runners, len(queries), rounds)
        entries = []
        for r_i, r in enumerate(runners):
            lat = np.array(timing[r_i]["lat"])
            entries.append({"name": r.name, "params": r.params,
                            "recall@10": round(recall_at_k(timing[r_i]["found"], truth, kth, true_score), 4),
                            "mean_ms": round(float(lat.mean()), 4), "p99_ms": round(float(np.percentile(lat, 99)), 4),
                            "build_s": round(r.build_s, 2), "index_bytes": int(r.index_bytes), **r.extra})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"docs": n_docs, "queries": len(queries), "k": k, "methods": entries, "batch": ctx.batch,
              "targets": targets(entries, ctx.batch),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_before": load_before,
                          "load_after": os.getloadavg(), "rounds": rounds, "docs_file": str(docs_path),
                          "queries_file": str(queries_path)}}
    output.parent.mkdir(parents=True, exist_ok=True)
    from lsr.core.atomic import atomic_write_text

    atomic_write_text(output, json.dumps(report, indent=1) + "\n")
    print_table(report)
    return report


def print_table(report: dict) -> None:
    print(f"{report['docs']} docs, {report['queries']} queries, k={report['k']}")
    print(f"{'method':<18} {'params':<52} {'recall':>7} {'mean ms':>8} {'p99 ms':>8} {'build s':>8} {'MB':>8}")
    for e in report["methods"]:
        params = ",".join(f"{k}={v}" for k, v in e["params"].items())
        print(f"{e['name']:<18} {params[:52]:<52} {e['recall@10']:>7.4f} {e['mean_ms']:>8.3f} {e['p99_ms']:>8.3f} "
              f"{e['build_s']:>8.1f} {e['index_bytes'] / 2**20:>8.1f}")
    for b in report["batch"]:
        print(f"batch {b['name']} threads={b['threads']}: {b['qps']} q/s (x{b['speedup']}), CPU/wall {b['cpu_per_wall']}"
              f" ours, {b['others_cpu_per_wall']} others")
    print(json.dumps(report["targets"], indent=1))
