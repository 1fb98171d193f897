"""Top-k selection inside Numba kernels: a bounded min-heap over (score, doc) with a total order.

Higher score wins; among equal scores the lower doc number wins, so every method returns the same order for ties.
The heap lives in two caller-owned arrays (no allocation per query); its root is the current k-th best, the
threshold a candidate must beat.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True, inline="always")
def worse(s1, d1, s2, d2) -> bool:
    return s1 < s2 or (s1 == s2 and d1 > d2)


@nb.njit(cache=True, nogil=True)
def _sift_down(hs, hd, size, i):
    s, d = hs[i], hd[i]
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and worse(hs[c + 1], hd[c + 1], hs[c], hd[c]):
            c += 1
        if not worse(hs[c], hd[c], s, d):
            break
        hs[i], hd[i] = hs[c], hd[c]
        i = c
    hs[i], hd[i] = s, d


@nb.njit(cache=True, nogil=True)
def push(hs, hd, size, k, s, d) -> int:
    """Offers (s, d) to a heap of ``size`` entries and capacity k; returns the new size."""
    if size < k:
        i = size
        while i > 0:
            p = (i - 1) >> 1
            if not worse(s, d, hs[p], hd[p]):
                break
            hs[i], hd[i] = hs[p], hd[p]
            i = p
        hs[i], hd[i] = s, d
        return size + 1
    if worse(hs[0], hd[0], s, d):
        hs[0], hd[0] = s, d
        _sift_down(hs, hd, size, 0)
    return size


@nb.njit(cache=True, nogil=True)
def threshold(hs, size, k) -> float:
    """The score a new entry must beat (or tie with a lower doc): the k-th best so far, 0 until the heap is full."""
    return hs[0] if size >= k else np.float32(0.0)


@nb.njit(cache=True, nogil=True)
def drain(hs, hd, size, out_scores, out_docs, doc_offset):
    """Writes the heap best-first into out_* (length k), pads with (0, -1), and empties the heap."""
    k = len(out_scores)
    for i in range(size, k):
        out_scores[i] = 0.0
        out_docs[i] = -1
    n = size
    while n > 0:
        out_scores[n - 1] = hs[0]
        out_docs[n - 1] = hd[0] + doc_offset
        n -= 1
        hs[0], hd[0] = hs[n], hd[n]
        _sift_down(hs, hd, n, 0)


class Heap:
    """A thread's heap arrays, reused across queries and reallocated only when k changes."""

    def __init__(self) -> None:
        self.scores = np.zeros(0, dtype=np.float32)
        self.docs = np.zeros(0, dtype=np.int64)

    def arrays(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.scores) != k:
            self.scores = np.zeros(k, dtype=np.float32)
            self.docs = np.zeros(k, dtype=np.int64)
        return self.scores, self.docs
