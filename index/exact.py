"""Exact search: the safe top-k over all postings, the ground truth every other method is measured against.

Term-at-a-time: each query term's doc-ordered postings add ``weight * impact`` into a dense float32 score array owned
by the thread (no allocation per query); one pass over that array then feeds the top-k heap and zeroes it again.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from index import topk
from index.methods import Method, register
from index.quantize import impact


@nb.njit(cache=True, nogil=True)
def exact_one(post_indptr, post_docs, post_values, q_terms, q_weights, scale, acc, hs, hd, out_scores, out_docs):
    k = len(out_scores)
    for i in range(len(q_terms)):
        t = q_terms[i]
        w = np.float32(q_weights[i] * scale)
        for j in range(post_indptr[t], post_indptr[t + 1]):
            acc[post_docs[j]] += w * impact(post_values[j])
    size = 0
    thr = np.float32(0.0)
    for d in range(len(acc)):
        s = acc[d]
        if s != 0.0:
            acc[d] = 0.0
            if s > thr:   # docs come in increasing order, so a tie never displaces the heap's root
                size = topk.push(hs, hd, size, k, s, d)
                if size == k:
                    thr = hs[0]
    topk.drain(hs, hd, size, out_scores, out_docs, 0)


@nb.njit(cache=True, nogil=True)
def exact_batch(post_indptr, post_docs, post_values, q_indptr, q_terms, q_weights, scale, acc, hs, hd, out_scores,
                out_docs):
    for r in range(len(q_indptr) - 1):
        lo, hi = q_indptr[r], q_indptr[r + 1]
        exact_one(post_indptr, post_docs, post_values, q_terms[lo:hi], q_weights[lo:hi], scale, acc, hs, hd,
                  out_scores[r], out_docs[r])


class Scratch:
    """A zeroed score array for one segment and a heap, reused by every query of one thread."""

    def __init__(self, seg):
        self.acc = np.zeros(seg.num_docs, dtype=np.float32)
        self.hs = np.zeros(0, dtype=np.float32)
        self.hd = np.zeros(0, dtype=np.int64)

    def heap(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.hs) != k:
            self.hs = np.zeros(k, dtype=np.float32)
            self.hd = np.zeros(k, dtype=np.int64)
        return self.hs, self.hd


def search(seg, q_indptr, q_terms, q_weights, k, scratch: Scratch, out_scores, out_docs) -> None:
    hs, hd = scratch.heap(k)
    exact_batch(seg["post_indptr"], seg["post_docs"], seg["post_values"], q_indptr, q_terms, q_weights,
                np.float32(seg.scale), scratch.acc, hs, hd, out_scores, out_docs)


register(Method("exact", search=search, scratch=Scratch))
