"""Exact search: the safe top-k over all postings, the ground truth every other method is measured against.

Term-at-a-time into a dense float32 score array owned by the thread (no allocation per query). Common terms are
dense rows (index/postings.py): they are added first, chunk by chunk of documents so that the slice of the score
array stays in L1 while every dense query term streams its row over it in vectorized passes. Rare terms then add
their postings one by one. One final pass over the score array feeds the top-k heap and zeroes it again.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from lsr.index import topk
from lsr.index.methods import Method, NoParams, register
from lsr.index.quantize import impact

CHUNK = 4096   # documents per pass of the dense rows: 16 KiB of scores


@nb.njit(cache=True, nogil=True)
def add_dense(dense, dense_row, q_terms, q_weights, scale, acc, lo, hi):
    """acc[lo:hi] += weight * row[lo:hi] for every dense query term, one L1-sized chunk of documents at a time."""
    rows = np.empty(len(q_terms), dtype=np.int64)
    ws = np.empty(len(q_terms), dtype=np.float32)
    nd = 0
    for i in range(len(q_terms)):
        r = dense_row[q_terms[i]]
        if r >= 0:
            rows[nd] = r
            ws[nd] = q_weights[i] * scale
            nd += 1
    for c0 in range(lo, hi, CHUNK):
        c1 = min(hi, c0 + CHUNK)
        part = acc[c0:c1]
        for x in range(nd):
            row = dense[rows[x], c0:c1]   # slices indexed from 0 let LLVM vectorize (no negative-index fix-up)
            w = ws[x]
            for d in range(len(part)):
                part[d] += w * impact(row[d])


@nb.njit(cache=True, nogil=True)
def exact_one(post_indptr, post_docs, post_values, dense_row, dense, q_terms, q_weights, scale, acc, hs, hd,
              out_scores, out_docs):
    k = len(out_scores)
    add_dense(dense, dense_row, q_terms, q_weights, scale, acc, 0, len(acc))
    for i in range(len(q_terms)):
        t = q_terms[i]
        w = np.float32(q_weights[i] * scale)
        docs = post_docs[post_indptr[t]:post_indptr[t + 1]]
        values = post_values[post_indptr[t]:post_indptr[t + 1]]
        for j in range(len(docs)):
            acc[docs[j]] += w * impact(values[j])
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
def exact_batch(post_indptr, post_docs, post_values, dense_row, dense, q_indptr, q_terms, q_weights, scale, acc, hs,
                hd, out_scores, out_docs):
    for r in range(len(q_indptr) - 1):
        lo, hi = q_indptr[r], q_indptr[r + 1]
        exact_one(post_indptr, post_docs, post_values, dense_row, dense, q_terms[lo:hi], q_weights[lo:hi], scale,
                  acc, hs, hd, out_scores[r], out_docs[r])


class Scratch:
    """A zeroed score array for one segment and a heap, reused by every query of one thread."""

    def __init__(self, seg):
        self.acc = np.zeros(seg.num_docs, dtype=np.float32)
        self.heap = topk.Heap()


def search(seg, q_indptr, q_terms, q_weights, k, scratch: Scratch, out_scores, out_docs, params: NoParams) -> None:
    hs, hd = scratch.heap.arrays(k)
    exact_batch(seg["post_indptr"], seg["post_docs"], seg["post_values"], seg["dense_row"], seg["dense"], q_indptr,
                q_terms, q_weights, np.float32(seg.scale), scratch.acc, hs, hd, out_scores, out_docs)


register(Method("exact", search=search, scratch=Scratch))
