"""Toy SPLADE-like vectors and scipy's exact scores: the ground truth of the index tests."""

from __future__ import annotations

import numpy as np

from lsr.core.sparse import SparseBatch

VOCAB = 400


def random_batch(n: int, terms: int, seed: int, vocab: int = VOCAB) -> SparseBatch:
    """SPLADE-like toy vectors: Zipf-ish term popularity, topical clusters, log-normal weights."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, vocab + 1) ** 0.8
    rows = []
    for i in range(n):
        topic = rng.integers(0, 8)
        p = popularity * (1 + 4 * ((np.arange(vocab) % 8) == topic))
        ids = np.unique(rng.choice(vocab, size=rng.integers(terms // 2, terms), replace=False, p=p / p.sum()))
        rows.append((ids, rng.lognormal(-0.5, 0.6, len(ids)).astype(np.float32)))
    return SparseBatch.from_rows(rows, vocab)


def scipy_scores(docs: SparseBatch, queries: SparseBatch) -> np.ndarray:
    return np.asarray((queries.to_scipy() @ docs.to_scipy().T).todense(), dtype=np.float64)
