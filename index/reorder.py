"""Document reordering by recursive graph bisection (Dhulipala et al., KDD 2016; as in PISA and BMP).

Documents that share terms end up next to each other, so a block of consecutive documents has few distinct terms
with similar weights: BMP's block maxima become tight bounds and postings get more local. Each bisection splits a
range of documents in two halves and, for a few iterations, swaps the pairs of documents whose move lowers the
log-gap cost ``sum_t deg_t * log2(n / (deg_t + 1))`` of both halves most; halves are bisected again until they
hold ``leaf_size`` documents. All ranges of one level are independent and run in parallel (``prange``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from lsr.index.forward import ForwardIndex


@nb.njit(cache=True, nogil=True, inline="always")
def _cost(deg, n, lg):
    return deg * (lg[n] - lg[deg + 1])


@nb.njit(cache=True, nogil=True)
def _bisect(perm, lo, hi, indptr, terms, iters, lg, deg, gain_tab, touched, gains):
    """One bisection of perm[lo:hi] in place; ``deg`` (2, V), ``gain_tab`` (2, V) and ``touched`` (V) are zeroed
    thread-owned scratch and are left zeroed."""
    mid = lo + (hi - lo) // 2
    n1, n2 = mid - lo, hi - mid
    for _ in range(iters):
        n_touched = 0
        for i in range(lo, hi):
            side = 0 if i < mid else 1
            d = perm[i]
            for t in terms[indptr[d]:indptr[d + 1]]:
                if deg[0, t] == 0 and deg[1, t] == 0:
                    touched[n_touched] = t
                    n_touched += 1
                deg[side, t] += 1
        for x in range(n_touched):
            t = touched[x]
            d1, d2 = deg[0, t], deg[1, t]
            before = _cost(d1, n1, lg) + _cost(d2, n2, lg)
            if d1 > 0:   # a document of the left half holding t moves right
                gain_tab[0, t] = before - _cost(d1 - 1, n1, lg) - _cost(d2 + 1, n2, lg)
            if d2 > 0:
                gain_tab[1, t] = before - _cost(d1 + 1, n1, lg) - _cost(d2 - 1, n2, lg)
        for i in range(lo, hi):
            side = 0 if i < mid else 1
            d = perm[i]
            g = 0.0
            for t in terms[indptr[d]:indptr[d + 1]]:
                g += gain_tab[side, t]
            gains[i - lo] = g
        for x in range(n_touched):
            t = touched[x]
            deg[0, t] = 0
            deg[1, t] = 0
            gain_tab[0, t] = 0.0
            gain_tab[1, t] = 0.0
        left = np.argsort(-gains[:n1])
        right = np.argsort(-gains[n1:hi - lo])
        swaps = 0
        while swaps < min(n1, n2) and gains[left[swaps]] + gains[n1 + right[swaps]] > 0.0:
            swaps += 1
        if swaps == 0:
            break
        for s in range(swaps):
            a, b = lo + left[s], mid + right[s]
            perm[a], perm[b] = perm[b], perm[a]


@nb.njit(cache=True, parallel=True, nogil=True)
def _bisect_level(perm, bounds, indptr, terms, vocab_size, iters, lg, leaf_size, n_workers):
    """Bisects every range [bounds[i], bounds[i+1]) longer than leaf_size; worker w takes ranges w, w + n_workers,
    ... with scratch of its own."""
    widest = np.max(bounds[1:] - bounds[:-1])
    n_ranges = len(bounds) - 1
    for w in nb.prange(n_workers):
        deg = np.zeros((2, vocab_size), dtype=np.int32)
        gain_tab = np.zeros((2, vocab_size), dtype=np.float32)
        touched = np.zeros(vocab_size, dtype=np.int32)
        gains = np.zeros(widest, dtype=np.float32)
        for r in range(w, n_ranges, n_workers):
            lo, hi = bounds[r], bounds[r + 1]
            if hi - lo > leaf_size:
                _bisect(perm, lo, hi, indptr, terms, iters, lg, deg, gain_tab, touched, gains)


def bisection_order(fwd: ForwardIndex, leaf_size: int = 16, iters: int = 10) -> np.ndarray:
    """A permutation of the documents (new position i holds old document order[i]).

    10 swap iterations per bisection: on scifact they reach the log-gap cost of 20 (2.82 vs 2.81 bits per gap,
    identity order 3.20) in half the time."""
    n = fwd.num_docs
    perm = np.arange(n, dtype=np.int64)
    lg = np.zeros(n + 2, dtype=np.float32)
    lg[1:] = np.log2(np.arange(1, n + 2, dtype=np.float64))
    bounds = np.array([0, n], dtype=np.int64)
    while np.any(np.diff(bounds) > leaf_size):
        workers = min(nb.get_num_threads(), len(bounds) - 1)
        # unsigned term ids: Numba indexes with them without a negative-index fix-up
        terms = fwd.terms.view(np.uint32) if fwd.terms.dtype == np.int32 else fwd.terms   # uint16 already is
        _bisect_level(perm, bounds, fwd.indptr, terms, fwd.vocab_size, iters, lg, leaf_size,
                      workers)
        mids = bounds[:-1] + np.diff(bounds) // 2
        split = np.diff(bounds) > leaf_size
        bounds = np.unique(np.concatenate([bounds, mids[split]]))
    return perm
