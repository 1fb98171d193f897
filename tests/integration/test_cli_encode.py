import json

import numpy as np
from typer.testing import CliRunner

from lsr.cli import app
from lsr.core.vectors import load_vectors, save_vectors

runner = CliRunner()


def test_encode_writes_a_vectors_file_equal_to_the_python_api(tmp_path, encoder):
    corpus = tmp_path / "c.jsonl"
    docs = [{"id": f"d{i}", "title": "t", "text": f"document number {i} about heart disease"} for i in range(5)]
    corpus.write_text("\n".join(json.dumps(d) for d in docs))
    out = tmp_path / "v.npz"
    result = runner.invoke(app, ["encode", str(corpus), "--output", str(out), "--max-length", "64"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["documents"] == 5
    f = load_vectors(out)
    assert f.ids.tolist() == [d["id"] for d in docs]
    assert f.meta["model"] == "splade-tiny" and f.meta["vocab_fingerprint"] == encoder.vocab_fingerprint
    assert f.meta["max_length"] == 64 and f.vectors.vocab_size == 30522
    want = encoder.encode_documents([f"t {d['text']}" for d in docs], max_length=64)
    assert np.abs(f.vectors.to_scipy().toarray() - want.to_scipy().toarray()).max() < 1e-6


def test_encode_errors_are_clear(tmp_path):
    r = runner.invoke(app, ["encode", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "v.npz")])
    assert r.exit_code == 2 and "no such file" in r.output
    r = runner.invoke(app, ["encode", "x.jsonl", "-o", str(tmp_path / "v.npz"), "--model", "./no/model"])
    assert r.exit_code == 2 and "does not exist" in r.output
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    r = runner.invoke(app, ["encode", str(dup), "-o", str(tmp_path / "v.npz")])
    assert r.exit_code == 2 and "not unique" in r.output


def test_vectors_file_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    import pytest

    with pytest.raises(ValueError, match="not a readable"):
        load_vectors(bad)
    np.savez(tmp_path / "partial.npz", indptr=np.array([0, 1]))
    with pytest.raises(ValueError, match="missing arrays"):
        load_vectors(tmp_path / "partial.npz")


def test_vectors_file_round_trip(tmp_path):
    from lsr.core.sparse import SparseBatch

    v = SparseBatch(np.array([0, 2, 3]), np.array([1, 4, 0]), np.array([0.5, 1.0, 2.0], np.float32), 10)
    save_vectors(tmp_path / "v.npz", v, ["a", "b"], {"model": "m"})
    f = load_vectors(tmp_path / "v.npz")
    assert f.ids.tolist() == ["a", "b"] and f.meta["model"] == "m" and f.meta["format"] == "lsr-vectors"
    assert np.array_equal(f.vectors.to_scipy().toarray(), v.to_scipy().toarray())
    assert not list(tmp_path.glob("*.tmp"))
