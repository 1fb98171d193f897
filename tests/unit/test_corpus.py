import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lsr.core.corpus import count_documents, read_corpus
from lsr.core.documents import Document
from lsr.core.errors import CorpusError
from lsr.core.sample import stdlib_passages, write_sample_corpus

DOCS = [{"id": "d1", "title": "Diabetes", "text": "insulin resistance"}, {"_id": 2, "text": "no title here"}]


def test_jsonl_and_beir_folder(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n\n")
    for source in (path, tmp_path):
        docs = list(read_corpus(source))
        assert docs == [Document("d1", "insulin resistance", "Diabetes"), Document("2", "no title here", "")]
        assert docs[0].full_text == "Diabetes insulin resistance" and docs[1].full_text == "no title here"


def test_parquet(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x y", None], "title": ["T", None]}), path)
    assert list(read_corpus(path)) == [Document("a", "x y", "T"), Document("b", "", "")]
    assert count_documents(path) == 2
    pq.write_table(pa.table({"name": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(CorpusError, match="'id' and 'text'"):
        list(read_corpus(tmp_path / "bad.parquet"))


@pytest.mark.parametrize("line,match", [
    ('{"id": "x", "text": "ok"}\n{"id": "y", "text": ', "malformed JSON"),
    ('{"title": "no id"}', "needs 'id'"),
    ('[1, 2]', "JSON object"),
    ('{"id": 1, "text": 5}', "must be strings"),
])
def test_bad_jsonl_is_reported_with_its_line(tmp_path, line, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(line)
    with pytest.raises(CorpusError, match=match):
        list(read_corpus(path))


def test_unknown_sources(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_corpus(tmp_path / "missing.jsonl")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(CorpusError, match="unknown corpus format"):
        read_corpus(tmp_path / "x.csv")
    with pytest.raises(CorpusError, match="corpus.jsonl"):
        read_corpus(tmp_path)


def test_ir_datasets_id(ir_datasets_home):
    docs = read_corpus("beir/scifact")
    first = next(iter(docs))
    assert first.id == "4983" and first.title.startswith("Microstructural development")
    assert count_documents("beir/scifact") == 5183
    with pytest.raises(CorpusError, match="ir_datasets id"):
        list(read_corpus("beir/no-such-dataset"))


def test_sample_corpus_is_stdlib_docstrings(tmp_path):
    first = list(stdlib_passages(limit=5))
    assert len(first) == 5 and all(len(d.text) >= 80 for d in first)
    n = write_sample_corpus(tmp_path / "new" / "s.jsonl", limit=50)   # the folder is created
    rows = [json.loads(line) for line in (tmp_path / "new" / "s.jsonl").read_text().splitlines()]
    assert n == len(rows) == 50 and len({r["id"] for r in rows}) == 50
