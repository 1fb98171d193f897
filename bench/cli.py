"""`lsr bench ...`: benchmarks that print a table and write JSON (BENCHMARKS.md keeps the figures and commands).

Registered with the `lsr` command through the entry point ``lsr.commands`` of this development package; every
command imports its benchmark module inside its body so that `lsr --help` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from lsr.cli.common import fail

BMP_ALPHAS = (1.0, 0.95, 0.9, 0.8, 0.7, 0.6)   # the approximate grid of `bench index` and `bench scale run`
BMP_BETAS = (1.0, 0.7, 0.5)

app = typer.Typer(help="Benchmarks that print a table and write JSON.", no_args_is_help=True)


@app.command("encode")
def bench_encode(
    dataset: str = typer.Option("beir/scifact", help="corpus whose documents are encoded"),
    queries: str = typer.Option("beir/scifact/test", help="ir_datasets id whose queries are timed one by one"),
    model: str = typer.Option("splade-tiny"),
    max_length: int = typer.Option(256),
    batch_size: int = typer.Option(32),
    limit: Optional[int] = typer.Option(None, help="encode only the first N documents"),
    n_queries: int = typer.Option(1000, min=0, help="single queries timed on one thread (0: none)"),
    threads: list[int] = typer.Option([1, 2], "--threads", help="torch / onnxruntime threads (repeat)"),
    rounds: int = typer.Option(2, min=1, help="timed passes over the documents, interleaved across variants"),
    anchors: bool = typer.Option(True, help="the sentence-transformers and onnxruntime anchors"),
    int8_ndcg: Optional[str] = typer.Option(None, help="also encode this ir_datasets collection (e.g. "
                                            "beir/scifact/test) with the int8 anchor and score its nDCG@10"),
    speed: bool = typer.Option(True, help="time the variants (--no-speed: only --int8-ndcg)"),
    output: Path = typer.Option(Path("bench/results/encode_cpu.json")),
) -> None:
    """CPU document encoding against the textbook SPLADE and the CPU anchors (interleaved), single-query latency."""
    from bench.encode_cpu import run

    run(dataset=dataset, queries=queries, model=model, max_length=max_length, batch_size=batch_size, limit=limit,
        n_queries=n_queries, threads=threads, rounds=rounds, output=output, anchors=anchors, int8_ndcg=int8_ndcg,
        speed=speed)


@app.command("query")
def bench_query(
    n_queries: int = typer.Option(1000, min=1, help="distinct scifact + nfcorpus queries, timed one by one"),
    model: str = typer.Option("splade-tiny"),
    max_length: int = typer.Option(256, min=2, help="query tokens"),
    index: Optional[Path] = typer.Option(None, help="an index of the model (e.g. data/sample-index from `make "
                                                    "demo`): adds `lsr search` start-up and HTTP figures"),
    workers: int = typer.Option(2, min=1, help="`lsr serve --workers` of the HTTP figures"),
    seconds: float = typer.Option(5.0, help="length of each HTTP run"),
    rounds: int = typer.Option(3, min=1, help="interleaved HTTP rounds (the median is reported)"),
    cli_runs: int = typer.Option(3, min=1, help="timed `lsr search` runs"),
    output: Path = typer.Option(Path("bench/results/query_encode.json")),
) -> None:
    """Single-query latency of the numpy query encoder beside the torch Encoder (one thread, same queries, vectors
    checked equal), a process's memory with each, and with --index the CLI and HTTP figures."""
    from bench.query import run

    if index is not None and not (index / "manifest.json").exists():
        fail(f"{index}: not an index folder (build one with `make demo` or `lsr index`)")
    run(n_queries=n_queries, model=model, max_length=max_length, index=index, workers=workers, seconds=seconds,
        rounds=rounds, cli_runs=cli_runs, output=output)


@app.command("index")
def bench_index(
    docs: Path = typer.Option(..., help="document vectors (.npz: indptr, indices, values)"),
    queries: Path = typer.Option(..., help="query vectors (.npz)"),
    k: int = typer.Option(10, min=1),
    output: Path = typer.Option(Path("bench/results/index.json")),
    n_queries: int = typer.Option(1000, min=1, help="first N queries"),
    rounds: int = typer.Option(2, min=1, help="timed passes over the queries (interleaved across methods)"),
    block_size: list[int] = typer.Option([16, 32, 64, 128], "--block-size", help="bmp block sizes (repeat)"),
    alpha: list[float] = typer.Option(list(BMP_ALPHAS), "--alpha", help="bmp alphas (repeat)"),
    beta: list[float] = typer.Option(list(BMP_BETAS), "--beta", help="bmp betas (repeat)"),
    quantization: list[str] = typer.Option(["uint8", "float16", "float32"], "--quantization"),
    suite: Optional[list[str]] = typer.Option(None, "--suite", help="only these suites: scipy, ours "
                                                                     "(exact and bmp), exact, bmp, splade_index, "
                                                                     "bmp_peer, seismic, peer_seismic"),
    seismic_grid: Optional[Path] = typer.Option(None, help="JSON overriding bench.seismic.DEFAULT_GRID"),
    plot: Optional[Path] = typer.Option(None, help="PNG of recall@k against mean latency, all methods"),
) -> None:
    """Every search method and installed peer on the same vectors: recall@k, latency, build time, bytes."""
    from bench.index_search import run

    _need(docs, queries, *([seismic_grid] if seismic_grid else []))
    report = run(docs, queries, k, output, n_queries=n_queries, rounds=rounds, block_sizes=tuple(block_size),
                 alphas=tuple(alpha), betas=tuple(beta), quantizations=tuple(quantization),
                 suites=tuple(suite) if suite else None,
                 seismic_grid=json.loads(seismic_grid.read_text()) if seismic_grid else None)
    if plot:
        from bench.plot import recall_latency

        recall_latency(report, plot, title=docs.stem)


@app.command("filter")
def bench_filter(
    docs: Path = typer.Option(Path("data/windows.npz"), help="document vectors (.npz; lsr bench data windows)"),
    queries: Path = typer.Option(Path("data/queries.npz"), help="query vectors (.npz; lsr bench data queries)"),
    output: Path = typer.Option(Path("bench/results/filter.json")),
    n_queries: int = typer.Option(300, min=1, help="first N queries"),
    rounds: int = typer.Option(2, min=1, help="timed passes over the queries (interleaved across settings)"),
    share: list[float] = typer.Option(list((0.5, 0.1, 0.01, 0.001)), "--share", help="shares of documents the "
                                                                                     "filters keep (repeat)"),
    seed: int = typer.Option(0, help="seed of the synthetic metadata"),
    limit: Optional[int] = typer.Option(None, min=100, help="only the first N documents"),
) -> None:
    """Filtered search in exact, bmp and seismic against post-filtering (k' = 10, 100, 1000) at several shares of
    allowed documents, uncorrelated and correlated with content: recall@10 against filtered exact, mean and p99."""
    from bench.filter import run

    _need(docs, queries)
    if any(not 0 < s <= 1 for s in share):
        fail(f"--share takes shares in (0, 1], got {share}")
    run(docs, queries, output, n_queries=n_queries, rounds=rounds, shares=tuple(share), seed=seed, limit=limit)


@app.command("ingest")
def bench_ingest(
    docs: Path = typer.Option(Path("data/windows.npz"), help="document vectors (.npz; lsr bench data windows)"),
    queries: Path = typer.Option(Path("data/queries.npz"), help="query vectors (.npz; lsr bench data queries)"),
    output: Path = typer.Option(Path("bench/results/ingest.json")),
    limit: Optional[int] = typer.Option(None, min=2, help="only the first N documents"),
    start: int = typer.Option(10_000, min=1, help="documents of the initial build"),
    batch: int = typer.Option(1_000, min=1, help="documents per Index.add call"),
    flush_docs: int = typer.Option(10_000, min=1),
    method: list[str] = typer.Option(["exact", "bmp"], "--method", help="methods the index is built with"),
    search_method: list[str] = typer.Option(["exact", "bmp"], "--search-method", help="methods of the timed queries "
                                                                                       "(repeat)"),
    n_queries: int = typer.Option(1_000, min=1),
    burst_s: float = typer.Option(2.0, min=0.1, help="length of each ingestion burst and of each pause"),
) -> None:
    """Live updates: ingestion throughput (vectors given, one writer) and search latency while ingesting vs idle."""
    from bench.ingest import run

    _need(docs, queries)
    run(docs, queries, output, limit=limit, start=start, batch=batch, flush_docs=flush_docs, methods=tuple(method),
        n_queries=n_queries, burst_s=burst_s, search_methods=tuple(search_method))


@app.command("snapshots")
def bench_snapshots(
    docs: Path = typer.Option(Path("data/scifact.npz"), help="document vectors (.npz; lsr bench data beir scifact)"),
    output: Path = typer.Option(Path("bench/results/snapshots.json")),
    start: int = typer.Option(2_000, min=1, help="documents of the initial build; the rest are added"),
    batch: int = typer.Option(100, min=1, help="documents per Index.add call"),
    flush_docs: int = typer.Option(1_000, min=1),
    period_s: float = typer.Option(1.0, min=0.1, help="length of each period with and without snapshots"),
    method: list[str] = typer.Option(["exact", "bmp"], "--method"),
) -> None:
    """On-disk snapshots: time and bytes against a plain copy; write latency while snapshots run vs not."""
    from bench.snapshots import run

    _need(docs)
    print(json.dumps(run(docs, output, start=start, batch=batch, flush_docs=flush_docs, period_s=period_s,
                         methods=tuple(method)), indent=1))


@app.command("service")
def bench_service(
    docs: Path = typer.Option(Path("data/scifact.npz"), help="document vectors to index (.npz; lsr bench data beir "
                                                             "scifact)"),
    queries: Path = typer.Option(Path("data/queries.npz"), help="query vectors (.npz with ids; lsr bench data "
                                                                "queries)"),
    texts: Path = typer.Option(Path("data/queries.jsonl"), help="query texts (JSONL: id, text; lsr bench data "
                                                                "queries)"),
    prefix: str = typer.Option("beir/scifact/", help="use the queries whose ids start with this"),
    method: str = typer.Option("exact"),
    workers: int = typer.Option(1, min=1),
    clients: list[int] = typer.Option([1, 8, 64], "--clients", help="concurrent connections (repeat)"),
    seconds: float = typer.Option(5.0, help="length of each measured run"),
    rounds: int = typer.Option(3, min=1, help="interleaved passes over all settings (the median is reported)"),
    soak_seconds: float = typer.Option(60.0, help="length of each of the two runs at the highest load"),
    soak_kind: str = typer.Option("text", help="text or sparse queries in the long runs"),
    window_ms: float = typer.Option(2.0, help="micro-batching window (LSR_BATCH_WINDOW_MS)"),
    output: Path = typer.Option(Path("bench/results/service_load.json")),
) -> None:
    """HTTP load on a real `lsr serve` over 127.0.0.1 (wrk in a second process): q/s, p50/p99, errors, memory."""
    from bench.load import run

    _need(docs, queries, texts)
    run(docs, queries, texts, output, prefix=prefix, method=method, workers=workers, clients=tuple(sorted(clients)),
        seconds=seconds, rounds=rounds, soak_seconds=soak_seconds, soak_kind=soak_kind, window_ms=window_ms)


@app.command("service-writes")
def bench_service_writes(
    docs: Path = typer.Option(Path("data/windows.npz"), help="document vectors (.npz; lsr bench data windows)"),
    texts: Path = typer.Option(Path("data/windows.jsonl"), help="their texts (JSONL: id, text; the same command)"),
    seconds: float = typer.Option(20.0, min=1.0, help="length of each ingest run (the issue asks 60 s)"),
    per_request: int = typer.Option(100, min=1, help="pre-encoded documents per request"),
    clients: int = typer.Option(4, min=1),
    workers: int = typer.Option(2, min=1),
    kills: int = typer.Option(20, min=0, help="SIGKILLs of the whole server during ingest (0: none)"),
    split: bool = typer.Option(False, help="also: pre-encoded ingest with writes and searches served apart (a "
                                           "niced one-worker server takes the writes, another serves searches)"),
    output: Path = typer.Option(Path("bench/results/service_writes.json")),
) -> None:
    """The service as a write target: pre-encoded and text ingest, time to searchable, search and /healthz latency
    under load, segment count, and SIGKILLs during ingest (issue 16)."""
    from bench.writes import run

    _need(docs, texts)
    r = run(docs, texts, output, seconds=seconds, per_request=per_request, clients=clients, workers=workers,
            kills=kills, split=split)
    typer.echo(json.dumps({k: r[k] for k in ("encoder_docs_per_s", "vector_ingest", "text_ingest",
                                              "healthz_under_search_load", "split_serving", "kills") if k in r},
                          indent=1))


@app.command("hardening")
def bench_hardening(
    index_dir: Path = typer.Option(..., "--index", help="index to attack (copied for every check that writes); the "
                                                        "issue used the first 500 scifact documents, exact + bmp + "
                                                        "seismic"),
    sigterm_trials: int = typer.Option(10, min=1, help="SIGTERMs under load, for 1 and for 2 workers each"),
    check: Optional[list[str]] = typer.Option(None, "--check", help="only these: bad_text, sigterm, manifest, "
                                                                    "amplification, ids, wal, disclosure"),
    output: Path = typer.Option(Path("bench/results/hardening.json")),
) -> None:
    """The hardening issue's red-team checks against a real `lsr serve` on 127.0.0.1: server errors, requests
    dropped by SIGTERM, memory under the heaviest requests, damaged index files and logs, disclosure."""
    from bench.hardening import run

    if not (index_dir / "manifest.json").exists():
        fail(f"{index_dir}: not an index")
    run(index_dir, output, sigterm_trials=sigterm_trials, checks=tuple(check) if check else None)


def _need(*files: Path) -> None:
    """A one-line error for a missing input, naming the command that makes the data/ ones."""
    for f in files:
        if not f.exists():
            fail(f"{f}: no such file" + (" (make the benchmark inputs with `lsr bench data ...`; see "
                                         "`lsr bench data --help`)" if f.parts[:1] == ("data",) else ""))


def _data_app() -> typer.Typer:
    from bench.corpora import app as data

    return data


app.add_typer(_data_app(), name="data", help="Benchmark inputs, rebuilt from what ships offline into data/.")


corpus_app = typer.Typer(no_args_is_help=True)
app.add_typer(corpus_app, name="corpus", help="The real-text scale corpus (Gutenberg + Wikipedia passages, judged "
                                              "needles), built from public repositories into data/.")


@corpus_app.command("build")
def corpus_build(
    gutenberg: Optional[Path] = typer.Option(None, help="folder of Author/Title.txt Project Gutenberg books"),
    wikipedia: Optional[Path] = typer.Option(None, help="folder with Page/ (and Abstract/) Wikipedia markdown"),
    output: Path = typer.Option(Path("data/realcorpus"), help="BEIR folder to write"),
    needles: list[str] = typer.Option(["beir/scifact/test", "beir/nfcorpus/test"], "--needles",
                                      help="judged collections mixed in whole (ir_datasets id or BEIR folder; "
                                           "repeat); --needles '' for none"),
    heldout: int = typer.Option(1000, min=0, help="passages removed from the corpus, their first sentence a query"),
    seed: int = typer.Option(0),
    min_words: int = typer.Option(50, min=1),
    max_words: int = typer.Option(200, min=1),
    overwrite: bool = typer.Option(False, help="replace OUTPUT if it exists"),
) -> None:
    """Cut books and articles into 50-200 word passages, drop duplicates, shuffle, hold out queries, add needles."""
    from bench.passages import PassageBounds
    from bench.realcorpus import BuildSettings, build
    from lsr.cli.common import progress_bar, reported

    for name, folder in (("--gutenberg", gutenberg), ("--wikipedia", wikipedia)):
        if folder is not None and not folder.is_dir():
            fail(f"{name} {folder}: no such folder")
    with reported(ValueError, OSError):
        settings = BuildSettings(gutenberg, wikipedia, tuple(n for n in needles if n), heldout, seed,
                                 PassageBounds(min_words, max_words))
        summary = build(settings, output, overwrite=overwrite, progress=progress_bar)
    typer.echo(json.dumps(summary, indent=1))


@corpus_app.command("pack")
def corpus_pack(
    corpus: str = typer.Option("data/realcorpus", help="the corpus (BEIR folder, JSONL, ir_datasets id)"),
    output: Path = typer.Option(Path("data/realcorpus-parts")),
    docs_per_part: int = typer.Option(90_000, min=1, help="documents per part (its text and vectors must each "
                                                          "travel in 64 MiB)"),
    limit: Optional[int] = typer.Option(None, min=1, help="only the first N documents"),
) -> None:
    """The corpus's texts in zstd parts that fit the device's transfers (bench.gpu_parts)."""
    from bench.gpu_parts import pack
    from lsr.cli.common import reported
    from lsr.core.errors import CorpusError

    with reported(CorpusError, OSError):
        typer.echo(json.dumps(pack(corpus, output, docs_per_part, limit), indent=1))


@corpus_app.command("encode-part")
def corpus_encode_part(
    part: Path = typer.Argument(..., help="a part-NNN.txt.zst of `lsr bench corpus pack`"),
    output: Path = typer.Option(..., help="folder for the compact vectors (the device's $OUT)"),
    max_weight: Optional[float] = typer.Option(None, help="uint8 scale: max_weight / 255 (default: 1.25 x this "
                                                          "part's largest weight; pass the first part's to the rest)"),
    batch_size: int = typer.Option(128, min=1),
) -> None:
    """On a CUDA machine: one part into compact vectors (uint16 term deltas, uint8 levels, zstd)."""
    from bench.gpu_parts import encode

    _need(part)
    typer.echo(json.dumps(encode(part, output, max_weight, batch_size=batch_size), indent=1))


@corpus_app.command("unpack")
def corpus_unpack(
    parts: Path = typer.Option(Path("data/realcorpus-parts"), help="the folder of `lsr bench corpus pack`"),
    results: Path = typer.Option(..., help="folder holding the device's returned files (searched recursively)"),
    output: Path = typer.Option(Path("data/realcorpus.npz")),
) -> None:
    """Every encoded part into one vectors file, in corpus order, with the corpus's ids."""
    from bench.gpu_parts import unpack
    from lsr.cli.common import reported

    with reported(FileNotFoundError, ValueError):
        typer.echo(json.dumps(unpack(parts, results, output), indent=1))


scale_app = typer.Typer(no_args_is_help=True)
app.add_typer(scale_app, name="scale", help="`lsr bench index` at growing prefixes of one corpus, the growth plot, "
                                            "and nDCG@10 of its judged queries over the whole corpus.")


@scale_app.command("run")
def scale_run(
    docs: Path = typer.Option(..., help="vectors of the corpus, in its order (lsr encode CORPUS)"),
    queries: Path = typer.Option(..., help="vectors of its queries.jsonl (lsr encode --queries)"),
    corpus: Path = typer.Option(Path("data/realcorpus"), help="the BEIR folder (its qrels tell judged queries)"),
    size: list[int] = typer.Option([100_000, 300_000, 1_000_000, 0], "--size", help="documents (repeat; 0: all)"),
    output_dir: Path = typer.Option(Path("bench/results/scale")),
    n_queries: int = typer.Option(1000, min=1, help="first N unjudged queries"),
    rounds: int = typer.Option(2, min=1),
    block_size: list[int] = typer.Option([16, 32, 64, 128], "--block-size", help="bmp block sizes (repeat)"),
    alpha: list[float] = typer.Option(list(BMP_ALPHAS), "--alpha", help="bmp alphas (repeat)"),
    beta: list[float] = typer.Option(list(BMP_BETAS), "--beta", help="bmp betas (repeat)"),
    quantization: list[str] = typer.Option(["uint8", "float16", "float32"], "--quantization"),
    suite: Optional[list[str]] = typer.Option(None, "--suite", help="only these suites (see lsr bench index)"),
    seismic_grid: Optional[Path] = typer.Option(None, help="JSON overriding bench.seismic.DEFAULT_GRID"),
) -> None:
    """One `lsr bench index` report per size, on the first N documents: OUTPUT_DIR/<documents>.json."""
    from bench.scale import run_sizes
    from lsr.cli.common import reported
    from lsr.eval.datasets import DatasetError

    _need(docs, queries, *([seismic_grid] if seismic_grid else []))
    options = {"rounds": rounds, "block_sizes": tuple(block_size), "alphas": tuple(alpha), "betas": tuple(beta),
               "quantizations": tuple(quantization),
               "suites": tuple(suite) if suite else None,
               "seismic_grid": json.loads(seismic_grid.read_text()) if seismic_grid else None}
    with reported(DatasetError, ValueError):
        paths = run_sizes(docs, queries, corpus, output_dir, list(size), n_queries=n_queries, index_options=options)
    typer.echo(json.dumps({"reports": [str(p) for p in paths]}))


@scale_app.command("growth")
def scale_growth(
    reports: list[Path] = typer.Option([Path("bench/results/scale")], help="folder of the <documents>.json reports "
                                       "(repeat: runs of other suites; one size's reports pool their methods)"),
    plot: Path = typer.Option(Path("bench/results/scale/growth.png")),
) -> None:
    """Latency against corpus size per method (fastest setting per size): growth.json beside the plot, and a PNG."""
    from bench.plot import growth as growth_plot
    from bench.scale import growth
    from lsr.core.atomic import atomic_write_text

    found = [json.loads(p.read_text()) for folder in reports for p in sorted(folder.glob("*.json")) if p.stem.isdigit()]
    if not found:
        fail(f"{', '.join(map(str, reports))}: no <documents>.json report (run `lsr bench scale run` first)")
    series = growth(found)
    name = found[0].get("corpus", {}).get("name", "")
    growth_plot(series, plot, title=f"{name}: latency against corpus size".lstrip(": "))
    atomic_write_text(plot.with_suffix(".json"), json.dumps(series, indent=1) + "\n")
    typer.echo(json.dumps({label: [(p["docs"], p["mean_ms"]) for p in pts] for label, pts in series.items()}))


@scale_app.command("judged")
def scale_judged(
    docs: Path = typer.Option(..., help="vectors of the whole corpus"),
    queries: Path = typer.Option(..., help="vectors of its queries.jsonl"),
    corpus: Path = typer.Option(Path("data/realcorpus")),
    report: Optional[Path] = typer.Option(None, help="the report whose fastest settings at recall >= 0.95 are used "
                                                     "(default: the largest in bench/results/scale)"),
    output: Path = typer.Option(Path("bench/results/scale/judged.json")),
) -> None:
    """nDCG@10 of the needles' test queries over the whole corpus: exact, BMP and Seismic at the chosen settings."""
    from bench.scale import judged
    from lsr.cli.common import reported
    from lsr.eval.datasets import DatasetError

    if report is None:
        found = sorted((p for p in Path("bench/results/scale").glob("*.json") if p.stem.isdigit()),
                       key=lambda p: int(p.stem))
        if not found:
            fail("no report in bench/results/scale: run `lsr bench scale run` or pass --report")
        report = found[-1]
    _need(docs, queries, report)
    with reported(DatasetError, ValueError):
        out = judged(docs, queries, corpus, json.loads(report.read_text()), output)
    typer.echo(json.dumps(out["results"], indent=1))
