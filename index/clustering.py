"""Cuts one posting list into blocks of similar documents, cheaply: random centroids and one assignment pass.

Seismic needs blocks whose documents look alike, so that a block's summary (its per-term maxima) stays close to
each member and the summary score predicts the members' scores. Full k-means is too slow for tens of thousands of
lists; as in the Seismic paper, a random sample of the list's own documents serves as centroids and every document
joins the centroid with the largest dot product, computed on the document's ``doc_cut`` heaviest terms only.
Clusters with fewer than ``min_cluster_size`` members are dissolved into the others, so no block is too small
to be worth a summary.

Everything here runs inside the parallel build (``index.seismic``): plain arrays in and out, no allocation that
grows with the vocabulary (the caller passes per-thread scratch).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from index.quantize import impact

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True)
def splitmix64(state: np.uint64) -> tuple:
    """One step of splitmix64: (next state, 64 random bits). Deterministic per seed, whatever thread runs it."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def sample_positions(n: int, count: int, seed: np.uint64) -> np.ndarray:
    """``count`` distinct positions in [0, n), by a partial Fisher-Yates shuffle."""
    perm = np.arange(n, dtype=np.int64)
    state = seed
    for i in range(count):
        state, r = splitmix64(state)
        j = i + np.int64(r % np.uint64(n - i))
        perm[i], perm[j] = perm[j], perm[i]
    return perm[:count].copy()


@njit(cache=True, nogil=True)
def top_terms(fwd_indptr, fwd_terms, fwd_values, doc_cut):
    """Per document, its ``doc_cut`` heaviest (term, weight) pairs as a CSR: what clustering compares."""
    n = len(fwd_indptr) - 1
    indptr = np.zeros(n + 1, dtype=np.int64)
    for d in range(n):
        indptr[d + 1] = indptr[d] + min(doc_cut, fwd_indptr[d + 1] - fwd_indptr[d])
    terms = np.empty(indptr[n], dtype=np.int32)
    weights = np.empty(indptr[n], dtype=np.float32)
    for d in range(n):
        lo, hi = fwd_indptr[d], fwd_indptr[d + 1]
        keep = indptr[d + 1] - indptr[d]
        w = np.empty(hi - lo, dtype=np.float32)
        for j in range(lo, hi):
            w[j - lo] = impact(fwd_values[j])
        order = np.argsort(-w, kind="mergesort")[:keep]
        for j in range(keep):
            terms[indptr[d] + j] = fwd_terms[lo + order[j]]
            weights[indptr[d] + j] = w[order[j]]
    return indptr, terms, weights


@njit(cache=True, nogil=True)
def _assign(docs, members, centroid_docs, alive, fwd_indptr, fwd_terms, fwd_values, cut_indptr, cut_terms,
            cut_weights, head, head_stamp, stamp, scores, assignment):
    """Sets ``assignment[i]`` for each position i in ``members`` to the best live centroid of ``docs[i]``."""
    n_centroids = len(centroid_docs)
    # inverted index over the centroids' full vectors: linked lists threaded through head[term] -> entries
    n_entries = 0
    for c in range(n_centroids):
        d = centroid_docs[c]
        n_entries += fwd_indptr[d + 1] - fwd_indptr[d]
    entry_centroid = np.empty(n_entries, dtype=np.int32)
    entry_weight = np.empty(n_entries, dtype=np.float32)
    entry_next = np.empty(n_entries, dtype=np.int32)
    e = 0
    for c in range(n_centroids):
        if not alive[c]:
            continue
        d = centroid_docs[c]
        for j in range(fwd_indptr[d], fwd_indptr[d + 1]):
            t = fwd_terms[j]
            if head_stamp[t] != stamp:
                head_stamp[t] = stamp
                head[t] = -1
            entry_centroid[e] = c
            entry_weight[e] = impact(fwd_values[j])
            entry_next[e] = head[t]
            head[t] = e
            e += 1
    fallback = 0
    while not alive[fallback]:
        fallback += 1
    for i in members:
        d = docs[i]
        for c in range(n_centroids):
            scores[c] = 0.0
        for j in range(cut_indptr[d], cut_indptr[d + 1]):
            t = cut_terms[j]
            if head_stamp[t] != stamp:
                continue
            w = cut_weights[j]
            e = head[t]
            while e >= 0:
                scores[entry_centroid[e]] += w * entry_weight[e]
                e = entry_next[e]
        best, best_score = fallback, np.float32(-1.0)
        for c in range(n_centroids):
            if alive[c] and scores[c] > best_score:
                best, best_score = c, scores[c]
        assignment[i] = best


@njit(cache=True, nogil=True)
def cluster_list(docs, n_clusters, min_cluster_size, seed, fwd_indptr, fwd_terms, fwd_values, cut_indptr,
                 cut_terms, cut_weights, head, head_stamp, stamp):
    """Reorders ``docs`` in place so that each cluster is contiguous (doc ids ascending inside a cluster).

    Returns the cluster sizes in order. ``head``/``head_stamp`` are vocabulary-sized scratch; ``stamp`` must be
    unique per call on the same scratch (the caller passes the term id + 1), which saves clearing them.
    """
    m = len(docs)
    n_clusters = max(1, min(n_clusters, m))
    if n_clusters == 1:
        docs.sort()
        return np.array([m], dtype=np.int64)
    centroid_docs = docs[sample_positions(m, n_clusters, seed)]
    alive = np.ones(n_clusters, dtype=np.bool_)
    scores = np.zeros(n_clusters, dtype=np.float32)
    assignment = np.empty(m, dtype=np.int64)
    _assign(docs, np.arange(m), centroid_docs, alive, fwd_indptr, fwd_terms, fwd_values, cut_indptr, cut_terms,
            cut_weights, head, head_stamp, stamp, scores, assignment)
    sizes = np.bincount(assignment, minlength=n_clusters)
    small = sizes < min_cluster_size
    if small.any() and not small.all():
        alive = ~small
        moved = np.nonzero(small[assignment])[0]
        # a second stamp keeps the rebuilt centroid lists apart from the first ones
        _assign(docs, moved, centroid_docs, alive, fwd_indptr, fwd_terms, fwd_values, cut_indptr, cut_terms,
                cut_weights, head, head_stamp, -stamp, scores, assignment)
        sizes = np.bincount(assignment, minlength=n_clusters)
    # group by cluster, doc ids ascending within a cluster (forward-index reads then go forward in memory)
    order = np.argsort(assignment * np.int64(2**32) + docs.astype(np.int64))
    docs[:] = docs[order]
    return sizes[sizes > 0]
