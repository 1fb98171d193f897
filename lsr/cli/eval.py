"""`lsr eval`: a model and an index method (or BM25, or a hybrid) on a test collection: measures, latency, runs,
reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from lsr.cli.common import echo_json, fail, reported
from lsr.encoding.texts import QUERY_MAX_LENGTH

app = typer.Typer()


@app.command("eval")
def eval_(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="ir_datasets id (beir/scifact/test, "
                                          "msmarco-passage/dev/small, msmarco-passage/trec-dl-2019/judged) or a "
                                          "BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)"),
    split: str = typer.Option("test", help="judgements of a BEIR folder: qrels/SPLIT.tsv"),
    model: str = typer.Option("splade-tiny"),
    method: str = typer.Option("exact", help="index method (exact, bmp, seismic, ...), bm25, or hybrid "
                               "(BM25 fused with the model's --splade-method)"),
    param: list[str] = typer.Option([], "--param", "-p", help="search parameter KEY=VALUE (repeatable); V1,V2,... "
                                    "sweeps; for hybrid also fusion=rrf|linear, rrf_k=60, weight=0.5 (SPLADE's)"),
    build_param: list[str] = typer.Option([], "--build-param", "-b", help="index build parameter KEY=VALUE"),
    splade_method: str = typer.Option("exact", help="index method of the SPLADE side of a hybrid"),
    k: int = typer.Option(1000, "--k", "-k", min=1, help="hits per query in the run"),
    max_length: int = typer.Option(256, min=8, help="document tokens (longer ones are truncated or windowed)"),
    window_overlap: Optional[int] = typer.Option(None, min=0, help="documents longer than --max-length: overlapping "
                                                 "windows sharing this many tokens, max-pooled (default: the "
                                                 "encoder's)"),
    truncate: bool = typer.Option(False, "--truncate", help="cut long documents to --max-length (no windows)"),
    query_max_length: int = typer.Option(QUERY_MAX_LENGTH, min=2, help="query tokens (longer ones are truncated, "
                                         "and counted)"),
    quantization: str = typer.Option("uint8", help="index impacts: uint8, float16 or float32"),
    measure: list[str] = typer.Option([], "--measure", "-m", help="ir-measures name (default: the collection's)"),
    bm25_k1: float = typer.Option(0.9), bm25_b: float = typer.Option(0.4),
    stemmer: str = typer.Option("porter", help="BM25 stemmer: porter (as Lucene), english (Snowball), none"),
    limit_queries: Optional[int] = typer.Option(None, min=1, help="evaluate only the first N judged queries"),
    latency_queries: int = typer.Option(1000, min=1, help="queries timed one by one for latency"),
    doc_vectors: Optional[Path] = typer.Option(None, help="document vectors from `lsr encode` (else cached/encoded)"),
    cache_dir: Optional[Path] = typer.Option(None, help="vector cache (default $LSR_CACHE_DIR or ~/.cache/lsr)"),
    device: str = typer.Option("auto"),
    batch_size: int = typer.Option(32, min=1),
    threads: Optional[int] = typer.Option(None, min=1, help="threads for the batch search of the run"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="results JSON"),
    run: Optional[Path] = typer.Option(None, "--run", help="TREC run file (one setting only)"),
    report: Optional[Path] = typer.Option(None, "--report", help="folder of results: add this one, redraw "
                                          "report.md and report.png (alone: only redraw)"),
) -> None:
    """Evaluate a model and an index method (or BM25, or a hybrid) on a test collection: measures, latency, run."""
    from lsr.eval.report import result_filename, write_report

    if dataset is None:
        if report is None:
            fail("give --dataset (or --report DIR alone to redraw a report)")
        with reported(ValueError):
            md, png = write_report(report)
        echo_json({"report": str(md), "plot": str(png)})
        return
    from lsr.eval.datasets import DatasetError, load_eval_set
    from lsr.eval.evaluate import Options, evaluate
    from lsr.eval.params import parse_settings
    from lsr.eval.runs import write_trec_run
    from lsr.cli.common import progress_bar
    from lsr.core.atomic import atomic_write_text

    with reported(DatasetError, ValueError, FileExistsError, OSError):
        settings = parse_settings(param)
        builds = parse_settings(build_param)
        if len(builds) > 1:
            raise ValueError("build parameters take one value each (sweep search parameters only)")
        if run is not None and len(settings) > 1:
            raise ValueError("--run writes one run: give one value per parameter")
        es = load_eval_set(dataset, split)
        if limit_queries:
            es = es.with_queries(limit_queries)
        if truncate and window_overlap is not None:
            raise ValueError("--truncate and --window-overlap exclude each other")
        windows = "default" if window_overlap is None and not truncate else window_overlap
        opts = Options(model=model, max_length=max_length, window_overlap=windows,
                       query_max_length=query_max_length, batch_size=batch_size,
                       device=device, k=k, measures=measure or None, build_params=builds[0],
                       quantization=quantization, splade_method=splade_method, bm25_k1=bm25_k1, bm25_b=bm25_b,
                       stemmer=stemmer, latency_queries=latency_queries, threads=threads, cache_dir=cache_dir,
                       doc_vectors=doc_vectors)
        pairs = evaluate(es, method, settings, opts, progress=progress_bar)
    results = [r for r, _ in pairs]
    _report_truncation(results[0], max_length)
    if run is not None:
        write_trec_run(run, pairs[0][1], f"lsr-{method}")
    if output is not None:
        atomic_write_text(output, json.dumps(results[0] if len(results) == 1 else results, indent=2) + "\n")
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        for r in results:
            atomic_write_text(report / result_filename(r), json.dumps(r, indent=2) + "\n")


def _report_truncation(result: dict, max_length: int) -> None:
    """Texts cut to the max length, on stderr (every setting of one evaluation searches the same vectors)."""
    for kind, total, length, option in (("documents", result["documents"], max_length, "--max-length"),
                                        ("queries", result["queries"], result.get("query_max_length"),
                                         "--query-max-length")):
        if result.get(f"{kind}_truncated"):
            typer.echo(f"{result[kind + '_truncated']} of {total} {kind} were longer than {length} tokens and were "
                       f"truncated ({option})", err=True)
