"""The dev split's evaluation: what chooses the checkpoint (and, across runs, the hyperparameters).

Encoding the whole corpus at every evaluation would cost more than training on a CPU, so the dev queries search a
pool: their judged documents plus BM25's top ``depth`` for each (the documents a first stage would offer, the
hardest distractors), mixed together so that every dev query also competes against the others' candidates. The
pool and the measure (nDCG@10, exact search in our index) stay fixed for a run; BM25 is scored on the same pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from lsr.core.sparse import SparseBatch
from lsr.eval.metrics import evaluate_run
from lsr.training.data import TrainingData
from lsr.training.mining import BM25Miner, search

MEASURE = "nDCG@10"


@dataclass
class DevResult:
    ndcg10: float
    doc_nnz: float     # mean non-zeros of the pool's document vectors
    query_nnz: float

    def as_dict(self) -> dict:
        return {MEASURE: round(self.ndcg10, 5), "doc_nnz": round(self.doc_nnz, 1), "query_nnz": round(self.query_nnz, 1)}


class DevSet:
    def __init__(self, dev: TrainingData, bm25: BM25Miner, depth: int):
        self.data = dev
        ranked = bm25.rank(dev.query_texts, depth)
        self.pool = np.unique(np.concatenate([ranked[ranked >= 0]] + list(dev.positives)))
        self.qrels = dev.relevance()
        self.bm25 = self._score(bm25.docs.take(self.pool), bm25.model.encode_queries(dev.query_texts))

    @property
    def texts(self) -> list[str]:
        return [self.data.doc_texts[i] for i in self.pool]

    def _score(self, docs: SparseBatch, queries: SparseBatch) -> DevResult:
        hits = search(docs, queries, 10)
        run = {q: [(self.data.doc_ids[self.pool[d]], float(-r)) for r, d in enumerate(row) if d >= 0]
               for q, row in zip(self.data.query_ids, hits)}
        metrics, _ = evaluate_run(run, self.qrels, [MEASURE])
        return DevResult(metrics[MEASURE], docs.nnz / max(len(docs), 1), queries.nnz / max(len(queries), 1))

    def evaluate(self, encode_docs: Callable[[list[str]], SparseBatch],
                 encode_queries: Callable[[list[str]], SparseBatch]) -> DevResult:
        """nDCG@10 of the dev queries over the pool with the given encoders (the model being trained)."""
        return self._score(encode_docs(self.texts), encode_queries(self.data.query_texts))
