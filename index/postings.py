"""Postings: the inverted view of a forward index, term -> (doc numbers ascending, impacts), CSR over terms.

Doc-ordered lists make term-at-a-time accumulation stream through memory and let block structures (BMP) point into
them by offset. ``term_max`` (the largest impact per term) bounds any term's contribution for pruning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from index.forward import ForwardIndex


@nb.njit(cache=True, nogil=True)
def _invert(fwd_indptr, fwd_terms, fwd_values, vocab_size, post_indptr, post_docs, post_values, term_max):
    counts = np.zeros(vocab_size + 1, dtype=np.int64)
    for j in range(len(fwd_terms)):
        counts[fwd_terms[j] + 1] += 1
    for t in range(vocab_size):
        counts[t + 1] += counts[t]
    post_indptr[:] = counts
    cursor = counts[:-1].copy()
    for d in range(len(fwd_indptr) - 1):
        for j in range(fwd_indptr[d], fwd_indptr[d + 1]):
            t = fwd_terms[j]
            p = cursor[t]
            post_docs[p] = d
            post_values[p] = fwd_values[j]
            cursor[t] = p + 1
            if fwd_values[j] > term_max[t]:
                term_max[t] = fwd_values[j]


@dataclass(frozen=True)
class Postings:
    indptr: np.ndarray    # int64 (V + 1)
    docs: np.ndarray      # int32 (nnz), ascending within each term
    values: np.ndarray    # same dtype as the forward index
    term_max: np.ndarray  # (V,) largest stored impact of each term (0 when absent)

    @classmethod
    def from_forward(cls, fwd: ForwardIndex) -> "Postings":
        nnz = len(fwd.terms)
        indptr = np.zeros(fwd.vocab_size + 1, dtype=np.int64)
        docs = np.empty(nnz, dtype=np.int32)
        values = np.empty(nnz, dtype=fwd.values.dtype)
        term_max = np.zeros(fwd.vocab_size, dtype=fwd.values.dtype)
        _invert(fwd.indptr, fwd.terms, fwd.values, fwd.vocab_size, indptr, docs, values, term_max)
        return cls(indptr, docs, values, term_max)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"post_indptr": self.indptr, "post_docs": self.docs, "post_values": self.values,
                "term_max": self.term_max}
