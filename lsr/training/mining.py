"""Hard negatives: the documents a retriever ranks high for a query that are not judged relevant to it.

The retrievers are the project's own: BM25 vectors (``lsr.retrieval.bm25``) or the model being trained, both
searched exactly through ``lsr.index``, so a negative is what our engine would really have returned.
"""

from __future__ import annotations

import tempfile
from typing import Sequence

import numpy as np

from lsr.core.sparse import SparseBatch


def search(docs: SparseBatch, queries: SparseBatch, depth: int) -> np.ndarray:
    """(queries, depth) document rows, best first, -1 where fewer documents scored; exact search in an index."""
    from lsr.index import Index

    with tempfile.TemporaryDirectory(prefix="lsr-train-mine-") as tmp:
        ids = [str(i) for i in range(len(docs))]
        index = Index.build(tmp, docs, ids, quantization="float32", reorder=False, methods=("exact",),
                            overwrite=True)
        try:
            res = index.search(queries, k=min(depth, len(docs)), method="exact")
            row_of = index.doc_ids.astype(np.int64)   # internal number -> row of the table (the id given)
            rows = np.full((len(queries), depth), -1, np.int64)
            rows[:, :res.docs.shape[1]] = np.where(res.docs >= 0, row_of[np.maximum(res.docs, 0)], -1)
        finally:
            index.close()
    return rows


class BM25Miner:
    """BM25 fitted once on the document table; ranks any queries against it."""

    def __init__(self, doc_texts: Sequence[str]):
        from lsr.retrieval.bm25 import BM25

        self.model, self.docs = BM25.fit(doc_texts)

    def rank(self, query_texts: Sequence[str], depth: int) -> np.ndarray:
        return search(self.docs, self.model.encode_queries(query_texts), depth)
