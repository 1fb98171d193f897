"""Several indexes in one server (/indexes/{name}/..., GET /indexes), snapshots over HTTP, the query's own terms
with explain, the access log and the search page's files: the real app in-process over real indexes."""

from __future__ import annotations

import logging
import math

import pytest
from fastapi.testclient import TestClient

from lsr.core.documents import Document
from lsr.core.sample import stdlib_passages
from lsr.index import Index, backup
from lsr.service import Settings, create_app

KEY = "test-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory, encoder):
    """Two indexes of different docstrings: "main" (exact, bmp) and "other" (exact)."""
    passages = list(stdlib_passages(limit=60))
    root = tmp_path_factory.mktemp("indexes")
    out = {}
    for name, docs, methods in (("main", passages[:36], ["exact", "bmp"]), ("other", passages[36:], ["exact"])):
        docs = [Document(d.id, d.text, d.title) for d in docs]
        Index.build(root / name, encoder.encode_documents([d.full_text for d in docs]), [d.id for d in docs],
                    texts=docs, model="splade-tiny", vocab_fingerprint=encoder.vocab_fingerprint, methods=methods)
        out[name] = root / name
    return out


def client_of(folders, encoder, **settings) -> TestClient:
    return TestClient(create_app(dict(folders), Settings(api_keys=[KEY], **settings), encoder=encoder))


@pytest.fixture(scope="module")
def client(folders, encoder):
    with client_of(folders, encoder) as c:
        yield c


def top(folder, encoder, query: str, k: int) -> list[str]:
    idx = Index.open(folder)
    _, numbers = idx.search_one(*encoder.encode_queries([query]).row(0), k=k)
    return [idx.doc_id(n) for n in numbers if n >= 0]


def test_each_index_answers_under_its_name_and_the_first_at_the_root(client, folders, encoder):
    q = "read lines from a text file"
    root = client.post("/search", json={"query": q, "k": 5}).json()["hits"]
    main = client.post("/indexes/main/search", json={"query": q, "k": 5}).json()["hits"]
    other = client.post("/indexes/other/search", json={"query": q, "k": 5}).json()["hits"]
    assert [h["id"] for h in root] == [h["id"] for h in main] == top(folders["main"], encoder, q, 5)
    assert [h["id"] for h in other] == top(folders["other"], encoder, q, 5)
    assert not {h["id"] for h in main} & {h["id"] for h in other}
    batch = client.post("/indexes/other/search/batch", json={"queries": [{"query": q, "k": 5}]}).json()
    assert [h["id"] for h in batch["results"][0]["hits"]] == [h["id"] for h in other]
    first = other[0]["id"]
    assert client.get(f"/indexes/other/documents/{first}").json()["id"] == first
    assert client.get(f"/indexes/main/documents/{first}").status_code == 404
    assert client.get("/indexes/other/stats").json()["methods"] == ["exact"]
    r = client.post("/indexes/other/search", json={"query": q, "method": "bmp"})
    assert r.status_code == 422 and "this index serves ['exact']" in r.text
    assert client.get("/indexes/other/readyz").json()["status"] == "ready"


def test_get_indexes_lists_them_with_their_stats(client):
    listed = client.get("/indexes").json()
    assert [(i["name"], i["default"]) for i in listed] == [("main", True), ("other", False)]
    assert [i["stats"]["documents"] for i in listed] == [36, 24]
    assert listed[0]["stats"] == client.get("/stats").json()


def test_an_unknown_index_is_404_naming_those_there_are(client):
    for method, path in (("post", "/indexes/nope/search"), ("get", "/indexes/nope/stats"),
                         ("get", "/indexes/nope/documents/x"), ("post", "/indexes/nope/snapshots")):
        r = client.request(method, path, json={"query": "x"} if method == "post" else None, headers=AUTH)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["detail"] == "no index named 'nope'; this server serves ['main', 'other'] (GET /indexes)"


def test_with_protected_reads_a_caller_without_a_key_learns_no_names(folders, encoder):
    with client_of(folders, encoder, protect_reads=True) as c:
        assert c.post("/indexes/nope/search", json={"query": "x"}).status_code == 401
        assert c.post("/indexes/main/search", json={"query": "x"}).status_code == 401
        assert c.get("/indexes").status_code == 401
        assert c.post("/indexes/nope/search", json={"query": "x"}, headers=AUTH).status_code == 404
        assert c.get("/").status_code == 200   # the page holds no data; it sends the key it is given


def test_bad_server_configurations_are_refused(folders):
    with pytest.raises(ValueError, match="bad index names"):
        create_app({"no/slash": folders["main"]}, Settings())
    from lsr.service.indexes import parse_index

    assert parse_index(f"x={folders['main']}") == ("x", folders["main"])
    assert parse_index(str(folders["other"])) == ("other", folders["other"])


def test_writes_go_to_the_named_index_only(folders, encoder, tmp_path):
    import shutil

    copies = {name: tmp_path / name for name in folders}
    for name, folder in folders.items():
        shutil.copytree(folder, copies[name])
    with client_of(copies, encoder, refresh_interval=0) as c:   # searches see each write at once
        doc = {"id": "new-1", "text": "the lighthouse keeper trims the lamp wick at dusk"}
        assert c.post("/indexes/other/documents", json=[doc], headers=AUTH).status_code == 200
        hit = c.post("/indexes/other/search", json={"query": "lighthouse lamp wick", "k": 1}).json()["hits"][0]
        assert hit["id"] == "new-1"
        assert c.get("/documents/new-1").status_code == 404   # the root is "main"
        assert c.delete("/indexes/other/documents/new-1", headers=AUTH).status_code == 204
    assert Index.open(copies["other"]).num_docs == 24 and Index.open(copies["main"]).num_docs == 36


def test_explain_gives_the_query_terms_and_each_hits_matching_terms(client, encoder):
    q = "compress data with zlib"
    terms, weights = encoder.encode_queries([q]).row(0)
    answer = client.post("/indexes/main/search", json={"query": q, "k": 3, "explain": True}).json()
    got = answer["query_terms"]
    assert [t["weight"] for t in got] == sorted((t["weight"] for t in got), reverse=True)
    assert {t["id"]: t["weight"] for t in got} == pytest.approx(dict(zip(terms.tolist(), weights.tolist())))
    tokens = dict(zip(terms.tolist(), encoder.tokenizer.convert_ids_to_tokens(terms.tolist())))
    assert all(t["term"] == tokens[t["id"]] for t in got)
    for h in answer["hits"]:
        assert math.isclose(sum(p["score"] for p in h["explanation"]), h["score"], rel_tol=1e-4)
    plain = client.post("/indexes/main/search", json={"query": q, "k": 3}).json()
    assert "query_terms" not in plain
    batch = client.post("/search/batch", json={"queries": [{"query": q, "k": 3, "explain": True}]}).json()
    assert batch["results"][0]["query_terms"] == got


def test_snapshots_over_http(folders, encoder, tmp_path):
    """A snapshot holds what the index answered when it was taken; later writes are not in it."""
    import shutil

    copies = {name: tmp_path / name for name in folders}
    for name, folder in folders.items():
        shutil.copytree(folder, copies[name])
    q = {"query": "parse command line options", "k": 5}
    with client_of(copies, encoder, snapshot_dir=tmp_path / "snaps", refresh_interval=0) as c:
        before_doc = {"id": "kept-1", "text": "argument parsing for command line options and flags"}
        assert c.post("/indexes/other/documents", json=[before_doc], headers=AUTH).status_code == 200
        answer = c.post("/indexes/other/search", json=q).json()["hits"]
        assert c.post("/indexes/other/snapshots", json={"name": "s1"}).status_code == 401
        r = c.post("/indexes/other/snapshots", json={"name": "s1"}, headers=AUTH)
        assert r.status_code == 201, r.text
        assert r.json()["documents"] == 25 and r.json()["name"] == "s1"
        after_doc = {"id": "later-1", "text": "command line option parser with subcommands"}
        assert c.post("/indexes/other/documents", json=[after_doc], headers=AUTH).status_code == 200
        assert c.post("/indexes/other/snapshots", json={"name": "s1"}, headers=AUTH).status_code == 409
        r = c.post("/indexes/other/snapshots", json={"name": "../up"}, headers=AUTH)
        assert r.status_code == 422
        auto = c.post("/indexes/other/snapshots", headers=AUTH).json()   # no body: a generated name
        listed = c.get("/indexes/other/snapshots").json()
        assert [s["name"] for s in listed] == ["s1", auto["name"]] and auto["documents"] == 26
        assert c.get("/snapshots").json() == []   # "main" has none
        assert "snaps" not in r.text and str(tmp_path) not in c.get("/indexes/other/snapshots").text
        assert c.delete(f"/indexes/other/snapshots/{auto['name']}", headers=AUTH).status_code == 204
        assert c.delete(f"/indexes/other/snapshots/{auto['name']}", headers=AUTH).status_code == 404
    backup.restore(tmp_path / "snaps" / "other", "s1", tmp_path / "restored")
    with client_of({"restored": tmp_path / "restored"}, encoder) as c:
        assert c.post("/search", json=q).json()["hits"] == answer
        assert c.get("/documents/later-1").status_code == 404 and c.get("/documents/kept-1").status_code == 200


def test_openapi_documents_the_named_routes(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/indexes", "/indexes/{name}/search", "/indexes/{name}/search/batch", "/indexes/{name}/documents",
            "/indexes/{name}/stats", "/indexes/{name}/snapshots", "/search", "/snapshots"} <= set(paths)
    params = paths["/indexes/{name}/search"]["post"]["parameters"]
    assert [p["name"] for p in params if p["in"] == "path"] == ["name"]
    assert "/indexes/{name}/healthz" not in paths and "/" not in paths
    ids = [op["operationId"] for p in paths.values() for op in p.values()]
    assert len(ids) == len(set(ids))


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/app.js">' in page.text and "http" not in page.text.replace("http-equiv", "")
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "/search" in js.text and "textContent" in js.text
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/missing.js").status_code == 404


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_access_log_is_off_by_default_and_one_line_per_request_when_on(folders, encoder):
    lines = Lines()
    logging.getLogger("lsr.access").addHandler(lines)
    try:
        with client_of(folders, encoder) as c:
            c.get("/healthz")
        assert lines.lines == []
        with client_of(folders, encoder, access_log=True) as c:
            c.get("/healthz")
            c.post("/indexes/other/search", json={"query": "zip", "k": 2})
            c.post("/indexes/nope/search", json={"query": "zip"})
            c.get("/documents/a%2Fb")
        assert len(lines.lines) == 4, lines.lines
        assert lines.lines[0].startswith('testclient:') and '"GET /healthz HTTP/1.1" 200 ' in lines.lines[0]
        assert '"POST /indexes/other/search HTTP/1.1" 200 ' in lines.lines[1] and lines.lines[1].endswith("ms")
        assert '"POST /indexes/nope/search HTTP/1.1" 404 ' in lines.lines[2]
        assert '"GET /documents/a%2Fb HTTP/1.1" 404 ' in lines.lines[3]
        size = int(lines.lines[0].split()[-2].rstrip("B"))
        assert size == len(b'{"status":"ok"}')
    finally:
        logging.getLogger("lsr.access").removeHandler(lines)


def test_serve_refuses_repeated_or_bad_index_names(folders):
    from typer.testing import CliRunner

    from lsr.cli import app as cli

    runner = CliRunner()
    r = runner.invoke(cli, ["serve", "--index", f"a={folders['main']}", "--index", f"a={folders['other']}"])
    assert r.exit_code == 2 and "index names given twice: ['a']" in r.output
    r = runner.invoke(cli, ["serve", "--index", f"{folders['main']}", "--index", f"main={folders['other']}"])
    assert r.exit_code == 2 and "given twice: ['main']" in r.output   # a plain DIR is named after its folder
    r = runner.invoke(cli, ["serve", "--index", f"x={folders['main'].parent / 'missing'}"])
    assert r.exit_code == 2 and "not an index" in r.output


def test_workers_read_the_indexes_in_order_from_the_environment(monkeypatch, folders, encoder):
    """lsr serve hands each uvicorn worker the list as LSR_INDEXES; the first stays the default."""
    import json

    monkeypatch.setenv("LSR_INDEXES", json.dumps({"o": str(folders["other"]), "m": str(folders["main"])}))
    settings = Settings()
    assert list(settings.indexes) == ["o", "m"]
    with TestClient(create_app(settings=settings, encoder=encoder)) as c:
        assert [i["name"] for i in c.get("/indexes").json()] == ["o", "m"]
        assert c.get("/stats").json()["documents"] == 24
