"""Issue 8's figures on whole BEIR collections: splade-tiny through every index method, BM25 (ours and bm25s),
hybrids, and the independent reference, in one run on the same vectors; result JSONs and the report go to DIR.

    IR_DATASETS_HOME=/tmp/irh python -m bench.eval_beir --vectors-dir /work/data --output bench/results/eval

Document vectors come from ``--vectors-dir`` (``lsr encode beir/scifact -o scifact.npz``), else they are encoded
(cached). Run ``python -m bench.reference_eval`` first for the reference column.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer()

DATASETS = ("beir/scifact/test", "beir/nfcorpus/test")
PUBLISHED_BM25 = {"beir/scifact/test": 0.679, "beir/nfcorpus/test": 0.322}  # Anserini BM25 flat, nDCG@10
# method -> search settings tried: the method's defaults ({}) first, then a sweep of its accuracy knobs
SWEEPS = {
    "bmp": [{}, {"alpha": 1.0}, {"alpha": 0.95}, {"alpha": 0.9}, {"alpha": 0.8}, {"alpha": 0.7},
            {"alpha": 0.9, "beta": 0.8}, {"alpha": 0.8, "beta": 0.6}],
    "seismic": [{}, {"query_cut": 5}, {"query_cut": 20}, {"heap_factor": 0.8}, {"heap_factor": 0.7}],
}
HYBRIDS = [{"fusion": "rrf"}, {"fusion": "linear", "weight": 0.3}, {"fusion": "linear", "weight": 0.5},
           {"fusion": "linear", "weight": 0.7}]


def _bm25s_result(es, opts, analyzer) -> dict:
    from bench.bm25s_peer import bm25s_run
    from eval.metrics import evaluate_run

    run, lat, index_s = bm25s_run(es, k=opts.k, k1=opts.bm25_k1, b=opts.bm25_b, analyzer=analyzer)
    metrics, _ = evaluate_run(run, es.qrels, es.measures)
    tokens = "our analyzer" if analyzer else "bm25s tokenizer (stopwords en, Snowball english)"
    return {"dataset": es.name, "model": f"bm25s ({tokens})", "method": "bm25s", "params": {
        "k1": opts.bm25_k1, "b": opts.bm25_b, "tokens": "ours" if analyzer else "bm25s"}, "metrics": metrics,
        "latency_ms": float(lat.mean()), "latency_p99_ms": float(sorted(lat)[int(0.99 * (len(lat) - 1))]),
        "encode_s": index_s, "queries": len(es.queries), "documents": None, "k": opts.k}


@app.command()
def main(output: Path = typer.Option(Path("bench/results/eval")),
         vectors_dir: Optional[Path] = typer.Option(None, help="folder with <name>.npz document vectors"),
         k: int = typer.Option(1000), datasets: list[str] = typer.Option(list(DATASETS)),
         cache_dir: Optional[Path] = typer.Option(None),
         reference: Path = typer.Option(Path("bench/results/reference_eval.json"))) -> None:
    from eval.analyzer import Analyzer
    from eval.datasets import load_eval_set
    from eval.evaluate import Options, evaluate
    from eval.report import result_filename, setting_label, write_report
    from index import methods

    output.mkdir(parents=True, exist_ok=True)
    refs = json.loads(reference.read_text()) if reference.exists() else {}
    rows = []
    for name in datasets:
        es = load_eval_set(name)
        short = name.split("/")[1]
        vectors = vectors_dir / f"{short}.npz" if vectors_dir and (vectors_dir / f"{short}.npz").exists() else None
        opts = Options(k=k, doc_vectors=vectors, cache_dir=cache_dir)
        results = [r for r, _ in evaluate(es, "exact", [{}], opts)]
        results += [r for r, _ in evaluate(es, "exact", [{}], replace(opts, quantization="float32"))]
        for method, settings in SWEEPS.items():
            if method in methods.names():
                results += [r for r, _ in evaluate(es, method, settings, opts)]
        results += [r for r, _ in evaluate(es, "bm25", [{}], opts)]
        results += [_bm25s_result(es, opts, Analyzer()), _bm25s_result(es, opts, None)]
        results += [r for r, _ in evaluate(es, "hybrid", HYBRIDS, opts)]
        for r in results:
            (output / result_filename(r)).write_text(json.dumps(r, indent=2) + "\n")
        ref = refs.get(f"{name}|splade-tiny|256", {}).get("metrics", {})
        exact = next(r for r in results if r["method"] == "exact" and r["params"]["quantization"] == "uint8")
        for r in results:
            ndcg = r["metrics"]["nDCG@10"]
            rows.append((short, r["model"][:34], setting_label(r)[:46], ndcg, ndcg / exact["metrics"]["nDCG@10"],
                         r["metrics"].get("R@100"), r["metrics"].get("R@1000"), r["latency_ms"]))
        if ref:
            rows.append((short, "reference (transformers+scipy)", "float, brute force", ref["nDCG@10"],
                         ref["nDCG@10"] / exact["metrics"]["nDCG@10"], ref.get("R@100"), ref.get("R@1000"), None))
        rows.append((short, "Anserini BM25 flat (published)", "", PUBLISHED_BM25.get(name), None, None, None, None))
    write_report(output)
    print(f"{'set':9}{'model':35}{'setting':47}{'nDCG@10':>8}{'/exact':>8}{'R@100':>7}{'R@1000':>7}{'ms':>8}")
    fmt = (lambda x, d=4: "" if x is None else f"{x:.{d}f}")
    for s, m, st, n, rel, r100, r1k, ms in rows:
        print(f"{s:9}{m:35}{st:47}{fmt(n):>8}{fmt(rel, 3):>8}{fmt(r100, 3):>7}{fmt(r1k, 3):>7}{fmt(ms, 3):>8}")


if __name__ == "__main__":
    app()
