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

from lsr.index.quantize import impact

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
def _assign(docs, members, centroid_docs, alive, list_term, fwd_indptr, fwd_terms, fwd_values, cut_indptr, cut_terms,
            cut_weights, term_start, term_end, term_stamp, stamp, scores, touched, assignment):
    """Sets ``assignment[i]`` for each position i in ``members`` to the live centroid of ``docs[i]`` with the
    largest dot product on the document's cut terms.

    Every document and centroid of the list holds ``list_term``, so that term is not walked (it would touch every
    centroid for every document): its part, w_doc * w_centroid, is added to the centroids the other terms reach,
    and the best centroid reached by no other term is the live one with the largest ``list_term`` weight.
    ``scores`` is zeroed on entry and left zeroed; ``touched`` has room for every centroid.
    """
    n_centroids = len(centroid_docs)
    # inverted index over the live centroids' full vectors, contiguous per term: term_start[t]:term_end[t]
    own = np.zeros(n_centroids, dtype=np.float32)   # each centroid's weight on the list term
    lone = -1                                        # the live centroid with the heaviest list term
    n_entries = 0
    for c in range(n_centroids):
        d = centroid_docs[c]
        n_entries += fwd_indptr[d + 1] - fwd_indptr[d]
    seen = np.empty(n_entries, dtype=np.int64)
    n_seen = 0
    for c in range(n_centroids):
        if not alive[c]:
            continue
        d = centroid_docs[c]
        for j in range(fwd_indptr[d], fwd_indptr[d + 1]):
            t = fwd_terms[j]
            if t == list_term:
                own[c] = impact(fwd_values[j])
            elif term_stamp[t] != stamp:
                term_stamp[t] = stamp
                term_end[t] = 1
                seen[n_seen] = t
                n_seen += 1
            else:
                term_end[t] += 1
        if lone < 0 or own[c] > own[lone]:
            lone = c
    pos = 0
    for x in range(n_seen):
        t = seen[x]
        term_start[t] = pos
        pos += term_end[t]
        term_end[t] = term_start[t]                  # now the fill cursor
    entry_centroid = np.empty(pos, dtype=np.int32)
    entry_weight = np.empty(pos, dtype=np.float32)
    for c in range(n_centroids):
        if not alive[c]:
            continue
        d = centroid_docs[c]
        for j in range(fwd_indptr[d], fwd_indptr[d + 1]):
            t = fwd_terms[j]
            if t != list_term:
                e = term_end[t]
                entry_centroid[e] = c
                entry_weight[e] = impact(fwd_values[j])
                term_end[t] = e + 1
    for i in members:
        d = docs[i]
        w_own = np.float32(0.0)
        n_touched = 0
        for j in range(cut_indptr[d], cut_indptr[d + 1]):
            t = cut_terms[j]
            w = cut_weights[j]
            if t == list_term:
                w_own = w
                continue
            if term_stamp[t] != stamp:
                continue
            for e in range(term_start[t], term_end[t]):
                c = entry_centroid[e]
                if scores[c] == 0.0:
                    touched[n_touched] = c
                    n_touched += 1
                scores[c] += w * entry_weight[e]
        best, best_score = lone, w_own * own[lone]
        for x in range(n_touched):
            c = touched[x]
            s = scores[c] + w_own * own[c]
            if s > best_score or (s == best_score and c < best):
                best, best_score = c, s
            scores[c] = 0.0
        assignment[i] = best


@njit(cache=True, nogil=True)
def cluster_list(docs, list_term, n_clusters, min_cluster_size, seed, fwd_indptr, fwd_terms, fwd_values,
                 cut_indptr, cut_terms, cut_weights, term_start, term_end, term_stamp, stamp):
    """Reorders ``docs`` (the list of ``list_term``) in place so that each cluster is contiguous (doc ids ascending
    inside a cluster).

    Returns the cluster sizes in order. ``term_start``/``term_end``/``term_stamp`` are vocabulary-sized scratch;
    ``stamp`` must be unique per call on the same scratch (the caller passes the term id + 1): no clearing.
    """
    m = len(docs)
    n_clusters = max(1, min(n_clusters, m))
    if n_clusters == 1:
        docs.sort()
        return np.array([m], dtype=np.int64)
    centroid_docs = docs[sample_positions(m, n_clusters, seed)]
    alive = np.ones(n_clusters, dtype=np.bool_)
    scores = np.zeros(n_clusters, dtype=np.float32)
    touched = np.empty(n_clusters, dtype=np.int64)
    assignment = np.empty(m, dtype=np.int64)
    _assign(docs, np.arange(m), centroid_docs, alive, list_term, fwd_indptr, fwd_terms, fwd_values, cut_indptr,
            cut_terms, cut_weights, term_start, term_end, term_stamp, stamp, scores, touched, assignment)
    sizes = np.bincount(assignment, minlength=n_clusters)
    small = sizes < min_cluster_size
    if small.any() and not small.all():
        alive = ~small
        moved = np.nonzero(small[assignment])[0]
        # a second stamp keeps the rebuilt centroid lists apart from the first ones
        _assign(docs, moved, centroid_docs, alive, list_term, fwd_indptr, fwd_terms, fwd_values, cut_indptr,
                cut_terms, cut_weights, term_start, term_end, term_stamp, -stamp, scores, touched, assignment)
        sizes = np.bincount(assignment, minlength=n_clusters)
    # group by cluster, doc ids ascending within a cluster (forward-index reads then go forward in memory)
    order = np.argsort(assignment * np.int64(2**32) + docs.astype(np.int64))
    docs[:] = docs[order]
    return sizes[sizes > 0]
