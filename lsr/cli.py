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


def parse_params(pairs: list[str]) -> dict:
    """KEY=VALUE pairs to a dict; values parse as JSON when they can (numbers, booleans), else stay strings."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--param expects KEY=VALUE, got {pair!r}")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


@app.command()
def index(
    corpus: str = typer.Argument(..., help="a corpus `lsr encode` reads, or an `lsr encode` vectors file (.npz)"),
    output: Path = typer.Option(..., "--output", "-o", help="index folder to create"),
    model: Optional[str] = typer.Option(None, help="encoder for a corpus (default splade-tiny); a vectors file "
                                                   "records its own"),
    method: list[str] = typer.Option(["exact", "bmp"], "--method", help="search methods to build (repeat)"),
    param: list[str] = typer.Option([], "--param", help="method build parameter KEY=VALUE, e.g. block_size=32"),
    quantization: str = typer.Option("uint8", help="uint8 (per-index scale), float16 or float32"),
    reorder: bool = typer.Option(True, help="reorder documents by recursive graph bisection"),
    texts: Optional[str] = typer.Option(None, help="corpus whose texts to store with a vectors file (matched by id)"),
    overwrite: bool = typer.Option(False, help="replace an index already at --output"),
    max_length: int = typer.Option(256, min=8),
    batch_size: int = typer.Option(32, min=1),
    device: str = typer.Option("auto"),
) -> None:
    """Build a searchable index from a corpus (encoding it) or from precomputed vectors."""
    from index import Index

    if corpus.endswith(".npz"):
        from lsr.vectors import load_vectors

        try:
            vf = load_vectors(corpus)
        except ValueError as e:
            fail(str(e))
        if model and vf.meta.get("model") and model != vf.meta["model"]:
            fail(f"{corpus} was encoded with {vf.meta['model']!r}, not {model!r}")
        vectors, ids, docs = vf.vectors, [str(i) for i in vf.ids], None
        model_name, fingerprint = vf.meta.get("model", model), vf.meta.get("vocab_fingerprint")
        if texts:
            docs = load_texts(texts, ids)
    else:
        encoder = load_encoder(model or "splade-tiny", device)
        vectors, ids, docs = encode_corpus(corpus, encoder, max_length=max_length, batch_size=batch_size, top_k=None,
                                           min_weight=None)
        model_name, fingerprint = encoder.name, encoder.vocab_fingerprint
    typer.echo(f"indexing {len(ids)} documents ({', '.join(method)})", err=True)
    try:
        idx = Index.build(output, vectors, ids, texts=docs, model=model_name, vocab_fingerprint=fingerprint,
                          quantization=quantization, reorder=reorder, methods=method, overwrite=overwrite,
                          **parse_params(param))
    except (ValueError, FileExistsError) as e:
        fail(str(e))
    typer.echo(json.dumps({"output": str(output), "documents": idx.num_docs, "methods": idx.methods,
                           "bytes": idx.nbytes()}))


def load_texts(corpus: str, ids: list[str]) -> list:
    """The documents of ``corpus`` in the order of ``ids``; every id must be there."""
    from lsr.corpus import CorpusError, read_corpus

    wanted = set(ids)
    try:
        found = {d.id: d for d in read_corpus(corpus) if d.id in wanted}
    except (CorpusError, OSError) as e:
        fail(str(e))
    missing = [i for i in ids if i not in found]
    if missing:
        fail(f"{corpus} lacks {len(missing)} of the indexed ids (e.g. {missing[:3]})")
    return [found[i] for i in ids]


@app.command()
def search(
    query: str = typer.Argument(..., help="query text"),
    index_dir: Path = typer.Option(..., "--index", help="index folder"),
    k: int = typer.Option(10, "-k", min=1),
    method: str = typer.Option("exact", help="exact, bmp, ... (as built)"),
    param: list[str] = typer.Option([], "--param", help="method search parameter KEY=VALUE, e.g. alpha=0.9"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    device: str = typer.Option("cpu"),
) -> None:
    """Search an index with a text query, encoded by the index's own model."""
    from index import Index, IndexCorrupt, VocabularyMismatch

    try:
        idx = Index.open(index_dir)
    except IndexCorrupt as e:
        fail(str(e))
    if not idx.model:
        fail(f"{index_dir} records no model, so a text query cannot be encoded for it")
    encoder = load_encoder(idx.model, device)
    try:
        idx.check_vocabulary(encoder.vocab_fingerprint)
        q = encoder.encode_queries([query])
        scores, docs = idx.search_one(*q.row(0), k=k, method=method, **parse_params(param))
    except (VocabularyMismatch, ValueError) as e:
        fail(str(e))
    hits = [{"rank": r + 1, "score": round(float(s), 4), **idx.document(int(d))}
            for r, (s, d) in enumerate(zip(scores, docs)) if d >= 0]
    if as_json:
        typer.echo(json.dumps({"query": query, "method": method, "hits": hits}, ensure_ascii=False))
        return
    for h in hits:
        text = " ".join(f"{h['title']} {h['text']}".split())
        typer.echo(f"{h['rank']:>3}  {h['score']:8.3f}  {h['id']}  {text[:100]}")


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


@bench_app.command("index")
def bench_index(
    docs: Path = typer.Option(..., help="document vectors (.npz: indptr, indices, values)"),
    queries: Path = typer.Option(..., help="query vectors (.npz)"),
    k: int = typer.Option(10, min=1),
    output: Path = typer.Option(Path("bench/results/index.json")),
    n_queries: int = typer.Option(1000, min=1, help="first N queries"),
    rounds: int = typer.Option(2, min=1, help="timed passes over the queries (interleaved across methods)"),
    block_size: list[int] = typer.Option([16, 32, 64, 128], "--block-size", help="bmp block sizes (repeat)"),
    alpha: list[float] = typer.Option([1.0, 0.95, 0.9, 0.8, 0.7, 0.6], "--alpha", help="bmp alphas (repeat)"),
    beta: list[float] = typer.Option([1.0, 0.7, 0.5], "--beta", help="bmp betas (repeat)"),
    quantization: list[str] = typer.Option(["uint8", "float16", "float32"], "--quantization"),
    suite: Optional[list[str]] = typer.Option(None, "--suite", help="only these suites: scipy, ours, "
                                                                     "splade_index, bmp_peer, seismic, peer_seismic"),
    seismic_grid: Optional[Path] = typer.Option(None, help="JSON overriding bench.seismic.DEFAULT_GRID"),
    plot: Optional[Path] = typer.Option(None, help="PNG of recall@k against mean latency, all methods"),
) -> None:
    """Every search method and installed peer on the same vectors: recall@k, latency, build time, bytes."""
    from bench.index_search import run

    for f in (docs, queries, *([seismic_grid] if seismic_grid else [])):
        if not f.exists():
            fail(f"{f}: no such file")
    report = run(docs, queries, k, output, n_queries=n_queries, rounds=rounds, block_sizes=tuple(block_size),
                 alphas=tuple(alpha), betas=tuple(beta), quantizations=tuple(quantization),
                 suites=tuple(suite) if suite else None,
                 seismic_grid=json.loads(seismic_grid.read_text()) if seismic_grid else None)
    if plot:
        from bench.plot import recall_latency

        recall_latency(report, plot, title=docs.stem)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
