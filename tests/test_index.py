"""The index: build/open round trip, exact scores against scipy, methods, bad input, atomic builds, corruption."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from index import Index, IndexCorrupt, VocabularyMismatch
from lsr.corpus import Document
from lsr.sparse import SparseBatch

VOCAB = 400


def random_batch(n: int, terms: int, seed: int, vocab: int = VOCAB) -> SparseBatch:
    """SPLADE-like toy vectors: Zipf-ish term popularity, topical clusters, log-normal weights."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, vocab + 1) ** 0.8
    rows = []
    for i in range(n):
        topic = rng.integers(0, 8)
        p = popularity * (1 + 4 * ((np.arange(vocab) % 8) == topic))
        ids = np.unique(rng.choice(vocab, size=rng.integers(terms // 2, terms), replace=False, p=p / p.sum()))
        rows.append((ids, rng.lognormal(-0.5, 0.6, len(ids)).astype(np.float32)))
    return SparseBatch.from_rows(rows, vocab)


@pytest.fixture(scope="module")
def corpus():
    docs = random_batch(600, 40, seed=1)
    ids = [f"d{i}" for i in range(len(docs))]
    texts = [Document(i, f"text of {i}", f"title {i}") for i in ids]
    queries = random_batch(40, 12, seed=2)
    return docs, ids, texts, queries


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    docs, ids, texts, _ = corpus
    path = tmp_path_factory.mktemp("idx") / "index"
    Index.build(path, docs, ids, texts=texts, model="toy", vocab_fingerprint="fp-toy", quantization="float32")
    return path


def scipy_scores(docs: SparseBatch, queries: SparseBatch) -> np.ndarray:
    return np.asarray((queries.to_scipy() @ docs.to_scipy().T).todense(), dtype=np.float64)


def check_topk(res_scores, res_ids, truth, ids, k, rtol=1e-5, atol=1e-5):
    """Scores equal scipy's top-k; ids equal wherever the score is not tied with a neighbour."""
    for row, (s, got) in enumerate(zip(res_scores, res_ids)):
        order = np.argsort(-truth[row], kind="stable")[:k]
        want = truth[row][order]
        want_hits = int(np.sum(want > 0))
        assert len(got) == want_hits
        np.testing.assert_allclose(s[:want_hits], want[:want_hits], rtol=rtol, atol=atol)
        gaps = np.abs(np.diff(want[:want_hits]))
        for j in range(want_hits):
            if (j == 0 or gaps[j - 1] > atol) and (j == want_hits - 1 or gaps[j] > atol):
                assert got[j] == ids[order[j]]


def test_exact_equals_scipy(built, corpus):
    docs, ids, _, queries = corpus
    idx = Index.open(built)
    res = idx.search(queries, k=10)
    assert res.scores.shape == (len(queries), 10) and res.scores.dtype == np.float32 and res.docs.dtype == np.int64
    check_topk(res.scores, res.ids, scipy_scores(docs, queries), ids, 10)


def test_search_one_matches_batch_and_threads(built, corpus):
    _, _, _, queries = corpus
    idx = Index.open(built)
    one = idx.search(queries, k=7, threads=1)
    two = idx.search(queries, k=7, threads=2)
    np.testing.assert_array_equal(one.docs, two.docs)
    np.testing.assert_array_equal(one.scores, two.scores)
    for i in range(len(queries)):
        s, d = idx.search_one(*queries.row(i), k=7)
        np.testing.assert_array_equal(d, one.docs[i])
        np.testing.assert_array_equal(s, one.scores[i])


def test_metadata_and_documents(built, corpus):
    _, ids, _, _ = corpus
    idx = Index.open(built)
    assert idx.num_docs == len(ids) and idx.vocab_size == VOCAB
    assert idx.model == "toy" and idx.vocab_fingerprint == "fp-toy"
    assert sorted(idx.doc_ids) == sorted(ids)
    assert idx.document("d5") == {"id": "d5", "title": "title d5", "text": "text of d5"}
    number = list(idx.doc_ids).index("d5")
    assert idx.document(number)["id"] == "d5"
    with pytest.raises(KeyError):
        idx.document("nope")
    with pytest.raises(KeyError):
        idx.document(idx.num_docs)


@pytest.mark.parametrize("quantization,rtol", [("uint8", 0.0), ("float16", 2e-3)])
def test_quantized_scores_are_close(corpus, tmp_path, quantization, rtol):
    docs, ids, _, queries = corpus
    idx = Index.build(tmp_path / "q", docs, ids, quantization=quantization)
    res = idx.search(queries, k=10)
    truth = scipy_scores(docs, queries)
    top = -np.sort(-truth, axis=1)[:, :10]
    # each impact is off by at most half a level (uint8) or a float16 rounding; a score by sum(q) times that
    scale = float(docs.values.max()) / 255
    bound = queries.to_scipy().sum(axis=1).A.ravel()[:, None] * (scale if quantization == "uint8" else 0) \
        + rtol * top + 1e-4
    assert np.all(np.abs(res.scores - top) <= bound)


@pytest.mark.parametrize("quantization,block_size,reorder", [("uint8", 8, True), ("float32", 16, False),
                                                              ("float16", 64, True)])
def test_bmp_safe_equals_exact(corpus, tmp_path, quantization, block_size, reorder):
    docs, ids, _, queries = corpus
    idx = Index.build(tmp_path / "b", docs, ids, quantization=quantization, reorder=reorder, block_size=block_size)
    exact = idx.search(queries, k=10)
    safe = idx.search(queries, k=10, method="bmp")
    np.testing.assert_allclose(safe.scores, exact.scores, rtol=1e-5, atol=1e-6)
    ties = np.isclose(exact.scores[:, 1:], exact.scores[:, :-1], rtol=1e-5)
    untied = np.ones_like(exact.docs, dtype=bool)
    untied[:, 1:] &= ~ties
    untied[:, :-1] &= ~ties
    assert np.array_equal(safe.docs[untied], exact.docs[untied])
    for k in (1, 3, 25):   # every k, including more than the 10th/100th kth-impact threshold ranks
        np.testing.assert_allclose(idx.search(queries, k=k, method="bmp").scores,
                                   idx.search(queries, k=k).scores, rtol=1e-5, atol=1e-6)


def test_bmp_approximate_settings(built, corpus):
    _, _, _, queries = corpus
    idx = Index.open(built)
    exact = idx.search(queries, k=10)
    for params in ({"alpha": 0.8}, {"beta": 0.5}, {"alpha": 0.9, "beta": 0.7}):
        approx = idx.search(queries, k=10, method="bmp", **params)
        recall = np.mean([len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(exact.ids, approx.ids)])
        assert 0.5 < recall <= 1.0
        assert np.all(approx.scores <= exact.scores[:, :1] + 1e-4)
