"""A corpus cut into chunks of a fixed number of documents, each readable on its own.

``lsr encode`` and ``lsr index`` encode a corpus chunk by chunk, with length-sorted batches inside each chunk. The
vectors of a document depend (in the last bits) on the batch it was padded with, so a distributed encoder that
encodes the same chunks, each whole, on other machines (``cluster/``) gets the same vectors bit for bit. A plan records
where each chunk begins (a byte offset and line in JSONL, a row in Parquet and ir_datasets), so that a worker reads
its chunk without reading what comes before it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from lsr.core import validate
from lsr.core.corpus import blank_line, read_range, resolve_corpus
from lsr.core.documents import Document
from lsr.core.errors import CorpusError

CHUNK_DOCS = 8192


@dataclass(frozen=True)
class Chunk:
    number: int
    start: int       # first document number
    stop: int        # one past the last
    offset: int = 0  # JSONL: byte offset of document ``start``
    line: int = 1    # JSONL: its line number (for error messages)

    @property
    def docs(self) -> int:
        return self.stop - self.start


@dataclass
class ChunkPlan:
    source: str                 # as the user named it
    form: str                   # "jsonl", "parquet" or "ir_datasets"
    where: str                  # the file or dataset id read
    chunk_docs: int
    num_docs: int
    signature: dict             # what identifies this version of the corpus (file size and time, or document count)
    chunks: list[Chunk] = field(default_factory=list)

    def read(self, chunk: Chunk) -> list[Document]:
        """The documents of one chunk; a corpus that changed since it was planned is an error, not a silent mix."""
        if _signature(self.form, self.where, self.num_docs) != self.signature:
            raise CorpusError(f"{self.source} changed since it was cut into chunks ({self.signature}); plan again")
        docs = list(read_range(self.form, self.where, chunk.start, chunk.stop, chunk.offset, chunk.line))
        if len(docs) != chunk.docs:
            raise CorpusError(f"{self.source}: chunk {chunk.number} holds {len(docs)} documents, expected {chunk.docs}")
        return docs

    def describe(self) -> dict:
        """What must match for a resumed job to reuse chunks encoded earlier."""
        return {"source": self.source, "form": self.form, "chunk_docs": self.chunk_docs, "num_docs": self.num_docs,
                "signature": self.signature}

    def to_dict(self) -> dict:
        return asdict(self)


def _signature(form: str, where: str, num_docs: int) -> dict:
    if form == "ir_datasets":
        return {"dataset": where, "docs": num_docs}
    st = os.stat(where)
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def _jsonl_starts(path: str, chunk_docs: int) -> tuple[int, list[tuple[int, int]]]:
    """Number of records and the (byte offset, line) where every chunk_docs-th record begins: one pass, no parsing."""
    starts, count, pos = [], 0, 0
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not blank_line(raw):
                if count % chunk_docs == 0:
                    starts.append((pos, n))
                count += 1
            pos += len(raw)
    return count, starts


def _count(form: str, where: str) -> int:
    if form == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(where).metadata.num_rows
    import ir_datasets

    count = ir_datasets.load(where).docs_count()
    return count if count is not None else sum(1 for _ in read_range(form, where))


def plan_chunks(source: str | Path, chunk_docs: int = CHUNK_DOCS) -> ChunkPlan:
    """Cuts ``source`` (any form ``lsr.corpus.read_corpus`` reads) into chunks of ``chunk_docs`` documents."""
    validate.integer("chunk_docs", chunk_docs, 1)
    form, where = resolve_corpus(source)
    if form == "jsonl":
        num_docs, starts = _jsonl_starts(where, chunk_docs)
    else:
        list(read_range(form, where, 0, 0))   # fails early on an unknown dataset or a bad Parquet schema
        num_docs, starts = _count(form, where), None
    chunks = []
    for number, start in enumerate(range(0, num_docs, chunk_docs)):
        offset, line = starts[number] if starts else (0, 1)
        chunks.append(Chunk(number, start, min(start + chunk_docs, num_docs), offset, line))
    return ChunkPlan(str(source), form, where, chunk_docs, num_docs, _signature(form, where, num_docs), chunks)

