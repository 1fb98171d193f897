"""What the live-update tests compare an index with: a model of its documents, and a from-scratch build of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lsr.index import Index
from lsr.index.quantize import quantize
from lsr.core.documents import Document
from lsr.core.sparse import SparseBatch


def contents(idx: Index) -> dict[str, tuple]:
    """id -> (text, term ids, stored impacts) of every live document of the index's snapshot; each id once."""
    snap = idx.snapshot()
    found: dict[str, tuple] = {}
    for seg, dead in zip(snap.segments, snap.dead):
        live = np.flatnonzero(~dead) if dead is not None else np.arange(seg.num_docs)
        table = seg.docs.table
        ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
        indptr, terms, values = seg["fwd_indptr"], seg["fwd_terms"], seg["fwd_values"]
        for d in live:
            assert ids[d] not in found, f"{ids[d]} is present twice"
            found[ids[d]] = (texts[d], terms[indptr[d]:indptr[d + 1]], values[indptr[d]:indptr[d + 1]])
    return found


class Model:
    """The documents an index should hold: id -> (row of the source vectors, Document), in insertion order."""

    def __init__(self, vectors: SparseBatch, docs: list[Document]):
        self.vectors = vectors
        self.docs = docs
        self.live: dict[str, tuple[int, Document]] = {}

    def copy(self) -> "Model":
        other = Model(self.vectors, self.docs)
        other.live = dict(self.live)
        return other

    def put(self, ids: list[str], rows: list[int], texts: list[str | None]) -> None:
        """None: a document stored without text."""
        for doc_id, row, text in zip(ids, rows, texts):
            self.live.pop(doc_id, None)
            self.live[doc_id] = (row, Document(doc_id, text) if text is not None else None)

    def delete(self, ids: list[str]) -> None:
        for doc_id in ids:
            self.live.pop(doc_id, None)

    def batch(self) -> tuple[SparseBatch, list[str]]:
        ids = list(self.live)
        rows = np.array([self.live[i][0] for i in ids], dtype=np.int64)
        return self.vectors.take(rows), ids

    def reference(self, path: Path, scale: float) -> Index:
        """A from-scratch build of the model's documents, with the live index's scale."""
        vectors, ids = self.batch()
        return Index.build(path, vectors, ids, scale=scale, methods=["exact"], overwrite=True)

    def assert_holds(self, idx: Index) -> None:
        """Every document of the model is in ``idx`` exactly once, with its text and (quantized) vector; no other."""
        found = contents(idx)
        assert set(found) == set(self.live), (sorted(set(found) - set(self.live))[:5],
                                               sorted(set(self.live) - set(found))[:5])
        assert idx.num_docs == len(self.live)
        scale, quantization = idx.scale, idx.manifest.quantization
        for doc_id, (row, doc) in self.live.items():
            text, terms, stored = found[doc_id]
            want_terms, want = self.vectors.row(row)
            assert text == (doc.text if doc is not None else None)
            np.testing.assert_array_equal(terms, want_terms)
            np.testing.assert_array_equal(stored, quantize(want, quantization, scale))


# Scores of the same document can differ in the last bits between two segmentations: exact search adds the terms
# stored as dense rows first (index/postings.py), and whether a term is dense depends on its segment. So scores
# are compared to a few float32 ulps, and ids up to ties within that tolerance.
RTOL = 1e-6


def assert_same_topk(got, ref, k: int) -> None:
    """``got`` (top-k) equals ``ref`` (a deeper top-k of the same documents): the same scores, each hit with its own
    score in ``ref``, and every document clearly above the k-th score present."""
    got_ids, ref_ids = got.ids, ref.ids
    for r in range(len(got_ids)):
        n = len(got_ids[r])
        assert n == min(k, len(ref_ids[r]))
        np.testing.assert_allclose(got.scores[r, :n], ref.scores[r, :n], rtol=RTOL)
        if not n:
            continue
        truth = dict(zip(ref_ids[r], ref.scores[r]))
        assert all(d in truth for d in got_ids[r]), "a hit is not among the reference's best"
        np.testing.assert_allclose(got.scores[r, :n], [truth[d] for d in got_ids[r]], rtol=RTOL)
        kth = got.scores[r, n - 1] * (1 + 2 * RTOL)
        assert {d for d, s in truth.items() if s > kth} <= set(got_ids[r])


def assert_matches_scratch(idx: Index, model: Model, queries: SparseBatch, path: Path, k: int = 10,
                           methods=("exact", "bmp"), ref: Index | None = None) -> Index:
    """Exact (and safe BMP) results of ``idx`` equal an index built from scratch of the model's documents
    (``ref``, when it is already built); returns that index."""
    ref = ref or model.reference(path, idx.scale)
    deep = ref.search(queries, k=k + 30)
    for method in methods:
        assert_same_topk(idx.search(queries, k=k, method=method), deep, k)
    return ref


def bm25_reference(docs: list[tuple[str, str]], query: str, depth: int) -> list[tuple[str, float]]:
    """BM25 fitted from scratch on ``docs`` ((id, "title text")): the top ``depth`` (id, score) of ``query``, ties in
    the order of ``docs`` (the ranking a BM25 index built from them gives)."""
    from lsr.retrieval.bm25 import BM25

    model, vectors = BM25.fit(text for _, text in docs)
    q = model.encode_queries([query]).to_scipy()
    scores = np.asarray((vectors.to_scipy() @ q.T).todense(), dtype=np.float32).ravel()
    order = np.lexsort((np.arange(len(scores)), -scores))[:depth]
    return [(docs[i][0], float(scores[i])) for i in order if scores[i] > 0]
