"""`lsr bench data ...`: every benchmark input, rebuilt from what ships offline into the git-ignored data/ folder.

Each command writes its texts as JSONL (id, title, text) and then, unless ``--texts-only``, their splade-tiny
vectors (.npz, as `lsr encode` writes them; documents at 256 tokens, queries at the encoder's 256) beside it:

    lsr bench data windows     data/windows.jsonl + data/windows.npz   every run of three consecutive sentences of
                               the scifact and nfcorpus documents (stride one sentence): 63,137 passages of ~75 words,
                               real scientific text, larger than either BEIR set, deterministic
    lsr bench data queries     data/queries.jsonl + data/queries.npz   the test and train queries of both sets
                               (ids "beir/scifact/test:<id>"), the realistic query stream for latency figures
    lsr bench data beir NAME   data/NAME.jsonl + data/NAME.npz          a whole BEIR corpus (scifact, nfcorpus),
                               encoded as "title text" like `lsr encode beir/NAME`
    lsr bench data synthetic   data/synthetic-1m.npz                   1,000,000 documents with windows' statistics

``--limit N`` keeps the first N records (a quick run). The BEIR sets are read through ir_datasets: set
IR_DATASETS_HOME to a writable copy of the offline BEIR data (beir/scifact/source.zip, beir/nfcorpus/source.zip).
Encoding the whole windows corpus takes about an hour on 2 CPU cores; on a GPU, `lsr encode` the JSONL there.
"""

from __future__ import annotations

import json
import re
from itertools import islice
from pathlib import Path
from typing import Annotated, Iterable, Iterator, Optional

import typer

from lsr.cli.common import echo_json, fail, reported
from lsr.core.atomic import atomic_open

DATA = Path("data")
SOURCES = ("beir/scifact", "beir/nfcorpus")
QUERY_SETS = ("beir/scifact/test", "beir/scifact/train", "beir/nfcorpus/test", "beir/nfcorpus/train")
BEIR_SETS = ("scifact", "nfcorpus")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")

app = typer.Typer(no_args_is_help=True)

Limit = Annotated[Optional[int], typer.Option(min=1, help="only the first N records (a quick run)")]
Vectors = Annotated[Optional[Path], typer.Option(help="vectors file to write (default: OUTPUT with .npz)")]
TextsOnly = Annotated[bool, typer.Option("--texts-only", help="write the JSONL only (encode it elsewhere, e.g. a GPU)")]
Model = Annotated[str, typer.Option(help="the encoder (embedded name, local folder or hub id)")]
MaxLength = Annotated[Optional[int], typer.Option(min=8, help="tokens per text (default: 256 for documents, the "
                                                             "encoder's query length for queries)")]
BatchSize = Annotated[int, typer.Option(min=1)]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, ...")]


def sentence_windows(text: str, width: int = 3) -> list[str]:
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    if len(sentences) <= width:
        return [" ".join(sentences)] if sentences else []
    return [" ".join(sentences[i:i + width]) for i in range(len(sentences) - width + 1)]


def window_records(width: int = 3) -> Iterator[dict]:
    """The sentence-window passages (id = source:doc_id:window), corpus by corpus, document by document."""
    import ir_datasets

    for source in SOURCES:
        name = source.split("/")[-1]
        for doc in ir_datasets.load(source).docs_iter():
            for w, text in enumerate(sentence_windows(doc.text, width)):
                yield {"id": f"{name}:{doc.doc_id}:{w}", "title": doc.title, "text": text}


def query_records() -> Iterator[dict]:
    """The query texts of the scifact and nfcorpus test and train sets (id = set:query_id)."""
    import ir_datasets

    for qs in QUERY_SETS:
        for q in ir_datasets.load(qs).queries_iter():
            yield {"id": f"{qs}:{q.query_id}", "text": q.text}


def beir_records(name: str) -> Iterator[dict]:
    """A BEIR corpus's documents in its own order."""
    import ir_datasets

    for doc in ir_datasets.load(f"beir/{name}").docs_iter():
        yield {"id": doc.doc_id, "title": doc.title, "text": doc.text}


def write_jsonl(output: Path, records: Iterable[dict], limit: int | None = None) -> int:
    """Writes the first ``limit`` records (all: None) as JSONL, atomically; returns how many."""
    output.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with atomic_open(output, "w") as f:
        for record in islice(records, limit):
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def _make(records: Iterable[dict], output: Path, vectors: Path | None, texts_only: bool, limit: int | None, *,
          queries: bool, model: str, max_length: int | None, batch_size: int, device: str) -> None:
    """JSONL of the records, then (unless texts_only) their vectors; prints one JSON line per file."""
    try:
        n = write_jsonl(output, records, limit)
    except OSError as e:   # a file not writable, or ir_datasets trying to download what is not there
        fail(f"{e} (the BEIR sets are read through ir_datasets: set IR_DATASETS_HOME to a writable copy of the "
             "offline BEIR data, with beir/scifact/source.zip and beir/nfcorpus/source.zip)")
    echo_json({"output": str(output), "records": n})
    if texts_only:
        return
    from lsr.cli.common import load_encoder
    from lsr.cli.encode import encode_to_file

    encoder = load_encoder(model, device)
    echo_json(encode_to_file(str(output), vectors or output.with_suffix(".npz"), encoder, queries=queries,
                             max_length=max_length, batch_size=batch_size))


@app.command()
def windows(output: Annotated[Path, typer.Option(help="JSONL to write")] = DATA / "windows.jsonl",
            vectors: Vectors = None, texts_only: TextsOnly = False, limit: Limit = None,
            width: Annotated[int, typer.Option(min=1, help="sentences per passage")] = 3,
            model: Model = "splade-tiny", max_length: MaxLength = None, batch_size: BatchSize = 32,
            device: Device = "auto") -> None:
    """Sentence-window passages of scifact + nfcorpus, and their vectors."""
    _make(window_records(width), output, vectors, texts_only, limit, queries=False, model=model,
          max_length=max_length, batch_size=batch_size, device=device)


@app.command()
def queries(output: Annotated[Path, typer.Option(help="JSONL to write")] = DATA / "queries.jsonl",
            vectors: Vectors = None, texts_only: TextsOnly = False, limit: Limit = None,
            model: Model = "splade-tiny", max_length: MaxLength = None, batch_size: BatchSize = 32,
            device: Device = "auto") -> None:
    """The test and train queries of scifact and nfcorpus, and their query vectors."""
    _make(query_records(), output, vectors, texts_only, limit, queries=True, model=model, max_length=max_length,
          batch_size=batch_size, device=device)


@app.command()
def beir(name: Annotated[str, typer.Argument(help=f"one of {', '.join(BEIR_SETS)}")],
         output: Annotated[Optional[Path], typer.Option(help="JSONL to write (default: data/NAME.jsonl)")] = None,
         vectors: Vectors = None, texts_only: TextsOnly = False, limit: Limit = None,
         model: Model = "splade-tiny", max_length: MaxLength = None, batch_size: BatchSize = 32,
         device: Device = "auto") -> None:
    """A whole BEIR corpus's documents, and their vectors (data/scifact.npz, data/nfcorpus.npz)."""
    if name not in BEIR_SETS:
        fail(f"unknown BEIR set {name!r}; one of {list(BEIR_SETS)}")
    _make(beir_records(name), output or DATA / f"{name}.jsonl", vectors, texts_only, limit, queries=False,
          model=model, max_length=max_length, batch_size=batch_size, device=device)


@app.command()
def synthetic(
    like: Annotated[list[Path], typer.Option("--like", help="real vectors whose statistics to imitate (repeat)")] = [
        DATA / "windows.npz"],   # noqa: B006 - typer's way to give a list option a default
    docs: Annotated[int, typer.Option(min=1, help="documents to generate")] = 1_000_000,
    output: Annotated[Path, typer.Option(help="vectors file to write (.npz)")] = DATA / "synthetic-1m.npz",
    seed: int = 0,
) -> None:
    """Synthetic document vectors with the length, term-frequency and weight statistics of real ones."""
    from bench.synthetic import describe, generate
    from lsr.core.sparse import SparseBatch
    from lsr.core.vectors import load_vectors, save_vectors

    with reported(ValueError, OSError):
        files = [load_vectors(p) for p in like]
        source = SparseBatch.concat([f.vectors for f in files])
    batch = generate(source, docs, seed)
    meta = {k: files[0].meta[k] for k in ("model", "vocab_fingerprint") if k in files[0].meta}
    save_vectors(output, batch, [f"syn-{i}" for i in range(docs)],
                 {**meta, "synthetic": {"like": [str(p) for p in like], "seed": seed}})
    echo_json({"output": str(output), "source": describe(source), "synthetic": describe(batch)})


if __name__ == "__main__":
    app()
