"""The writer's recent documents: acknowledged (in the write-ahead log) but not yet in a segment on disk.

Kept as float32 rows by id, in arrival order, so a replacement or a delete simply drops the row. ``memory_segment``
makes a searchable in-memory segment of buffers (quantized with the index's scale, postings only: searched exactly),
and ``forward()`` the quantized documents a flush writes as a new segment. Not thread-safe: the writer serializes
access.
"""

from __future__ import annotations

import numpy as np

from index.docstore import DocStore, doc_table
from index.forward import ForwardIndex
from index.manifest import SegmentInfo
from index.postings import Postings
from index.segment import Segment
from lsr.corpus import Document
from lsr.sparse import SparseBatch


class Buffer:
    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self.rows: dict[str, tuple[np.ndarray, np.ndarray, Document | None]] = {}
        self.nnz = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self.rows

    def put(self, ids: list[str], vectors: SparseBatch, docs: list[Document | None] | None) -> None:
        for i, doc_id in enumerate(ids):
            self.remove(doc_id)
            terms, weights = vectors.row(i)
            self.rows[doc_id] = (terms, weights, docs[i] if docs is not None else None)
            self.nnz += len(terms)

    def remove(self, doc_id: str) -> bool:
        row = self.rows.pop(doc_id, None)
        if row is not None:
            self.nnz -= len(row[0])
        return row is not None

    def clear(self) -> None:
        self.rows.clear()
        self.nnz = 0

    def forward(self, quantization: str, scale: float) -> tuple[ForwardIndex, list[str], list[Document | None]]:
        """The documents quantized with the index's scale, their ids and stored texts, in arrival order."""
        return _forward([self], quantization, scale)


def _forward(buffers: list[Buffer], quantization: str, scale: float):
    ids = [doc_id for b in buffers for doc_id in b.rows]
    rows = [row for b in buffers for row in b.rows.values()]
    vectors = SparseBatch.from_rows([(t, w) for t, w, _ in rows], buffers[0].vocab_size)
    return ForwardIndex.from_vectors(vectors, quantization, scale), ids, [d for _, _, d in rows]


def memory_segment(buffers: list[Buffer], name: str, quantization: str, scale: float) -> Segment:
    """A searchable in-memory segment of the buffers' documents (exact search only: postings, no method arrays)."""
    fwd, ids, docs = _forward(buffers, quantization, scale)
    postings = Postings.from_forward(fwd)
    info = SegmentInfo(name, fwd.num_docs, int(fwd.indptr[-1]), scale, files={}, methods=["exact"])
    return Segment(info, {**fwd.arrays(), **postings.arrays()}, DocStore(None, doc_table(ids, docs)))
