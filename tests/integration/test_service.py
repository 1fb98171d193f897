"""The HTTP service on a real index of real text: in-process through TestClient, then as a real uvicorn server on
127.0.0.1 (schemathesis against its OpenAPI schema, graceful shutdown under SIGTERM)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lsr.cli import app as cli
from lsr.index import Index
from lsr.core.documents import Document
from lsr.index.wal import log_files
from lsr.core.sample import stdlib_passages
from lsr.service import Settings, create_app
from lsr.service.batcher import MicroBatcher, TextRejected
from tests.live_check import bm25_reference

REPO = Path(__file__).resolve().parents[2]
KEY = "test-key-1"
QUERIES = ["how to parse command line arguments", "compress data with zlib", "format a date as a string"]


@pytest.fixture(scope="module")
def docs():
    """48 docstrings, with metadata: their top-level module (keyword), position (number), parity (bool)."""
    return [Document(d.id, d.text, d.title, {"module": d.id.split(".")[0], "n": i, "even": i % 2 == 0})
            for i, d in enumerate(stdlib_passages(limit=48))]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, encoder, docs):
    path = tmp_path_factory.mktemp("service") / "index"
    vectors = encoder.encode_documents([d.full_text for d in docs])
    Index.build(path, vectors, [d.id for d in docs], texts=docs, model="splade-tiny",
                vocab_fingerprint=encoder.vocab_fingerprint, methods=["exact", "bmp", "seismic"])
    return path


@pytest.fixture(scope="module")
def index(index_dir):
    return Index.open(index_dir)


def make_client(index_dir, encoder=None, **settings) -> TestClient:
    return TestClient(create_app(index_dir, Settings(**settings), encoder=encoder))


@pytest.fixture(scope="module")
def client(index_dir, encoder):
    with make_client(index_dir, encoder, api_keys=[KEY], max_k=100, max_batch=8, max_body_bytes=64 * 1024) as c:
        yield c


def post(client, body, path="/search", status=200) -> dict:
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    return r.json()


# ---- search -------------------------------------------------------------------------------------------------------
def test_text_query_matches_the_index(client, encoder, index):
    for q in QUERIES:
        got = post(client, {"query": q, "k": 5})["hits"]
        terms, weights = encoder.encode_queries([q]).row(0)
        scores, numbers = index.search_one(terms, weights, k=5)
        assert [h["id"] for h in got] == [index.doc_id(n) for n in numbers]
        assert [h["rank"] for h in got] == [1, 2, 3, 4, 5]
        np.testing.assert_allclose([h["score"] for h in got], scores, rtol=1e-6)
        assert all("text" not in h and "explanation" not in h for h in got)


def test_sparse_and_token_queries_equal_the_text_query(client, encoder):
    terms, weights = encoder.encode_queries([QUERIES[0]]).row(0)
    by_text = post(client, {"query": QUERIES[0], "k": 8})["hits"]
    by_ids = post(client, {"indices": terms.tolist(), "values": weights.tolist(), "k": 8,
                           "vocab_fingerprint": encoder.vocab_fingerprint})["hits"]
    tokens = encoder.tokenizer.convert_ids_to_tokens(terms.tolist())
    by_tokens = post(client, {"terms": dict(zip(tokens, weights.tolist())), "k": 8})["hits"]
    assert by_ids == by_text and by_tokens == by_text


def test_explain_sums_to_the_score_and_fields_return_stored_text(client, docs, encoder):
    stored = {d.id: d for d in docs}
    terms, weights = encoder.encode_queries([QUERIES[1]]).row(0)
    query_tokens = dict(zip(encoder.tokenizer.convert_ids_to_tokens(terms.tolist()), weights.tolist()))
    hits = post(client, {"query": QUERIES[1], "k": 4, "explain": True, "fields": ["title", "text"]})["hits"]
    assert hits
    for h in hits:
        parts = h["explanation"]
        assert parts and parts == sorted(parts, key=lambda p: -p["score"])
        assert math.isclose(sum(p["score"] for p in parts), h["score"], rel_tol=1e-4)
        for p in parts:
            assert math.isclose(p["query_weight"] * p["doc_weight"], p["score"], rel_tol=1e-5)
            assert math.isclose(p["query_weight"], query_tokens[p["term"]], rel_tol=1e-5)
        assert h["text"] == stored[h["id"]].text and h["title"] == stored[h["id"]].title


def test_methods_and_parameters(client):
    exact = post(client, {"query": QUERIES[2], "k": 10})["hits"]
    safe = post(client, {"query": QUERIES[2], "k": 10, "method": "bmp"})["hits"]  # safe by default: exact's hits
    assert [h["id"] for h in safe] == [h["id"] for h in exact]                  # (scores summed in another order)
    np.testing.assert_allclose([h["score"] for h in safe], [h["score"] for h in exact], rtol=1e-6)
    approx = post(client, {"query": QUERIES[2], "k": 10, "method": "bmp", "params": {"alpha": 0.5, "beta": 0.5}})
    assert 0 < len(approx["hits"]) <= 10
    seismic = post(client, {"query": QUERIES[2], "k": 10, "method": "seismic", "params": {"query_cut": 5}})["hits"]
    assert seismic and {h["id"] for h in seismic} <= {h["id"] for h in post(client, {"query": QUERIES[2], "k": 48})["hits"]}


def test_filters_pages_and_metadata_fields_equal_the_index(client, encoder, index, docs):
    stored = {d.id: d.metadata for d in docs}
    flt = {"must": [{"key": "even", "match": {"value": True}}], "must_not": [{"key": "n", "range": {"lt": 10}}]}
    for q in QUERIES:
        terms, weights = encoder.encode_queries([q]).row(0)
        for method in ("exact", "bmp", "seismic"):
            body = {"query": q, "k": 5, "offset": 3, "method": method, "filter": flt, "fields": ["metadata"]}
            hits = post(client, body)["hits"]
            scores, numbers = index.search_one(terms, weights, k=5, offset=3, method=method, filter=flt)
            assert [h["id"] for h in hits] == [index.doc_id(n) for n in numbers if n >= 0]
            assert [h["rank"] for h in hits] == list(range(4, 4 + len(hits)))
            assert all(h["metadata"] == stored[h["id"]] and h["metadata"]["even"] and h["metadata"]["n"] >= 10
                       for h in hits)
        whole = post(client, {"query": q, "k": 12, "filter": flt})["hits"]
        pages = [post(client, {"query": q, "k": 4, "offset": o, "filter": flt})["hits"] for o in (0, 4, 8)]
        assert [h["id"] for p in pages for h in p] == [h["id"] for h in whole]
        assert [h["rank"] for p in pages for h in p] == [h["rank"] for h in whole]
    # a key no document has matches nothing; each query of a batch has its own filter
    assert post(client, {"query": QUERIES[0], "filter": {"must": [{"key": "colour", "match": {"value": "red"}}]}})[
        "hits"] == []
    batch = post(client, {"queries": [{"query": QUERIES[0], "filter": flt},
                                      {"query": QUERIES[0], "filter": {"must": [{"has_id": [docs[5].id]}]}}]},
                 "/search/batch")["results"]
    assert [h["id"] for h in batch[0]["hits"]] == [h["id"] for h in post(client, {"query": QUERIES[0],
                                                                                  "filter": flt})["hits"]]
    assert [h["id"] for h in batch[1]["hits"]] in ([docs[5].id], [])


def test_batch_equals_single_queries(client, encoder):
    terms, weights = encoder.encode_queries(["sort a list"]).row(0)
    queries = [{"query": q, "k": 3} for q in QUERIES] + [{"indices": terms.tolist(), "values": weights.tolist()}]
    results = post(client, {"queries": queries}, "/search/batch")["results"]
    for got, want in zip(results, [post(client, q)["hits"] for q in queries]):  # texts encoded in one batch: the
        assert [h["id"] for h in got["hits"]] == [h["id"] for h in want]       # same ranking, scores up to padding
        np.testing.assert_allclose([h["score"] for h in got["hits"]], [h["score"] for h in want], rtol=1e-5)


def test_empty_query_has_no_hits(client):
    assert post(client, {"query": ""})["hits"] == []
    assert post(client, {"indices": [], "values": []})["hits"] == []


def test_hybrid_fuses_bm25_and_splade(client, index_dir, index, encoder):
    assert "BM25 side" in post(client, {"query": QUERIES[0], "hybrid": {}}, status=422)["detail"]
    from lsr.retrieval.fusion import fuse

    stored = [index.document(n) for n in range(index.num_docs)]
    texts = [(d["id"], f"{d['title']} {d['text']}".strip()) for d in stored]
    with make_client(index_dir, encoder, hybrid=True) as c:
        for q, hybrid in [(QUERIES[0], {}), (QUERIES[2], {"fusion": "linear", "weight": 0.7, "depth": 20})]:
            got = post(c, {"query": q, "k": 5, "hybrid": hybrid, "fields": ["text"]})["hits"]
            depth = hybrid.get("depth", 100)
            splade = [(h["id"], h["score"]) for h in post(c, {"query": q, "k": depth})["hits"]]
            bm25 = bm25_reference(texts, q, depth)
            assert bm25
            weight = hybrid.get("weight", 0.5)
            params = {"rrf_k": 60.0} if hybrid.get("fusion", "rrf") == "rrf" else {}
            want = fuse([splade, bm25], hybrid.get("fusion", "rrf"), weights=[weight, 1 - weight], k=5, **params)
            assert [h["id"] for h in got] == [d for d, _ in want]
            np.testing.assert_allclose([h["score"] for h in got], [s for _, s in want], rtol=1e-6)
            assert all(h["text"] == index.document(h["id"])["text"] for h in got)
        assert "explain" in post(c, {"query": "x", "hybrid": {}, "explain": True}, status=422)["detail"][0]["msg"]
        assert post(c, {"query": "x", "hybrid": {"fusion": "max"}}, status=422)


# ---- bad input: a clear 4xx each, never a 500 ----------------------------------------------------------------------
BAD = {
    "unknown field": ({"query": "x", "colour": "red"}, "colour"),
    "no query": ({"k": 3}, "exactly one"),
    "two queries": ({"query": "x", "terms": {"x": 1.0}}, "exactly one"),
    "values without indices": ({"values": [1.0]}, "exactly one"),
    "lengths differ": ({"indices": [1, 2], "values": [1.0]}, "same length"),
    "negative weight": ({"indices": [1], "values": [-1.0]}, "greater than or equal"),
    "duplicate term ids": ({"indices": [7, 7], "values": [1.0, 1.0]}, "unique"),
    "term id beyond the vocabulary": ({"indices": [30522], "values": [1.0]}, "another vocabulary"),
    "negative term id": ({"indices": [-1], "values": [1.0]}, "greater than or equal"),
    "huge term id": ({"indices": [10**30], "values": [1.0]}, "less than"),
    "huge parameter": ({"query": "x", "method": "seismic", "params": {"query_cut": 10**30}}, "query_cut"),
    "other vocabulary": ({"indices": [5], "values": [1.0], "vocab_fingerprint": "0123456789abcdef"}, "vocabulary"),
    "unknown token": ({"terms": {"zzzqqqxx": 1.0}}, "not in the vocabulary"),
    "k zero": ({"query": "x", "k": 0}, "greater than"),
    "k too large": ({"query": "x", "k": 101}, "at most 100"),
    "k huge": ({"query": "x", "k": 10**30}, "less than"),
    "k not a number": ({"query": "x", "k": "ten"}, "integer"),
    "query too long": ({"query": "x" * 2001}, "at most 2000 characters"),
    "too many terms": ({"indices": list(range(1025)), "values": [1.0] * 1025}, "at most 1024 terms"),
    "unknown method": ({"query": "x", "method": "hnsw"}, "unknown method"),
    "unknown parameter": ({"query": "x", "method": "bmp", "params": {"gamma": 1}}, "no search parameter"),
    "parameter out of range": ({"query": "x", "method": "bmp", "params": {"alpha": 2}}, "alpha"),
    "parameter of another method": ({"query": "x", "params": {"alpha": 0.5}}, "no search parameter"),
    "bmp alpha that is 0 in float32": ({"indices": [5], "values": [1.0], "method": "bmp", "params": {"alpha": 1e-46}},
                                       "smallest normal float32"),
    "bmp alpha subnormal in float32": ({"indices": [5], "values": [1.0], "method": "bmp", "params": {"alpha": 1e-40}},
                                       "smallest normal float32"),
    "parameter named like an argument": ({"indices": [5], "values": [1.0], "method": "bmp",
                                          "params": {"snapshot": 1}}, "no search parameter"),
    "seismic parameter type": ({"query": "x", "method": "seismic", "params": {"query_cut": 2.5}}, "query_cut"),
    "unknown stored field": ({"query": "x", "fields": ["body"]}, "unknown fields"),
    "hybrid without text": ({"indices": [5], "values": [1.0], "hybrid": {}}, "text"),
    "filter of an unknown condition": ({"query": "x", "filter": {"must": [{"near": [1, 2]}]}}, "a condition is"),
    "filter range on a keyword field": ({"query": "x", "filter": {"must": [{"key": "module", "range": {"gt": 1}}]}},
                                        "filter.must[0].range: 'module' is a keyword field"),
    "filter value of the wrong type": ({"query": "x", "filter": {"should": [{"key": "n", "match": {"value": "3"}}]}},
                                       "filter.should[0].match.value: 'n' holds number values"),
    "filter any of mixed values": ({"query": "x", "filter": {"must": [{"key": "n", "match": {"any": [1, "2"]}}]}},
                                   "any"),
    "filter range without bounds": ({"query": "x", "filter": {"must": [{"key": "n", "range": {}}]}},
                                    "at least one of gt"),
    "filter not an object": ({"query": "x", "filter": "module=json"}, "filter"),
    "filter too deep": ({"query": "x", "filter": {"must": [{"must": [{"must": [{"must": [{"must": [{"must": [
        {"must": [{"must": [{"must": [{"must": [{"must": [{"must": [{"must": [{"must": [{"must": [{"must": [
            {"must": []}]}]}]}]}]}]}]}]}]}]}]}]}]}]}]}]}}, "nests at most 16"),
    "filter with hybrid": ({"query": "x", "hybrid": {}, "filter": {}}, "filters are not available with hybrid"),
    "offset negative": ({"query": "x", "offset": -1}, "greater than or equal"),
    "pages too deep": ({"query": "x", "k": 50, "offset": 60}, "k + offset may be at most 100"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_search_is_422_with_a_reason(client, case):
    body, reason = BAD[case]
    r = client.post("/search", json=body)
    assert r.status_code == 422, r.text
    assert reason in r.text


def test_bad_bodies(client):
    nan = client.post("/search", content=b'{"indices": [5], "values": [NaN]}',
                      headers={"content-type": "application/json"})
    assert nan.status_code == 422 and "finite" in nan.text
    inf = client.post("/search", content=b'{"query": "x", "method": "bmp", "params": {"alpha": Infinity}}',
                      headers={"content-type": "application/json"})
    assert inf.status_code == 422 and "params" in inf.text
    assert client.post("/search", content=b'{"query": ', headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/search", json=[1, 2]).status_code == 422
    too_big = {"query": "x", "padding": "y" * 70_000}
    assert client.post("/search", json=too_big).status_code == 413

    def chunks():  # no Content-Length: the limit still holds while streaming
        for _ in range(20):
            yield b" " * 8192

    r = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "at most 65536 bytes" in r.text
    assert post(client, {"queries": [{"query": "x"}] * 9}, "/search/batch", 422)["detail"].startswith("a batch may")
    assert client.post("/search/batch", json={"queries": []}).status_code == 422
    assert client.post("/search/batch", json={"queries": {"query": "x"}}).status_code == 422   # not a list


# ---- documents, auth, health --------------------------------------------------------------------------------------
def test_get_document(client, docs):
    d = docs[3]
    assert client.get(f"/documents/{d.id}").json() == {"id": d.id, "title": d.title, "text": d.text,
                                                       "metadata": d.metadata}
    r = client.get("/documents/no-such-id")
    assert r.status_code == 404 and "no-such-id" in r.text


def test_writes_need_a_key(client, index_dir, encoder):
    body = [{"id": "new-1", "text": "a new document"}]
    r = client.post("/documents", json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.post("/documents", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.delete("/documents/x", headers={"Authorization": "Basic " + KEY}).status_code == 401
    with make_client(index_dir, encoder) as open_client:  # no key configured: writes refused, reads open
        r = open_client.post("/documents", json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 403 and "no API key is configured" in r.text
        assert open_client.post("/search", json={"query": "x"}).status_code == 200


def test_keys_from_a_file_and_protected_reads(tmp_path, index_dir, encoder):
    keys = tmp_path / "keys"
    keys.write_text("# service keys\nalpha-key\n\nbeta-key\n")
    with make_client(index_dir, encoder, api_keys_file=keys, protect_reads=True) as c:
        assert c.post("/search", json={"query": "x"}).status_code == 401
        assert c.get("/documents/x", headers={"Authorization": "Bearer gamma"}).status_code == 403
        for key in ("alpha-key", "beta-key"):
            assert c.post("/search", json={"query": "x"}, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").json() == {"status": "ready"}   # probes: a bare status
        auth = {"Authorization": "Bearer alpha-key"}
        assert c.get("/readyz", headers=auth).json() == {"status": "ready", "documents": 48}
        for path in ("/metrics", "/docs", "/openapi.json", "/stats", "/documents/x"):
            assert c.get(path).status_code == 401, path
        assert c.get("/openapi.json", headers=auth).json()["paths"]["/search"]
        assert "swagger" in c.get("/docs", headers=auth).text.lower()
    with pytest.raises(ValueError, match="no API key"):
        create_app(index_dir, Settings(protect_reads=True))


def test_env_settings(monkeypatch, index_dir):
    monkeypatch.setenv("LSR_API_KEYS", " one, two ,,")
    monkeypatch.setenv("LSR_MAX_K", "7")
    monkeypatch.setenv("LSR_INDEX_DIR", str(index_dir))
    s = Settings()
    assert s.keys() == ["one", "two"] and s.max_k == 7 and s.index_dir == index_dir
    monkeypatch.setenv("LSR_MAX_K", "0")
    with pytest.raises(ValueError):
        Settings()


def test_document_writes(tmp_path, index_dir, encoder, docs):
    """Through the index's durable write path: a 2xx answer means the document is kept."""
    folder = tmp_path / "index"
    shutil.copytree(index_dir, folder)
    auth = {"Authorization": f"Bearer {KEY}"}
    new = [{"id": "new-1", "title": "Tea", "text": "green tea and black tea are brewed from camellia leaves",
            "metadata": {"module": "tea", "n": 100, "even": True}},
           {"id": "new-2", "text": "a kettle boils water for tea"}]
    with make_client(folder, encoder, api_keys=[KEY], refresh_interval=0) as c:
        r = c.post("/documents", json=new, headers=auth)
        assert r.status_code == 200 and r.json()["ids"] == ["new-1", "new-2"]
        assert c.get("/documents/new-1").json() == {"id": "new-1", "title": "Tea", "text": new[0]["text"],
                                                     "metadata": {"module": "tea", "n": 100, "even": True}}
        hits = post(c, {"query": "tea", "k": 5, "filter": {"must": [{"key": "module", "match": {"value": "tea"}}]}})
        assert [h["id"] for h in hits["hits"]] == ["new-1"]
        clash = c.post("/documents", json=[{"id": "new-3", "text": "x", "metadata": {"n": "many"}}], headers=auth)
        assert clash.status_code == 422 and "body[0].metadata.n: the index holds number values" in clash.text
        assert c.get("/documents/new-3").status_code == 404
        hits = post(c, {"query": "brewing green tea leaves", "k": 3})["hits"]
        assert hits[0]["id"] == "new-1"
        assert c.get("/stats").json()["documents"] == 50
        replaced = {"id": "new-1", "text": "sourdough bread needs a starter and a hot oven"}
        assert c.post("/documents", json=[replaced], headers=auth).status_code == 200
        assert c.get("/documents/new-1").json()["text"] == replaced["text"]
        assert post(c, {"query": "sourdough bread starter", "k": 1})["hits"][0]["id"] == "new-1"
        assert "new-1" not in [h["id"] for h in post(c, {"query": "brewing green tea leaves", "k": 3})["hits"]]
        assert c.delete(f"/documents/{docs[0].id}", headers=auth).status_code == 204
        assert c.get(f"/documents/{docs[0].id}").status_code == 404
        assert c.delete(f"/documents/{docs[0].id}", headers=auth).status_code == 404
        assert docs[0].id not in [h["id"] for h in post(c, {"query": docs[0].text[:200], "k": 48})["hits"]]
        assert c.get("/stats").json()["documents"] == 49
    reopened = Index.open(folder)  # committed: another process opening the folder sees every acknowledged write
    assert reopened.num_docs == 49 and reopened.document("new-2")["text"] == new[1]["text"]
    with pytest.raises(KeyError):
        reopened.document(docs[0].id)


def test_document_write_limits(client):
    auth = {"Authorization": f"Bearer {KEY}"}
    for body, reason in [([], "at least one"), ([{"id": "a", "text": "x"}] * 2, "unique"),
                         ([{"id": "a", "text": "x", "metadata": {"k": {"nested": 1}}}], "a metadata value is"),
                         ([{"id": "a", "text": "x", "metadata": {"k": [1, "x"]}}], "metadata"),
                         ([{"id": "", "text": "x"}], "at least 1 character"), ([{"id": "a"}], "text")]:
        r = client.post("/documents", json=body, headers=auth)
        assert r.status_code == 422 and reason in r.text, r.text


def test_health_stats_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "documents": 48}
    stats = client.get("/stats").json()
    assert stats["documents"] == 48 and stats["model"] == "splade-tiny" and stats["vocabulary"]["size"] == 30522
    assert stats["methods"] == ["exact", "bmp", "seismic"] and stats["segments"][0]["documents"] == 48
    assert stats["build_params"]["bmp"]["block_size"] > 0 and stats["encoder"]["ready"]
    post(client, {"query": "x", "method": "bmp"})
    text = client.get("/metrics").text
    assert 'lsr_http_requests_total{method="POST",route="/search",status="200"}' in text
    assert 'route="/search",status="422"' in text
    assert "lsr_encode_seconds_count" in text and 'lsr_search_seconds_count{method="bmp"}' in text
    assert 'route="/documents/{doc_id:path}"' in text  # templates, not raw ids
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/search", "/search/batch", "/documents", "/documents/{doc_id}", "/healthz", "/readyz", "/stats",
            "/metrics"} <= set(schema["paths"])


def test_not_ready_until_the_encoder_loads(index_dir, encoder):
    """A model that cannot load: /readyz says why, text queries get 503, sparse queries are still served."""
    with make_client(index_dir, model="/no/such/model") as c:
        deadline = time.monotonic() + 30
        while (r := c.get("/readyz")).json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.status_code == 503 and r.json()["status"] == "failed" and "failed to load" in r.json()["detail"]
        assert "/no/such" not in r.text   # paths of the server stay in its log
        assert c.post("/search", json={"query": "x"}).status_code == 503
        assert c.post("/search", json={"terms": {"x": 1.0}}).status_code == 503
        terms, weights = encoder.encode_queries(["x"]).row(0)
        assert c.post("/search", json={"indices": terms.tolist(), "values": weights.tolist()}).status_code == 200


def test_micro_batcher_groups_concurrent_queries(encoder):
    texts = [f"query number {i} about {w}" for i, w in enumerate(["files", "sockets", "threads", "dates"] * 6)]

    async def run():
        b = MicroBatcher(encoder.encode_queries, window_ms=5, max_batch=8, in_flight=lambda: len(texts))
        rows = await asyncio.gather(*[b.encode(t) for t in texts])
        await b.close()
        return b, rows

    b, rows = asyncio.run(run())
    assert b.texts == len(texts) and b.batches <= len(texts) // 8 + 1
    for t, (terms, weights) in zip(texts, rows):
        ref_terms, ref_weights = encoder.encode_queries([t]).row(0)
        np.testing.assert_array_equal(terms, ref_terms)
        np.testing.assert_allclose(weights, ref_weights, rtol=1e-4, atol=1e-5)


def test_after_a_shared_batch_late_queries_join_the_next(encoder):
    """Clients answered by a batch of several send their next queries a moment later: they share one batch."""
    active = 0

    async def run():
        b = MicroBatcher(encoder.encode_queries, window_ms=300, max_batch=8, in_flight=lambda: active)

        async def client(text, delay=0.0):  # in flight from its request on, as the HTTP middleware counts it
            nonlocal active
            await asyncio.sleep(delay)
            active += 1
            try:
                return await b.encode(text)
            finally:
                active -= 1

        await asyncio.gather(*[client(f"first {i}") for i in range(4)])
        before = b.batches
        await asyncio.gather(client("early 1"), client("early 2"), client("late 1", 0.05), client("late 2", 0.05))
        await b.close()
        return b.batches - before

    assert asyncio.run(run()) == 1


def test_lone_query_does_not_wait_for_the_window(encoder):
    async def run():
        b = MicroBatcher(encoder.encode_queries, window_ms=2000, max_batch=8, in_flight=lambda: 1)
        start = time.perf_counter()
        await b.encode("one query")
        await b.close()
        return time.perf_counter() - start

    assert asyncio.run(run()) < 1.5


def test_a_lone_text_is_encoded_on_the_caller_s_thread(encoder):
    """With an encoder callable from any thread, the only request in flight skips the batching task: encode_here
    gives encode's vector on the calling thread, and the encoder's refusal as TextRejected; while a batch is being
    encoded, or with other requests in flight, texts go to the batcher."""
    def encode(texts):
        if "refused" in texts:
            raise ValueError("not this one")
        return encoder.encode_queries(texts)

    async def run():
        active = 1
        b = MicroBatcher(encode, window_ms=1, max_batch=8, in_flight=lambda: active, any_thread=True)
        try:
            assert b.lone()
            here = await asyncio.to_thread(b.encode_here, "a lone query")
            batched = await b.encode("a lone query")
            with pytest.raises(TextRejected, match="not this one"):
                await asyncio.to_thread(b.encode_here, "refused")
            active = 2
            assert not b.lone()
            active = 1
            pending = asyncio.ensure_future(b.encode_many(["one", "two"]))
            while not b._encoding:
                await asyncio.sleep(0)
            assert not b.lone()
            await pending
            return here, batched, MicroBatcher(encode, window_ms=1, max_batch=8, in_flight=lambda: 1).lone()
        finally:
            await b.close()

    here, batched, torch_like = asyncio.run(run())
    assert all(np.array_equal(x, y) for x, y in zip(here, batched)) and len(here[0]) > 0
    assert not torch_like   # an encoder not to be called from two threads always goes through the batcher


def test_document_texts_encode_on_several_threads_at_once(encoder):
    """With document_threads, two document calls run at the same time (each waits for the other at a barrier), beside
    the query thread; without (an encoder not to be called from two threads), they take the query thread in turn."""
    def meet(barrier):
        def encode(texts):
            barrier.wait(timeout=10)   # broken (an error) unless another call is in flight meanwhile
            return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return encode

    async def run(threads, barrier):
        b = MicroBatcher(encoder.encode_queries, window_ms=1, max_batch=8, document_threads=threads,
                         document_nice=4)
        try:
            return await asyncio.gather(*[b.run(meet(barrier), ["t"]) for _ in range(2)]), await b.encode("a query")
        finally:
            await b.close()

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen, (terms, _) = asyncio.run(run(2, threading.Barrier(2)))
    names = [n for n, _ in seen]
    assert len(set(names)) == 2 and all(n.startswith("lsr-encode-docs") for n in names) and len(terms) > 0
    if sys.platform == "linux":   # document threads yield to searches (ingest_nice); the query thread does not
        assert all(nice == min(19, base + 4) for _, nice in seen)
    seen, _ = asyncio.run(run(None, threading.Barrier(1)))   # one at a time: each passes alone
    assert all(n.startswith("lsr-encode_") and nice == base for n, nice in seen)


def test_a_text_write_spread_over_document_threads_stores_the_encoders_vectors(tmp_path, index_dir):
    """The app's own numpy encoder, 10 texts in one request cut into pieces over 2 document threads: each stored
    vector is the text's own vector, quantized."""
    from lsr.encoding.query import QueryEncoder

    folder = tmp_path / "index"
    shutil.copytree(index_dir, folder)
    texts = [f"note {i}: the {w} keeper logs the {w} at dawn and at dusk" for i, w in
             enumerate(["lighthouse", "harbour", "orchard", "granary", "archive"] * 2)]
    with make_client(folder, api_keys=[KEY], refresh_interval=0, document_threads=2) as c:
        for _ in range(600):   # the encoder loads in the background
            if c.get("/readyz").status_code == 200:
                break
            time.sleep(0.1)
        assert c.app.state.engine.batcher.document_threads == 2
        r = c.post("/documents", json=[{"id": f"t{i}", "text": t} for i, t in enumerate(texts)],
                   headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200, r.text
    idx = Index.open(folder)
    reference = QueryEncoder.from_pretrained("splade-tiny").encode_documents(texts)
    for i in range(len(texts)):
        terms, weights = idx.vector(f"t{i}")
        ref_terms, ref_weights = reference.row(i)
        assert set(terms) <= set(ref_terms) and set(ref_terms[ref_weights > idx.scale]) <= set(terms)
        np.testing.assert_allclose(weights, ref_weights[np.isin(ref_terms, terms)], atol=idx.scale)


# ---- hostile input and failures that stay their own (issue 17) ----------------------------------------------------
def raw(client, body: bytes, path: str = "/search", headers: dict | None = None):
    """Posts JSON bytes as given (the JSON may hold escapes, such as lone surrogates, that no client would encode)."""
    return client.post(path, content=body, headers={"content-type": "application/json", **(headers or {})})


SURROGATES = {   # valid JSON (\uD800 escapes), invalid Unicode: refused at the edge wherever the string is
    "query": (b'{"query": "x\\ud800y"}', "query"),
    "token": (b'{"terms": {"\\udc00": 1.0}}', "terms"),
    "method": (b'{"query": "x", "method": "\\ud800"}', "method"),
    "field": (b'{"query": "x", "fields": ["\\udfff"]}', "fields"),
    "parameter name": (b'{"query": "x", "params": {"\\ud800": 1}}', "params"),
    "fingerprint": (b'{"indices": [5], "values": [1.0], "vocab_fingerprint": "\\udbff"}', "vocab_fingerprint"),
}


@pytest.mark.parametrize("case", list(SURROGATES), ids=list(SURROGATES))
def test_a_lone_surrogate_is_422_at_the_edge(client, case):
    body, field = SURROGATES[case]
    r = raw(client, body)
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"][1] == field and "lone surrogate" in problem["msg"]


def test_control_characters_and_long_tokens_are_text(client, encoder, index):
    """Control characters are kept (the tokenizer drops them) and a 2,000-character token is one query like any."""
    for q in ["tumor\x00 cells\x1b[31m and\x7f dates\u0085", "z" * 2000, "parse" * 400, "\u200b\ufeff zip"]:
        got = post(client, {"query": q, "k": 5})["hits"]
        terms, weights = encoder.encode_queries([q]).row(0)
        _, numbers = index.search_one(terms, weights, k=5)
        assert [h["id"] for h in got] == [index.doc_id(n) for n in numbers if n >= 0]


def test_concurrent_good_queries_are_answered_beside_a_bad_one(client, encoder, index):
    """The red team's case: one bad query among 15 good ones sent at once. Only the bad one fails (422)."""
    good = [f"{QUERIES[i % 3]} number {i}" for i in range(15)]
    bodies = [b'{"query": "x\\ud800y", "k": 3}'] + [json.dumps({"query": q, "k": 3}).encode() for q in good]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda b: raw(client, b), bodies))
    assert answers[0].status_code == 422
    for q, r in zip(good, answers[1:]):
        assert r.status_code == 200, r.text
        terms, weights = encoder.encode_queries([q]).row(0)
        _, numbers = index.search_one(terms, weights, k=3)
        assert [h["id"] for h in r.json()["hits"]] == [index.doc_id(n) for n in numbers]


def test_a_text_the_encoder_refuses_fails_alone_in_its_micro_batch(encoder):
    """Past the edge (as a future encoder's own errors would be), a text the tokenizer raises on shares a
    micro-batch with 15 good ones: they get their vectors, it gets TextRejected."""
    good = [f"query {i} about {w}" for i, w in enumerate(["files", "sockets", "threads"] * 5)]
    texts = good[:7] + ["x\ud800y"] + good[7:]

    async def run():
        b = MicroBatcher(encoder.encode_queries, window_ms=2000, max_batch=64, in_flight=lambda: len(texts))
        outcomes = await asyncio.gather(*[b.encode(t) for t in texts], return_exceptions=True)
        await b.close()
        return b, outcomes

    b, outcomes = asyncio.run(run())
    assert b.batches == 1 and b.texts == 16
    assert isinstance(outcomes[7], TextRejected) and "TypeError" in str(outcomes[7])
    for t, (terms, weights) in zip(good, outcomes[:7] + outcomes[8:]):
        ref_terms, ref_weights = encoder.encode_queries([t]).row(0)
        np.testing.assert_array_equal(terms, ref_terms)
        np.testing.assert_allclose(weights, ref_weights, rtol=1e-4, atol=1e-5)


def test_a_bad_query_in_a_batch_gets_its_own_422(client):
    body = (b'{"queries": [{"query": "zip files"}, {"query": "x\\ud800"}, {"query": "x", "k": 0}, '
            b'{"query": "x", "k": 101}, {"query": "x", "method": "hnsw"}, {"terms": {"zzzqqqxx": 1.0}}, '
            b'{"indices": [30522], "values": [1.0]}, {"query": "parse dates", "k": 4}]}')   # 8: the client's limit
    r = raw(client, body, "/search/batch")
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == [200, 422, 422, 422, 422, 422, 422, 200]
    alone = post(client, {"query": "zip files"})["hits"]   # encoded alone: scores equal up to batch padding
    assert [h["id"] for h in results[0]["hits"]] == [h["id"] for h in alone]
    np.testing.assert_allclose([h["score"] for h in results[0]["hits"]], [h["score"] for h in alone], rtol=1e-5)
    assert [h["id"] for h in results[7]["hits"]] == [h["id"] for h in post(client, {"query": "parse dates",
                                                                                      "k": 4})["hits"]]
    assert "lone surrogate" in results[1]["detail"][0]["msg"] and results[2]["detail"][0]["loc"] == ["k"]
    assert "at most 100" in results[3]["detail"] and "unknown method" in results[4]["detail"]
    assert "not in the vocabulary" in results[5]["detail"] and "another vocabulary" in results[6]["detail"]
    r = raw(client, b'{"queries": ["not a query", {"query": "zip files"}]}', "/search/batch")
    assert [x["status"] for x in r.json()["results"]] == [422, 200]
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"BatchHits", "BatchError"} <= set(schema) and "status" in schema["BatchError"]["properties"]


def test_document_text_rules(tmp_path, index_dir, encoder):
    folder = tmp_path / "index"
    shutil.copytree(index_dir, folder)
    auth = {"Authorization": f"Bearer {KEY}"}
    with make_client(folder, encoder, api_keys=[KEY]) as c:
        for body, reason in [(b'[{"id": "s1", "text": "a\\udc00b"}]', "lone surrogate"),
                             (b'[{"id": "s2", "title": "\\ud83d", "text": "ok"}]', "lone surrogate"),
                             (b'[{"id": "s\\ud800", "text": "ok"}]', "valid string"),   # pydantic's own check
                             (b'[{"id": "line\\nbreak", "text": "ok"}]', "control character"),
                             (b'[{"id": "..", "text": "ok"}]', "'.' or '..'")]:
            r = raw(c, body, "/documents", auth)
            assert r.status_code == 422 and reason in r.text, r.text
        doc = {"id": "ctl", "title": "bell\x07", "text": "form\x0cfeed and tab\t kept"}
        assert c.post("/documents", json=[doc], headers=auth).status_code == 200
        assert c.get("/documents/ctl").json() == {**doc, "metadata": None}


ODD_IDS = ["a/b", "10.1000/xyz.2/3", "x?y#z&k=v", "sp ace", "\u00fc/\u00e9", "/lead", "trail/", "a//b", "..x/.y",
           "c:\\d"]


def test_ids_round_trip_through_every_endpoint(tmp_path, index_dir, encoder):
    """Ids holding "/" and other URL characters: written, found, read, searched and deleted by the same id, sent
    percent-encoded ("/" included) or with "/" as is. (Ids holding "%" are tested on a real server,
    test_odd_ids_on_a_real_server: Starlette's TestClient decodes a path twice.)"""
    folder = tmp_path / "index"
    shutil.copytree(index_dir, folder)
    auth = {"Authorization": f"Bearer {KEY}"}
    topics = ["volcano lava eruption", "penguin colony antarctica", "violin string vibrato", "glacier ice melt",
              "honeybee hive waggle", "saturn rings moons", "cactus desert bloom", "octopus ink camouflage",
              "chess opening gambit", "tornado funnel cloud"]
    docs = [{"id": i, "text": f"{topic} {topic}"} for i, topic in zip(ODD_IDS, topics)]
    with make_client(folder, encoder, api_keys=[KEY], refresh_interval=0) as c:
        assert c.post("/documents", json=docs, headers=auth).json()["ids"] == ODD_IDS
        batch = post(c, {"queries": [{"query": d["text"], "k": 1} for d in docs]}, "/search/batch")["results"]
        for d, result in zip(docs, batch):
            assert post(c, {"query": d["text"], "k": 1})["hits"][0]["id"] == d["id"]
            assert result["hits"][0]["id"] == d["id"]
            for safe in ("", "/"):
                assert c.get(f"/documents/{quote(d['id'], safe=safe)}").json() == {**d, "title": "", "metadata": None}, safe
        for i, d in enumerate(docs):
            r = c.delete(f"/documents/{quote(d['id'], safe='/' if i % 2 else '')}", headers=auth)
            assert r.status_code == 204, (d["id"], r.text)
            assert c.get(f"/documents/{quote(d['id'], safe='')}").status_code == 404
        assert c.get("/stats").json()["documents"] == 48


def test_answers_name_no_path_and_no_pid(tmp_path, index_dir, encoder):
    folder = tmp_path / "private-folder" / "index"
    shutil.copytree(index_dir, folder)
    auth = {"Authorization": f"Bearer {KEY}"}
    holder = Index.open(folder, writable=True)   # another writer (not a worker) keeps the lock
    with make_client(folder, encoder, api_keys=[KEY], write_lock_timeout=0.2) as c:
        busy = c.post("/documents", json=[{"id": "b", "text": "busy"}], headers=auth)
        holder.close()
        assert busy.status_code == 503 and "busy with another writer" in busy.text
        answers = [busy, c.get("/stats"), c.get("/readyz"), c.get("/openapi.json"), c.get("/documents/nope"),
                   c.post("/search", json={"query": "x", "method": "hnsw"}), c.get("/metrics")]
        for r in answers:
            assert "private-folder" not in r.text and f"pid {os.getpid()}" not in r.text and '"pid"' not in r.text


def records_in_log(folder: Path, encoder, n: int = 3) -> list[list[str]]:
    """``n`` acknowledged writes (2 documents each) left in the log, as a writer that died before committing."""
    idx = Index.open(folder, writable=True)
    ids = []
    for r in range(n):
        batch = [f"log-{r}-{i}" for i in range(2)]
        idx.add(batch, encoder.encode_documents([f"record {r} document {i} about harbours" for i in range(2)]))
        ids.append(batch)
    idx.close(commit=False)
    return ids


def test_a_damaged_log_is_not_ready_with_the_way_to_recover(tmp_path, index_dir, encoder):
    """A damaged record in the middle of the log: `lsr serve` refuses to start, an app opened on it is not ready
    (/readyz 503 with the reason and the command; writes 503 too, searches of the committed segments go on), and
    `lsr index --repair` keeps the records before the damage and sets the others aside."""
    folder = tmp_path / "index"
    shutil.copytree(index_dir, folder)
    ids = records_in_log(folder, encoder)
    (log,) = log_files(folder)
    data = bytearray(log.read_bytes())
    second = data.index(b"LSRW", 1)
    data[second + 40] ^= 0xFF
    log.write_bytes(bytes(data))
    served = subprocess.run([sys.executable, "-m", "lsr", "serve", "--index", str(folder)], capture_output=True,
                            text=True, env={**os.environ, "LSR_API_KEYS": KEY}, timeout=300)
    assert served.returncode == 2 and "--repair" in served.stderr and "Traceback" not in served.stderr
    auth = {"Authorization": f"Bearer {KEY}"}
    with make_client(folder, encoder, api_keys=[KEY]) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "damaged"
        assert "--repair" in r.json()["detail"] and str(folder) not in r.text and "wal/" in r.text
        w = c.post("/documents", json=[{"id": "w", "text": "x"}], headers=auth)
        assert w.status_code == 503 and "--repair" in w.text
        assert post(c, {"query": QUERIES[0], "k": 3})["hits"]
    repaired = CliRunner().invoke(cli, ["index", "-o", str(folder), "--repair"])
    assert repaired.exit_code == 0, repaired.output
    report = json.loads(repaired.stdout.splitlines()[-1])
    assert report["log_repaired"] and report["complete_records_set_aside"] == 1   # the third; the second is damaged
    assert "set 1 complete records after it aside" in repaired.stderr
    with make_client(folder, encoder, api_keys=[KEY]) as c:
        assert c.get("/readyz").json() == {"status": "ready", "documents": 50}
        assert [c.get(f"/documents/{d}").status_code for r in ids for d in r] == [200, 200, 404, 404, 404, 404]


def test_protect_reads_without_a_key_is_a_one_line_error(index_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("LSR_API_KEYS", "LSR_API_KEYS_FILE")}
    r = subprocess.run([sys.executable, "-m", "lsr", "serve", "--index", str(index_dir), "--protect-reads"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: --protect-reads needs an API key")


def test_request_cost_is_bounded_and_large_answers_stream(index_dir, encoder):
    """Hits with explanations or stored fields are limited per request (422 before any work, saying which limit);
    an answer larger than stream_bytes is streamed, and equals the same answer sent whole."""
    with make_client(index_dir, encoder, max_explain_hits=100, max_field_hits=120, stream_bytes=2048) as c:
        many = [{"query": q, "k": 48, "explain": True, "fields": ["title", "text"]} for q in QUERIES]
        r = c.post("/search/batch", json={"queries": many})
        assert r.status_code == 422 and "fields of 144 hits" in r.text and "at most 120" in r.text
        r = c.post("/search/batch", json={"queries": [{**q, "fields": []} for q in many]})
        assert r.status_code == 422 and "explain 144 hits" in r.text and "at most 100" in r.text
        assert c.post("/search", json={"query": "x", "k": 101, "explain": True}).status_code == 422
        body = {"queries": [{"query": q, "k": 30, "fields": ["text"], "explain": i == 0} for i, q in enumerate(QUERIES)]}
        streamed = c.post("/search/batch", json=body)
        assert streamed.status_code == 200 and "content-length" not in streamed.headers
        small = c.post("/search", json={"query": "x", "k": 1})
        assert small.headers["content-length"] == str(len(small.content))
    with make_client(index_dir, encoder) as c:
        whole = c.post("/search/batch", json=body)
        assert whole.headers["content-length"] == str(len(whole.content))
    def drop(answer):
        return [{k: v for k, v in r.items() if k != "took_ms"} for r in answer["results"]]

    assert drop(streamed.json()) == drop(whole.json())
    assert sum(len(h["text"]) for r in whole.json()["results"] for h in r["hits"]) > 2048


# ---- deployment files ---------------------------------------------------------------------------------------------
def test_compose_file():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    service, indexer = compose["services"]["service"], compose["services"]["indexer"]
    assert service["build"]["context"] == "." and (REPO / service["build"].get("dockerfile", "Dockerfile")).exists()
    assert "lsr-index:/index" in [str(v) for v in service["volumes"]] + [str(v) for v in indexer["volumes"]]
    assert service["command"][:3] == ["serve", "--index", "/index"] and "--host" in service["command"]
    assert "LSR_API_KEYS" in service["environment"] and "${LSR_API_KEYS" in str(service["environment"]["LSR_API_KEYS"])
    assert "/readyz" in " ".join(service["healthcheck"]["test"])
    assert indexer["entrypoint"] == ["sh", "-c"] and "lsr index /data/corpus.jsonl --output /index" in \
        indexer["command"][0] and indexer["command"][0].startswith("test -f /index/manifest.json ||")
    assert compose["services"]["indexer-rebuild"]["command"][:2] == ["index", "/data/corpus.jsonl"]
    assert indexer["restart"] == "no" and service["depends_on"]["indexer"]["condition"] == \
        "service_completed_successfully"
    assert "lsr-index" in compose["volumes"]
    assert any("profiles" in s for s in compose["services"].values())  # the slot later services extend
    assert 'ENTRYPOINT ["lsr"]' in (REPO / "Dockerfile").read_text()
    if shutil.which("docker-compose"):
        out = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
                             capture_output=True, text=True, env={**os.environ, "LSR_API_KEYS": "k"})
        assert out.returncode == 0, out.stderr


# ---- a real uvicorn on 127.0.0.1 ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(index_dir, tmp_path_factory):
    """``lsr serve`` with two workers on a free loopback port (the load benchmark's harness), on a copy of the index
    (its tests write)."""
    from bench.load import Server

    folder = tmp_path_factory.mktemp("served") / "index"
    shutil.copytree(index_dir, folder)
    env = {"LSR_API_KEYS": KEY, "LSR_MAX_K": "100", "LSR_MAX_BODY_BYTES": "65536", "LSR_MAX_DOCUMENTS": "4",
           "LSR_MAX_DOCUMENT_CHARS": "2000"}
    srv = Server(folder, 2, env, ("--graceful-timeout", "20"))
    yield srv.proc, srv.url
    if srv.proc.poll() is None:   # SIGTERM: uvicorn stops its workers (SIGKILL would leave them running)
        try:
            srv.stop()
        except subprocess.TimeoutExpired:
            srv.proc.kill()
    srv.proc.wait()


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(server, tmp_path):
    """Property-based requests from the OpenAPI schema (bounded), their strings sometimes replaced by lone
    surrogates, control characters or very long tokens (tests/schemathesis_hooks.py): no input may get a 5xx or
    take more than 5 s."""
    _, url = server
    # the console script beside this interpreter: `make test` runs the venv's python without the venv on PATH
    cli = Path(sys.executable).with_name("schemathesis")
    cmd = [str(cli) if cli.exists() else shutil.which("schemathesis") or "schemathesis", "run", f"{url}/openapi.json", "--checks",
           "not_a_server_error", "--max-examples", "20", "--phases", "examples,coverage,fuzzing", "--workers", "2",
           "--max-response-time", "5", "-H", f"Authorization: Bearer {KEY}", "--no-color"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(REPO)}  # hostile text
    # ~100 s at 30 examples per operation in a clean-clone CI run (the suite's longest test); 20 keep it near a minute
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)  # its cache there
    # a crash's first lines say what it was (a fatal error's thread dump fills the rest): the head of stderr too
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[:2500] + "\n[...]\n" + out.stderr[-1500:]
    assert " generated, " in out.stdout and "Tested: " in out.stdout


@pytest.mark.slow
def test_workers_share_the_index_and_its_writes(server):
    """Whichever worker takes a write, every worker then serves it (fresh connections spread over both)."""
    _, url = server
    auth = {"Authorization": f"Bearer {KEY}"}
    doc = {"id": "served-1", "text": "the lighthouse keeper trims the lamp wick at dusk"}
    assert httpx.post(f"{url}/documents", json=[doc], headers=auth, timeout=30).status_code == 200
    time.sleep(1.2)   # every worker's searches see an acknowledged write within the refresh interval (1 s)
    for _ in range(16):   # which worker answers is the kernel's choice
        assert httpx.get(f"{url}/documents/served-1", timeout=10).json()["text"] == doc["text"]
        r = httpx.post(f"{url}/search", json={"query": "lighthouse lamp wick", "k": 1}, timeout=10)
        assert r.json()["hits"][0]["id"] == "served-1"
    assert "lsr_http_requests_total" in httpx.get(f"{url}/metrics", timeout=5).text


@pytest.mark.slow
def test_odd_ids_on_a_real_server(server):
    """uvicorn decodes a path once: ids holding "%" (and "/") round-trip percent-encoded."""
    _, url = server
    auth = {"Authorization": f"Bearer {KEY}"}
    ids = ["a%2Fb", "100%", "%25/x", "a/b"]
    docs = [{"id": i, "text": f"odd id number {n}"} for n, i in enumerate(ids)]
    assert httpx.post(f"{url}/documents", json=docs, headers=auth, timeout=60).status_code == 200
    for d in docs:
        assert httpx.get(f"{url}/documents/{quote(d['id'], safe='')}", timeout=10).json()["id"] == d["id"]
        assert httpx.delete(f"{url}/documents/{quote(d['id'], safe='')}", headers=auth, timeout=60).status_code == 204


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight(server):
    """A slow client is sending its query when the server gets SIGTERM: it still gets its answer, then the server
    exits cleanly. Runs last: it stops the module's server."""
    from bench.load import in_flight

    proc, url = server
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"query": QUERIES[0], "k": 3}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])
    deadline = time.monotonic() + 10
    while in_flight(url) < 2 and time.monotonic() < deadline:  # ours, plus the /metrics request asking
        time.sleep(0.05)
    assert in_flight(url) >= 2, "the slow request never reached the app"
    proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert proc.poll() is None, "the server exited with a request in flight"
    sock.sendall(body[10:])
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:500]
    assert len(json.loads(payload)["hits"]) == 3
    assert proc.wait(timeout=30) == 0
