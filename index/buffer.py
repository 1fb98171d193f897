"""The writer's recent documents: acknowledged (in the write-ahead log) but not yet in a segment on disk.

Kept as the batches they came in (float32 CSR rows and their stored-document table), with a live mask per batch and
a map id -> (batch, row), so a replacement or a delete only clears a bit, and turning the buffer into arrays is a
few vectorized copies per batch, not work per document. ``segments`` gives what searches see: searchable in-memory
segments (quantized with the index's scale, postings only: searched exactly), one per run of batches that arrived
between two snapshots, each built once, with the live masks as dead masks; so a refresh costs the new documents, not
the whole buffer. ``forward`` gives the quantized live documents a flush writes as a new segment. Not thread-safe:
the writer serializes access.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lsr.index.docstore import DocStore, doc_table, metadata_of
from lsr.index.fields import FieldIndex, build_fields
from lsr.index.forward import ForwardIndex
from lsr.index.manifest import SegmentInfo
from lsr.index.postings import Postings
from lsr.index.segment import Segment
from lsr.core.documents import Document
from lsr.core.sparse import SparseBatch


@dataclass
class _Batch:
    ids: list[str]
    vectors: SparseBatch
    docs: pa.Table       # index.docstore.doc_table rows
    alive: np.ndarray    # bool per row: not replaced nor deleted since


class Buffer:
    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self.batches: list[_Batch] = []
        self.where: dict[str, tuple[int, int]] = {}   # id -> (batch, row) of each live document
        self._chunks: list[tuple[int, Segment]] = []  # (end batch, in-memory segment of the batches since the last)

    def __len__(self) -> int:
        return len(self.where)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self.where

    def put(self, ids: list[str], vectors: SparseBatch, docs: list[Document | None] | None) -> None:
        """Adds documents (ids not in the buffer: the writer removes replaced ones first)."""
        vectors = SparseBatch(vectors.indptr.copy(), vectors.indices.copy(), vectors.values.copy(),
                              vectors.vocab_size)   # the caller may reuse its arrays once the write returns
        self._append(_Batch(list(ids), vectors, doc_table(ids, docs), np.ones(len(ids), dtype=bool)))

    def _append(self, batch: _Batch) -> None:
        b = len(self.batches)
        self.batches.append(batch)
        self.where.update((doc_id, (b, i)) for i, doc_id in enumerate(batch.ids) if batch.alive[i])

    def remove(self, doc_id: str) -> bool:
        loc = self.where.pop(doc_id, None)
        if loc is not None:
            self.batches[loc[0]].alive[loc[1]] = False
        return loc is not None

    def since(self, first: int) -> "Buffer":
        """A buffer of the batches from ``first`` on, their rows live as they are now (a follower keeps the records
        a new commit does not hold)."""
        out = Buffer(self.vocab_size)
        for batch in self.batches[first:]:
            out._append(_Batch(batch.ids, batch.vectors, batch.docs, batch.alive.copy()))
        return out

    def absorb(self, older: "Buffer") -> None:
        """Takes back the documents of ``older`` (a failed flush's) that this buffer has not replaced since."""
        for batch in older.batches:
            alive = batch.alive & np.array([doc_id not in self.where for doc_id in batch.ids], dtype=bool)
            if alive.any():
                self._append(_Batch(batch.ids, batch.vectors, batch.docs, alive))

    def forward(self, quantization: str, scale: float) -> tuple[ForwardIndex, pa.Table]:
        """The live documents quantized with the index's scale, and their stored rows, in arrival order."""
        vectors, tables = [], []
        for batch in (b for b in self.batches if b.alive.any()):
            if batch.alive.all():
                vectors.append(batch.vectors)
                tables.append(batch.docs)
            else:
                rows = np.flatnonzero(batch.alive)
                vectors.append(batch.vectors.take(rows))
                tables.append(batch.docs.take(pa.array(rows)))
        return (ForwardIndex.from_vectors(SparseBatch.concat(vectors), quantization, scale),
                pa.concat_tables(tables))

    def segments(self, quantization: str, scale: float) -> list[tuple[Segment, np.ndarray | None]]:
        """In-memory segments of every document the buffer took, each with its dead mask (None: all live); the
        batches that arrived since the last call become one new segment, the others are reused."""
        done = self._chunks[-1][0] if self._chunks else 0
        if done < len(self.batches):
            self._chunks.append((len(self.batches), memory_segment(self.batches[done:], quantization, scale)))
        out, start = [], 0
        for end, seg in self._chunks:
            alive = np.concatenate([b.alive for b in self.batches[start:end]])
            if alive.any():
                out.append((seg, None if alive.all() else ~alive))
            start = end
        return out


_names = itertools.count()


def memory_segment(batches: list[_Batch], quantization: str, scale: float) -> Segment:
    """A searchable in-memory segment of every row of ``batches`` (exact search only: postings, no method arrays);
    named ``mem-N``, N unique in the process."""
    fwd = ForwardIndex.from_vectors(SparseBatch.concat([b.vectors for b in batches]), quantization, scale)
    docs = pa.concat_tables([b.docs for b in batches])
    name = f"mem-{next(_names)}"
    postings = Postings.from_forward(fwd)
    info = SegmentInfo(name, fwd.num_docs, int(fwd.indptr[-1]), scale, files={}, methods=["exact"])
    return Segment(info, {**fwd.arrays(), **postings.arrays()}, DocStore(None, docs),
                   FieldIndex(build_fields(metadata_of(docs))))
