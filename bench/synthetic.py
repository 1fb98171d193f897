"""Synthetic document vectors with a real corpus's statistics, to see how the index scales past the real corpora.

Document i mixes two random real documents A and B with background terms:
  length   a random real document's length;
  terms    each of A's terms with probability 0.6, each of B's with 0.3 (topical co-occurrence survives, so
           blocks of similar documents still exist), and background postings: uniform random real postings, so a
           background term comes with probability proportional to its document frequency (the Zipf curve) and
           its weight from that term's own real weights;
  weights  the source weight times a log-normal jitter (sigma 0.1): no two documents are copies;
and the heaviest ``length`` terms are kept. ``describe`` prints length, document-frequency and weight statistics
of both sets side by side. Queries stay real. Generation runs in parallel (Numba), about a second per 100,000
documents.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from lsr.index.clustering import splitmix64
from lsr.core.sparse import SparseBatch

KEEP_A, KEEP_B, JITTER = 0.6, 0.3, 0.1


@njit(cache=True, nogil=True, inline="always")
def _uniform(state):
    state, r = splitmix64(state)
    return state, (r >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, parallel=True)
def _generate(n, seed, indptr, indices, values, vocab_size, out_indptr, out_indices, out_values, out_lengths):
    """Fills each document's slot (capacity = its target length) and records how much of it was used."""
    n_real = len(indptr) - 1
    nnz = len(indices)
    n_chunks = 64
    for c in prange(n_chunks):
        stamp = np.full(vocab_size, -1, dtype=np.int64)
        best = np.zeros(vocab_size, dtype=np.float32)
        terms = np.empty(vocab_size, dtype=np.int32)
        for i in range(c, n, n_chunks):
            state = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(i)
            target = out_indptr[i + 1] - out_indptr[i]
            m = 0
            for source in range(2):
                keep = KEEP_A if source == 0 else KEEP_B
                state, u = _uniform(state)
                d = min(n_real - 1, int(u * n_real))
                for j in range(indptr[d], indptr[d + 1]):
                    state, u = _uniform(state)
                    if u >= keep:
                        continue
                    state, u1 = _uniform(state)
                    state, u2 = _uniform(state)
                    w = values[j] * np.float32(np.exp(JITTER * np.sqrt(-2.0 * np.log(u1 + 1e-300))
                                                      * np.cos(2.0 * np.pi * u2)))
                    t = indices[j]
                    if stamp[t] != i:
                        stamp[t] = i
                        best[t] = w
                        terms[m] = t
                        m += 1
                    elif w > best[t]:
                        best[t] = w
            tries = 0
            while m < target and tries < 4 * target:
                tries += 1
                state, u = _uniform(state)
                j = min(nnz - 1, int(u * nnz))
                t = indices[j]
                if stamp[t] != i:
                    stamp[t] = i
                    best[t] = values[j]
                    terms[m] = t
                    m += 1
            w = np.empty(m, dtype=np.float32)
            for x in range(m):
                w[x] = best[terms[x]]
            keep_n = min(m, target)
            chosen = np.sort(terms[np.argsort(-w, kind="mergesort")[:keep_n]])
            lo = out_indptr[i]
            for x in range(keep_n):
                out_indices[lo + x] = chosen[x]
                out_values[lo + x] = best[chosen[x]]
            out_lengths[i] = keep_n


def generate(like: SparseBatch, n: int, seed: int = 0) -> SparseBatch:
    """``n`` synthetic documents with the statistics of ``like`` (see the module docstring)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(like) == 0 or like.nnz == 0:
        raise ValueError("the source corpus has no postings to imitate")
    rng = np.random.default_rng(seed)
    lengths = np.diff(like.indptr)[rng.integers(0, len(like), n)]
    slots = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=slots[1:])
    indices = np.empty(slots[-1], dtype=np.int32)
    values = np.empty(slots[-1], dtype=np.float32)
    used = np.zeros(n, dtype=np.int64)
    _generate(n, seed, like.indptr, like.indices, like.values, like.vocab_size, slots, indices, values, used)
    # compact: every document used a prefix of its slot
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(used, out=offsets[1:])
    mask = np.arange(slots[-1]) - np.repeat(slots[:-1], lengths) < np.repeat(used, lengths)
    return SparseBatch(offsets, indices[mask], values[mask], like.vocab_size)


def describe(batch: SparseBatch) -> dict:
    """Length, document-frequency (Zipf) and weight statistics, to compare a synthetic set with its source."""
    lengths = np.diff(batch.indptr)
    df = np.sort(np.bincount(batch.indices, minlength=batch.vocab_size))[::-1]
    share = np.cumsum(df) / max(df.sum(), 1)
    return {"docs": len(batch), "terms_per_doc_mean": round(float(lengths.mean()), 1),
            "terms_per_doc_p10_p50_p90": np.percentile(lengths, [10, 50, 90]).round(1).tolist(),
            "distinct_terms": int(np.count_nonzero(df)),
            "postings_share_of_top_100_1000_terms": [round(float(share[99]), 3), round(float(share[999]), 3)],
            "weight_p10_p50_p90_p99": np.percentile(batch.values, [10, 50, 90, 99]).round(3).tolist()}
