"""Seismic: exact when nothing is pruned, recall rising to 1.0 on real vectors, the summary layout, clustering,
bad parameters, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from lsr.index import Index
from lsr.index.clustering import cluster_list, top_terms
from lsr.index.forward import ForwardIndex
from lsr.index.postings import Postings
from lsr.index import methods
from lsr.index.seismic import SeismicBuildParams, SeismicSearchParams, build_arrays, kept_lengths
from lsr.index.summaries import SAMPLE, block_summary, layout_bound, score_list, write_list
from lsr.core.sparse import SparseBatch
from tests.vectors import random_batch, scipy_scores

LOOSE = {"n_postings": 100_000, "summary_energy": 1.0}             # nothing pruned, summaries are upper bounds
EVERYTHING = {"query_cut": 10_000, "heap_factor": 1e-6}            # every list, every block with a positive bound


@pytest.fixture(scope="module")
def toy():
    docs = random_batch(500, 40, seed=3)
    docs = SparseBatch(docs.indptr, docs.indices, docs.values, docs.vocab_size + 8)   # 8 terms no document has
    queries = random_batch(30, 12, seed=4)
    return docs, [f"d{i}" for i in range(len(docs))], SparseBatch(queries.indptr, queries.indices, queries.values,
                                                                 docs.vocab_size)


@pytest.fixture(scope="module")
def toy_index(toy, tmp_path_factory):
    docs, ids, _ = toy
    return Index.build(tmp_path_factory.mktemp("s") / "idx", docs, ids, methods=("exact", "seismic"),
                       quantization="float32", centroid_fraction=0.2, n_postings=60)


def assert_same_topk(got, want) -> None:
    """Equal scores (up to float summation order), equal documents wherever the score is not tied."""
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-6)
    ties = np.isclose(want.scores[:, 1:], want.scores[:, :-1], rtol=1e-5)
    untied = np.ones_like(want.docs, dtype=bool)
    untied[:, 1:] &= ~ties
    untied[:, :-1] &= ~ties
    np.testing.assert_array_equal(got.docs[untied], want.docs[untied])


def test_unpruned_seismic_equals_exact(toy, tmp_path):
    docs, ids, queries = toy
    idx = Index.build(tmp_path / "i", docs, ids, methods=("exact", "seismic"), **LOOSE)
    for k in (1, 10, 40):
        exact = idx.search(queries, k=k)
        seismic = idx.search(queries, k=k, method="seismic", **EVERYTHING)
        assert_same_topk(seismic, exact)


def test_pruned_index_is_approximate_and_never_overscores(toy, toy_index):
    docs, ids, queries = toy
    truth = scipy_scores(docs, queries)
    res = toy_index.search(queries, k=10, method="seismic", query_cut=3, heap_factor=1.0)
    number = {d: i for i, d in enumerate(ids)}
    for row, hits in enumerate(res.ids):
        # every returned score is the document's true score (documents are scored exactly)
        want = truth[row, [number[h] for h in hits]]
        np.testing.assert_allclose(res.scores[row, :len(hits)], want, rtol=1e-5, atol=1e-6)
    exact = toy_index.search(queries, k=10)
    assert np.mean([len(set(a) & set(b)) for a, b in zip(exact.ids, res.ids)]) < 10   # it did prune something


def test_search_one_batch_and_threads_agree(toy, toy_index):
    _, _, queries = toy
    params = {"query_cut": 4, "heap_factor": 0.8}
    one = toy_index.search(queries, k=5, method="seismic", threads=1, **params)
    two = toy_index.search(queries, k=5, method="seismic", threads=2, **params)
    np.testing.assert_array_equal(one.docs, two.docs)
    for i in range(len(queries)):
        s, d = toy_index.search_one(*queries.row(i), k=5, method="seismic", **params)
        np.testing.assert_array_equal(d, one.docs[i])
        np.testing.assert_array_equal(s, one.scores[i])


def test_edge_queries(toy, toy_index):
    docs, _, _ = toy
    for terms in ([], [docs.vocab_size - 1]):   # no term, a term no document has
        s, d = toy_index.search_one(np.array(terms, np.int32), np.ones(len(terms), np.float32), k=3,
                                    method="seismic")
        np.testing.assert_array_equal(d, [-1, -1, -1])
        np.testing.assert_array_equal(s, [0, 0, 0])
    s, d = toy_index.search_one(np.array([0, 1]), np.array([1.0, 2.0]), k=10_000, method="seismic", **EVERYTHING)
    assert len(d) == toy_index.num_docs and np.all(np.diff(s[d >= 0]) <= 0)


def test_reopen_gives_the_same_results(toy, tmp_path):
    docs, ids, queries = toy
    params = {"n_postings": 50, "centroid_fraction": 0.3, "summary_energy": 0.5, "min_cluster_size": 3, "doc_cut": 5,
              "pruning": "global", "max_fraction": 1.2}
    built = Index.build(tmp_path / "p", docs, ids, methods=("exact", "seismic"), **params)
    before = built.search(queries, k=10, method="seismic", query_cut=5, heap_factor=0.9)
    again = Index.open(tmp_path / "p")
    after = again.search(queries, k=10, method="seismic", query_cut=5, heap_factor=0.9)
    np.testing.assert_array_equal(before.docs, after.docs)
    np.testing.assert_array_equal(before.scores, after.scores)
    assert again.manifest.build_params["seismic"] == params
    # the same parameters build the same arrays: clustering is seeded per term
    twin = Index.build(tmp_path / "t", docs, ids, methods=("exact", "seismic"), **params)
    for name, array in again.segments[0].arrays.items():
        if name.startswith("seismic."):
            np.testing.assert_array_equal(array, twin.segments[0][name], err_msg=name)


@pytest.mark.parametrize("params,message", [
    ({"n_postings": 0}, "n_postings"), ({"n_postings": 2.5}, "n_postings"), ({"centroid_fraction": 0}, "centroid"),
    ({"centroid_fraction": 1.5}, "centroid"), ({"summary_energy": 0.0}, "summary_energy"),
    ({"summary_energy": float("nan")}, "summary_energy"), ({"min_cluster_size": 0}, "min_cluster_size"),
    ({"doc_cut": True}, "doc_cut"), ({"n_postings": 1_000_000, "centroid_fraction": 0.5}, "blocks per list"),
    ({"n_postings": 60_000, "centroid_fraction": 1.0, "pruning": "global"}, "blocks per list"),
    ({"pruning": "threshold"}, "pruning"), ({"pruning": 1}, "pruning"), ({"max_fraction": 0.5}, "max_fraction"),
    ({"max_fraction": float("inf")}, "max_fraction"), ({"max_fraction": "1.5"}, "max_fraction"),
])
def test_bad_build_parameters(toy, tmp_path, params, message):
    docs, ids, _ = toy
    with pytest.raises(ValueError, match=message):
        Index.build(tmp_path / "bad", docs, ids, methods=("exact", "seismic"), **params)
    assert not (tmp_path / "bad" / "manifest.json").exists()


def _lists(docs: SparseBatch):
    fwd = ForwardIndex.from_vectors(docs, "float32")
    return fwd, Postings.from_forward(fwd, dense_rows=False)


def _kept_docs(arrays: dict, t: int) -> np.ndarray:
    b0, b1 = arrays["list_blocks"][t], arrays["list_blocks"][t + 1]
    return arrays["docs"][arrays["block_docs_ptr"][b0]:arrays["block_docs_ptr"][b1]]


def test_global_pruning_keeps_the_heaviest_postings_of_the_whole_index():
    """About n_postings x lists postings survive, chosen by one weight threshold; no list above its cap."""
    docs = random_batch(400, 40, seed=11, vocab=300)        # ~12k postings, lists from 0 to ~300 long
    fwd, post = _lists(docs)
    params = SeismicBuildParams(n_postings=20, pruning="global", max_fraction=1.5, centroid_fraction=0.2)
    kept = kept_lengths(post.indptr, post.values, params)
    lengths = np.diff(post.indptr)
    cap = 30
    assert kept.max() == cap and np.all(kept <= lengths)
    assert np.any((kept > 20) & (kept < cap)) and np.any((kept > 0) & (kept < 20))   # the mean, not a fixed cap
    # capped lists give their excess up: the rest is exactly the global top 20 x 300 (no ties in random weights)
    threshold = np.sort(post.values)[::-1][20 * 300 - 1]
    heavy = np.add.reduceat(post.values >= threshold, post.indptr[:-1])
    heavy[lengths == 0] = 0
    np.testing.assert_array_equal(kept, np.minimum(heavy, cap))
    assert 0.7 * 20 * 300 < kept.sum() <= 20 * 300
    arrays = build_arrays(fwd.indptr, fwd.terms, fwd.values, post.indptr, post.docs, post.values, params)
    for t in range(300):
        lo, hi = post.indptr[t], post.indptr[t + 1]
        heaviest = post.docs[lo:hi][np.argsort(-post.values[lo:hi], kind="stable")[:kept[t]]]
        np.testing.assert_array_equal(np.sort(_kept_docs(arrays, t)), np.sort(heaviest), err_msg=f"term {t}")


def test_global_pruning_shares_tied_weights_out():
    """uint8 impacts tie by the thousand: the postings at the threshold level fill the total, pro rata per list."""
    docs = random_batch(400, 40, seed=14, vocab=300)
    fwd = ForwardIndex.from_vectors(docs, "uint8")
    post = Postings.from_forward(fwd, dense_rows=False)
    params = SeismicBuildParams(n_postings=20, pruning="global", max_fraction=100.0)   # no cap bites
    kept = kept_lengths(post.indptr, post.values, params)
    assert 20 * 300 - 300 < kept.sum() <= 20 * 300                      # one floor per list at most
    threshold = np.sort(post.values)[::-1][20 * 300 - 1]
    above = np.add.reduceat((post.values > threshold).astype(np.int64), post.indptr[:-1])
    at_least = np.add.reduceat((post.values >= threshold).astype(np.int64), post.indptr[:-1])
    empty = np.diff(post.indptr) == 0
    assert np.all((kept >= above) | empty) and np.all((kept <= at_least) | empty)
    assert at_least.sum() - above.sum() > 300                           # the ties really were many


def test_pruning_modes_agree_when_nothing_is_cut():
    """With room for every posting both modes keep all; fixed keeps min(length, n_postings) per list."""
    docs = random_batch(200, 30, seed=12, vocab=200)
    _, post = _lists(docs)
    lengths = np.diff(post.indptr)
    for pruning in ("fixed", "global"):
        big = SeismicBuildParams(n_postings=int(lengths.max()), pruning=pruning)
        np.testing.assert_array_equal(kept_lengths(post.indptr, post.values, big), lengths)
    fixed = SeismicBuildParams(n_postings=10, pruning="fixed")
    np.testing.assert_array_equal(kept_lengths(post.indptr, post.values, fixed), np.minimum(lengths, 10))


def test_unpruned_global_seismic_equals_exact(toy, tmp_path):
    docs, ids, queries = toy
    idx = Index.build(tmp_path / "g", docs, ids, methods=("exact", "seismic"), pruning="global", max_fraction=1.0,
                      n_postings=len(docs), summary_energy=1.0)
    assert_same_topk(idx.search(queries, k=10, method="seismic", **EVERYTHING), idx.search(queries, k=10))


def test_manifests_without_pruning_keep_the_fixed_cap():
    """Segments added to an index built before ``pruning`` existed are pruned as that index was."""
    docs = random_batch(300, 40, seed=13, vocab=300)
    fwd, post = _lists(docs)
    old = {"n_postings": 20, "centroid_fraction": 0.2, "summary_energy": 0.4, "min_cluster_size": 3, "doc_cut": 15}
    seismic = methods.get("seismic")
    arrays = seismic.build(fwd, post, seismic.build_config(old))   # as index/builder.py reads a manifest
    assert max(len(_kept_docs(arrays, t)) for t in range(300)) == 20


@pytest.mark.parametrize("params,message", [
    ({"query_cut": 0}, "query_cut"), ({"query_cut": 2.0}, "query_cut"), ({"heap_factor": 0}, "heap_factor"),
    ({"heap_factor": 1.01}, "heap_factor"), ({"heap_factor": "0.9"}, "heap_factor"), ({"alpha": 0.9}, "alpha"),
])
def test_bad_search_parameters(toy, toy_index, params, message):
    _, _, queries = toy
    with pytest.raises(ValueError, match=message):
        toy_index.search(queries, k=10, method="seismic", **params)


def test_large_vocabulary_keeps_int32_term_ids(tmp_path):
    docs = random_batch(200, 20, seed=5, vocab=70_000)
    idx = Index.build(tmp_path / "v", docs, [str(i) for i in range(len(docs))], methods=("exact", "seismic"),
                      **LOOSE)
    seg = idx.segments[0]
    assert seg["fwd_terms"].dtype == np.int32 and seg["seismic.record_terms"].dtype == np.int32
    queries = random_batch(10, 8, seed=6, vocab=70_000)
    assert_same_topk(idx.search(queries, k=5, method="seismic", **EVERYTHING), idx.search(queries, k=5))


# ---- the summary layout ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_blocks", [5, 300, 40_000])
def test_layout_round_trip(n_blocks):
    """Entries written by write_list and read back by score_list give the dense sum q . codes, per block."""
    rng = np.random.default_rng(n_blocks)
    vocab = 300
    n = 3000
    blocks = rng.integers(0, n_blocks, n)
    terms = rng.integers(0, vocab, n).astype(np.int32)
    long = min(n_blocks, 600)        # term 7 in this many blocks: past 127 it spans several records
    blocks[:long], terms[:long] = np.arange(long), 7
    keep = np.unique(blocks.astype(np.int64) * vocab + terms, return_index=True)[1]   # (block, term) unique
    keep = keep[np.argsort(blocks[keep], kind="stable")]                               # block order, as built
    blocks, terms = blocks[keep], terms[keep]
    codes = rng.integers(1, 256, len(terms)).astype(np.uint8)
    distinct, counts = np.unique(terms, return_counts=True)
    count = np.zeros(vocab, np.int64)
    count[distinct] = counts
    n_rec, n_bytes, n_samples = layout_bound(len(terms), len(distinct))
    rec_terms, rec_sizes = np.zeros(n_rec, np.uint16), np.zeros(n_rec, np.uint8)
    entries, samples = np.zeros(n_bytes, np.uint8), np.zeros(n_samples, np.uint32)
    fence = np.zeros(n_samples, np.uint16)
    n_rec, n_bytes, n_samples = write_list(terms, blocks, codes, distinct.astype(np.int32), count,
                                           np.zeros(vocab, np.int64), rec_terms, rec_sizes, entries, samples, fence)
    assert rec_sizes[:n_rec].sum() == n_bytes and n_samples == -(-n_rec // SAMPLE)
    assert (n_rec > len(distinct)) == (long > 127)              # the long term spans several records
    assert n_bytes < (2.1 if n_blocks <= 300 else 4.0) * len(terms)   # few gaps of 255 or more in short lists
    np.testing.assert_array_equal(fence[:n_samples], rec_terms[:n_rec:SAMPLE])
    q_terms = np.sort(rng.choice(vocab, 40, replace=False)).astype(np.int32)
    q_terms[0] = 7
    q_terms.sort()
    q_weights = rng.random(40).astype(np.float32)
    acc = np.zeros(n_blocks, np.float32)
    score_list(q_terms, q_weights, 0, n_rec, 0, 0, rec_terms, rec_sizes, entries, samples, fence, acc)
    dense = np.zeros((n_blocks, vocab), np.float64)
    dense[blocks, terms] = codes
    q = np.zeros(vocab)
    q[q_terms] = q_weights
    np.testing.assert_allclose(acc, dense @ q, rtol=1e-5)


def test_block_summary_keeps_the_energy_and_bounds_from_above():
    docs = random_batch(20, 30, seed=7)
    fwd = ForwardIndex.from_vectors(docs, "float32")
    vocab = docs.vocab_size
    block = np.arange(len(docs), dtype=np.int32)
    out_t, out_c = np.zeros(vocab, np.int32), np.zeros(vocab, np.uint8)
    maxv = np.zeros(vocab, np.float32)
    for energy in (0.2, 0.5, 1.0):
        size, scale = block_summary(block, fwd.indptr, fwd.terms, fwd.values, energy, maxv,
                                    np.zeros(vocab + 1, np.int32), np.zeros(256), out_t, out_c)
        assert not maxv.any()                                  # scratch left zeroed
        true_max = docs.to_scipy().max(axis=0).toarray().ravel()
        kept = out_t[:size]
        assert len(set(kept)) == size
        assert true_max[kept].sum() >= energy * true_max.sum() - 1e-4
        assert np.all(out_c[:size] * scale >= true_max[kept] * (1 - 1e-6))    # rounded up
        assert np.all(out_c[:size] * scale <= true_max[kept] + scale)
        if energy == 1.0:
            assert size == np.count_nonzero(true_max)


def test_clustering_partitions_the_list():
    docs = random_batch(400, 30, seed=8)
    fwd = ForwardIndex.from_vectors(docs, "uint8")
    cut = top_terms(fwd.indptr, fwd.terms, fwd.values, 10)
    members = np.arange(0, 400, 2, dtype=np.int32)
    vocab = docs.vocab_size
    sizes = cluster_list(members, 5, 20, 3, np.uint64(5), fwd.indptr, fwd.terms, fwd.values, *cut,
                         np.zeros(vocab, np.int64), np.zeros(vocab, np.int64),
                         np.zeros(vocab, np.int64), 1)
    assert sizes.sum() == 200 and np.all(sizes >= 3) and len(sizes) <= 20
    assert sorted(members) == list(range(0, 400, 2))
    start = 0
    for s in sizes:                                            # doc numbers ascend inside each block
        assert np.all(np.diff(members[start:start + s]) > 0)
        start += s


# ---- real vectors ------------------------------------------------------------------------------------------------

def test_recall_rises_to_one_on_real_vectors(scifact_sample, tmp_path):
    docs, ids, queries = scifact_sample
    idx = Index.build(tmp_path / "r", docs, ids, methods=("exact", "seismic"), quantization="float32",
                      n_postings=75, summary_energy=0.4)
    truth = scipy_scores(docs, queries)
    kth = -np.sort(-truth, axis=1)[:, 9]
    original = {d: i for i, d in enumerate(ids)}

    def recall(**params) -> float:
        res = idx.search(queries, k=10, method="seismic", **params)
        return float(np.mean([np.sum(truth[r, [original[h] for h in hits]] >= kth[r] - 1e-4) / 10
                              for r, hits in enumerate(res.ids)]))

    settings = [{"query_cut": 2, "heap_factor": 1.0}, {"query_cut": 5, "heap_factor": 0.9},
                {"query_cut": 10, "heap_factor": 0.7}, {"query_cut": 64, "heap_factor": 0.3}]
    recalls = [recall(**s) for s in settings]
    assert recalls == sorted(recalls) and recalls[0] < 0.95, recalls
    assert recalls[-1] == 1.0, recalls


def test_default_parameters_pass_their_own_check():
    assert SeismicBuildParams().n_postings > 0 and SeismicSearchParams().query_cut > 0
    assert methods.get("seismic").search_config({}) == SeismicSearchParams()
    with pytest.raises(ValueError, match="seismic: query_cut must be an integer >= 1, got -1"):
        SeismicSearchParams(query_cut=-1)


@pytest.mark.slow
def test_cli_index_and_search_with_seismic(tmp_path):
    """lsr index --method seismic --param ... on a vectors file, lsr search --method seismic --param ... (the query
    is encoded by splade-tiny, whose 30,522-term vocabulary the random documents use)."""
    import json

    from typer.testing import CliRunner

    from lsr.cli import app
    from lsr.core.vectors import save_vectors

    docs = random_batch(300, 60, seed=9, vocab=30522)
    save_vectors(tmp_path / "v.npz", docs, [f"d{i}" for i in range(len(docs))], {"model": "splade-tiny"})
    runner = CliRunner()
    out = tmp_path / "idx"
    result = runner.invoke(app, ["index", str(tmp_path / "v.npz"), "-o", str(out), "--method", "exact", "--method",
                                 "seismic", "--param", "n_postings=1000", "--param", "summary_energy=1.0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["index", str(tmp_path / "v.npz"), "-o", str(tmp_path / "bad"), "--method",
                                 "seismic", "--param", "summary_energy=0"])
    assert result.exit_code == 2 and "summary_energy" in result.output

    def hits(*args) -> list[str]:
        r = runner.invoke(app, ["search", "the of and a in", "--index", str(out), "-k", "5", "--json", *args])
        assert r.exit_code == 0, r.output
        return [h["id"] for h in json.loads(r.stdout)["hits"]]

    exact = hits()
    assert len(exact) == 5
    assert hits("--method", "seismic", "--param", "query_cut=1000", "--param", "heap_factor=0.000001") == exact
