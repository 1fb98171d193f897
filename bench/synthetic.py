"""Synthetic document vectors with the statistics of a real SPLADE file, to probe how an index grows with size.

Each synthetic document starts from a random real document (its "topic"): it keeps a random ``keep`` share of that
document's terms with weights jittered by a log-normal factor, and replaces the rest by terms drawn from the real
collection's term frequencies with weights drawn from the real weight distribution. Lengths, term popularity and
weight distribution follow the real file, and documents grown from the same seed resemble each other as documents
on one topic do, so reordering and pruning behave as on a larger real corpus. Never a headline figure: real vectors
are.

    python -m bench.synthetic --like /work/data/windows.npz --docs 1000000 --output /tmp/synthetic-1m.npz
"""

from __future__ import annotations

import json
from pathlib import Path

import numba as nb
import numpy as np
import typer

from lsr.sparse import SparseBatch
from lsr.vectors import load_vectors, save_vectors


@nb.njit(cache=True, parallel=True)
def _grow(src_indptr, src_terms, src_values, seeds, keep, term_cdf, weight_pool, seed, out_indptr, out_terms,
          out_values):
    for i in nb.prange(len(seeds)):
        np.random.seed(seed + i)
        s = seeds[i]
        lo, hi = src_indptr[s], src_indptr[s + 1]
        o = out_indptr[i]
        n = hi - lo
        terms = np.empty(n, dtype=np.int32)
        values = np.empty(n, dtype=np.float32)
        for j in range(n):
            if np.random.random() < keep:
                terms[j] = src_terms[lo + j]
                values[j] = src_values[lo + j] * np.float32(np.exp(np.random.normal(0.0, 0.25)))
            else:
                terms[j] = np.searchsorted(term_cdf, np.random.random())
                values[j] = weight_pool[np.random.randint(len(weight_pool))]
        order = np.argsort(terms)
        last = -1
        w = o
        for j in order:   # sorted, duplicates merged by keeping the larger weight
            if terms[j] == last:
                out_values[w - 1] = max(out_values[w - 1], values[j])
            else:
                out_terms[w] = terms[j]
                out_values[w] = values[j]
                last = terms[j]
                w += 1
        for x in range(w, out_indptr[i + 1]):
            out_terms[x] = -1


def synthesize(like: SparseBatch, n_docs: int, keep: float = 0.7, seed: int = 0) -> SparseBatch:
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, len(like), n_docs)
    lengths = np.diff(like.indptr)[seeds]
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    df = np.bincount(like.indices, minlength=like.vocab_size).astype(np.float64)
    cdf = np.cumsum(df / df.sum())
    cdf[-1] = 1.0
    pool = rng.choice(like.values, size=min(1_000_000, like.nnz), replace=False).astype(np.float32)
    terms = np.empty(indptr[-1], dtype=np.int32)
    values = np.empty(indptr[-1], dtype=np.float32)
    _grow(like.indptr, like.indices, like.values, seeds, keep, cdf, pool, seed, indptr, terms, values)
    keep_mask = terms >= 0   # slots freed by merged duplicates
    counts = np.add.reduceat(keep_mask.astype(np.int64), indptr[:-1]) if len(terms) else np.zeros(n_docs, np.int64)
    counts[lengths == 0] = 0
    out_indptr = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(counts, out=out_indptr[1:])
    return SparseBatch(out_indptr, terms[keep_mask], values[keep_mask], like.vocab_size)


def main(like: Path = typer.Option(..., help="real vectors file whose statistics to follow"),
         docs: int = typer.Option(1_000_000, min=1), output: Path = typer.Option(...),
         keep: float = typer.Option(0.7, min=0.0, max=1.0, help="share of a seed document's terms kept"),
         seed: int = 0) -> None:
    real = load_vectors(like)
    batch = synthesize(real.vectors, docs, keep, seed).validate()
    save_vectors(output, batch, [f"syn{i}" for i in range(docs)],
                 {**{k: v for k, v in real.meta.items() if k in ("model", "vocab_fingerprint")},
                  "synthetic": {"like": str(like), "keep": keep, "seed": seed}})
    print(json.dumps({"output": str(output), "documents": docs, "terms_per_doc": round(batch.nnz / docs, 1)}))


if __name__ == "__main__":
    typer.run(main)
