"""Exact search: the safe top-k over all postings, the ground truth every other method is measured against.

Term-at-a-time into a dense float32 score array owned by the thread (no allocation per query). Common terms are
dense rows (index/postings.py): they are added first, chunk by chunk of documents so that the slice of the score
array stays in L1 while every dense query term streams its row over it in vectorized passes. Rare terms then add
their postings one by one. One final pass over the score array feeds the top-k heap and zeroes it again; with a
filter (``allowed``, a bool per document), a disallowed document's sum is zeroed there and never reaches the heap.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from lsr.index import topk
from lsr.index.bundles import Bundle, register
from lsr.index.methods import Method, NoParams, register as register_method
from lsr.index.quantize import impact

CHUNK = 4096   # documents per pass of the dense rows: 16 KiB of scores


class ExactArrays(Bundle):
    """A segment's postings as exact search reads them (index/postings.py); ``scale`` float32."""

    FIELDS = ("post_indptr", "post_docs", "post_values", "dense_row", "dense", "scale")

    @classmethod
    def of_segment(cls, seg) -> "ExactArrays":
        return cls.of(post_indptr=seg["post_indptr"], post_docs=seg["post_docs"], post_values=seg["post_values"],
                      dense_row=seg["dense_row"], dense=seg["dense"], scale=np.float32(seg.scale))


class ExactWork(Bundle):
    """One thread's scratch: ``acc`` a zeroed score per document, ``hs``/``hd`` the top-k heap (index/topk.py)."""

    FIELDS = ("acc", "hs", "hd")


@nb.njit(cache=True)
def _new_exact_arrays(*args):
    return ExactArrays(*args)


@nb.njit(cache=True)
def _new_exact_work(*args):
    return ExactWork(*args)


register(ExactArrays, _new_exact_arrays)
register(ExactWork, _new_exact_work)


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
def exact_one(a, work, q_terms, q_weights, allowed, out_scores, out_docs):
    """Top-k of one query (``a`` ExactArrays, ``work`` ExactWork) among the documents ``allowed`` (bool per
    document; empty: all)."""
    post_indptr, post_docs, post_values, scale = a.post_indptr, a.post_docs, a.post_values, a.scale
    acc, hs, hd = work.acc, work.hs, work.hd
    k = len(out_scores)
    filtered = len(allowed) > 0
    add_dense(a.dense, a.dense_row, q_terms, q_weights, scale, acc, 0, len(acc))
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
            if s > thr and (not filtered or allowed[d]):   # docs come in increasing order: a tie never displaces
                size = topk.push(hs, hd, size, k, s, d)     # the heap's root
                if size == k:
                    thr = hs[0]
    topk.drain(hs, hd, size, out_scores, out_docs, 0)


@nb.njit(cache=True, nogil=True)
def exact_batch(a, work, q_indptr, q_terms, q_weights, allowed, out_scores, out_docs):
    for r in range(len(q_indptr) - 1):
        lo, hi = q_indptr[r], q_indptr[r + 1]
        exact_one(a, work, q_terms[lo:hi], q_weights[lo:hi], allowed, out_scores[r], out_docs[r])


class Scratch:
    """The segment's arrays, a zeroed score array and a heap, reused by every query of one thread."""

    def __init__(self, seg):
        self.arrays = ExactArrays.of_segment(seg)
        self.acc = np.zeros(seg.num_docs, dtype=np.float32)
        self.heap = topk.Heap()
        self._work: tuple[int, ExactWork] | None = None

    def work(self, k: int) -> ExactWork:
        """The scratch bundle with a heap of k entries (made again only when k changes)."""
        if self._work is None or self._work[0] != k:
            hs, hd = self.heap.arrays(k)
            self._work = k, ExactWork.of(acc=self.acc, hs=hs, hd=hd)
        return self._work[1]


def search(seg, q_indptr, q_terms, q_weights, k, scratch: Scratch, out_scores, out_docs, params: NoParams,
           allowed) -> None:
    exact_batch(scratch.arrays, scratch.work(k), q_indptr, q_terms, q_weights, allowed.mask, out_scores, out_docs)


register_method(Method("exact", search=search, scratch=Scratch))
