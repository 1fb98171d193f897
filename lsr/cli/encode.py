"""`lsr encode`, `lsr models`, `lsr sample-corpus`: text to vectors files, and what needs no download."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lsr.cli.common import echo_json, fail, load_encoder, progress_bar, reported

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
    if out.truncated:
        typer.echo(f"{out.truncated} of {len(out.ids)} texts were longer than {options['max_length']} tokens and "
                   "were truncated", err=True)
    return out


def encode_to_file(corpus: str, output: Path, encoder, *, queries: bool = False, max_length: int | None = None,
                   batch_size: int = 32, top_k: int | None = None, min_weight: float | None = None) -> dict:
    """Encodes ``corpus`` into the vectors file ``output`` (``max_length`` None: the encoder's length for documents
    or queries); returns the summary `lsr encode` prints."""
    from lsr.core.vectors import save_vectors

    if max_length is None:
        max_length = encoder.query_max_length if queries else encoder.max_length
    with reported(ValueError):
        out = encode_with_progress(corpus, encoder, queries=queries, max_length=max_length, batch_size=batch_size,
                                   top_k=top_k, min_weight=min_weight)
    meta = encoder.vector_meta(max_length, None if queries else encoder.window_overlap, top_k=top_k,
                               min_weight=min_weight)
    save_vectors(output, out.vectors, out.ids, {**meta, "corpus": str(corpus)})
    return {"output": str(output), "documents": len(out.ids), "nnz": out.vectors.nnz,
            "terms_per_doc": round(out.vectors.nnz / max(len(out.ids), 1), 1), "truncated": out.truncated,
            "windowed": out.windowed}


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
) -> None:
    """Encode a corpus into SPLADE vectors (the file `lsr index` reads)."""
    if truncate and window_overlap is not None:
        fail("--truncate and --window-overlap exclude each other")
    windows = {} if window_overlap is None and not truncate else {"window_overlap": window_overlap}
    encoder = load_encoder(model, device, pooling=pooling, **windows)
    echo_json(encode_to_file(corpus, output, encoder, queries=queries, max_length=max_length, batch_size=batch_size,
                             top_k=top_k, min_weight=min_weight))


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
