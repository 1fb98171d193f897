"""Sparse vectors as plain CSR arrays: the contract between the encoder, the index and everything else.

A batch of n vectors over a vocabulary of size V is three numpy arrays:
``indptr`` (int64, n + 1), ``indices`` (int32, term ids sorted within each row) and ``values`` (float32, > 0).
They go to scipy, Numba and torch without copies, so no part of the system owns a private vector type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from lsr.core import validate


@dataclass(frozen=True)
class SparseBatch:
    """n sparse vectors over a vocabulary of ``vocab_size`` terms, in CSR form."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    vocab_size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "indptr", np.ascontiguousarray(self.indptr, dtype=np.int64))
        object.__setattr__(self, "indices", np.ascontiguousarray(self.indices, dtype=np.int32))
        object.__setattr__(self, "values", np.ascontiguousarray(self.values, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Term ids and weights of vector ``i`` (views, no copy)."""
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.indices[lo:hi], self.values[lo:hi]

    def to_scipy(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.values, self.indices, self.indptr), shape=(len(self), self.vocab_size), copy=False)

    @classmethod
    def from_scipy(cls, m: sp.spmatrix) -> "SparseBatch":
        m = sp.csr_matrix(m)
        m.sum_duplicates()
        m.sort_indices()
        m.eliminate_zeros()
        return cls(m.indptr, m.indices, m.data, m.shape[1])

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> "SparseBatch":
        """Rows of a (n, V) array; keeps the strictly positive entries."""
        dense = np.asarray(dense, dtype=np.float32)
        rows, cols = np.nonzero(dense > 0)
        indptr = np.zeros(dense.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=dense.shape[0]), out=indptr[1:])
        return cls(indptr, cols, dense[rows, cols], dense.shape[1])

    @classmethod
    def from_rows(cls, rows: list[tuple[np.ndarray, np.ndarray]], vocab_size: int) -> "SparseBatch":
        """Builds a batch from (indices, values) pairs; each pair must already be sorted and unique."""
        lengths = np.fromiter((len(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        if rows:
            indices = np.concatenate([np.asarray(r[0], dtype=np.int32) for r in rows])
            values = np.concatenate([np.asarray(r[1], dtype=np.float32) for r in rows])
        else:
            indices, values = np.zeros(0, np.int32), np.zeros(0, np.float32)
        return cls(indptr, indices, values, vocab_size)

    @classmethod
    def concat(cls, parts: list["SparseBatch"]) -> "SparseBatch":
        if not parts:
            raise ValueError("concat needs at least one batch")
        vocab = {p.vocab_size for p in parts}
        if len(vocab) != 1:
            raise ValueError(f"cannot concatenate batches over different vocabularies: sizes {sorted(vocab)}")
        offsets = np.cumsum([0] + [p.nnz for p in parts[:-1]])
        indptr = np.concatenate([parts[0].indptr[:1]] + [p.indptr[1:] + o for p, o in zip(parts, offsets)])
        return cls(indptr, np.concatenate([p.indices for p in parts]), np.concatenate([p.values for p in parts]),
                   parts[0].vocab_size)

    def take(self, order: np.ndarray) -> "SparseBatch":
        """The rows in ``order`` (a permutation or a selection)."""
        m = self.to_scipy()[np.asarray(order)]
        return SparseBatch(m.indptr, m.indices, m.data, self.vocab_size)

    def prune(self, top_k: int | None = None, min_weight: float | None = None) -> "SparseBatch":
        """Keeps at most ``top_k`` heaviest terms per row and drops weights below ``min_weight``."""
        if top_k is None and min_weight is None:
            return self
        if top_k is not None:
            validate.integer("top_k", top_k, 1)
        keep = np.ones(self.nnz, dtype=bool)
        if min_weight is not None:
            keep &= self.values >= min_weight
        if top_k is not None:
            lengths = np.diff(self.indptr)
            for i in np.nonzero(lengths > top_k)[0]:
                lo, hi = self.indptr[i], self.indptr[i + 1]
                # stable: among equal weights the lower term id wins, so pruning is deterministic
                drop = np.argsort(-self.values[lo:hi], kind="stable")[top_k:]
                keep[lo + drop] = False
        counts = np.add.reduceat(keep.astype(np.int64), self.indptr[:-1]) if self.nnz else np.zeros(len(self), np.int64)
        counts[np.diff(self.indptr) == 0] = 0
        indptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return SparseBatch(indptr, self.indices[keep], self.values[keep], self.vocab_size)

    def validate(self) -> "SparseBatch":
        """Raises ValueError unless the arrays form a well-formed batch (sorted unique ids in range, finite weights > 0)."""
        if self.indptr.ndim != 1 or len(self.indptr) < 1 or self.indptr[0] != 0:
            raise ValueError("indptr must be a 1-d array starting at 0")
        if np.any(np.diff(self.indptr) < 0) or self.indptr[-1] != len(self.indices) or len(self.indices) != len(self.values):
            raise ValueError("indptr must be non-decreasing and end at len(indices) == len(values)")
        if self.nnz:
            if self.indices.min() < 0 or self.indices.max() >= self.vocab_size:
                raise ValueError(f"term ids must lie in [0, {self.vocab_size})")
            if not np.all(np.isfinite(self.values)) or np.any(self.values <= 0):
                raise ValueError("weights must be finite and > 0")
            step = np.diff(self.indices.astype(np.int64))
            row_start = np.zeros(self.nnz, dtype=bool)
            row_start[self.indptr[:-1][self.indptr[:-1] < self.nnz]] = True
            if np.any(step[~row_start[1:]] <= 0):
                raise ValueError("term ids must be sorted and unique within each row")
        return self
