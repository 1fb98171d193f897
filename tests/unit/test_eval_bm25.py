"""The BM25 baseline's parts: the analyzer, Lucene's length encoding, the vectors' weights, persistence."""

import json
import math

import numpy as np
import pytest

from lsr.retrieval.analyzer import Analyzer
from lsr.retrieval.bm25 import BM25, lucene_length
from lsr.core.sample import stdlib_passages


def test_analyzer_follows_lucene_english():
    a = Analyzer()
    assert a("The patients' 3.5mg dose of 1,000 U.S. cells, e.g. COVID-19 isn't us") == [
        "patient", "3.5mg", "dose", "1,000", "u.", "cell", "e.g", "covid", "19", "isn't", "us"]
    assert Analyzer(stemmer="none", stopwords="none")("The Cells") == ["the", "cells"]
    assert Analyzer(stemmer="english")("generalizations") == ["general"]
    assert a("") == [] and a("the of and") == []


def test_analyzer_rejects_unknown_settings():
    with pytest.raises(ValueError, match="unknown stemmer"):
        Analyzer(stemmer="klingon")
    with pytest.raises(ValueError, match="stopwords"):
        Analyzer(stopwords="nltk")


def test_lucene_length_matches_smallfloat():
    # values of SmallFloat.byte4ToInt(SmallFloat.intToByte4(n)) in Lucene
    n = np.array([0, 1, 23, 24, 31, 32, 40, 41, 42, 43, 100, 150, 1000, 100_000])
    assert lucene_length(n).tolist() == [0, 1, 23, 24, 31, 32, 40, 40, 42, 42, 96, 144, 984, 98328]


def test_weights_are_the_bm25_formula():
    texts = ["cat cat dog", "dog bird", "fish"]
    model, docs = BM25.fit(texts, k1=1.2, b=0.75, analyzer=Analyzer(stemmer="none"), lucene_norms=False)
    assert model.terms == ["bird", "cat", "dog", "fish"] and model.avgdl == 2.0
    idf = lambda df: math.log(1 + (3 - df + 0.5) / (df + 0.5))  # noqa: E731
    tfc = lambda tf, dl: tf / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / 2.0))  # noqa: E731
    dense = docs.to_scipy().toarray()
    assert dense[0, 1] == pytest.approx(idf(1) * tfc(2, 3), rel=1e-6)
    assert dense[1, 2] == pytest.approx(idf(2) * tfc(1, 2), rel=1e-6)
    q = model.encode_queries(["dog dog unknownword", ""])
    assert q.row(0)[0].tolist() == [2] and q.row(0)[1].tolist() == [1.0] and len(q.row(1)[0]) == 0
    # new documents are weighted by the fitted corpus statistics; unknown terms are not indexed
    assert np.allclose(model.encode_documents(texts).to_scipy().toarray(), dense)
    assert model.encode_documents(["zebra"]).nnz == 0


def test_scores_match_bm25s_on_real_text():
    import bm25s

    texts = [d.full_text for d in stdlib_passages(limit=150)]
    analyzer = Analyzer()
    model, docs = BM25.fit(texts, lucene_norms=False, analyzer=analyzer)
    peer = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    peer.index([analyzer(t) for t in texts], show_progress=False)
    for query in ["return the list of files", "socket connection timeout", "parse an email header"]:
        ours = (model.encode_queries([query]).to_scipy() @ docs.to_scipy().T).toarray()[0]
        theirs = peer.get_scores(list(dict.fromkeys(analyzer(query))))
        assert np.allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_save_load_roundtrip_and_bad_files(tmp_path):
    model, _ = BM25.fit(["alpha beta", "beta gamma"], analyzer=Analyzer(stemmer="english"))
    model.save(tmp_path / "bm25.json")
    back = BM25.load(tmp_path / "bm25.json")
    assert back.terms == model.terms and back.vocab_fingerprint == model.vocab_fingerprint
    assert back.name == model.name and back.analyzer == model.analyzer
    other, _ = BM25.fit(["alpha beta", "beta gamma"], k1=1.2)
    assert other.vocab_fingerprint != model.vocab_fingerprint  # parameters are part of the fingerprint
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable BM25 model"):
        BM25.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(ValueError, match="lsr-bm25"):
        BM25.load(tmp_path / "other.json")
    with pytest.raises(ValueError, match="k1"):
        BM25.fit(["a"], k1=-1)
