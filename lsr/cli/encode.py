"""`lsr encode`, `lsr models`, `lsr sample-corpus`: text to vectors files, and what needs no download."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from lsr.cli.common import echo_json, fail, load_encoder, progress_bar, reported
from lsr.core.chunks import CHUNK_DOCS

if TYPE_CHECKING:
    from lsr.core.sparse import SparseBatch

app = typer.Typer()


def encode_with_progress(corpus: str, encoder, *, queries: bool = False, **options):
    """``lsr.encoding.pipeline.encode_corpus`` under a progress bar with the corpus's total; reports truncation."""
    from lsr.core.corpus import count_documents
    from lsr.core.errors import CorpusError
    from lsr.encoding.pipeline import encode_corpus

    with reported(CorpusError, OSError):
        total = count_documents(corpus)
        with progress_bar(f"encoding {corpus}", total) as advance:
            out = encode_corpus(corpus, encoder, queries=queries, progress=advance, **options)
    _report_truncation(out.truncated, len(out.ids), options["max_length"])
    return out


def _report_truncation(truncated: int, texts: int, max_length: int) -> None:
    if truncated:
        typer.echo(f"{truncated} of {texts} texts were longer than {max_length} tokens and were truncated", err=True)


@dataclass
class ChunkedEncoding:
    vectors: SparseBatch
    ids: list[str]
    truncated: int
    windowed: int
    encoded: int   # chunks encoded by this run
    found: int     # chunks an earlier run had finished


def encode_resumably(corpus: str, encoder, folder: Path, meta: dict, *, queries: bool, chunk_docs: int,
                     compress: bool, **options) -> ChunkedEncoding:
    """Encodes the chunks (``lsr.core.chunks``) that the chunk log in ``folder`` lacks, each written as it finishes,
    then gathers all of them. Each chunk is encoded whole, as ``encode_corpus`` encodes it, so a run killed and
    resumed gives the vectors of an uninterrupted run bit for bit."""
    import io

    from lsr.cluster.chunklog import ChunkLog
    from lsr.core.chunks import plan_chunks
    from lsr.core.sparse import SparseBatch
    from lsr.core.vectors import write_vectors

    plan = plan_chunks(corpus, chunk_docs)
    if plan.num_docs == 0:
        raise ValueError(f"{corpus}: no documents")
    log = ChunkLog.open(folder, {"corpus": plan.describe(), **meta, "queries": queries, "device": str(encoder.device),
                                 **{k: v for k, v in options.items() if k != "max_length"}})
    encode = encoder.encode_queries if queries else encoder.encode_documents
    found = len(log.done)
    with progress_bar(f"encoding {corpus} into {folder}", plan.num_docs) as advance:
        advance(sum(r.docs for r in log.done.values()))
        for chunk in plan.chunks:
            if chunk.number in log.done:
                continue
            docs = plan.read(chunk)
            vectors = encode([d.full_text for d in docs], progress=advance, **options)
            buf = io.BytesIO()
            write_vectors(buf, vectors, [d.id for d in docs],
                          {**meta, "chunk": chunk.number, "truncated": encoder.stats.truncated,
                           "windowed": encoder.stats.windowed}, compress)
            log.add(chunk.number, buf.getvalue(), len(docs), vectors.nnz,
                    float(vectors.values.max()) if vectors.nnz else 0.0)
    files = [log.load(c.number) for c in plan.chunks]
    ids = [str(i) for f in files for i in f.ids]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{corpus}: document ids are not unique")
    return ChunkedEncoding(SparseBatch.concat([f.vectors for f in files]), ids,
                           sum(f.meta["truncated"] for f in files), sum(f.meta.get("windowed", 0) for f in files),
                           len(plan.chunks) - found, found)


def encode_to_file(corpus: str, output: Path, encoder, *, queries: bool = False, max_length: int | None = None,
                   batch_size: int = 32, top_k: int | None = None, min_weight: float | None = None,
                   chunk_docs: int = CHUNK_DOCS, chunks: Path | None = None, keep_chunks: bool = False,
                   compress: bool = False) -> dict:
    """Encodes ``corpus`` into the vectors file ``output`` (``max_length`` None: the encoder's length for documents
    or queries), resumably through the folder ``chunks`` when given; returns the summary `lsr encode` prints."""
    from lsr.core.vectors import save_vectors

    if max_length is None:
        max_length = encoder.query_max_length if queries else encoder.max_length
    options = {"max_length": max_length, "batch_size": batch_size, "top_k": top_k, "min_weight": min_weight}
    meta = encoder.vector_meta(max_length, None if queries else encoder.window_overlap, top_k=top_k,
                               min_weight=min_weight)
    resumed = {}
    if chunks is None:
        with reported(ValueError):
            out = encode_with_progress(corpus, encoder, queries=queries, chunk=chunk_docs, **options)
        vectors, ids, truncated, windowed = out.vectors, out.ids, out.truncated, out.windowed
    else:
        from lsr.cluster.chunklog import ChunkLogError
        from lsr.core.errors import CorpusError

        with reported(CorpusError, ChunkLogError, ValueError, OSError):
            run = encode_resumably(corpus, encoder, chunks, meta, queries=queries, chunk_docs=chunk_docs,
                                   compress=compress, **options)
        _report_truncation(run.truncated, len(run.ids), max_length)
        vectors, ids, truncated, windowed = run.vectors, run.ids, run.truncated, run.windowed
        resumed = {"encoded_chunks": run.encoded, "resumed_chunks": run.found}
    save_vectors(output, vectors, ids, {**meta, "corpus": str(corpus)}, compress)
    if chunks is not None and not keep_chunks:
        shutil.rmtree(chunks)
    return {"output": str(output), "documents": len(ids), "nnz": vectors.nnz,
            "terms_per_doc": round(vectors.nnz / max(len(ids), 1), 1), "truncated": truncated, "windowed": windowed,
            **resumed}


@app.command()
def encode(
    corpus: str = typer.Argument(..., help="JSONL/Parquet file (id, text, title?), BEIR folder, or ir_datasets id"),
    output: Path = typer.Option(..., "--output", "-o", help="vectors file to write (.npz)"),
    model: str = typer.Option("splade-tiny", help="embedded name, local folder, or Hugging Face hub id"),
    max_length: Optional[int] = typer.Option(None, min=8, help="tokens per text, longer ones are truncated "
                                             "or windowed (default: 256 for documents, the encoder's query length "
                                             "with --queries)"),
    window_overlap: Optional[int] = typer.Option(None, min=0, help="documents longer than --max-length: encode "
                                                 "overlapping windows sharing this many tokens, max-pooled into one "
                                                 "vector (default: the encoder's)"),
    truncate: bool = typer.Option(False, "--truncate", help="cut long documents to --max-length (no windows)"),
    batch_size: int = typer.Option(32, min=1),
    top_k: Optional[int] = typer.Option(None, min=1, help="keep the top-k terms per document"),
    min_weight: Optional[float] = typer.Option(None, min=0.0, help="drop weights below this"),
    pooling: str = typer.Option("max", help="max (SPLADE) or sum"),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    queries: bool = typer.Option(False, "--queries", help="encode as queries (query encoder and length)"),
    chunks: Optional[Path] = typer.Option(None, help="resumable: write each chunk's vectors to this folder as it is "
                                          "encoded; the same command after a kill encodes only the chunks the "
                                          "folder lacks (removed once OUTPUT is written, unless --keep-chunks)"),
    chunk_docs: int = typer.Option(CHUNK_DOCS, min=1, help="documents per chunk (the same chunks give the same "
                                   "vectors bit for bit)"),
    keep_chunks: bool = typer.Option(False, help="keep the --chunks folder after OUTPUT is written"),
    compress: bool = typer.Option(False, help="deflate the vectors file (and chunk files), term ids as uint16: "
                                  "lossless, a smaller file for large corpora"),
) -> None:
    """Encode a corpus into SPLADE vectors (the file `lsr index` reads)."""
    if truncate and window_overlap is not None:
        fail("--truncate and --window-overlap exclude each other")
    windows = {} if window_overlap is None and not truncate else {"window_overlap": window_overlap}
    if keep_chunks and chunks is None:
        fail("--keep-chunks needs --chunks")
    encoder = load_encoder(model, device, pooling=pooling, **windows)
    echo_json(encode_to_file(corpus, output, encoder, queries=queries, max_length=max_length, batch_size=batch_size,
                             top_k=top_k, min_weight=min_weight, chunk_docs=chunk_docs, chunks=chunks,
                             keep_chunks=keep_chunks, compress=compress))


@app.command("sample-corpus")
def sample_corpus(
    output: Path = typer.Argument(..., help="JSONL file to write"),
    limit: Optional[int] = typer.Option(None, min=1, help="at most this many passages"),
) -> None:
    """Write the demo corpus: docstrings of the installed Python standard library, one passage each."""
    from lsr.core.sample import write_sample_corpus

    echo_json({"output": str(output), "documents": write_sample_corpus(output, limit)})


@app.command()
def models() -> None:
    """List the models that load without a download."""
    from lsr.encoding.models import available_models, resolve_model

    for name in available_models():
        typer.echo(f"{name}\t{resolve_model(name)}")
