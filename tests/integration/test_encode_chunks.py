"""`lsr encode --chunks`: each chunk is written as it is encoded; a second run encodes only the chunks the folder
lacks, and the vectors equal those of a run without chunks bit for bit (the kill itself: tests/slow)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lsr.cli import app
from lsr.core.vectors import load_vectors

runner = CliRunner()


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "c.jsonl"
    words = ["heart", "river", "protein", "music", "winter", "cell", "tower", "letter"]
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": " ".join(words[(i + j) % 8] for j in range(3 + i % 9))})
                            + "\n" for i in range(23)))
    return path


def encode(*args: str):
    r = runner.invoke(app, ["encode", *args, "--max-length", "32", "--chunk-docs", "5"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout.strip().splitlines()[-1])


def same(a, b) -> bool:
    a, b = load_vectors(a), load_vectors(b)
    return (all(np.array_equal(getattr(a.vectors, k), getattr(b.vectors, k)) for k in ("indptr", "indices", "values"))
            and a.ids.tolist() == b.ids.tolist())


def test_a_resumed_run_encodes_only_the_missing_chunks_and_gives_the_same_vectors(tmp_path, corpus):
    plain = encode(str(corpus), "-o", str(tmp_path / "plain.npz"))
    chunks = tmp_path / "chunks"
    first = encode(str(corpus), "-o", str(tmp_path / "a.npz"), "--chunks", str(chunks), "--keep-chunks")
    assert first["encoded_chunks"] == 5 and first["resumed_chunks"] == 0 and first["nnz"] == plain["nnz"]
    assert same(tmp_path / "plain.npz", tmp_path / "a.npz")
    # as a kill after three chunks leaves it: two chunks unlisted (one file written but not yet logged)
    log = json.loads((chunks / "chunks.json").read_text())
    for n in ("3", "4"):
        del log["done"][n]
    (chunks / "chunks.json").write_text(json.dumps(log))
    (chunks / "chunk-000004.npz").unlink()
    again = encode(str(corpus), "-o", str(tmp_path / "b.npz"), "--chunks", str(chunks))
    assert again["encoded_chunks"] == 2 and again["resumed_chunks"] == 3
    assert same(tmp_path / "plain.npz", tmp_path / "b.npz") and not chunks.exists()


def test_compressed_files_are_smaller_and_read_back_the_same(tmp_path, corpus):
    encode(str(corpus), "-o", str(tmp_path / "plain.npz"))
    encode(str(corpus), "-o", str(tmp_path / "small.npz"), "--compress", "--chunks", str(tmp_path / "ch"))
    assert same(tmp_path / "plain.npz", tmp_path / "small.npz")
    assert (tmp_path / "small.npz").stat().st_size < 0.8 * (tmp_path / "plain.npz").stat().st_size


def test_a_chunk_folder_of_another_job_or_a_changed_chunk_is_refused(tmp_path, corpus):
    chunks = tmp_path / "chunks"
    encode(str(corpus), "-o", str(tmp_path / "a.npz"), "--chunks", str(chunks), "--keep-chunks")
    r = runner.invoke(app, ["encode", str(corpus), "-o", str(tmp_path / "b.npz"), "--max-length", "64",
                            "--chunk-docs", "5", "--chunks", str(chunks)])
    assert r.exit_code == 2 and "another job" in r.output and "max_length" in r.output
    (chunks / "chunk-000001.npz").write_bytes(b"garbage")
    r = runner.invoke(app, ["encode", str(corpus), "-o", str(tmp_path / "b.npz"), "--max-length", "32",
                            "--chunk-docs", "5", "--chunks", str(chunks)])
    assert r.exit_code == 2 and "changed since it was written" in r.output
    r = runner.invoke(app, ["encode", str(corpus), "-o", str(tmp_path / "c.npz"), "--keep-chunks"])
    assert r.exit_code == 2 and "--keep-chunks needs --chunks" in r.output
    assert not (tmp_path / "b.npz").exists() and not (tmp_path / "c.npz").exists()
