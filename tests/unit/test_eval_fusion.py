"""Fusion of rankings (eval.fusion), the function the service shares."""

import sys

import pytest

from lsr.retrieval.fusion import fuse, hybrid, linear_fusion, reciprocal_rank_fusion

SPLADE = [("a", 9.0), ("b", 7.0), ("c", 1.0)]
BM25 = [("c", 30.0), ("a", 20.0), ("d", 10.0)]


def test_rrf_sums_reciprocal_ranks():
    fused = dict(reciprocal_rank_fusion([SPLADE, BM25], rrf_k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62) and fused["d"] == pytest.approx(1 / 63)
    assert [d for d, _ in reciprocal_rank_fusion([SPLADE, BM25])] == ["a", "c", "b", "d"]
    assert reciprocal_rank_fusion([SPLADE, BM25], k=2) == reciprocal_rank_fusion([SPLADE, BM25])[:2]
    weighted = dict(reciprocal_rank_fusion([SPLADE, BM25], weights=[1.0, 0.0]))
    assert weighted["d"] == 0.0 and weighted["a"] == pytest.approx(1 / 61)


def test_linear_normalises_each_ranking():
    fused = dict(linear_fusion([SPLADE, BM25], weights=[0.5, 0.5]))
    assert fused["a"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)  # (9-1)/(9-1) and (20-10)/(30-10)
    assert fused["c"] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)
    assert fused["d"] == pytest.approx(0.0) and fused["b"] == pytest.approx(0.5 * 0.75)
    # scale-free: multiplying one retriever's scores changes nothing
    scaled = [(d, s * 1000) for d, s in BM25]
    assert linear_fusion([SPLADE, scaled]) == linear_fusion([SPLADE, BM25])
    assert dict(linear_fusion([[("x", 2.0), ("y", 2.0)], []])) == {"x": 1.0, "y": 1.0}


def test_fuse_dispatches_and_rejects_bad_input():
    assert fuse([SPLADE, BM25], "rrf") == reciprocal_rank_fusion([SPLADE, BM25])
    assert fuse([SPLADE, BM25], "linear", weights=[0.3, 0.7]) == linear_fusion([SPLADE, BM25], weights=[0.3, 0.7])
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse([SPLADE], "max")
    with pytest.raises(ValueError, match="weights"):
        fuse([SPLADE, BM25], "rrf", weights=[1.0])
    with pytest.raises(ValueError, match=">= 0"):
        fuse([SPLADE, BM25], "linear", weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="at least one"):
        fuse([], "rrf")


def test_hybrid_weighs_splade_against_bm25():
    assert hybrid(SPLADE, BM25) == reciprocal_rank_fusion([SPLADE, BM25])  # weight 0.5: plain RRF
    assert dict(hybrid(SPLADE, BM25, "rrf", weight=1.0))["d"] == 0.0
    assert hybrid(SPLADE, BM25, "linear", weight=0.3, k=2) == linear_fusion([SPLADE, BM25], weights=[0.3, 0.7], k=2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hybrid(SPLADE, BM25, weight=1.5)


def test_importable_without_datasets_or_index():
    import subprocess

    code = ("import sys, lsr.retrieval.fusion; bad = {'ir_datasets', 'lsr.index', 'numba', 'torch'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
