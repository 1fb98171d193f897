"""`lsr bench data ...` rebuilds every benchmark input into data/ (here on tiny limits), where the benchmarks'
defaults look for them."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lsr.cli import app
from lsr.core.vectors import load_vectors

runner = CliRunner()


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def make(*args: str) -> None:
    r = runner.invoke(app, ["bench", "data", *args])
    assert r.exit_code == 0, r.output


@pytest.mark.slow   # five commands, four of them encoding: ~40 s on 2 loaded cores
def test_every_benchmark_input_is_made_by_one_command(tmp_path, monkeypatch, ir_datasets_home):
    monkeypatch.chdir(tmp_path)
    make("windows", "--limit", "12")
    make("queries", "--limit", "8")
    make("beir", "scifact", "--limit", "10")
    make("beir", "nfcorpus", "--limit", "6")
    make("synthetic", "--docs", "50")
    data = tmp_path / "data"
    assert sorted(p.name for p in data.iterdir()) == [
        "nfcorpus.jsonl", "nfcorpus.npz", "queries.jsonl", "queries.npz", "scifact.jsonl", "scifact.npz",
        "synthetic-1m.npz", "windows.jsonl", "windows.npz"]
    windows = lines(data / "windows.jsonl")
    assert len(windows) == 12 and windows[0]["id"].startswith("scifact:") and windows[0]["id"].endswith(":0")
    assert all(50 < len(w["text"]) and w["title"] for w in windows)
    queries = lines(data / "queries.jsonl")
    assert len(queries) == 8 and all(q["id"].startswith("beir/scifact/test:") for q in queries)
    for name, records, max_length in (("windows", windows, 256), ("queries", queries, 256),
                                      ("scifact", lines(data / "scifact.jsonl"), 256)):
        vectors = load_vectors(data / f"{name}.npz")
        assert list(vectors.ids) == [r["id"] for r in records], name
        assert vectors.meta["model"] == "splade-tiny" and vectors.meta["max_length"] == max_length, vectors.meta
        assert vectors.vectors.vocab_size == 30522 and vectors.vectors.nnz > 10 * len(records)
    assert len(load_vectors(data / "nfcorpus.npz").vectors) == 6
    synthetic = load_vectors(data / "synthetic-1m.npz")
    assert len(synthetic.vectors) == 50 and synthetic.meta["synthetic"]["like"] == ["data/windows.npz"]
    # the benchmarks' default inputs are exactly these files
    from bench import cli

    defaults = {p.default.default for f in (cli.bench_ingest, cli.bench_service)
                for p in inspect.signature(f).parameters.values() if isinstance(p.default.default, Path)
                and p.default.default.parts[0] == "data"}
    assert defaults == {Path("data/windows.npz"), Path("data/queries.npz"), Path("data/scifact.npz"),
                        Path("data/queries.jsonl")}
    assert all((tmp_path / d).is_file() for d in defaults)


def test_texts_only_and_bad_input(tmp_path, monkeypatch, ir_datasets_home):
    monkeypatch.chdir(tmp_path)
    make("windows", "--limit", "3", "--texts-only", "--output", "w/passages.jsonl")
    assert [p.name for p in (tmp_path / "w").iterdir()] == ["passages.jsonl"]
    r = runner.invoke(app, ["bench", "data", "beir", "msmarco"])
    assert r.exit_code == 2 and "unknown BEIR set 'msmarco'" in r.output
    r = runner.invoke(app, ["bench", "data", "synthetic", "--like", "data/none.npz", "--docs", "5"])
    assert r.exit_code == 2 and "none.npz" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["bench", "ingest"])
    assert r.exit_code == 2 and "data/windows.npz: no such file" in r.output and "lsr bench data" in r.output
