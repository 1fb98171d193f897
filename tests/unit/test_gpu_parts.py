"""The compact vectors that carry a GPU-encoded corpus back from the device (bench.gpu_parts): exact term ids,
weights within half a level, saturation counted, empty documents kept, and the parts put back in corpus order."""

import json

import numpy as np
import pytest
import zstandard

from bench.gpu_parts import compact, expand, pack, unpack
from lsr.core.sparse import SparseBatch
from lsr.core.vectors import load_vectors
from vectors import random_batch


def with_empty_first(b: SparseBatch) -> SparseBatch:
    return SparseBatch(np.concatenate([[0], b.indptr]), b.indices, b.values, b.vocab_size)


def test_round_trip_keeps_terms_and_weights_within_half_a_level():
    b = with_empty_first(random_batch(200, 40, seed=1, vocab=30522))
    top = float(b.values.max()) * 1.25
    got = expand(compact(b, top), len(b), b.nnz, top, b.vocab_size)
    assert np.array_equal(got.indptr, b.indptr) and np.array_equal(got.indices, b.indices)
    assert np.abs(got.values - b.values).max() <= top / 255 / 2 + 1e-6
    assert got.values.min() > 0   # level 0 never written: no term disappears


def test_unsorted_terms_are_refused():
    b = random_batch(3, 5, seed=2, vocab=100)
    bad = SparseBatch(b.indptr, b.indices[::-1].copy(), b.values, b.vocab_size)
    with pytest.raises(ValueError, match="ascending"):
        compact(bad, 1.0)


def test_parts_unpack_in_corpus_order(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "title": "t", "text": f"text {i}"}) + "\n" for i in range(7)))
    summary = pack(str(corpus), tmp_path / "parts", docs_per_part=3)
    assert [p["docs"] for p in summary["parts"]] == [3, 3, 1]
    texts = zstandard.ZstdDecompressor().decompress((tmp_path / "parts" / "part-001.txt.zst").read_bytes()).decode()
    assert texts.splitlines() == ["t text 3", "t text 4", "t text 5"]
    whole = random_batch(7, 6, seed=3, vocab=500)
    results = tmp_path / "back"
    results.mkdir()
    for i, part in enumerate(summary["parts"]):   # what the device returns for each part
        rows = whole.take(np.arange(3 * i, 3 * i + part["docs"]))
        stem = part["file"].split(".")[0]
        (results / f"{stem}.v00").write_bytes(zstandard.ZstdCompressor().compress(compact(rows, 2.0)))
        (results / f"{stem}.json").write_text(json.dumps({"docs": part["docs"], "nnz": int(rows.nnz),
                                                          "max_weight": 2.0, "saturated": 0, "files": [f"{stem}.v00"],
                                                          "meta": {"model": "test"}}))
    unpack(tmp_path / "parts", results, tmp_path / "all.npz", vocab_size=500)
    back = load_vectors(tmp_path / "all.npz")
    assert list(back.ids) == [f"d{i}" for i in range(7)]
    assert np.array_equal(back.vectors.indices, whole.indices) and np.array_equal(back.vectors.indptr, whole.indptr)
