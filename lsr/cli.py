"""The ``lsr`` command. Each command imports what it needs inside its body, so ``lsr --help`` stays instant
and a GPU box without the web stack can still encode."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer

from lsr.chunks import CHUNK_DOCS

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
                  min_weight: Optional[float], queries: bool = False, chunk: int = CHUNK_DOCS):
    """Streams a corpus through the encoder in chunks (length-sorted within each); returns (vectors, ids, texts).
    A chunk's vectors depend only on its documents: `lsr index --ray` encodes the same chunks elsewhere."""
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
    corpus: Optional[str] = typer.Argument(None, help="a corpus `lsr encode` reads, or an `lsr encode` vectors file "
                                                      "(.npz)"),
    output: Path = typer.Option(..., "--output", "-o", help="index folder to create (or to update)"),
    model: Optional[str] = typer.Option(None, help="encoder for a corpus (default splade-tiny; with --append, the "
                                                   "index's); a vectors file records its own"),
    method: list[str] = typer.Option(["exact", "bmp"], "--method", help="search methods to build (repeat): exact, "
                                                                       "bmp, seismic"),
    param: list[str] = typer.Option([], "--param", help="method build parameter KEY=VALUE, e.g. block_size=32 "
                                                        "(bmp), n_postings=4000, pruning=fixed (or global), "
                                                        "max_fraction=1.5, centroid_fraction=0.2, "
                                                        "summary_energy=0.4 (seismic)"),
    quantization: str = typer.Option("uint8", help="uint8 (per-index scale), float16 or float32"),
    reorder: bool = typer.Option(True, help="reorder documents by recursive graph bisection"),
    texts: Optional[str] = typer.Option(None, help="corpus whose texts to store with a vectors file (matched by id)"),
    overwrite: bool = typer.Option(False, help="replace an index already at --output"),
    append: bool = typer.Option(False, "--append", help="add the documents to the index at --output without "
                                                        "rebuilding it (documents whose ids it has are replaced)"),
    compact: bool = typer.Option(False, "--compact", help="merge the index's segments into one, without its deleted "
                                                          "documents (alone, or after --append)"),
    max_length: int = typer.Option(256, min=8),
    batch_size: int = typer.Option(32, min=1),
    device: str = typer.Option("auto"),
    chunk_docs: int = typer.Option(CHUNK_DOCS, min=1, help="documents per encoding chunk (the same chunks give the "
                                                           "same vectors, on Ray or not)"),
    shards: Optional[int] = typer.Option(None, min=1, help="build N shards to serve side by side (lsr serve-shards)"),
    ray: bool = typer.Option(False, "--ray", help="encode on a Ray cluster (Ray Data actors); resumable"),
    ray_address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help="cluster to join (HOST:PORT, "
                                              "ray://HOST:PORT, auto); default: start a local one"),
    actors: int = typer.Option(1, min=1, help="encoder actors on Ray (one GPU each, or a share of the CPUs)"),
    keep_chunks: bool = typer.Option(False, help="keep the encoded chunks (OUTPUT.chunks/) after a Ray build"),
) -> None:
    """Build a searchable index from a corpus (encoding it) or from precomputed vectors; or update one."""
    from index import Index

    if append or compact:
        if overwrite or param or ray or shards:
            fail("--overwrite, --param, --ray and --shards build a new index; they do not go with --append or --compact")
        if append and not corpus:
            fail("--append needs a CORPUS (or vectors file) to add")
        if corpus and not append:
            fail("--compact alone takes no CORPUS; add --append to add one first")
        update_index(output, corpus, model, texts, compact, max_length=max_length, batch_size=batch_size,
                     device=device, chunk_docs=chunk_docs)
        return
    if not corpus:
        fail("missing argument CORPUS (a corpus or an `lsr encode` vectors file)")
    build = {"quantization": quantization, "reorder": reorder, "methods": method, "params": parse_params(param)}
    if ray:
        if corpus.endswith(".npz"):
            fail("--ray encodes a corpus; a vectors file needs no encoding (drop --ray)")
        return index_on_ray(corpus, output, ray_address, model=model or "splade-tiny", max_length=max_length,
                            batch_size=batch_size, device=device, chunk_docs=chunk_docs, shards=shards, actors=actors,
                            keep_chunks=keep_chunks, overwrite=overwrite, build=build)
    vectors, ids, docs, model_name, fingerprint = read_documents(corpus, model, texts, device, max_length, batch_size,
                                                                 chunk_docs)
    typer.echo(f"indexing {len(ids)} documents ({', '.join(method)})", err=True)
    if shards:
        from cluster.indexer import BuildSettings, shard_vectors

        try:
            layout = shard_vectors(output, vectors, ids, shards, texts=docs, model=model_name,
                                   vocab_fingerprint=fingerprint, build=BuildSettings(**build), overwrite=overwrite)
        except (ValueError, FileExistsError) as e:
            fail(str(e))
        typer.echo(json.dumps({"output": str(output), "documents": layout.num_docs, "shards": len(layout.shards)}))
        return
    try:
        idx = Index.build(output, vectors, ids, texts=docs, model=model_name, vocab_fingerprint=fingerprint,
                          quantization=quantization, reorder=reorder, methods=method, overwrite=overwrite,
                          **parse_params(param))
    except (ValueError, FileExistsError) as e:
        fail(str(e))
    typer.echo(json.dumps({"output": str(output), "documents": idx.num_docs, "methods": idx.methods,
                           "bytes": idx.nbytes()}))


def read_documents(corpus: str, model: Optional[str], texts: Optional[str], device: str, max_length: int,
                   batch_size: int, chunk_docs: int = CHUNK_DOCS):
    """(vectors, ids, documents or None, model name, vocabulary fingerprint) of a corpus (encoded with ``model``)
    or of an `lsr encode` vectors file (with ``texts`` matched by id)."""
    if corpus.endswith(".npz"):
        from lsr.vectors import load_vectors

        try:
            vf = load_vectors(corpus)
        except ValueError as e:
            fail(str(e))
        if model and vf.meta.get("model") and model != vf.meta["model"]:
            fail(f"{corpus} was encoded with {vf.meta['model']!r}, not {model!r}")
        ids = [str(i) for i in vf.ids]
        docs = load_texts(texts, ids) if texts else None
        return vf.vectors, ids, docs, vf.meta.get("model", model), vf.meta.get("vocab_fingerprint")
    encoder = load_encoder(model or "splade-tiny", device)
    vectors, ids, docs = encode_corpus(corpus, encoder, max_length=max_length, batch_size=batch_size, top_k=None,
                                       min_weight=None, chunk=chunk_docs)
    return vectors, ids, docs, encoder.name, encoder.vocab_fingerprint


def update_index(output: Path, corpus: Optional[str], model: Optional[str], texts: Optional[str], compact: bool,
                 **encode_options) -> None:
    """lsr index --append / --compact: through the index's writer (its lock, write-ahead log and merges)."""
    import numpy as np

    from index import Index, IndexCorrupt, VocabularyMismatch
    from index.errors import IndexLocked

    try:
        idx = Index.open(output, writable=True, background_merges=False, refresh_interval=None)
    except (IndexCorrupt, IndexLocked, ValueError) as e:
        fail(str(e))
    added = 0
    try:
        if corpus:
            if model and idx.model and model != idx.model:
                fail(f"{output} was built with {idx.model!r}; documents to add must be encoded with it, not {model!r}")
            vectors, ids, docs, _, fingerprint = read_documents(corpus, model or idx.model, texts, **encode_options)
            idx.check_vocabulary(fingerprint)
            step = 10_000
            with progress_bar(f"adding to {output}", len(ids)) as advance:
                for lo in range(0, len(ids), step):
                    rows = np.arange(lo, min(lo + step, len(ids)))
                    idx.upsert(ids[lo:lo + step], vectors.take(rows), docs[lo:lo + step] if docs else None)
                    advance(len(rows))
            added = len(ids)
        idx.flush()
        if compact:
            typer.echo(f"merging {len(idx.segments)} segments", err=True)
            idx.compact()
    except (ValueError, VocabularyMismatch) as e:
        fail(str(e))
    finally:
        idx.close()
    typer.echo(json.dumps({"output": str(output), "documents": idx.num_docs, "added": added,
                           "segments": len(idx.segments), "generation": idx.generation, "bytes": idx.nbytes()}))


def index_on_ray(corpus: str, output: Path, address: Optional[str], *, model: str, max_length: int, batch_size: int,
                 device: str, chunk_docs: int, shards: Optional[int], actors: int, keep_chunks: bool,
                 overwrite: bool, build: dict) -> None:
    """`lsr index --ray`: encoding on Ray actors, resumable from OUTPUT.chunks/, then one index or N shards."""
    try:
        from cluster.chunklog import ChunkLogError
        from cluster.connect import connect
        from cluster.encode import EncodeSettings
        from cluster.indexer import BuildSettings, index_on_ray as run
    except ImportError as e:
        fail(f"--ray needs Ray: pip install 'lsr[ray]' ({e})")
    from lsr.corpus import CorpusError

    connect(address)
    with progress_bar(f"encoding {corpus} on Ray", None) as advance:
        try:
            report = run(corpus, output, encode=EncodeSettings(model, max_length, batch_size, device),
                         build=BuildSettings(**build), shards=shards, actors=actors, chunk_docs=chunk_docs,
                         keep_chunks=keep_chunks, overwrite=overwrite, progress=advance)
        except (CorpusError, ChunkLogError, ValueError, FileExistsError, OSError) as e:
            fail(str(e))
    e = report.encode
    typer.echo(json.dumps({"output": str(output), "documents": report.documents, "shards": report.shards,
                           "chunks": e.chunks, "encoded_chunks": e.encoded, "resumed_chunks": e.skipped,
                           "encode_seconds": round(e.seconds, 2),
                           "docs_per_second": round(e.docs / e.seconds, 1) if e.seconds else None}))


@app.command("serve-shards")
def serve_shards(
    index_dir: Path = typer.Option(..., "--index", help="a sharded index (lsr index --shards N)"),
    replicas: int = typer.Option(1, min=1, help="replicas of every shard"),
    cpus_per_replica: float = typer.Option(1.0, min=0.0, help="CPUs Ray reserves for each replica"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000, min=1, max=65535),
    ray_address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help="cluster to join (default: a local "
                                                                              "one)"),
) -> None:
    """Serve a sharded index on Ray Serve: a deployment per shard, a front that fans out and merges (POST /search)."""
    import time

    try:
        from cluster.connect import connect
        from cluster.serve import deploy
    except ImportError as e:
        fail(f"serve-shards needs Ray Serve: pip install 'lsr[ray]' ({e})")
    from index import IndexCorrupt

    connect(ray_address)
    try:
        deploy(index_dir, replicas=replicas, cpus_per_replica=cpus_per_replica, host=host, port=port)
    except IndexCorrupt as e:
        fail(str(e))
    typer.echo(json.dumps({"url": f"http://{host}:{port}/search", "index": str(index_dir)}))
    while True:   # Serve runs in the cluster; this process keeps the local cluster alive until Ctrl-C
        time.sleep(3600)


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
    method: str = typer.Option("exact", help="exact, bmp, seismic (as built)"),
    param: list[str] = typer.Option([], "--param", help="method search parameter KEY=VALUE, e.g. alpha=0.9 (bmp), "
                                                        "query_cut=10, heap_factor=0.9 (seismic)"),
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


@app.command()
def serve(
    index_dir: Path = typer.Option(..., "--index", help="index folder"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, min=0, max=65535),
    workers: int = typer.Option(1, min=1, help="worker processes; they share the memory-mapped index"),
    model: Optional[str] = typer.Option(None, help="query encoder (default: the model the index records)"),
    api_keys_file: Optional[Path] = typer.Option(None, help="API keys, one per line (or set LSR_API_KEYS)"),
    protect_reads: bool = typer.Option(False, help="searches and reads need an API key too"),
    bm25: Optional[Path] = typer.Option(None, help="BM25 side for hybrid search; built from the index's stored texts "
                                                   "when the folder holds none"),
    graceful_timeout: float = typer.Option(30.0, help="seconds that in-flight requests get to finish on SIGTERM"),
    log_level: str = typer.Option("info"),
) -> None:
    """Serve an index over HTTP: FastAPI under uvicorn, OpenAPI at /docs. Other settings: LSR_* variables
    (service/settings.py)."""
    import os
    import tempfile

    import uvicorn
    from pydantic import ValidationError

    from index import Index, IndexCorrupt
    from service.settings import Settings

    try:
        idx = Index.open(index_dir, verify=False)
    except IndexCorrupt as e:
        fail(str(e))
    from service.hybrid import BM25_MODEL, build_bm25

    if bm25 is not None and not (bm25 / BM25_MODEL).exists():
        typer.echo(f"building the BM25 side of {idx.num_docs} documents in {bm25}", err=True)
        try:
            build_bm25(idx, bm25)
        except (ValueError, FileExistsError) as e:
            fail(str(e))
    given = {"INDEX_DIR": index_dir.resolve(), "MODEL": model, "API_KEYS_FILE": api_keys_file,
             "PROTECT_READS": "true" if protect_reads else None, "BM25_DIR": bm25.resolve() if bm25 else None}
    os.environ.update({f"LSR_{k}": str(v) for k, v in given.items() if v is not None})
    try:
        settings = Settings()  # the workers read the same variables: fail here, once, on a bad value
        settings.keys()
    except (ValidationError, OSError) as e:
        fail(f"service settings: {e}")
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lsr-metrics-")  # /metrics sums workers
    uvicorn.run("service.app:from_env", factory=True, host=host, port=port, workers=workers,
                timeout_graceful_shutdown=graceful_timeout, log_level=log_level, access_log=False)


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
    max_length: int = typer.Option(256, min=8, help="document tokens (longer ones are truncated)"),
    query_max_length: Optional[int] = typer.Option(None, min=1, help="query tokens (default: the encoder's, 64)"),
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
    from eval.report import result_filename, write_report

    if dataset is None:
        if report is None:
            fail("give --dataset (or --report DIR alone to redraw a report)")
        try:
            md, png = write_report(report)
        except ValueError as e:
            fail(str(e))
        typer.echo(json.dumps({"report": str(md), "plot": str(png)}))
        return
    from eval.datasets import DatasetError, load_eval_set
    from eval.evaluate import Options, evaluate
    from eval.params import parse_settings
    from eval.runs import write_trec_run
    from lsr.atomic import atomic_write_text

    try:
        settings = parse_settings(param)
        builds = parse_settings(build_param)
        if len(builds) > 1:
            raise ValueError("build parameters take one value each (sweep search parameters only)")
        if run is not None and len(settings) > 1:
            raise ValueError("--run writes one run: give one value per parameter")
        es = load_eval_set(dataset, split)
        if limit_queries:
            es = es.with_queries(limit_queries)
        opts = Options(model=model, max_length=max_length, query_max_length=query_max_length, batch_size=batch_size,
                       device=device, k=k, measures=measure or None, build_params=builds[0],
                       quantization=quantization, splade_method=splade_method, bm25_k1=bm25_k1, bm25_b=bm25_b,
                       stemmer=stemmer, latency_queries=latency_queries, threads=threads, cache_dir=cache_dir,
                       doc_vectors=doc_vectors)
        pairs = evaluate(es, method, settings, opts)
    except (DatasetError, ValueError, FileExistsError) as e:
        fail(str(e))
    results = [r for r, _ in pairs]
    if run is not None:
        write_trec_run(run, pairs[0][1], f"lsr-{method}")
    if output is not None:
        atomic_write_text(output, json.dumps(results[0] if len(results) == 1 else results, indent=2) + "\n")
    if report is not None:
        report.mkdir(parents=True, exist_ok=True)
        for r in results:
            atomic_write_text(report / result_filename(r), json.dumps(r, indent=2) + "\n")
        write_report(report)
    for r in results:
        typer.echo(json.dumps({key: r[key] for key in ("dataset", "model", "method", "params", "metrics",
                                                       "latency_ms", "encode_s")}))


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


@bench_app.command("synthetic")
def bench_synthetic(
    like: list[Path] = typer.Option(..., "--like", help="real vectors whose statistics to imitate (repeat)"),
    docs: int = typer.Option(1_000_000, min=1, help="documents to generate"),
    output: Path = typer.Option(..., help="vectors file to write (.npz)"),
    seed: int = typer.Option(0),
) -> None:
    """Synthetic document vectors with the length, term-frequency and weight statistics of real ones."""
    from bench.synthetic import describe, generate
    from lsr.sparse import SparseBatch
    from lsr.vectors import load_vectors, save_vectors

    try:
        files = [load_vectors(p) for p in like]
        source = SparseBatch.concat([f.vectors for f in files])
    except ValueError as e:
        fail(str(e))
    batch = generate(source, docs, seed)
    meta = {k: files[0].meta[k] for k in ("model", "vocab_fingerprint") if k in files[0].meta}
    save_vectors(output, batch, [f"syn-{i}" for i in range(docs)],
                 {**meta, "synthetic": {"like": [str(p) for p in like], "seed": seed}})
    typer.echo(json.dumps({"output": str(output), "source": describe(source), "synthetic": describe(batch)}))


@bench_app.command("ingest")
def bench_ingest(
    docs: Path = typer.Option(Path("/work/data/windows.npz"), help="document vectors (.npz)"),
    queries: Path = typer.Option(Path("/work/data/queries.npz"), help="query vectors (.npz)"),
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

    for f in (docs, queries):
        if not f.exists():
            fail(f"{f}: no such file")
    run(docs, queries, output, limit=limit, start=start, batch=batch, flush_docs=flush_docs, methods=tuple(method),
        n_queries=n_queries, burst_s=burst_s, search_methods=tuple(search_method))


@bench_app.command("service")
def bench_service(
    docs: Path = typer.Option(Path("/work/data/scifact.npz"), help="document vectors to index (.npz)"),
    queries: Path = typer.Option(Path("/work/data/queries.npz"), help="query vectors (.npz with ids)"),
    texts: Path = typer.Option(Path("/work/data/queries.jsonl"), help="query texts (JSONL: id, text)"),
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

    for f in (docs, queries, texts):
        if not f.exists():
            fail(f"{f}: no such file")
    run(docs, queries, texts, output, prefix=prefix, method=method, workers=workers, clients=tuple(sorted(clients)),
        seconds=seconds, rounds=rounds, soak_seconds=soak_seconds, soak_kind=soak_kind, window_ms=window_ms)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
