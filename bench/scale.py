"""``lsr bench scale``: ``lsr bench index`` on nested prefixes of one corpus, a growth plot, and the judged queries.

The corpus of ``lsr bench corpus build`` is written in a seeded random order, so its first N documents are a
uniform sample and the sizes nest (100k inside 300k inside 1M inside all). Every size gets the same queries (the
corpus's held-out first sentences: not judged, they measure latency and recall@k against exact search) and the
full ``lsr bench index`` run; its report goes to ``OUTPUT_DIR/<documents>.json`` with the corpus named in it.

``growth``: mean latency against corpus size per method (drawn by ``bench.plot.growth``) (exact; BMP safe and at recall >= 0.95; Seismic and the
peers at recall >= 0.95), on log axes. ``judged``: over the whole corpus, the needles' test queries (scifact,
nfcorpus) searched with exact, BMP and Seismic at the fastest setting of the largest report that reaches recall@10
>= 0.95; nDCG@10 per collection, each approximate method's share of exact's, and exact on the needle documents
alone (what the haystack of passages costs the ranking itself).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lsr.core.atomic import atomic_write_text
from lsr.core.sparse import SparseBatch
from lsr.core.vectors import VectorsFile, load_vectors, save_vectors

RECALL = 0.95


def read_qrels(corpus: Path) -> dict[str, dict[str, int]]:
    from lsr.eval.datasets import load_eval_set

    return load_eval_set(corpus).qrels


def split_queries(queries: VectorsFile, qrels: dict) -> tuple[np.ndarray, np.ndarray]:
    """(rows of the unjudged queries, rows of the judged ones) of a queries vectors file."""
    judged = np.array([str(i) in qrels for i in queries.ids], dtype=bool)
    return np.flatnonzero(~judged), np.flatnonzero(judged)


def sizes_for(requested: list[int], total: int) -> list[int]:
    """Requested sizes capped at the corpus (0 = all of it), ascending, without repeats."""
    return sorted({total if s <= 0 or s >= total else s for s in requested})


def run_sizes(docs_file: Path, queries_file: Path, corpus: Path, output_dir: Path, sizes: list[int], *,
              n_queries: int = 1000, index_options: dict | None = None, workdir: Path | None = None) -> list[Path]:
    """One ``lsr bench index`` run per size on the first N documents; returns the report paths."""
    from bench.index_search import run

    docs, queries = load_vectors(docs_file), load_vectors(queries_file)
    qrels = read_qrels(corpus)
    latency_rows, _ = split_queries(queries, qrels)
    if not len(latency_rows):
        raise ValueError(f"{queries_file}: no unjudged (held-out) query among {len(queries.ids)}")
    summary_file = corpus / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    total = len(docs.ids)
    tmp = Path(tempfile.mkdtemp(prefix="lsr-bench-scale-", dir=workdir))
    reports = []
    try:
        q_path = tmp / "queries.npz"
        rows = latency_rows[:n_queries]
        save_vectors(q_path, queries.vectors.take(rows), queries.ids[rows], queries.meta)
        files = {}
        for n in sizes_for(sizes, total):   # prefixes written first, so the whole corpus is not held twice below
            files[n] = docs_file if n == total else tmp / f"docs-{n}.npz"
            if n < total:
                save_vectors(files[n], docs.vectors.take(np.arange(n)), docs.ids[:n], docs.meta)
        del docs
        for n, path in files.items():
            out = output_dir / f"{n}.json"
            report = run(path, q_path, 10, out, n_queries=n_queries, workdir=workdir, **(index_options or {}))
            report["corpus"] = {"name": corpus.name, "documents": n, "prefix_of": total,
                                "order": "the corpus file's seeded random order: the first N documents",
                                "queries": "held-out passages' first sentences (unjudged)",
                                "docs_file": str(docs_file), "queries_file": str(queries_file),
                                "build": {k: summary.get(k) for k in ("seed", "bounds", "inputs", "documents",
                                                                      "passages", "needles")}}
            atomic_write_text(out, json.dumps(report, indent=1) + "\n")
            reports.append(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return reports


# ---- growth -------------------------------------------------------------------------------------------------------
def _fastest(entries: list[dict], name: str, cond=lambda e: True) -> dict | None:
    ok = [e for e in entries if e["name"] == name and cond(e)]
    return min(ok, key=lambda e: e["mean_ms"]) if ok else None


def _safe(e: dict) -> bool:
    return e["params"].get("alpha") == 1.0 and e["params"].get("beta") == 1.0


def _recalled(e: dict) -> bool:
    return e["recall@10"] >= RECALL


SERIES = {   # label -> (method name, which of its settings)
    "exact (uint8)": ("exact", lambda e: e["params"].get("quantization") == "uint8"),
    "bmp safe": ("bmp", _safe),
    f"bmp recall>={RECALL}": ("bmp", _recalled),
    f"seismic recall>={RECALL}": ("seismic", _recalled),
    f"peer-seismic recall>={RECALL}": ("peer-seismic", _recalled),
    "peer-bmp safe": ("peer-bmp", _safe),
    "scipy": ("scipy", lambda e: True),
}


def growth(reports: list[dict]) -> dict[str, list[dict]]:
    """Per series, the fastest qualifying setting at each size: docs, mean and p99 ms, recall, the setting. Reports
    of one size (runs of different suites) pool their methods."""
    by_size: dict[int, list[dict]] = {}
    for report in reports:
        by_size.setdefault(report["docs"], []).extend(report["methods"])
    out: dict[str, list[dict]] = {}
    for docs in sorted(by_size):
        for label, (name, cond) in SERIES.items():
            e = _fastest(by_size[docs], name, cond)
            if e:
                out.setdefault(label, []).append({"docs": docs, "mean_ms": e["mean_ms"], "p99_ms": e["p99_ms"],
                                                  "recall@10": e["recall@10"], "params": e["params"]})
    return out


# ---- judged queries -----------------------------------------------------------------------------------------------
def chosen_settings(report: dict) -> dict[str, dict]:
    """Exact, and the fastest BMP and Seismic settings of ``report`` at recall@10 >= RECALL (split into build and
    search parameters by what each method declares)."""
    from lsr.index import methods

    out = {"exact": {"build": {}, "search": {}, "quantization": "uint8"}}
    for name in ("bmp", "seismic"):
        e = _fastest(report["methods"], name, _recalled)
        if e is None:
            continue
        m = methods.get(name)
        out[name] = {"build": {k: v for k, v in e["params"].items() if k in m.accepts("build")},
                     "search": {k: v for k, v in e["params"].items() if k in m.accepts("search")},
                     "quantization": e["params"].get("quantization", "uint8"), "recall@10": e["recall@10"],
                     "mean_ms": e["mean_ms"]}
    return out


def _search_run(idx, queries: SparseBatch, ids: list[str], method: str, params: dict, k: int) -> tuple[dict, float]:
    from lsr.eval.runs import from_hits

    t = time.perf_counter()
    res = idx.search(queries, k=k, method=method, threads=1, **params)
    seconds = time.perf_counter() - t
    return from_hits(ids, res.ids, res.scores, k), seconds


def judged(docs_file: Path, queries_file: Path, corpus: Path, report: dict, output: Path, *, k: int = 10,
           workdir: Path | None = None) -> dict:
    """nDCG@10 of each needle collection's queries over the whole corpus, per chosen method setting."""
    from lsr.eval.metrics import evaluate_run
    from lsr.index import Index

    docs, queries = load_vectors(docs_file), load_vectors(queries_file)
    qrels = read_qrels(corpus)
    _, rows = split_queries(queries, qrels)
    if not len(rows):
        raise ValueError(f"{queries_file}: no judged query (ids of {corpus / 'qrels' / 'test.tsv'})")
    q, qids = queries.vectors.take(rows), [str(i) for i in queries.ids[rows]]
    collections = sorted({qid.split(":")[1] for qid in qids})
    settings = chosen_settings(report)
    doc_ids = [str(i) for i in docs.ids]
    tmp = Path(tempfile.mkdtemp(prefix="lsr-bench-judged-", dir=workdir))
    results = []
    try:
        def evaluate(idx, method: str, params: dict, where: str) -> None:
            run, seconds = _search_run(idx, q, qids, method, params, k)
            row = {"method": method, "params": params, "documents": idx.num_docs, "over": where,
                   "batch_ms_per_query": round(seconds * 1e3 / len(qids), 3)}
            for c in collections:
                sub = {qid: j for qid, j in qrels.items() if qid.startswith(f"q:{c}:")}
                row[f"nDCG@10 {c}"] = round(evaluate_run(run, sub, ["nDCG@10"])[0]["nDCG@10"], 4)
            results.append(row)

        build = {kk: v for s in settings.values() for kk, v in s["build"].items()}
        idx = Index.build(tmp / "all", docs.vectors, doc_ids, methods=tuple(settings), **build)
        for method, s in settings.items():
            evaluate(idx, method, s["search"], "whole corpus")
        needles = np.flatnonzero([i.split(":")[0] in collections for i in doc_ids])
        alone = Index.build(tmp / "needles", docs.vectors.take(needles), [doc_ids[i] for i in needles],
                            methods=("exact",))
        evaluate(alone, "exact", {}, "needle documents alone")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    exact = results[0]
    for row in results[1:-1]:   # the approximate methods over the whole corpus
        row["share_of_exact"] = {c: round(row[f"nDCG@10 {c}"] / exact[f"nDCG@10 {c}"], 4)
                                 if exact[f"nDCG@10 {c}"] else None for c in collections}
    out = {"corpus": corpus.name, "documents": len(doc_ids), "queries": {c: sum(i.startswith(f"q:{c}:") for i in qids)
                                                                        for c in collections},
           "k": k, "settings_from": f"{report['docs']} documents, fastest at recall@10 >= {RECALL}",
           "settings": settings, "results": results}
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, json.dumps(out, indent=1) + "\n")
    return out
