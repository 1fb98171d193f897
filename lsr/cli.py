"""The ``lsr`` command. Each command imports what it needs inside its body, so ``lsr --help`` stays instant
and a GPU box without the web stack can still encode."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer

app = typer.Typer(help="Learned sparse retrieval: encode, index, search, serve, evaluate.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
bench_app = typer.Typer(help="Benchmarks that print a table and write JSON.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator:
    """A rich progress bar on stderr; yields advance(n)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=False, disable=not sys.stderr.isatty()) as p:
        task = p.add_task(description, total=total)
        yield lambda n: p.advance(task, n)


def load_encoder(model: str, device: str, **options):
    from lsr.encoder import Encoder, ModelLoadError

    try:
        return Encoder.from_pretrained(model, device=device, **options)
    except (ModelLoadError, ValueError) as e:
        fail(str(e))


def encode_corpus(corpus: str, encoder, *, max_length: int, batch_size: int, top_k: Optional[int],
                  min_weight: Optional[float], queries: bool = False, chunk: int = 8192):
    """Streams a corpus through the encoder in chunks (length-sorted within each); returns (vectors, ids, texts)."""
    from lsr.corpus import CorpusError, count_documents, read_corpus
    from lsr.sparse import SparseBatch

    parts, ids, texts, truncated = [], [], [], 0
    encode = encoder.encode_queries if queries else encoder.encode_documents
    try:
        docs = read_corpus(corpus)
        with progress_bar(f"encoding {corpus}", count_documents(corpus)) as advance:
            buffer = []
            for doc in docs:
                buffer.append(doc)
                if len(buffer) == chunk:
                    parts.append(encode([d.full_text for d in buffer], max_length=max_length, batch_size=batch_size,
                                        top_k=top_k, min_weight=min_weight, progress=advance))
                    truncated += encoder.stats.truncated
                    ids += [d.id for d in buffer]
                    texts += buffer
                    buffer = []
            if buffer or not parts:
                parts.append(encode([d.full_text for d in buffer], max_length=max_length, batch_size=batch_size,
                                    top_k=top_k, min_weight=min_weight, progress=advance))
                truncated += encoder.stats.truncated
                ids += [d.id for d in buffer]
                texts += buffer
    except (CorpusError, OSError) as e:
        fail(str(e))
    if len(set(ids)) != len(ids):
        fail(f"{corpus}: document ids are not unique")
    if truncated:
        typer.echo(f"{truncated} of {len(ids)} documents were longer than {max_length} tokens and were truncated",
                   err=True)
    return SparseBatch.concat(parts), ids, texts


def encoder_meta(encoder, max_length: int) -> dict:
    return {"model": encoder.name, "vocab_size": encoder.vocab_size, "vocab_fingerprint": encoder.vocab_fingerprint,
            "max_length": max_length, "pooling": encoder.pooling}


@app.command()
def encode(
    corpus: str = typer.Argument(..., help="JSONL/Parquet file (id, text, title?), BEIR folder, or ir_datasets id"),
    output: Path = typer.Option(..., "--output", "-o", help="vectors file to write (.npz)"),
    model: str = typer.Option("splade-tiny", help="embedded name, local folder, or Hugging Face hub id"),
    max_length: int = typer.Option(256, min=8, help="tokens per document (longer ones are truncated)"),
    batch_size: int = typer.Option(32, min=1),
    top_k: Optional[int] = typer.Option(None, min=1, help="keep the top-k terms per document"),
    min_weight: Optional[float] = typer.Option(None, min=0.0, help="drop weights below this"),
    pooling: str = typer.Option("max", help="max (SPLADE) or sum"),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    queries: bool = typer.Option(False, "--queries", help="encode as queries (query encoder, 64 tokens by default)"),
) -> None:
    """Encode a corpus into SPLADE vectors (the file `lsr index` reads)."""
    from lsr.vectors import save_vectors

    encoder = load_encoder(model, device, pooling=pooling)
    if queries and max_length == 256:
        max_length = encoder.query_max_length
    vectors, ids, _ = encode_corpus(corpus, encoder, max_length=max_length, batch_size=batch_size, top_k=top_k,
                                    min_weight=min_weight, queries=queries)
    save_vectors(output, vectors, ids, {**encoder_meta(encoder, max_length), "corpus": str(corpus)})
    typer.echo(json.dumps({"output": str(output), "documents": len(ids), "nnz": vectors.nnz,
                           "terms_per_doc": round(vectors.nnz / max(len(ids), 1), 1)}))


@app.command("sample-corpus")
def sample_corpus(
    output: Path = typer.Argument(..., help="JSONL file to write"),
    limit: Optional[int] = typer.Option(None, min=1, help="at most this many passages"),
) -> None:
    """Write the demo corpus: docstrings of the installed Python standard library, one passage each."""
    from lsr.sample import write_sample_corpus

    typer.echo(json.dumps({"output": str(output), "documents": write_sample_corpus(output, limit)}))


@app.command()
def models() -> None:
    """List the models that load without a download."""
    from lsr.models import available_models, resolve_model

    for name in available_models():
        typer.echo(f"{name}\t{resolve_model(name)}")


@bench_app.command("encode")
def bench_encode(
    dataset: str = typer.Option("beir/scifact", help="corpus whose documents are encoded"),
    queries: str = typer.Option("beir/scifact/test", help="ir_datasets id whose queries are timed one by one"),
    model: str = typer.Option("splade-tiny"),
    max_length: int = typer.Option(256),
    batch_size: int = typer.Option(32),
    limit: Optional[int] = typer.Option(None, help="encode only the first N documents"),
    n_queries: int = typer.Option(1000),
    threads: int = typer.Option(2),
    output: Path = typer.Option(Path("bench/results/encode_cpu.json")),
) -> None:
    """CPU encoding throughput against the plain transformers reference, and single-query latency."""
    from bench.encode_cpu import run

    run(dataset=dataset, queries=queries, model=model, max_length=max_length, batch_size=batch_size, limit=limit,
        n_queries=n_queries, threads=threads, output=output)


@bench_app.command("seismic")
def bench_seismic(
    docs: Path = typer.Option(..., help="document vectors (.npz)"),
    queries: Path = typer.Option(..., help="query vectors (.npz)"),
    output: Path = typer.Option(..., help="JSON report"),
    plot: Optional[Path] = typer.Option(None, help="PNG of recall@k against mean latency"),
    query_prefix: Optional[str] = typer.Option(None, help="keep queries whose id starts with this"),
    max_queries: int = typer.Option(1000, help="a seeded sample of at most this many queries"),
    k: int = typer.Option(10, min=1),
    grid: Optional[Path] = typer.Option(None, help='JSON {"ours": [...], "peer": [...], "query": [...]} of params'),
    quantization: str = typer.Option("uint8"),
    scipy: bool = typer.Option(True, help="also time scipy brute force"),
) -> None:
    """Seismic against pyseismic-lsr (and exact, scipy): recall@k vs latency, build time, index size."""
    import numpy as np

    from bench import seismic as bench
    from lsr.vectors import load_vectors

    try:
        d, q = load_vectors(docs).vectors, load_vectors(queries)
    except ValueError as e:
        fail(str(e))
    keep = np.array([str(i).startswith(query_prefix or "") for i in q.ids])
    chosen = np.nonzero(keep)[0]
    if len(chosen) > max_queries:
        chosen = np.sort(np.random.default_rng(0).choice(chosen, max_queries, replace=False))
    if not len(chosen):
        fail(f"no query id starts with {query_prefix!r}")
    g = json.loads(grid.read_text()) if grid else {}
    rep = bench.run(d, q.vectors.take(chosen), k=k, our_builds=g.get("ours", bench.OUR_BUILDS),
                    peer_builds=g.get("peer", bench.PEER_BUILDS), query_grid=g.get("query", bench.QUERY_GRID),
                    quantization=quantization, with_scipy=scipy,
                    meta={"corpus": docs.stem, "query_prefix": query_prefix, "command": " ".join(sys.argv)})
    bench.print_table(rep)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(rep, indent=1) + "\n")
    if plot:
        bench.plot(rep, plot)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
