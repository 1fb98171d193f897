"""The forward index of a segment: document -> (term ids, quantized impacts), CSR.

It is the segment's source of truth: postings, block maxima and Seismic blocks are all derived from it, and methods
that score a candidate document exactly (BMP blocks, Seismic) read it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from lsr.index.bundles import Bundle, register
from lsr.index.quantize import impact, quantize, scale_for
from lsr.core.sparse import SparseBatch


@dataclass(frozen=True)
class ForwardIndex:
    indptr: np.ndarray   # int64 (n + 1)
    terms: np.ndarray    # uint16 when the vocabulary has <= 65,536 terms, else int32 (nnz), sorted per document
    values: np.ndarray   # uint8 | float16 | float32 (nnz): weight = value * scale
    scale: float
    vocab_size: int

    @property
    def num_docs(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_vectors(cls, vectors: SparseBatch, quantization: str, scale: float | None = None) -> "ForwardIndex":
        """Quantizes the weights; ``scale`` defaults to the per-index scale of ``vectors``."""
        if scale is None:
            scale = scale_for(vectors.values, quantization)
        # 2-byte term ids: rows scored candidate by candidate (Seismic, BMP) stream 40% fewer bytes
        terms = vectors.indices.astype(np.uint16) if vectors.vocab_size <= 1 << 16 else vectors.indices
        return cls(vectors.indptr, terms, quantize(vectors.values, quantization, scale), float(scale),
                   vectors.vocab_size)

    def take(self, order: np.ndarray) -> "ForwardIndex":
        """The documents in ``order`` (a permutation: new document i is old document order[i])."""
        lengths = np.diff(self.indptr)[order]
        indptr = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        src = np.repeat(self.indptr[:-1][order] - indptr[:-1], lengths) + np.arange(indptr[-1], dtype=np.int64)
        return ForwardIndex(indptr, self.terms[src], self.values[src], self.scale, self.vocab_size)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"fwd_indptr": self.indptr, "fwd_terms": self.terms, "fwd_values": self.values}


class ForwardArrays(Bundle):
    """A segment's forward index as kernels read it: ``indptr`` as uint64 (row offsets index without negative-index
    checks), ``terms``, ``values`` (stored impacts) and ``scale`` (float32, the weight of one impact level)."""

    FIELDS = ("indptr", "terms", "values", "scale")

    @classmethod
    def of_segment(cls, seg) -> "ForwardArrays":
        return cls.of(indptr=seg["fwd_indptr"].view(np.uint64), terms=seg["fwd_terms"], values=seg["fwd_values"],
                      scale=np.float32(seg.scale))


@njit(cache=True)
def _new_forward_arrays(*args):
    return ForwardArrays(*args)


register(ForwardArrays, _new_forward_arrays)


@njit(cache=True, nogil=True, inline="always")
def dot(lo, hi, fwd_terms, fwd_values, q_dense):
    """Dot product of forward-index entries lo:hi (uint64: no negative-index checks) with a dense query (weights by
    term id); four partial sums hide the add latency."""
    one, two, three, four = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4)
    s0 = s1 = s2 = s3 = np.float32(0.0)
    j = lo
    while j + four <= hi:
        s0 += q_dense[fwd_terms[j]] * impact(fwd_values[j])
        s1 += q_dense[fwd_terms[j + one]] * impact(fwd_values[j + one])
        s2 += q_dense[fwd_terms[j + two]] * impact(fwd_values[j + two])
        s3 += q_dense[fwd_terms[j + three]] * impact(fwd_values[j + three])
        j += four
    while j < hi:
        s0 += q_dense[fwd_terms[j]] * impact(fwd_values[j])
        j += one
    return (s0 + s1) + (s2 + s3)
