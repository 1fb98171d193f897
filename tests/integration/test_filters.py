"""Filtered search and pages: every method against scipy's exact top-k over the documents a filter allows (a
reference evaluator in plain Python), across several segments, the writer's buffer and deletes; filters after
flush, merge and reopen; the direct path; pages that concatenate to the unpaged ranking; bad filters and metadata."""

from __future__ import annotations

import numpy as np
import pytest

from lsr.core.documents import Document
from lsr.index import Index
from lsr.index.errors import InvalidFilter
from lsr.index.filters import parse_filter
from lsr.index.wal import PUT, Record
from tests.vectors import random_batch

LANGS = ["en", "de", "fr", "es"]
TAGS = list("abcdefgh")
LOOSE = {"n_postings": 100_000, "summary_energy": 1.0}          # seismic with nothing pruned: exact
EVERYTHING = {"query_cut": 10_000, "heap_factor": 1e-6}
SEARCHES = [("exact", {}), ("bmp", {"alpha": 1.0}), ("bmp", {"alpha": 1.0, "exhaustive": 1.0}),
            ("seismic", EVERYTHING)]


def metadata(rng, i: int) -> dict | None:
    """Random metadata of every kind; some documents have none, some lack a key, some lists are empty."""
    if i % 11 == 0:
        return None
    meta = {"lang": LANGS[rng.integers(len(LANGS))], "year": int(rng.integers(1990, 2024)),
            "score": float(np.round(rng.normal(), 3)), "open": bool(rng.integers(2)),
            "tags": [TAGS[t] for t in rng.choice(len(TAGS), rng.integers(0, 4), replace=False)]}
    if i % 3 == 0:
        meta["sizes"] = [int(x) for x in rng.integers(0, 50, rng.integers(1, 4))]
    if i % 7 == 0:
        del meta["lang"]
    return meta


# ---- a reference evaluator: the filter language in plain Python ---------------------------------------------------
def _values(meta: dict | None, key: str) -> list:
    v = (meta or {}).get(key)
    return [] if v is None else v if isinstance(v, list) else [v]


def holds(cond: dict, doc_id: str, meta: dict | None) -> bool:
    if "has_id" in cond:
        return doc_id in cond["has_id"]
    if "key" not in cond:
        return passes(cond, doc_id, meta)
    values = _values(meta, cond["key"])
    if "match" in cond:
        wanted = [cond["match"]["value"]] if "value" in cond["match"] else cond["match"]["any"]
        return any(v == w and isinstance(v, bool) == isinstance(w, bool) for v in values for w in wanted)
    r = cond["range"]
    return any(("gt" not in r or v > r["gt"]) and ("gte" not in r or v >= r["gte"]) and
               ("lt" not in r or v < r["lt"]) and ("lte" not in r or v <= r["lte"]) for v in values)


def passes(f: dict, doc_id: str, meta: dict | None) -> bool:
    return (all(holds(c, doc_id, meta) for c in f.get("must", [])) and
            (not f.get("should") or any(holds(c, doc_id, meta) for c in f["should"])) and
            not any(holds(c, doc_id, meta) for c in f.get("must_not", [])))


def random_condition(rng, ids: list[str], depth: int) -> dict:
    kind = rng.integers(8 if depth < 2 else 7)
    if kind == 0:
        return {"key": "lang", "match": {"value": LANGS[rng.integers(len(LANGS))]}}
    if kind == 1:
        return {"key": "tags", "match": {"any": [TAGS[t] for t in rng.choice(len(TAGS), 2, replace=False)]}}
    if kind == 2:
        low = int(rng.integers(1990, 2024))
        return {"key": "year", "range": {"gte": low, "lt": low + int(rng.integers(1, 12))}}
    if kind == 3:
        return {"key": "score", "range": {"gt": float(rng.normal())}}
    if kind == 4:
        return {"key": "open", "match": {"value": bool(rng.integers(2))}}
    if kind == 5:
        return {"key": "sizes", "match": {"any": [int(x) for x in rng.integers(0, 50, 3)]}}
    if kind == 6:
        return {"has_id": [ids[i] for i in rng.choice(len(ids), 40, replace=False)] + ["no-such-id"]}
    return random_filter(rng, ids, depth + 1)


def random_filter(rng, ids: list[str], depth: int = 0) -> dict:
    f = {}
    for name in ("must", "should", "must_not"):
        if rng.random() < 0.6:
            f[name] = [random_condition(rng, ids, depth) for _ in range(rng.integers(1, 3))]
    return f


# ---- the index --------------------------------------------------------------------------------------------------
class Live:
    """An index of several segments (and the writer's buffer) with deletes and replacements, and what it holds."""

    def __init__(self, path, n: int = 900, seed: int = 5):
        rng = np.random.default_rng(seed)
        self.vectors = random_batch(n, 40, seed=seed)
        self.queries = random_batch(12, 12, seed=seed + 1)
        self.ids = [f"d{i}" for i in range(n)]
        self.meta = {d: metadata(rng, i) for i, d in enumerate(self.ids)}
        self.row: dict[str, int] = {}
        docs = [Document(d, f"text {d}", metadata=self.meta[d]) for d in self.ids]
        Index.build(path, self.vectors.take(np.arange(300)), self.ids[:300], texts=docs[:300],
                    methods=["exact", "bmp", "seismic"], quantization="float32", block_size=16, **LOOSE)
        self.row.update((d, i) for i, d in enumerate(self.ids[:300]))
        self.idx = Index.open(path, writable=True, refresh_interval=0, flush_docs=150, background_merges=False,
                              background_flushes=False)
        for lo in range(300, n, 100):
            rows = np.arange(lo, min(lo + 100, n))
            self.idx.add([self.ids[i] for i in rows], self.vectors.take(rows), [docs[i] for i in rows])
            self.row.update((self.ids[i], i) for i in rows)
            gone = list(rng.choice(sorted(self.row), 15, replace=False))
            self.idx.delete(gone)
            for d in gone:
                del self.row[d]
            again = list(rng.choice(sorted(self.row), 5, replace=False))   # new metadata, another vector
            rows = rng.integers(0, n, len(again))
            for d in again:
                self.meta[d] = metadata(rng, int(rng.integers(1, 10**6)))
            self.idx.upsert(again, self.vectors.take(rows), [Document(d, "replaced", metadata=self.meta[d])
                                                             for d in again])
            self.row.update(zip(again, (int(r) for r in rows)))

    def truth(self, f: dict | None) -> tuple[list[str], np.ndarray]:
        """(allowed live ids, their scipy scores per query) under the reference evaluator."""
        ids = sorted(d for d in self.row if f is None or passes(f, d, self.meta[d]))
        docs = self.vectors.take(np.array([self.row[d] for d in ids], dtype=np.int64)).to_scipy()
        return ids, np.asarray((self.queries.to_scipy() @ docs.T).todense(), dtype=np.float64)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    state = Live(tmp_path_factory.mktemp("filters") / "idx")
    state.idx.refresh()
    assert len(state.idx.manifest.segments) >= 3 and len(state.idx._writer._buffer) > 0
    assert any(s.deletes for s in state.idx.manifest.segments)
    yield state
    state.idx.close()


def assert_filtered_topk(res, ids: list[str], truth: np.ndarray, k: int, tol: float = 1e-5) -> None:
    """``res`` (a SearchResult) equals the top-k of ``truth`` over ``ids``: the same scores, the same documents
    up to ties."""
    for r, got in enumerate(res.ids):
        order = np.argsort(-truth[r], kind="stable")[:k]
        want = truth[r][order]
        want = want[want > 0]
        assert len(got) == len(want), (r, got, [ids[i] for i in order])
        np.testing.assert_allclose(res.scores[r, :len(want)], want, rtol=tol, atol=tol)
        true_score = dict(zip(ids, truth[r]))
        np.testing.assert_allclose([true_score[d] for d in got], want, rtol=tol, atol=tol)   # allowed, exactly scored


def test_every_method_equals_filtered_exact_on_random_filters(live):
    rng = np.random.default_rng(11)
    idx = live.idx
    for _ in range(25):
        f = random_filter(rng, live.ids)
        ids, truth = live.truth(f)
        for method, params in SEARCHES:
            for k in (1, 10):
                assert_filtered_topk(idx.search(live.queries, k=k, method=method, filter=f, **params), ids, truth, k)
        scores, docs = idx.search_one(*live.queries.row(0), k=10, method="bmp", filter=f)
        np.testing.assert_array_equal(docs, idx.search(live.queries, k=10, method="bmp", filter=f).docs[0])


def test_selective_filters_take_the_direct_path(live):
    snap = live.idx.snapshot()
    few = {"must": [{"has_id": sorted(live.row)[:20]}]}
    assert sum(a.direct for a in snap.allowed(parse_filter(few))) >= 2   # the large segments
    some = {"must": [{"key": "lang", "match": {"value": "en"}}]}
    assert not any(a.direct for a in snap.allowed(parse_filter(some)))
    for f in (few, some, {"must": [{"key": "year", "range": {"gte": 2000, "lte": 2000}}]}):
        ids, truth = live.truth(f)
        for method, params in SEARCHES:
            assert_filtered_topk(live.idx.search(live.queries, k=10, method=method, filter=f, **params), ids, truth,
                                 10)


def test_pruned_seismic_keeps_only_allowed_documents_scored_exactly(live):
    rng = np.random.default_rng(12)
    for _ in range(10):
        f = random_filter(rng, live.ids)
        ids, truth = live.truth(f)
        allowed = set(ids)
        res = live.idx.search(live.queries, k=10, method="seismic", query_cut=2, heap_factor=1.0, filter=f)
        for r, got in enumerate(res.ids):
            assert set(got) <= allowed
            true_score = dict(zip(ids, truth[r]))
            np.testing.assert_allclose(res.scores[r, :len(got)], [true_score[d] for d in got], rtol=1e-5, atol=1e-5)


def test_keys_no_document_has_match_nothing_and_empty_filters_everything(live):
    idx, q = live.idx, live.queries
    for f in ({"must": [{"key": "nobody", "match": {"value": "x"}}]},
              {"must": [{"key": "nobody", "range": {"gt": 1}}]}, {"must": [{"key": "lang", "match": {"any": []}}]},
              {"should": [{"has_id": ["no-such-id"]}]}):
        res = idx.search(q, k=10, filter=f)
        assert (res.docs == -1).all() and res.ids == [[] for _ in range(len(q))]
    unfiltered = idx.search(q, k=10)
    for f in ({}, {"must_not": [{"key": "nobody", "match": {"value": "x"}}]}):
        np.testing.assert_array_equal(idx.search(q, k=10, filter=f).docs, unfiltered.docs)


def test_pages_concatenate_to_the_unpaged_ranking(live):
    idx, q = live.idx, live.queries
    for f in (None, {"must_not": [{"key": "lang", "match": {"value": "de"}}]},
              {"must": [{"has_id": sorted(live.row)[:25]}]}):
        for method, params in SEARCHES[:2]:
            whole = idx.search(q, k=30, method=method, filter=f, **params)
            pages = [idx.search(q, k=10, offset=o, method=method, filter=f, **params) for o in (0, 10, 20)]
            np.testing.assert_array_equal(np.concatenate([p.docs for p in pages], axis=1), whole.docs)
            np.testing.assert_array_equal(np.concatenate([p.scores for p in pages], axis=1), whole.scores)
            scores, docs = idx.search_one(*q.row(3), k=10, offset=10, method=method, filter=f, **params)
            np.testing.assert_array_equal(docs, whole.docs[3, 10:20])
    # past the end: an empty page, not an error
    beyond = idx.search(q, k=5, offset=idx.num_docs)
    assert beyond.docs.shape == (len(q), 0)


def test_filters_survive_flush_merge_and_reopen(live, tmp_path):
    src = live.idx.path
    f = {"must": [{"key": "year", "range": {"gte": 2000}}], "should": [{"key": "open", "match": {"value": True}},
                                                                     {"key": "tags", "match": {"any": ["a", "b"]}}]}
    ids, truth = live.truth(f)
    idx = live.idx
    before = idx.search(live.queries, k=10, filter=f)
    idx.flush()
    assert len(idx._writer._buffer) == 0
    for stage in ("flush", "merge"):
        assert_filtered_topk(idx.search(live.queries, k=10, filter=f), ids, truth, 10)
        assert_filtered_topk(idx.search(live.queries, k=10, method="bmp", filter=f), ids, truth, 10)
        if stage == "flush":
            idx.compact()
            assert len(idx.segments) == 1
    np.testing.assert_allclose(idx.search(live.queries, k=10, filter=f).scores, before.scores, rtol=1e-5)
    again = Index.open(src)
    assert_filtered_topk(again.search(live.queries, k=10, method="seismic", filter=f, **EVERYTHING), ids, truth, 10)
    doc_id = next(d for d in live.row if live.meta[d])
    assert again.document(doc_id)["metadata"] == live.meta[doc_id]


@pytest.mark.parametrize("bad,path", [
    ({"must": [{"key": "lang", "range": {"gt": 1}}]}, "filter.must[0].range: 'lang' is a keyword field"),
    ({"must": [{"key": "year", "match": {"value": "2020"}}]}, "filter.must[0].match.value: 'year' holds number"),
    ({"should": [{"must": [{"key": "open", "match": {"any": ["x"]}}]}]}, "filter.should[0].must[0].match.any"),
    ({"must": [{"key": "lang", "match": {"value": 3}}]}, "'lang' holds keyword values, got a number"),
    ({"must": [{"key": "open", "range": {"lt": 1}}]}, "'open' is a bool field"),
    ({"must": [{"kye": "lang", "match": {"value": "en"}}]}, "filter.must[0].kye: Extra inputs"),
    ({"must": [{"foo": 1}]}, "filter.must[0]: a condition is"),
    ({"must": [{"key": "year", "range": {"gt": "x"}}]}, "filter.must[0].range.gt"),
    ({"must": [{"key": "year", "range": {}}]}, "a range needs at least one"),
    ({"must": [{"key": "tags", "match": {"any": ["a", 1]}}]}, "filter.must[0].match.any[1]"),
    ({"must": [{"key": "tags", "match": {"value": ["a"]}}]}, "filter.must[0].match.value"),
    ({"must": [{"key": "tags", "match": {}}]}, 'a match is {"value": V}'),
    ({"must": {"key": "lang"}}, "filter.must: Input should be a valid list"),
    ({"most": []}, "filter.most: Extra inputs"),
    ('{"must": [', "filter: Invalid JSON"),
    ({"must": [{"has_id": "d1"}]}, "filter.must[0].has_id"),
])
def test_bad_filters_name_their_clause(live, bad, path):
    for call in (lambda: live.idx.search(live.queries, k=3, filter=bad),
                 lambda: live.idx.search_one(*live.queries.row(0), k=3, method="bmp", filter=bad)):
        with pytest.raises(InvalidFilter) as e:
            call()
        assert path in str(e.value)


def test_filters_too_deep_or_too_large_are_refused(live):
    deep: dict = {"must": [{"key": "lang", "match": {"value": "en"}}]}
    for _ in range(16):
        deep = {"must": [deep]}
    with pytest.raises(InvalidFilter, match="nests at most 16"):
        live.idx.search(live.queries, filter=deep)
    with pytest.raises(InvalidFilter, match="at most 4096"):
        live.idx.search(live.queries, filter={"must": [{"has_id": [f"x{i}" for i in range(5000)]}]})
    with pytest.raises(TypeError, match="filter must be a dict"):
        live.idx.search(live.queries, filter=[1])
    with pytest.raises(ValueError, match="offset must be an integer >= 0"):
        live.idx.search(live.queries, offset=-1)


def test_a_key_keeps_its_kind_and_bad_metadata_is_refused(live):
    idx = live.idx
    one = live.vectors.take(np.arange(1))
    seq = idx.stats()["wal_seq"]
    with pytest.raises(ValueError, match=r"texts\[0\].metadata.year: the index holds number values under 'year'"):
        idx.add(["x1"], one, [Document("x1", "t", metadata={"year": "recent"})])
    with pytest.raises(ValueError, match=r"metadata.lang\[1\]: Input should be a valid string"):
        idx.add(["x1"], one, [{"id": "x1", "text": "t", "metadata": {"lang": ["en", 2]}}])
    for bad in ({"a": {"nested": 1}}, {"a": None}, {"a": [True]}, {"a": 2**60}, {"": 1}):
        with pytest.raises(ValueError, match="metadata"):
            Document("x1", "t", metadata=bad)
    assert idx.stats()["wal_seq"] == seq and "x1" not in set(idx.doc_ids)
    with pytest.raises(ValueError, match="the index holds keyword values under 'k'"):
        Index.build(live.idx.path.parent / "mixed", one.take(np.array([0, 0])), ["a", "b"],
                    texts=[Document("a", "t", metadata={"k": "x"}), Document("b", "t", metadata={"k": 1})])


def test_metadata_survives_the_log_and_old_records_stay_readable(tmp_path):
    vectors = random_batch(5, 10, seed=9)
    Index.build(tmp_path / "i", vectors.take(np.arange(2)), ["a", "b"], methods=["exact"])
    idx = Index.open(tmp_path / "i", writable=True, refresh_interval=0)
    meta = {"lang": "en", "n": [1, 2.5], "ok": True}
    idx.add(["c"], vectors.take(np.arange(2, 3)), [Document("c", "text c", "T", meta)])
    idx.close(commit=False)   # the write lives in the log only
    again = Index.open(tmp_path / "i", writable=True, refresh_interval=0)
    assert again.document("c")["metadata"] == meta
    assert again.search(vectors.take(np.arange(2, 3)), k=3, filter={"must": [{"key": "n", "range": {"gt": 2}}]}).ids \
        == [["c"]]
    again.close()
    # a log written before metadata existed stores each document as [title, text]: it still reads
    body = Record(7, PUT, ["z"], vectors.take(np.arange(1)), [Document("z", "text", "title")]).encode()[12:]
    assert b'"docs": [["title", "text"]]' in body
    assert Record.decode(body).docs == [Document("z", "text", "title")]
