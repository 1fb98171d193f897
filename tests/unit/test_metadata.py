"""Document metadata: the values accepted, the paths of refused ones, kinds per key, and metadata read from JSONL
and Parquet corpora."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lsr.core.corpus import read_corpus
from lsr.core.documents import Document
from lsr.core.errors import CorpusError
from lsr.core.metadata import check_metadata, kind, merge_kinds


def test_accepted_values_and_their_kinds():
    meta = {"lang": "en", "year": 2021, "score": 0.5, "open": False, "tags": ["a", "b"], "sizes": [1, 2.5],
            "none": []}
    assert check_metadata(meta) == meta
    assert [kind(v) for v in meta.values()] == ["keyword", "number", "number", "bool", "keyword", "number", None]
    assert check_metadata({}) is None and check_metadata(None) is None
    assert Document("d", "t", metadata={}).metadata is None
    assert hash(Document("d", "t", metadata=meta)) == hash(Document("d", "t"))   # hashable; metadata not hashed
    assert Document("d", "t", metadata=meta) != Document("d", "t", metadata={"lang": "de"})


@pytest.mark.parametrize("bad,message", [
    ({"a": {"nested": 1}}, "doc.metadata.a: a metadata value is a string, a number, a boolean, or a list"),
    ({"a": None}, "doc.metadata.a: a metadata value is"),
    ({"a": ["x", 1]}, r"doc.metadata.a\[1\]: Input should be a valid string"),
    ({"a": [1, "x"]}, r"doc.metadata.a\[1\]: Input should be a valid number"),
    ({"a": [True]}, r"doc.metadata.a\[0\]: Input should be a valid number"),
    ({"a": [[1]]}, r"doc.metadata.a\[0\]"),
    ({"a": 2**53 + 1}, "doc.metadata.a: Input should be less than or equal to 9007199254740992"),
    ({"a": float("inf")}, "doc.metadata.a: Input should be a finite number"),
    ({"": 1}, "doc.metadata: key '': String should have at least 1 character"),
    ({"k" * 257: 1}, "at most 256 characters"),
    ([("a", 1)], "doc.metadata must be a JSON object"),
])
def test_refused_values_name_their_key(bad, message):
    with pytest.raises(ValueError, match=message):
        check_metadata(bad, "doc")


def test_a_key_keeps_one_kind():
    known: dict[str, str] = {}
    merge_kinds(known, {"a": "x", "b": [1, 2], "c": []})
    assert known == {"a": "keyword", "b": "number"}
    merge_kinds(known, {"a": ["y"], "c": True})
    with pytest.raises(ValueError, match="doc 3.metadata.b: the index holds number values under 'b', got a keyword"):
        merge_kinds(known, {"b": "1"}, "doc 3")


def test_jsonl_metadata(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "x", "metadata": {"lang": "en", "n": [1, 2]}}) + "\n" +
                    json.dumps({"id": "b", "text": "y"}) + "\n")
    assert [d.metadata for d in read_corpus(path)] == [{"lang": "en", "n": [1, 2]}, None]
    path.write_text(json.dumps({"id": "a", "text": "x"}) + "\n" +
                    json.dumps({"id": "b", "text": "y", "metadata": {"lang": {"x": 1}}}) + "\n")
    with pytest.raises(CorpusError, match=r"c.jsonl:2: document 'b'.metadata.lang: a metadata value is"):
        list(read_corpus(path))


def test_parquet_metadata_as_structs_maps_or_json(tmp_path):
    structs = pa.array([{"lang": "en", "year": 2020}, {"lang": None, "year": 2021}, None])
    maps = pa.array([[("lang", "en")], [], None], pa.map_(pa.string(), pa.string()))
    texts = pa.array(['{"lang": "en", "tags": ["a"]}', None, "{}"])
    want = {"structs": [{"lang": "en", "year": 2020}, {"year": 2021}, None],
            "maps": [{"lang": "en"}, None, None], "texts": [{"lang": "en", "tags": ["a"]}, None, None]}
    for name, column in (("structs", structs), ("maps", maps), ("texts", texts)):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["x", "y", "z"], "metadata": column}), path)
        assert [d.metadata for d in read_corpus(path)] == want[name]
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", "y"], "metadata": ['{"a": 1}', '{"a": [1, "x"]}']}),
                   path)
    with pytest.raises(CorpusError, match=r"bad.parquet: row 1: document 'b'.metadata.a\[1\]"):
        list(read_corpus(path))
    path.write_bytes(b"")
    pq.write_table(pa.table({"id": ["a"], "text": ["x"], "metadata": ["{not json"]}), path)
    with pytest.raises(CorpusError, match="row 0: metadata is not a JSON object"):
        list(read_corpus(path))
