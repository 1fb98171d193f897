"""Hybrid search: a BM25 ranking beside the SPLADE one, fused the way the offline evaluation fuses them
(``lsr.retrieval.fusion``: reciprocal rank fusion or a normalised linear combination).

The BM25 side is live: it ranks the documents of the very snapshot the SPLADE side searched, with that snapshot's
statistics (live documents, their document frequencies and mean length), so it follows every write (additions,
replacements, deletes, from the writer's buffer as from committed segments) and equals BM25 fitted from scratch
(``lsr.retrieval.bm25.BM25.fit``) on the same documents. What it keeps per segment is the analysed stored text
(title and text, as the evaluation analyses a corpus): term counts as a sparse matrix (documents x terms, CSC) and
document lengths, computed the first time a segment is searched: segments are immutable (the writer's in-memory
ones too: each holds the documents that arrived between two snapshots), so each document is analysed once per
segment it lands in, and deletes are the snapshot's masks. The
weights are computed at query time for the query's terms only: ``idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))``.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from lsr.index.snapshot import Snapshot
from lsr.retrieval.analyzer import Analyzer
from lsr.retrieval.bm25 import lucene_length
from lsr.service.models import Hybrid

Ranking = list[tuple[str, float]]


@dataclass
class _Counts:
    tf: sp.csc_matrix        # documents x terms known when analysed
    lengths: np.ndarray      # analysed tokens per document (Lucene's one-byte norm applied when scoring)


@dataclass
class _Stats:
    n: int
    avgdl: float
    live: list[np.ndarray]   # per segment: bool per document


class LiveBm25:
    def __init__(self, k1: float = 0.9, b: float = 0.4, analyzer: Analyzer | None = None, lucene_norms: bool = True):
        self.k1, self.b, self.lucene_norms = k1, b, lucene_norms
        self.analyzer = analyzer or Analyzer()
        self._terms: dict[str, int] = {}
        self._segments: dict[str, _Counts] = {}   # by segment name (in-memory ones too: each name is one content)
        self._stats: weakref.WeakKeyDictionary[Snapshot, tuple[list[_Counts], _Stats]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _analyse(self, text: str) -> tuple[np.ndarray, np.ndarray, int]:
        tokens = self.analyzer(text)
        counts = Counter(tokens)
        ids = np.fromiter((self._terms.setdefault(t, len(self._terms)) for t in counts), np.int64, len(counts))
        return ids, np.fromiter(counts.values(), np.float64, len(counts)), len(tokens)

    def _counts(self, seg) -> _Counts:
        if seg.name in self._segments:
            return self._segments[seg.name]
        table = seg.docs.table
        rows = [self._analyse(f"{t or ''} {x or ''}".strip()) for t, x in zip(table.column("title").to_pylist(),
                                                                              table.column("text").to_pylist())]
        lengths = np.array([r[0].size for r in rows], np.int64)
        tf = sp.csr_matrix((np.concatenate([r[1] for r in rows]) if rows else np.zeros(0),
                            np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int64),
                            np.concatenate([[0], np.cumsum(lengths)])), shape=(len(rows), len(self._terms)))
        counts = self._segments[seg.name] = _Counts(tf.tocsc(), np.array([r[2] for r in rows], np.int64))
        return counts

    def _of(self, snap: Snapshot) -> tuple[list[_Counts], _Stats]:
        with self._lock:
            found = self._stats.get(snap)
            if found is None:
                counts = [self._counts(seg) for seg in snap.segments]
                live = [np.ones(seg.num_docs, bool) if d is None else ~d for seg, d in zip(snap.segments, snap.dead)]
                n = int(sum(m.sum() for m in live))
                total = sum(int(c.lengths[m].sum()) for c, m in zip(counts, live))
                found = counts, _Stats(n, total / n if n else 0.0, live)
                self._stats[snap] = found
                names = {seg.name for seg in snap.segments}
                for name in [n for n in self._segments if n not in names]:   # merged away
                    del self._segments[name]
            return found

    def ranking(self, snap: Snapshot, text: str, depth: int) -> Ranking:
        """The top ``depth`` live documents of ``snap`` for the query text: (id, BM25 score), best first (ties: the
        snapshot's document order)."""
        counts, stats = self._of(snap)
        terms = sorted({self._terms[t] for t in self.analyzer(text) if t in self._terms})
        if not terms or not stats.n:
            return []
        parts = []   # per segment and query term: (global numbers, float32 weights); df over all live documents
        df = np.zeros(len(terms), np.int64)
        for s, (c, live) in enumerate(zip(counts, stats.live)):
            for j, t in enumerate(terms):
                if t >= c.tf.shape[1]:
                    continue
                lo, hi = c.tf.indptr[t], c.tf.indptr[t + 1]
                docs, tf = c.tf.indices[lo:hi], c.tf.data[lo:hi]
                keep = live[docs]
                df[j] += int(keep.sum())
                parts.append((s, j, docs[keep], tf[keep]))
        idf = np.log1p((stats.n - df + 0.5) / (df + 0.5))
        numbers, weights = [], []
        for s, j, docs, tf in parts:
            dl = counts[s].lengths[docs]
            dl = lucene_length(dl) if self.lucene_norms else dl
            norm = self.k1 * (1 - self.b + self.b * dl / max(stats.avgdl, 1e-9))
            w = (idf[j] * tf / (tf + norm)).astype(np.float32)   # as BM25 stores a document's weights
            numbers.append(snap.offsets[s] + docs)
            weights.append(w)
        if not numbers:
            return []
        number = np.concatenate(numbers)
        weight = np.concatenate(weights)
        unique, inverse = np.unique(number, return_inverse=True)
        total = np.zeros(len(unique), np.float32)
        np.add.at(total, inverse, weight)
        order = np.lexsort((unique, -total))[:depth]
        return [(snap.doc_id(int(unique[i])), float(total[i])) for i in order if total[i] > 0]


def fuse(splade: Ranking, bm25: Ranking, h: Hybrid, k: int) -> Ranking:
    """The top ``k`` of the two rankings fused; SPLADE weighs ``h.weight``, BM25 ``1 - h.weight``."""
    from lsr.retrieval.fusion import FUSIONS, fuse as fuse_rankings

    if h.fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {h.fusion!r}; choose one of {list(FUSIONS)}")
    params = {"rrf_k": h.rrf_k} if h.fusion == "rrf" else {}
    return fuse_rankings([splade, bm25], h.fusion, weights=[h.weight, 1 - h.weight], k=k, **params)
