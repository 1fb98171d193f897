"""Block summaries: one small sparse vector per block that stands in for all the block's documents at query time.

A summary is the per-term maximum over the block's documents (so its dot product with a non-negative query bounds
every member's score), pruned to the heaviest terms that hold ``summary_energy`` of its total mass (so it stays
small; the bound becomes an estimate), and quantized to 8 bits with one scale per block (code = ceil(v / scale),
rounding up so that the kept terms still over-estimate).

Summaries of one posting list are stored inverted, term -> (block, code) entries, because a query touches few of
the terms a list's summaries hold: scoring all blocks of a list costs one binary search per query term plus the
entries of the terms the query has, instead of a pass over every summary.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def block_summary(block_docs, fwd_indptr, fwd_indices, fwd_values, energy, maxv, stamp_of, stamp, touched):
    """(terms, codes, scale) of one block's summary; terms in no particular order.

    ``maxv``/``stamp_of``/``touched`` are vocabulary-sized scratch; ``stamp`` must differ between calls.
    """
    n_touched = 0
    for d in block_docs:
        for j in range(fwd_indptr[d], fwd_indptr[d + 1]):
            t = fwd_indices[j]
            v = np.float32(fwd_values[j])
            if stamp_of[t] != stamp:
                stamp_of[t] = stamp
                maxv[t] = v
                touched[n_touched] = t
                n_touched += 1
            elif v > maxv[t]:
                maxv[t] = v
    terms = touched[:n_touched]
    values = np.empty(n_touched, dtype=np.float32)
    total = 0.0
    for i in range(n_touched):
        values[i] = maxv[terms[i]]
        total += values[i]
    order = np.argsort(-values, kind="mergesort")
    keep, mass = 0, 0.0
    while keep < n_touched and (keep == 0 or mass < energy * total):
        mass += values[order[keep]]
        keep += 1
    kept_terms = terms[order[:keep]].copy()
    top = values[order[0]] if n_touched else np.float32(1.0)
    scale = np.float32(top / 255.0) if top > 0 else np.float32(1.0)
    codes = np.empty(keep, dtype=np.uint8)
    for i in range(keep):
        codes[i] = min(255, max(1, int(np.ceil(values[order[i]] / scale))))
    return kept_terms, codes, scale


@njit(cache=True, nogil=True)
def invert_list_summaries(terms, blocks, codes):
    """Groups one list's summary entries by term: (unique terms, offsets, block ids, codes), blocks ascending."""
    order = np.argsort(terms.astype(np.int64) * np.int64(1 << 20) + blocks, kind="mergesort")
    n = len(terms)
    n_unique = 0
    for i in range(n):
        if i == 0 or terms[order[i]] != terms[order[i - 1]]:
            n_unique += 1
    unique = np.empty(n_unique, dtype=np.int32)
    offsets = np.empty(n_unique + 1, dtype=np.int64)
    out_blocks = np.empty(n, dtype=np.uint16)
    out_codes = np.empty(n, dtype=np.uint8)
    u = -1
    for i in range(n):
        e = order[i]
        if i == 0 or terms[e] != terms[order[i - 1]]:
            u += 1
            unique[u] = terms[e]
            offsets[u] = i
        out_blocks[i] = blocks[e]
        out_codes[i] = codes[e]
    offsets[n_unique] = n
    return unique, offsets, out_blocks, out_codes
