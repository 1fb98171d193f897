"""Writes to the service (issue 16): JSON arrays and NDJSON streams, texts and pre-encoded vectors, one code path
with ``lsr index --append``; bad input named by its line and nothing of the request written."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lsr.cli import app as cli
from lsr.core.documents import Document
from lsr.core.sample import stdlib_passages
from lsr.index import Index
from lsr.index.quantize import quantize
from lsr.service import Settings, create_app
from lsr.service.ingest import Incoming
from tests.live_check import bm25_reference

KEY = "k-writes"
AUTH = {"Authorization": f"Bearer {KEY}"}
NDJSON = {**AUTH, "Content-Type": "application/x-ndjson"}


@pytest.fixture(scope="module")
def passages():
    return [Document(d.id, d.text, d.title) for d in stdlib_passages(limit=120)]


@pytest.fixture(scope="module")
def built(tmp_path_factory, encoder, passages):
    """An index of the first 40 passages; the vectors of all 120 (the rest are written by the tests)."""
    path = tmp_path_factory.mktemp("writes") / "index"
    vectors = encoder.encode_documents([d.full_text for d in passages])
    Index.build(path, vectors.take(np.arange(40)), [d.id for d in passages[:40]], texts=passages[:40],
                model="splade-tiny", vocab_fingerprint=encoder.vocab_fingerprint, methods=["exact", "bmp"])
    return path, vectors


@pytest.fixture()
def folder(built, tmp_path):
    path = tmp_path / "index"
    shutil.copytree(built[0], path)
    return path


def client(folder, encoder, **settings) -> TestClient:
    return TestClient(create_app(folder, Settings(api_keys=[KEY], refresh_interval=0, **settings), encoder=encoder))


def vector_doc(doc: Document, vectors, row: int, form: str = "indices", tokens=None) -> dict:
    terms, weights = vectors.row(row)
    if form == "terms":
        vector = {"terms": {tokens[int(t)]: float(w) for t, w in zip(terms, weights)}}
    else:
        vector = {"indices": terms.tolist(), "values": weights.tolist()}
    return {"id": doc.id, "title": doc.title, "text": doc.text, "vector": vector, "metadata": {"row": row}}


def lines(docs: list[dict]) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in docs)


def test_ndjson_and_arrays_of_texts_and_vectors(folder, built, encoder, passages):
    """Texts are encoded by the server, vectors (ids or tokens) kept as sent; an NDJSON body arrives in pieces cut
    anywhere; every document is then stored and searchable, and a vector query finds its own document first."""
    _, vectors = built
    tokens = encoder.tokenizer.convert_ids_to_tokens(list(range(encoder.vocab_size)))
    docs = [vector_doc(passages[i], vectors, i, "terms" if i % 3 == 0 else "indices", tokens) for i in range(40, 80)]
    docs += [{"id": passages[i].id, "title": passages[i].title, "text": passages[i].text} for i in range(80, 100)]
    body = lines(docs)
    with client(folder, encoder) as c:
        r = c.post("/documents", content=(body[i:i + 997] for i in range(0, len(body), 997)), headers=NDJSON)
        assert r.status_code == 200, r.text
        assert r.json()["ids"] == [d["id"] for d in docs]
        array = [{"id": p.id, "text": p.text, "vector": {"indices": vectors.row(i)[0].tolist(),
                                                          "values": vectors.row(i)[1].tolist()}}
                 for i, p in enumerate(passages[100:120], start=100)]
        assert c.post("/documents", json=array, headers=AUTH).status_code == 200
        assert c.get(f"/documents/{passages[41].id}").json()["metadata"] == {"row": 41}
        for row in (41, 42, 85, 110):
            terms, weights = vectors.row(row)
            hit = c.post("/search", json={"indices": terms.tolist(), "values": weights.tolist(), "k": 1}).json()
            assert hit["hits"][0]["id"] == passages[row].id
        assert c.get("/stats").json()["documents"] == 120
    idx = Index.open(folder)   # closing the writer committed everything; the stored vectors are those sent
    for row in (40, 41, 85, 119):
        terms, weights = idx.vector(passages[row].id)
        want_terms, want = vectors.row(row)
        np.testing.assert_array_equal(terms, want_terms)
        np.testing.assert_allclose(weights, quantize(want, "uint8", idx.scale) * np.float32(idx.scale), rtol=1e-6)


BAD = [   # (body lines, the line and what the 422 names)
    ([b'{"id": "n1", "text": "fine"}', b'{"id": "n2", "text": "fine"}', b'{"id": "n3", "text": '],
     "line 3: not a JSON document"),
    ([b'{"id": "n1", "text": "fine"}', b'{"id": "n2", "vector": {"indices": [5, 40000], "values": [1, 2]}}'],
     "line 2: vector: document vector term ids must lie in [0, 30522)"),
    ([b'{"id": "n1", "vector": {"terms": {"the": 1.0, "zzqqxx": 2.0}}}'],
     "line 1: vector: tokens not in the index's vocabulary: ['zzqqxx']"),
    ([b'{"id": "n1", "text": "x"}', b'{"id": "n2", "vector": {"indices": [3, 3], "values": [1, 2]}}'],
     "line 2: vector: document vector term ids must be unique, got 3 twice"),
    ([b'{"id": "n1", "vector": {"indices": [3], "values": [-1]}}'], "line 1: vector.values.0: Input should be "
                                                                     "greater than or equal to 0"),
    ([b'{"id": "n1", "vector": {"indices": [3], "values": [NaN]}}'], "line 1: vector.values.0: Input should be a "
                                                                      "finite number"),
    ([b'{"id": "n1", "vector": {"indices": [3, 4], "values": [1]}}'], "'indices' and 'values' must have the same"),
    ([b'{"id": "n1", "vector": {"indices": [3], "values": [1], "vocab_fingerprint": "0123abcd"}}'],
     "line 1: vector: its vocabulary (fingerprint 0123abcd) is not the index's"),
    ([b'{"id": "n1", "title": "no text"}'], "line 1: document: Value error, give the document's 'text'"),
    ([b'{"id": "n1", "text": "a"}', b'', b'{"id": "n1", "text": "b"}'],
     "line 3: document ids must be unique within a request"),
    ([b'["not", "a", "document"]'], "line 1: document: Input should be an object"),
    ([b'{"id": "n1", "text": "a\\ud800b"}'], "line 1: text: Value error, lone surrogate U+D800"),   # valid JSON
    ([b'{"id": "n1", "text": "x", "metadata": {"n": "many"}}', b'{"id": "n2", "text": "y", "metadata": {"n": 1}}'],
     "line 2: metadata.n: the index holds keyword values"),
]


@pytest.mark.parametrize("body,reason", BAD, ids=[r.split(":")[0] + "-" + str(i) for i, (_, r) in enumerate(BAD)])
def test_bad_documents_are_named_and_nothing_is_written(folder, encoder, body, reason):
    with client(folder, encoder) as c:
        r = c.post("/documents", content=b"\n".join(body) + b"\n", headers=NDJSON)
        assert r.status_code == 422 and reason in r.json()["detail"], r.text
        assert c.get("/documents/n1").status_code == 404 and c.get("/stats").json()["documents"] == 40


def test_a_key_whose_kind_the_index_holds_is_named_by_line(folder, encoder):
    with client(folder, encoder) as c:
        assert c.post("/documents", json=[{"id": "m0", "text": "x", "metadata": {"n": 1}}], headers=AUTH)
        r = c.post("/documents", content=lines([{"id": "m1", "text": "y"}, {"id": "m2", "text": "z",
                                                                              "metadata": {"n": "one"}}]),
                   headers=NDJSON)
        assert r.status_code == 422 and "line 2: metadata.n: the index holds number values" in r.text, r.text
        assert c.get("/documents/m1").status_code == 404


def test_bodies_and_types_the_endpoint_refuses(folder, encoder):
    with client(folder, encoder, max_documents=3, max_ingest_bytes=4096) as c:
        many = lines([{"id": f"d{i}", "text": "x"} for i in range(4)])
        r = c.post("/documents", content=many, headers=NDJSON)
        assert r.status_code == 422 and "line 4: at most 3 documents per request" in r.text
        big = lines([{"id": "big", "text": "x" * 5000}])
        assert c.post("/documents", content=big, headers=NDJSON).status_code == 413
        streamed = c.post("/documents", content=iter([big[:3000], big[3000:]]), headers=NDJSON)   # no length
        assert streamed.status_code == 413 and "at most 4096 bytes" in streamed.text
        r = c.post("/documents", content=b"id,text\n1,x\n", headers={**AUTH, "Content-Type": "text/csv"})
        assert r.status_code == 415 and "application/x-ndjson" in r.text
        r = c.post("/documents", json={"id": "x", "text": "y"}, headers=AUTH)
        assert r.status_code == 422 and "must be a JSON array" in r.text
        assert c.post("/documents", content=b"\n\n", headers=NDJSON).status_code == 422
        assert c.get("/stats").json()["documents"] == 40
        schema = c.get("/openapi.json").json()
        body = schema["paths"]["/documents"]["post"]["requestBody"]["content"]
        assert set(body) == {"application/json", "application/x-ndjson"}
        assert "vector" in schema["components"]["schemas"]["DocumentIn"]["properties"]


def test_cli_append_reads_the_same_documents(folder, built, encoder, passages, tmp_path):
    """`lsr index --append FILE.ndjson` takes what POST /documents takes, checked the same way."""
    _, vectors = built
    good = tmp_path / "docs.ndjson"
    good.write_bytes(lines([vector_doc(passages[i], vectors, i) for i in range(40, 50)]
                           + [{"id": passages[50].id, "text": passages[50].text}]))
    r = CliRunner().invoke(cli, ["index", str(good), "-o", str(folder), "--append"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.splitlines()[-1])["documents"] == 51
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(lines([{"id": "c1", "text": "x"}]) + b'{"id": "c2", "vector": {"indices": [99999], '
                                                         b'"values": [1]}}\n')
    r = CliRunner().invoke(cli, ["index", str(bad), "-o", str(folder), "--append"])
    assert r.exit_code != 0 and "line 2: vector: document vector term ids must lie in [0, 30522)" in r.output
    assert Index.open(folder).num_docs == 51


def test_live_hybrid_equals_bm25_from_scratch(folder, built, encoder, passages):
    """The BM25 side follows every write: after texts and vectors are added, some replaced and some deleted (part
    committed by flushes, part in the writer's buffer), a hybrid search fuses the SPLADE ranking with exactly the
    BM25 ranking that a BM25 fitted from scratch on the live documents gives."""
    from lsr.retrieval.fusion import fuse

    _, vectors = built
    with client(folder, encoder, hybrid=True, flush_docs=25) as c:
        docs = [vector_doc(passages[i], vectors, i) for i in range(40, 70)]
        docs += [{"id": passages[i].id, "title": passages[i].title, "text": passages[i].text} for i in range(70, 90)]
        assert c.post("/documents", content=lines(docs), headers=NDJSON).status_code == 200
        deadline = time.monotonic() + 60
        while c.get("/stats").json()["writer"]["flushes"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)   # the flusher thread commits the full buffer
        replaced = [{"id": passages[i].id, "text": f"zip archives and gzip streams, rewritten {i}"} for i in (3, 45)]
        assert c.post("/documents", json=replaced, headers=AUTH).status_code == 200
        for i in (5, 50, 80):
            assert c.delete(f"/documents/{passages[i].id}", headers=AUTH).status_code == 204
        snap = c.app.state.engine.index.snapshot()
        assert any(s.name.startswith("mem-") for s in snap.segments) and len(snap.segments) > 2
        live = [snap.document(n) for n in range(int(snap.offsets[-1])) if snap.doc_ids()[n] is not None]
        texts = [(d["id"], f"{d['title']} {d['text']}".strip()) for d in live]
        for q in ("compress data with zip archives", "parse command line arguments", "read a file"):
            got = c.post("/search", json={"query": q, "k": 10, "hybrid": {"depth": 50}}).json()["hits"]
            splade = [(h["id"], h["score"]) for h in c.post("/search", json={"query": q, "k": 50}).json()["hits"]]
            want = fuse([splade, bm25_reference(texts, q, 50)], "rrf", weights=[0.5, 0.5], k=10, rrf_k=60.0)
            assert [h["id"] for h in got] == [d for d, _ in want], q
            np.testing.assert_allclose([h["score"] for h in got], [s for _, s in want], rtol=1e-6)


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
def test_write_bodies_are_parsed_and_applied_on_niced_ingest_threads(folder, built, encoder, passages, monkeypatch):
    """What the service hands to asyncio.to_thread (parsing a body, the writer's apply) runs ``ingest_nice`` nicer
    than the searches' threads."""
    seen = []

    def record(real):
        def run(*args, **kw):
            seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
            return real(*args, **kw)
        return run

    monkeypatch.setattr(Incoming, "feed", record(Incoming.feed))
    monkeypatch.setattr(Index, "upsert", record(Index.upsert))
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with client(folder, encoder, ingest_nice=3) as c:
        r = c.post("/documents", content=lines([vector_doc(passages[50], built[1], 50)]), headers=NDJSON)
        assert r.status_code == 200, r.text
    assert len(seen) >= 2 and all(n.startswith("lsr-ingest") and nice == min(19, base + 3) for n, nice in seen), seen
