"""The index: build/open round trip, exact scores against scipy, methods, bad input, atomic builds, corruption."""

from __future__ import annotations

import numpy as np
import pytest

from lsr.core.documents import Document
from lsr.core.validate import FLOAT32_TINY
from lsr.index import Index, IndexCorrupt, InvalidQuery, VocabularyMismatch
from lsr.index.bmp import BmpBuildParams, BmpSearchParams
from lsr.index.seismic import SeismicSearchParams
from lsr.core.sparse import SparseBatch
from tests.vectors import VOCAB, random_batch, scipy_scores

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
    assert idx.document("d5") == {"id": "d5", "title": "title d5", "text": "text of d5", "metadata": None}
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
    ties = np.isclose(exact.scores[:, 1:], exact.scores[:, :-1], rtol=1e-5)
    untied = np.ones_like(exact.docs, dtype=bool)
    untied[:, 1:] &= ~ties
    untied[:, :-1] &= ~ties
    for exhaustive in (1.0, 0.15, 0.0):   # pure block-at-a-time, the default switch, always exhaustive
        safe = idx.search(queries, k=10, method="bmp", exhaustive=exhaustive)
        np.testing.assert_allclose(safe.scores, exact.scores, rtol=1e-5, atol=1e-6)
        assert np.array_equal(safe.docs[untied], exact.docs[untied])
    for k in (1, 3, 25):   # every k, including more than the 10th/100th kth-impact threshold ranks
        np.testing.assert_allclose(idx.search(queries, k=k, method="bmp", exhaustive=1.0).scores,
                                   idx.search(queries, k=k).scores, rtol=1e-5, atol=1e-6)


def test_bmp_approximate_settings(built, corpus):
    _, _, _, queries = corpus
    idx = Index.open(built)
    exact = idx.search(queries, k=10)
    for params in ({"alpha": 0.8, "exhaustive": 1.0}, {"beta": 0.5}, {"alpha": 0.9, "beta": 0.7, "exhaustive": 1.0}):
        approx = idx.search(queries, k=10, method="bmp", **params)
        recall = np.mean([len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(exact.ids, approx.ids)])
        assert 0.5 < recall <= 1.0
        assert np.all(approx.scores <= exact.scores[:, :1] + 1e-4)


# ---- bad input ----------------------------------------------------------------------------------------------------
def test_bad_queries(built, corpus):
    _, _, _, queries = corpus
    idx = Index.open(built)
    t, w = queries.row(0)
    with pytest.raises(InvalidQuery, match=rf"lie in \[0, {VOCAB}\).*got {VOCAB}: the query comes from another"):
        idx.search_one(np.array([0, VOCAB]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="lie in"):
        idx.search_one(np.array([-1]), np.array([1.0]))
    for bad in (np.nan, -0.5, np.inf):
        with pytest.raises(ValueError, match="finite and >= 0"):
            idx.search_one(t, np.where(np.arange(len(w)) == 0, bad, w))
    with pytest.raises(InvalidQuery, match="unique, got 3 twice"):
        idx.search_one(np.array([3, 3]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="equal length"):
        idx.search_one(np.array([1, 2]), np.array([1.0]))
    with pytest.raises(ValueError, match="integers"):
        idx.search_one(np.array([1.5]), np.array([1.0]))
    with pytest.raises(InvalidQuery, match="weights must be numbers"):
        idx.search_one(np.array([1]), ["heavy"])
    for k in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="k must be an integer >= 1"):
            idx.search_one(t, w, k=k)
    with pytest.raises(ValueError, match="built without method"):
        idx.search_one(t, w, method="seismic-nope")
    with pytest.raises(ValueError, match="no search parameter"):
        idx.search_one(t, w, method="bmp", gamma=1)
    with pytest.raises(ValueError, match="alpha"):
        idx.search_one(t, w, method="bmp", alpha=0)
    with pytest.raises(ValueError, match="beta"):
        idx.search_one(t, w, method="bmp", beta=1.5)
    with pytest.raises(ValueError, match="exhaustive"):
        idx.search_one(t, w, method="bmp", exhaustive=-0.1)
    for threads in (0, True, 1.5):
        with pytest.raises(ValueError, match="threads must be an integer >= 1"):
            idx.search(queries, threads=threads)
    bad_batch = SparseBatch(queries.indptr, queries.indices, -queries.values, VOCAB)
    with pytest.raises(ValueError, match="queries: weights"):
        idx.search(bad_batch)


@pytest.mark.parametrize("alpha", [1e-46, 1e-45, 1e-40, 1e-39, 5e-324])
def test_bmp_alpha_below_the_smallest_normal_float32_is_refused(built, corpus, alpha):
    """Issue 17 item 7: alpha became 0 (or a subnormal) in the float32 kernel: ZeroDivisionError, or bounds of inf."""
    _, _, _, queries = corpus
    idx = Index.open(built)
    with pytest.raises(ValueError, match="bmp: alpha must be a number in \\(0, 1\\] and, unless 0, at least "
                                         "1.17549e-38"):
        idx.search(queries, k=5, method="bmp", alpha=alpha)
    with pytest.raises(ValueError, match="bmp: alpha"):
        idx.search_one(*queries.row(0), k=5, method="bmp", params={"alpha": alpha})


def test_bmp_at_the_smallest_normal_alpha_still_answers(built, corpus):
    _, _, _, queries = corpus
    idx = Index.open(built)
    res = idx.search(queries, k=5, method="bmp", alpha=FLOAT32_TINY)
    assert np.all(res.docs[:, 0] >= 0)   # the best block is always scored


def test_search_parameters_as_dataclass_mapping_or_keywords(built, corpus):
    _, _, _, queries = corpus
    idx = Index.open(built)
    by_keywords = idx.search(queries, k=5, method="bmp", alpha=0.7, beta=0.8)
    for params in (BmpSearchParams(alpha=0.7, beta=0.8), {"alpha": 0.7, "beta": 0.8}):
        again = idx.search(queries, k=5, method="bmp", params=params)
        np.testing.assert_array_equal(again.docs, by_keywords.docs)
        s, d = idx.search_one(*queries.row(3), k=5, method="bmp", params=params)
        np.testing.assert_array_equal(d, by_keywords.docs[3])
    # a user's mapping cannot reach this method's own arguments (snapshot, k): they are parameter names like any other
    for name in ("snapshot", "k", "params"):
        with pytest.raises(ValueError, match=rf"method 'bmp' has no search parameter \['{name}'\]; it takes "
                                             r"\['alpha', 'beta', 'exhaustive'\]"):
            idx.search_one(*queries.row(0), method="bmp", params={name: 1})
    with pytest.raises(TypeError, match="method 'bmp' takes its search parameters as BmpSearchParams or keywords, "
                                        "got SeismicSearchParams"):
        idx.search(queries, method="bmp", params=SeismicSearchParams())
    with pytest.raises(ValueError, match="not both"):
        idx.search(queries, method="bmp", params=BmpSearchParams(), alpha=0.5)
    idx.search(queries, method="bmp", params={"alpha": 1})   # checked values are remembered by type too:
    with pytest.raises(ValueError, match="bmp: alpha must be a finite number in \\(0, 1\\], got True"):
        idx.search(queries, method="bmp", params={"alpha": True})
    with pytest.raises(ValueError, match="method 'exact' has no search parameter"):
        idx.check_search("exact", {"alpha": 0.5})
    with pytest.raises(ValueError, match="bmp: beta must be a finite number in \\(0, 1\\], got '0.5'"):
        BmpSearchParams(beta="0.5")


def test_build_parameters_as_dataclass_or_keywords(corpus, tmp_path):
    docs, ids, _, queries = corpus
    typed = Index.build(tmp_path / "t", docs, ids, params={"bmp": BmpBuildParams(block_size=32)})
    flat = Index.build(tmp_path / "f", docs, ids, block_size=32)
    mapped = Index.build(tmp_path / "m", docs, ids, params={"bmp": {"block_size": 32}})
    for idx in (typed, flat, mapped):
        assert idx.manifest.build_params == {"reorder": True, "exact": {}, "bmp": {"block_size": 32}}
        assert int(idx.segments[0]["bmp.block_size"][0]) == 32
    np.testing.assert_array_equal(typed.search(queries, method="bmp").docs, flat.search(queries, method="bmp").docs)
    cases = [
        (dict(block_size="32"), "bmp: block_size must be an integer in 8..128, got '32'"),
        (dict(block_size=True), "bmp: block_size must be an integer in 8..128, got True"),
        (dict(params={"bmp": BmpBuildParams()}, block_size=16), "give its build parameters in params or as keywords"),
        (dict(params={"seismic": {}}), "build parameters for \\['seismic'\\], which are not among the methods"),
        (dict(params={"bmp": {"alpha": 0.5}}), "method 'bmp' has no build parameter \\['alpha'\\]; it takes "
                                                 "\\['block_size'\\]"),
        (dict(n_postings=10), "unknown build parameters \\['n_postings'\\] for methods \\['exact', 'bmp'\\]"),
    ]
    for i, (change, message) in enumerate(cases):
        with pytest.raises(ValueError, match=message):
            Index.build(tmp_path / f"bad{i}", docs, ids, **change)
        assert not (tmp_path / f"bad{i}").exists()
    with pytest.raises(TypeError, match="takes its build parameters as BmpBuildParams"):
        Index.build(tmp_path / "bad", docs, ids, params={"bmp": 32})


def test_documents_as_dicts_or_a_clear_type_error(corpus, tmp_path):
    """The README once passed the encoder's SparseBatch as texts: a TypeError naming the argument, not an
    AttributeError deep inside; dict records are stored like Documents."""
    docs, ids, texts, _ = corpus
    records = [{"id": t.id, "text": t.text, "title": t.title} for t in texts]
    records[1] = {"id": ids[1], "text": "untitled"}
    idx = Index.build(tmp_path / "d", docs, ids, texts=records)
    assert idx.document(ids[0]) == {"id": ids[0], "title": texts[0].title, "text": texts[0].text, "metadata": None}
    assert idx.document(ids[1]) == {"id": ids[1], "title": "", "text": "untitled", "metadata": None}
    for bad, message in [(docs, "texts must be a sequence of lsr Documents or dicts"),
                         ({"id": "d0", "text": "x"}, "texts must be a sequence"),
                         ("some text", "texts must be a sequence"),
                         (["a string"] * len(ids), "texts\\[0\\] must be an lsr Document or a dict with 'id', 'text'"),
                         ([None] * len(ids), "texts\\[0\\] must be an lsr Document or a dict")]:
        with pytest.raises(TypeError, match=message):
            Index.build(tmp_path / "bad", docs, ids, texts=bad)
    with pytest.raises(ValueError, match="texts\\[2\\]: a document needs 'id'"):
        Index.build(tmp_path / "bad", docs, ids, texts=records[:2] + [{"title": "t"}] + records[3:])
    with pytest.raises(ValueError, match="texts\\[0\\]: 'text' and 'title' must be strings"):
        Index.build(tmp_path / "bad", docs, ids, texts=[{"id": ids[0], "text": 5}] + records[1:])
    assert not (tmp_path / "bad").exists()
    live = Index.open(tmp_path / "d", writable=True)
    try:
        one = docs.take(np.arange(1))
        live.add(["new"], one, [{"id": "new", "text": "added", "title": "n"}])
        live.upsert([ids[0]], one, [{"_id": ids[0], "text": "replaced"}])
        with pytest.raises(TypeError, match="texts must be a sequence"):
            live.add(["other"], one, one)
        live.flush()
        assert live.document("new") == {"id": "new", "title": "n", "text": "added", "metadata": None}
        assert live.document(ids[0])["text"] == "replaced"
    finally:
        live.close()


def test_defined_results_for_empty_queries_and_large_k(built, corpus):
    docs, _, _, queries = corpus
    idx = Index.open(built)
    for method in ("exact", "bmp"):
        s, d = idx.search_one(np.array([], np.int32), np.array([], np.float32), k=5, method=method)
        assert np.all(d == -1) and np.all(s == 0) and len(d) == 5
        s, d = idx.search_one(np.array([4, 7]), np.array([0.0, 0.0]), k=5, method=method)   # zero weights: ignored
        assert np.all(d == -1)
        s, d = idx.search_one(*queries.row(0), k=10 * idx.num_docs, method=method)
        assert len(d) == idx.num_docs                          # k beyond the corpus: every matching document
        matching = int(np.sum(scipy_scores(docs, queries)[0] > 0))
        assert np.sum(d >= 0) == matching and np.all(d[matching:] == -1)
    # unsorted ids and zero weights in one query are cleaned, not refused
    t, w = queries.row(1)
    s1, d1 = idx.search_one(t, w)
    rev = np.argsort(-t)
    s2, d2 = idx.search_one(np.append(t[rev], 0), np.append(w[rev], 0.0))
    np.testing.assert_array_equal(d1, d2)
    empty = SparseBatch(np.zeros(3, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), VOCAB)
    res = idx.search(empty, k=4)
    assert res.docs.shape == (2, 4) and np.all(res.docs == -1) and res.ids == [[], []]


def test_vocabulary_mismatch(built, corpus):
    _, _, _, queries = corpus
    idx = Index.open(built)
    idx.check_vocabulary("fp-toy")
    idx.check_vocabulary(None)   # unknown: nothing to compare
    with pytest.raises(VocabularyMismatch, match="fp-other"):
        idx.check_vocabulary("fp-other")
    wider = SparseBatch(queries.indptr, queries.indices, queries.values, VOCAB + 1)
    with pytest.raises(VocabularyMismatch):
        idx.search(wider)


def test_bad_build_input(corpus, tmp_path):
    docs, ids, texts, _ = corpus
    cases = [
        (dict(doc_ids=ids[:-1]), "document ids for"),
        (dict(doc_ids=["a"] * len(ids)), "unique"),
        (dict(doc_ids=[""] + ids[1:]), "non-empty"),
        (dict(texts=texts[:3]), "texts for"),
        (dict(texts=texts[::-1]), "has id"),
        (dict(quantization="int4"), "quantization"),
        (dict(methods=("exact", "nope")), "unknown search method"),
        (dict(block_size=3), "block_size"),
        (dict(colour="blue"), "unknown build parameters"),
        (dict(vectors=SparseBatch(docs.indptr, docs.indices, docs.values * -1, VOCAB)), "weights"),
        (dict(vectors=SparseBatch(docs.indptr, docs.indices, docs.values, 10)), "term ids"),
        (dict(vectors=SparseBatch(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), VOCAB),
              doc_ids=[]), "zero documents"),
    ]
    for i, (change, message) in enumerate(cases):
        args = {"vectors": docs, "doc_ids": ids, **change}
        with pytest.raises(ValueError, match=message):
            Index.build(tmp_path / f"bad{i}", args.pop("vectors"), args.pop("doc_ids"), **args)
        assert not (tmp_path / f"bad{i}" / "manifest.json").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        Index.build(tmp_path / "busy", docs, ids)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


# ---- durability ---------------------------------------------------------------------------------------------------
def test_existing_index_needs_overwrite_and_survives_a_failed_rebuild(corpus, tmp_path, monkeypatch):
    docs, ids, texts, queries = corpus
    path = tmp_path / "idx"
    first = Index.build(path, docs, ids, texts=texts)
    before = first.search(queries, k=5)
    with pytest.raises(FileExistsError, match="overwrite"):
        Index.build(path, docs, ids)

    from lsr.index import index as index_module

    def crash(*a, **kw):
        raise OSError("disk died")
    monkeypatch.setattr(index_module.Manifest, "write", crash)
    with pytest.raises(OSError, match="disk died"):
        Index.build(path, docs.take(np.arange(100)), ids[:100], overwrite=True)
    monkeypatch.undo()
    again = Index.open(path)           # the previous generation, intact and verified
    assert again.num_docs == len(ids) and again.manifest.generation == 1
    np.testing.assert_array_equal(again.search(queries, k=5).docs, before.docs)
    # a later successful rebuild replaces it and removes the leftovers of the failed one
    rebuilt = Index.build(path, docs.take(np.arange(100)), ids[:100], overwrite=True)
    assert rebuilt.num_docs == 100 and rebuilt.manifest.generation == 2
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "seg-000002", "write.lock"]


def test_interrupted_build_leaves_nothing_that_opens(corpus, tmp_path, monkeypatch):
    docs, ids, _, _ = corpus
    from lsr.index import segment as segment_module

    real_save = np.save
    calls = {"n": 0}

    def failing_save(f, array, **kw):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("no space left on device")
        return real_save(f, array, **kw)
    monkeypatch.setattr(segment_module.np, "save", failing_save)
    with pytest.raises(OSError, match="no space"):
        Index.build(tmp_path / "idx", docs, ids)
    monkeypatch.undo()
    with pytest.raises(IndexCorrupt, match="no manifest.json"):
        Index.open(tmp_path / "idx")
    Index.build(tmp_path / "idx", docs, ids)     # the leftovers do not block a new build
    assert Index.open(tmp_path / "idx").num_docs == len(ids)


KILL_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from tests.vectors import random_batch
from lsr.index import Index
docs = random_batch(3000, 60, seed=5)
print("ready", flush=True)
Index.build(sys.argv[1], docs, [f"d{{i}}" for i in range(len(docs))])
print("committed", flush=True)
"""


@pytest.mark.slow
def test_killed_build_subprocess(tmp_path):
    """SIGKILL a build at random moments: the folder either opens as a complete, verified index or not at all."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = tmp_path / "build.py"
    script.write_text(KILL_SCRIPT.format(root=root))
    rng = np.random.default_rng(0)
    outcomes = set()
    for attempt in range(4):
        path = tmp_path / f"idx{attempt}"
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        try:
            idx = Index.open(path)
        except IndexCorrupt:
            outcomes.add("nothing")
            continue
        assert idx.num_docs == 3000
        outcomes.add("complete")
    assert "nothing" in outcomes


def test_corruption_detected_on_open(corpus, tmp_path):
    docs, ids, _, _ = corpus
    path = tmp_path / "idx"
    Index.build(path, docs, ids)
    seg = next(path.glob("seg-*"))
    target = seg / "post_values.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF                                   # same size, one flipped byte
    target.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="checksum mismatch"):
        Index.open(path)
    Index.open(path, verify=False)                     # sizes still match: only the checksum catches it
    target.write_bytes(bytes(data[:-100]))             # truncated
    with pytest.raises(IndexCorrupt, match="truncated"):
        Index.open(path, verify=False)
    target.unlink()
    with pytest.raises(IndexCorrupt, match="missing"):
        Index.open(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorrupt, match="malformed manifest"):
        Index.open(path)
    with pytest.raises(FileExistsError, match="overwrite"):
        Index.build(path, docs, ids)
    assert Index.build(path, docs, ids, overwrite=True).num_docs == len(ids)   # a damaged index can be replaced


def test_filtered_searches_widen_the_approximate_settings():
    # unfiltered (share 1) the settings are the user's; the fewer documents a filter keeps, the more query terms
    # BMP and Seismic keep, never fewer than unfiltered (BENCHMARKS.md, "Filtered search")
    bmp_p, seismic_p = BmpSearchParams(alpha=0.8, beta=0.7), SeismicSearchParams(query_cut=8)
    assert bmp_p.filtered(1.0) == pytest.approx(0.7) and seismic_p.filtered(1.0) == 8
    shares = (1.0, 0.5, 0.1, 0.01)
    betas, cuts = [bmp_p.filtered(s) for s in shares], [seismic_p.filtered(s) for s in shares]
    assert betas == sorted(betas) and betas[-1] <= 1.0 and cuts == sorted(cuts)
    assert seismic_p.filtered(0.1) == 14 and BmpSearchParams(beta=1.0).filtered(0.1) == 1.0
