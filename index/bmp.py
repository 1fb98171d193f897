"""Block-Max Pruning (Mallia, Suel, Tonellotto, SIGIR 2024): exact (alpha = 1) or approximate top-k over blocks.

Documents (reordered so that neighbours are similar) form blocks of ``block_size`` consecutive numbers. For every
term the build stores the blocks it occurs in, the largest impact in each (uint8 levels, rounded up so bounds stay
safe) and where the block's postings start in the term's doc-ordered list. A query sums ``weight * block max`` into
one upper bound per block, visits blocks from the highest bound down, scores a block exactly from the postings, and
stops when ``alpha * bound`` falls below the k-th score. ``alpha = 1`` is safe; smaller values stop sooner.
``beta`` keeps only the ceil(beta * m) heaviest query terms. The starting threshold comes from each term's 10th,
100th and 1000th largest impact (k documents score at least ``weight * kth impact``), as in the paper.

Arrays per segment (``bmp.*``). A term present in at least half the blocks is dense: row ``dense_row[t]`` of
``dense`` (rows x n_blocks uint8 maxima, 0 = absent) and of ``dense_off`` (rows x n_blocks + 1 int32, where each
block's postings start within the term's list), so its bound adds up as one vectorized row and a block finds its
postings in O(1); at that density this takes no more room than a list. Other terms are sparse: ``term_ptr`` (V + 1)
int64 into ``blocks`` int32 (ascending) / ``offsets`` int32 / ``maxes`` uint8, found by binary search.
``kth`` (V, 3) impacts; ``unit`` (1,) float32: one maxima level in stored-impact units; ``block_size`` (1,) int64.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from index import topk
from index.methods import Method, register
from index.quantize import dequantize, impact

KTH = np.array([10, 100, 1000], dtype=np.int64)
DENSE_FRACTION = 2      # a term present in >= n_blocks / 2 blocks is stored densely
BUCKETS = 1024          # bound buckets for the best-first block order (a counting sort, no full sort per query)


@nb.njit(cache=True, nogil=True)
def _count_blocks(post_indptr, post_docs, block_size):
    vocab = len(post_indptr) - 1
    counts = np.zeros(vocab, dtype=np.int64)
    for t in range(vocab):
        last = -1
        for j in range(post_indptr[t], post_indptr[t + 1]):
            b = post_docs[j] // block_size
            if b != last:
                counts[t] += 1
                last = b
    return counts


@nb.njit(cache=True, nogil=True)
def _level(v, unit):
    return max(1, min(255, int(math.ceil(v / unit))))


@nb.njit(cache=True, nogil=True)
def _fill_sparse(post_indptr, post_docs, post_values, block_size, unit, dense_row, term_ptr, blocks, offsets, maxes):
    for t in range(len(post_indptr) - 1):
        if dense_row[t] >= 0:
            continue
        e = term_ptr[t] - 1
        last = -1
        start = post_indptr[t]
        for j in range(start, post_indptr[t + 1]):
            b = post_docs[j] // block_size
            if b != last:
                e += 1
                blocks[e] = b
                offsets[e] = j - start
                maxes[e] = 0
                last = b
            maxes[e] = max(maxes[e], _level(impact(post_values[j]), unit))


@nb.njit(cache=True, nogil=True)
def _fill_dense(post_indptr, post_docs, post_values, block_size, unit, dense_terms, dense, dense_off):
    n_blocks = dense.shape[1]
    for r in range(len(dense_terms)):
        t = dense_terms[r]
        start = post_indptr[t]
        j = start
        for b in range(n_blocks):
            dense_off[r, b] = j - start
            while j < post_indptr[t + 1] and post_docs[j] // block_size == b:
                dense[r, b] = max(dense[r, b], _level(impact(post_values[j]), unit))
                j += 1
        dense_off[r, n_blocks] = j - start


@nb.njit(cache=True, nogil=True)
def _kth_impacts(post_indptr, post_values, kth_ranks, out):
    for t in range(len(post_indptr) - 1):
        lo, hi = post_indptr[t], post_indptr[t + 1]
        if hi - lo >= kth_ranks[0]:
            values = np.sort(post_values[lo:hi])[::-1]
            for r in range(len(kth_ranks)):
                if hi - lo >= kth_ranks[r]:
                    out[t, r] = values[kth_ranks[r] - 1]


def build(fwd, postings, params) -> dict[str, np.ndarray]:
    bs = int(params["block_size"])
    n_blocks = -(-fwd.num_docs // bs)
    if postings.values.dtype == np.uint8:
        unit = 1.0                            # maxima are the stored levels themselves
    else:                                     # a hair above max / 255, so that no rounded-up level exceeds 255
        unit = float(dequantize(postings.term_max, 1.0).max()) / 255 * (1 + 1e-6) or 1.0
    counts = _count_blocks(postings.indptr, postings.docs, bs)
    dense_terms = np.nonzero(counts * DENSE_FRACTION >= n_blocks)[0]
    dense_row = np.full(len(counts), -1, dtype=np.int32)
    dense_row[dense_terms] = np.arange(len(dense_terms), dtype=np.int32)
    counts[dense_terms] = 0
    term_ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=term_ptr[1:])
    blocks = np.empty(term_ptr[-1], dtype=np.int32)
    offsets = np.empty(term_ptr[-1], dtype=np.int32)
    maxes = np.empty(term_ptr[-1], dtype=np.uint8)
    unit32 = np.float32(unit)
    _fill_sparse(postings.indptr, postings.docs, postings.values, bs, unit32, dense_row, term_ptr, blocks, offsets,
                 maxes)
    dense = np.zeros((len(dense_terms), n_blocks), dtype=np.uint8)
    dense_off = np.zeros((len(dense_terms), n_blocks + 1), dtype=np.int32)
    _fill_dense(postings.indptr, postings.docs, postings.values, bs, unit32, dense_terms, dense, dense_off)
    kth = np.zeros((len(counts), len(KTH)), dtype=postings.values.dtype)
    _kth_impacts(postings.indptr, postings.values, KTH, kth)
    return {"term_ptr": term_ptr, "blocks": blocks, "offsets": offsets, "maxes": maxes, "dense_row": dense_row,
            "dense": dense, "dense_off": dense_off, "kth": kth, "unit": np.array([unit], dtype=np.float32),
            "block_size": np.array([bs], dtype=np.int64)}


@nb.njit(cache=True, nogil=True)
def _find(blocks, lo, hi, b):
    """Index of block b in the ascending blocks[lo:hi], or -1 (branch-free halving: no mispredicted jumps)."""
    n = hi - lo
    if n <= 0:
        return -1
    base = lo
    while n > 1:
        half = n >> 1
        base = base + half if blocks[base + half] <= b else base
        n -= half
    return base if blocks[base] == b else -1


@nb.njit(cache=True, nogil=True)
def bmp_one(post_indptr, post_docs, post_values, term_ptr, blocks, offsets, maxes, dense_row, dense, dense_off, kth,
            unit, block_size, n_docs, q_terms, q_weights, scale, alpha, beta, ub, local, bucket_count, bucket_start,
            order, hs, hd, out_scores, out_docs):
    k = len(out_scores)
    m = len(q_terms)
    n_blocks = len(ub)
    keep = m if beta >= 1.0 else min(m, int(math.ceil(beta * m)))
    if keep < m:   # the heaviest terms, kept in id order
        chosen = np.sort(np.argsort(-q_weights)[:keep])
        terms, weights = q_terms[chosen], q_weights[chosen]
    else:
        terms, weights = q_terms, q_weights
    wq = np.empty(keep, dtype=np.float32)
    theta0 = np.float32(0.0)
    rank = -1
    for r in range(len(KTH)):
        if KTH[r] >= k:
            rank = r
            break
    ub[:] = 0.0
    for i in range(keep):
        t = terms[i]
        wq[i] = weights[i] * scale
        if rank >= 0:
            theta0 = max(theta0, wq[i] * impact(kth[t, rank]))
        wb = wq[i] * unit
        row = dense_row[t]
        if row >= 0:
            drow = dense[row]
            for b in range(n_blocks):
                ub[b] += wb * np.float32(drow[b])
        else:
            for e in range(term_ptr[t], term_ptr[t + 1]):
                ub[blocks[e]] += wb * np.float32(maxes[e])
    # best-first order by a counting sort of the bounds above the starting threshold into BUCKETS buckets
    safety = np.float32(1.0 + 1e-5)   # float sums in another order may exceed a bound by an ulp or two
    hi_ub = np.float32(0.0)
    for b in range(n_blocks):
        ub[b] *= safety
        hi_ub = max(hi_ub, ub[b])
    floor = min(theta0 / alpha, hi_ub)
    width = (hi_ub - floor) / (BUCKETS - 1) if hi_ub > floor else np.float32(1.0)
    bucket_count[:] = 0
    for b in range(n_blocks):
        if ub[b] > 0.0 and ub[b] >= floor:
            bucket_count[min(BUCKETS - 1, int((ub[b] - floor) / width))] += 1
    total = 0
    for x in range(BUCKETS - 1, -1, -1):
        bucket_start[x] = total
        total += bucket_count[x]
    for b in range(n_blocks):
        if ub[b] > 0.0 and ub[b] >= floor:
            x = min(BUCKETS - 1, int((ub[b] - floor) / width))
            order[bucket_start[x]] = b
            bucket_start[x] += 1
    size = 0
    thr = theta0
    for c in range(total):
        b = order[c]
        if c > 0 and alpha * ub[b] < thr:   # the best block is always scored, as in the paper's code
            # blocks come bucket by bucket; within a bucket bounds differ by at most one bucket width
            if alpha * (ub[b] + width) < thr:
                break
            continue
        base = b * block_size
        for i in range(keep):
            t = terms[i]
            row = dense_row[t]
            if row >= 0:
                if dense[row, b] == 0:
                    continue
                start = post_indptr[t] + dense_off[row, b]
                end = post_indptr[t] + dense_off[row, b + 1]
            else:
                e = _find(blocks, term_ptr[t], term_ptr[t + 1], b)
                if e < 0:
                    continue
                start = post_indptr[t] + offsets[e]
                end = post_indptr[t] + offsets[e + 1] if e + 1 < term_ptr[t + 1] else post_indptr[t + 1]
            w = wq[i]
            for j in range(start, end):
                local[post_docs[j] - base] += w * impact(post_values[j])
        for x in range(min(block_size, n_docs - base)):
            s = local[x]
            if s > 0.0:
                local[x] = 0.0
                if s >= thr:
                    size = topk.push(hs, hd, size, k, s, base + x)
                    if size == k:
                        thr = max(thr, hs[0])
    topk.drain(hs, hd, size, out_scores, out_docs, 0)


@nb.njit(cache=True, nogil=True)
def bmp_batch(post_indptr, post_docs, post_values, term_ptr, blocks, offsets, maxes, dense_row, dense, dense_off, kth,
              unit, block_size, n_docs, q_indptr, q_terms, q_weights, scale, alpha, beta, ub, local, bucket_count,
              bucket_start, order, hs, hd, out_scores, out_docs):
    for r in range(len(q_indptr) - 1):
        lo, hi = q_indptr[r], q_indptr[r + 1]
        bmp_one(post_indptr, post_docs, post_values, term_ptr, blocks, offsets, maxes, dense_row, dense, dense_off,
                kth, unit, block_size, n_docs, q_terms[lo:hi], q_weights[lo:hi], scale, alpha, beta, ub, local,
                bucket_count, bucket_start, order, hs, hd, out_scores[r], out_docs[r])


class Scratch:
    def __init__(self, seg):
        block_size = int(seg["bmp.block_size"][0])
        n_blocks = -(-seg.num_docs // block_size)
        self.ub = np.zeros(n_blocks, dtype=np.float32)
        self.local = np.zeros(block_size, dtype=np.float32)
        self.bucket_count = np.zeros(BUCKETS, dtype=np.int64)
        self.bucket_start = np.zeros(BUCKETS, dtype=np.int64)
        self.order = np.zeros(n_blocks, dtype=np.int32)
        self.hs = np.zeros(0, dtype=np.float32)
        self.hd = np.zeros(0, dtype=np.int64)
        self.consts = (np.float32(seg["bmp.unit"][0]), block_size, seg.num_docs, np.float32(seg.scale))

    def heap(self, k: int):
        if len(self.hs) != k:
            self.hs = np.zeros(k, dtype=np.float32)
            self.hd = np.zeros(k, dtype=np.int64)
        return self.hs, self.hd


def search(seg, q_indptr, q_terms, q_weights, k, scratch: Scratch, out_scores, out_docs, alpha: float = 1.0,
           beta: float = 1.0) -> None:
    hs, hd = scratch.heap(k)
    unit, block_size, n_docs, scale = scratch.consts
    bmp_batch(seg["post_indptr"], seg["post_docs"], seg["post_values"], seg["bmp.term_ptr"], seg["bmp.blocks"],
              seg["bmp.offsets"], seg["bmp.maxes"], seg["bmp.dense_row"], seg["bmp.dense"], seg["bmp.dense_off"],
              seg["bmp.kth"], unit, block_size, n_docs, q_indptr, q_terms, q_weights, scale, np.float32(alpha),
              np.float32(beta), scratch.ub, scratch.local, scratch.bucket_count, scratch.bucket_start, scratch.order,
              hs, hd, out_scores, out_docs)


def check(params: dict) -> None:
    if "block_size" in params:
        bs = params["block_size"]
        if isinstance(bs, bool) or not isinstance(bs, (int, np.integer)) or not 8 <= bs <= 128:
            raise ValueError(f"bmp block_size must be an integer in 8..128, got {bs!r}")
    if "alpha" in params and not 0.0 < params["alpha"] <= 1.0:
        raise ValueError(f"bmp alpha must be in (0, 1] (1 = safe), got {params['alpha']!r}")
    if "beta" in params and not 0.0 < params["beta"] <= 1.0:
        raise ValueError(f"bmp beta must be in (0, 1] (fraction of query terms kept), got {params['beta']!r}")


register(Method("bmp", search=search, scratch=Scratch, build=build, build_params={"block_size": 32},
                search_params={"alpha": 1.0, "beta": 1.0}, check=check))
