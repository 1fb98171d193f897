"""The documents of one segment a search may return (a filter's, less the deleted), and the direct path for few.

Every method's kernel takes the set as a bool per document (``Allowed.mask``; empty when every document is allowed,
so an unfiltered search pays nothing) and never lets a disallowed document into its heap. Deletes are part of the
set, so no method over-fetches to drop deleted hits afterwards.

When few documents are allowed (below ``DIRECT_SHARE`` of the segment, a threshold measured with ``lsr bench
filter``, BENCHMARKS.md), any method switches to the direct path: each allowed document is scored through the forward
index (its terms against the query's weights). That is exact whatever the method, and cheaper than traversing
postings whose documents are mostly disallowed.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
from numba import njit

from lsr.index import topk
from lsr.index.forward import ForwardArrays, dot
from lsr.index.prefetch import prefetch

DIRECT_SHARE = 0.05   # measured: see BENCHMARKS.md, "Filtered search"
_EVERY = np.zeros(0, dtype=bool)


class Allowed:
    """The allowed documents of one segment of ``n_docs``: ``mask`` (bool per document; empty: all) and ``count``.
    Values derived from it for a method (e.g. BMP's blocks holding an allowed document) are made once, on demand."""

    def __init__(self, n_docs: int, mask: np.ndarray | None = None):
        self.n_docs = n_docs
        self.mask = _EVERY if mask is None else mask
        self.count = n_docs if mask is None else int(np.count_nonzero(mask))
        self._derived: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def every(self) -> bool:
        return len(self.mask) == 0

    @property
    def share(self) -> float:
        """The allowed share of the segment (1.0 when every document is)."""
        return self.count / self.n_docs if self.n_docs else 1.0

    @property
    def disallowed(self) -> int:
        return self.n_docs - self.count

    def derived(self, key: str, make: Callable[[np.ndarray], Any]) -> Any:
        """``make(mask)``, computed once per set (sets are shared by the threads of a batch)."""
        value = self._derived.get(key)
        if value is None:
            with self._lock:
                value = self._derived.get(key)
                if value is None:
                    value = self._derived[key] = make(self.mask)
        return value

    def listed(self) -> np.ndarray:
        """The allowed document numbers, ascending (int32)."""
        return self.derived("listed", lambda mask: np.flatnonzero(mask).astype(np.int32))

    @property
    def direct(self) -> bool:
        """Whether so few documents are allowed that scoring each through the forward index pays."""
        return not self.every and self.count < DIRECT_SHARE * self.n_docs


@njit(cache=True, nogil=True)
def direct_batch(f, docs, q_indptr, q_terms, q_weights, q_dense, hs, hd, out_scores, out_docs):
    """Top-k of each query among ``docs`` (ascending), each scored through the forward index ``f``
    (ForwardArrays); ``q_dense`` (vocabulary, zeros) is left as found."""
    k = out_scores.shape[1]
    indptr, terms, values, scale = f.indptr, f.terms, f.values, f.scale
    for r in range(len(q_indptr) - 1):
        lo, hi = q_indptr[r], q_indptr[r + 1]
        for i in range(lo, hi):
            q_dense[q_terms[i]] = q_weights[i] * scale   # the products exact search adds: weight x scale x impact
        size = 0
        thr = np.float32(0.0)
        for p in range(len(docs)):
            if p + 2 < len(docs):
                prefetch(indptr, docs[p + 2])
            if p + 1 < len(docs):
                nxt = indptr[docs[p + 1]]
                prefetch(terms, nxt)
                prefetch(values, nxt)
            d = docs[p]
            s = dot(indptr[d], indptr[d + 1], terms, values, q_dense)
            if s > thr:   # documents come in increasing order: a tie never displaces the heap's root
                size = topk.push(hs, hd, size, k, s, d)
                if size == k:
                    thr = hs[0]
        for i in range(lo, hi):
            q_dense[q_terms[i]] = 0.0
        topk.drain(hs, hd, size, out_scores[r], out_docs[r], 0)


class DirectScratch:
    """One thread's working memory for the direct path on one segment."""

    name = "direct"   # as a Segment.scratch key

    def __init__(self, seg):
        self.forward = ForwardArrays.of_segment(seg)
        self.q_dense = np.zeros(len(seg["post_indptr"]) - 1, dtype=np.float32)
        self.heap = topk.Heap()

    @classmethod
    def scratch(cls, seg) -> "DirectScratch":
        return cls(seg)


def search_direct(seg, allowed: Allowed, q_indptr, q_terms, q_weights, out_scores, out_docs) -> None:
    """The direct path: out_* (k columns) get each query's top-k among the allowed documents, exactly."""
    s = seg.scratch(DirectScratch)
    hs, hd = s.heap.arrays(out_scores.shape[1])
    direct_batch(s.forward, allowed.listed(), q_indptr, q_terms, q_weights, s.q_dense, hs, hd, out_scores, out_docs)
