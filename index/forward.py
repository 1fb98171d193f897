"""The forward index of a segment: document -> (term ids, quantized impacts), CSR.

It is the segment's source of truth: postings, block maxima and Seismic blocks are all derived from it, and methods
that score a candidate document exactly (BMP blocks, Seismic) read it directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsr.index.quantize import quantize, scale_for
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
