"""lsr index / lsr search / lsr bench index through the real CLI and the embedded model."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lsr.cli import app
from lsr.core.vectors import save_vectors
from tests.vectors import random_batch

runner = CliRunner()
DOCS = [
    ("heart", "Heart disease", "Coronary artery disease narrows the vessels that feed the heart muscle."),
    ("kidney", "Kidney stones", "Calcium oxalate crystals form stones in the kidney and the urinary tract."),
    ("vitamin", "Vitamin D", "Sunlight lets the skin make vitamin D, which the bones need for calcium."),
    ("sleep", "Sleep", "Adults who sleep less than six hours a night have a higher risk of obesity."),
    ("flu", "Influenza", "Seasonal influenza vaccines are updated every year to match circulating strains."),
]


def write_corpus(path):
    path.write_text("\n".join(json.dumps({"id": i, "title": t, "text": x}) for i, t, x in DOCS))
    return path


@pytest.mark.slow
def test_index_then_search_a_corpus(tmp_path, encoder):
    corpus = write_corpus(tmp_path / "c.jsonl")
    out = tmp_path / "idx"
    r = runner.invoke(app, ["index", str(corpus), "--output", str(out), "--param", "block_size=8"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["documents"] == 5 and summary["methods"] == ["exact", "bmp"]
    for method in ("exact", "bmp"):
        r = runner.invoke(app, ["search", "--index", str(out), "stones in the kidney", "-k", "2", "--json",
                                "--method", method])
        assert r.exit_code == 0, r.output
        hits = json.loads(r.stdout)["hits"]
        assert hits[0]["id"] == "kidney" and hits[0]["title"] == "Kidney stones" and len(hits) == 2
    r = runner.invoke(app, ["search", "--index", str(out), "vitamin d from sunlight"])
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and lines[0].split() == ["rank", "score", "id", "text"] and lines[1].split()[2] == "vitamin"
    r = runner.invoke(app, ["index", str(corpus), "--output", str(out)])
    assert r.exit_code == 2 and "overwrite" in r.output
    r = runner.invoke(app, ["index", str(corpus), "--output", str(tmp_path / "i2"), "--param", "block_size"])
    assert r.exit_code == 2 and "KEY=VALUE" in r.output
    r = runner.invoke(app, ["search", "--index", str(out), "x", "--method", "bmp", "--param", "alpha=3"])
    assert r.exit_code == 2 and "alpha" in r.output
    r = runner.invoke(app, ["search", "--index", str(tmp_path / "none"), "x"])
    assert r.exit_code == 2 and "not an index" in r.output


def test_index_a_vectors_file_with_texts_and_refuse_another_vocabulary(tmp_path, encoder):
    corpus = write_corpus(tmp_path / "c.jsonl")
    vectors = encoder.encode_documents([f"{t} {x}" for _, t, x in DOCS])
    save_vectors(tmp_path / "v.npz", vectors, [d[0] for d in DOCS],
                 {"model": "splade-tiny", "vocab_fingerprint": encoder.vocab_fingerprint})
    out = tmp_path / "idx"
    r = runner.invoke(app, ["index", str(tmp_path / "v.npz"), "-o", str(out), "--texts", str(corpus)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["search", "--index", str(out), "influenza vaccine", "--json", "-k", "1"])
    assert r.exit_code == 0 and json.loads(r.stdout)["hits"][0]["text"].startswith("Seasonal influenza")
    save_vectors(tmp_path / "other.npz", vectors, [d[0] for d in DOCS],
                 {"model": "splade-tiny", "vocab_fingerprint": "0123456789abcdef"})
    r = runner.invoke(app, ["index", str(tmp_path / "other.npz"), "-o", str(tmp_path / "other")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["search", "--index", str(tmp_path / "other"), "influenza"])
    assert r.exit_code == 2 and "fingerprint" in r.output and "0123456789abcdef" in r.output


def test_method_parameters_from_the_command_line_are_checked(tmp_path):
    """--param values go to the method's parameter dataclass only: out of range (alpha below the smallest normal
    float32, issue 17 item 7), or a name of the command's own arguments, is a one-line error, never a traceback."""
    from lsr.index import Index

    docs = random_batch(200, 20, seed=5, vocab=300)
    save_vectors(tmp_path / "v.npz", docs, [f"d{i}" for i in range(len(docs))])
    Index.build(tmp_path / "idx", docs, [f"d{i}" for i in range(len(docs))], block_size=8)
    query = ["search", "--index", str(tmp_path / "idx"), "--vector", "3:1.0,5:0.5", "--json", "--method", "bmp"]
    for param, message in [("alpha=1e-46", "bmp: alpha must be a number in (0, 1] and, unless 0, at least"),
                           ("alpha=1e-40", "smallest normal float32"), ("snapshot=1", "no search parameter"),
                           ("k=3", "no search parameter ['k']"), ("beta=true", "bmp: beta must be a finite number")]:
        r = runner.invoke(app, [*query, "--param", param])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, (param, r.output)
    r = runner.invoke(app, [*query, "--param", "alpha=1.1754943508222875e-38"])
    assert r.exit_code == 0 and json.loads(r.stdout)["hits"], r.output
    for param in ("scale=2", "reorder=false", "overwrite=true"):
        r = runner.invoke(app, ["index", str(tmp_path / "v.npz"), "-o", str(tmp_path / "i2"), "--param", param])
        assert r.exit_code == 2 and "unknown build parameters" in r.output, (param, r.output)
    assert not (tmp_path / "i2").exists()


def vector_files(folder, n_docs: int, n_queries: int) -> list[str]:
    """Toy document and query vector files in ``folder``: the --docs and --queries options of a benchmark."""
    docs, queries = random_batch(n_docs, 30, seed=3, vocab=300), random_batch(n_queries, 8, seed=4, vocab=300)
    save_vectors(folder / "d.npz", docs, [f"d{i}" for i in range(len(docs))])
    save_vectors(folder / "q.npz", queries, [f"q{i}" for i in range(len(queries))])
    return ["--docs", str(folder / "d.npz"), "--queries", str(folder / "q.npz")]


@pytest.mark.slow
def test_bench_index_report_layout(tmp_path):
    out = tmp_path / "report.json"
    r = runner.invoke(app, ["bench", "index", *vector_files(tmp_path, 400, 25), "--output", str(out),
                            "--rounds", "1", "--block-size", "8", "--alpha", "1.0",
                            "--alpha", "0.8", "--beta", "1.0", "--quantization", "uint8", "--quantization",
                            "float32", "--suite", "ours", "--suite", "scipy", "--suite", "bmp_peer"])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert report["docs"] == 400 and report["queries"] == 25 and report["k"] == 10
    names = {e["name"] for e in report["methods"]}
    assert {"exact", "bmp", "scipy"} <= names
    for e in report["methods"]:
        assert {"name", "params", "recall@10", "mean_ms", "p99_ms", "build_s", "index_bytes"} <= set(e)
    exact = [e for e in report["methods"] if e["name"] == "exact"]
    assert {e["params"]["quantization"] for e in exact} == {"uint8", "float32"}
    assert all(e["recall@10"] == 1.0 for e in report["methods"]
               if e["name"] in ("scipy", "peer-splade-index") or e["params"].get("quantization") == "float32")
    safe = [e for e in report["methods"] if e["name"] == "bmp" and e["params"]["alpha"] == 1.0]
    assert safe[0]["recall@10"] == next(e for e in exact if e["params"]["quantization"] == "uint8")["recall@10"]
    if "peer-bmp" in names:
        assert report["targets"]["bmp_safe_latency_vs_peer"] > 0
        assert all(e["safe_equals_own_integer_exact"] == 1.0 for e in report["methods"] if e["name"] == "peer-bmp")
    assert {b["threads"] for b in report["batch"]} == {1, 2}
    assert {b["name"] for b in report["batch"]} == {"exact", "ceiling"}   # the machine's speed-up beside ours
    assert all(b["cpu_per_wall"] > 0 and b["qps_per_cpu_s"] > 0 for b in report["batch"])
    assert np.isfinite(report["targets"]["exact_speedup_vs_scipy"])


def test_search_with_a_filter_and_pages_from_a_corpus_with_metadata(tmp_path):
    """Metadata comes from the corpus (JSONL ``metadata`` objects) through ``lsr index --texts``; ``lsr search``
    filters and pages, and a bad filter is a one-line error naming its clause."""
    docs = random_batch(120, 20, seed=6, vocab=300)
    ids = [f"d{i}" for i in range(len(docs))]
    save_vectors(tmp_path / "v.npz", docs, ids)
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(
        {"id": d, "text": f"text {d}", "metadata": {"group": ["a", "b", "c"][i % 3], "n": i}})
        for i, d in enumerate(ids)))
    r = runner.invoke(app, ["index", str(tmp_path / "v.npz"), "-o", str(tmp_path / "idx"), "--texts",
                            str(tmp_path / "c.jsonl")])
    assert r.exit_code == 0, r.output
    query = ["search", "--index", str(tmp_path / "idx"), "--vector", "3:1.0,5:0.5,7:0.3,11:0.2", "--json"]
    flt = json.dumps({"must": [{"key": "group", "match": {"value": "b"}}], "must_not": [{"key": "n", "range": {"gt": 90}}]})
    whole = json.loads(runner.invoke(app, [*query, "-k", "6", "--filter", flt]).stdout)["hits"]
    assert whole and all(h["metadata"]["group"] == "b" and h["metadata"]["n"] <= 90 for h in whole)
    page = json.loads(runner.invoke(app, [*query, "-k", "3", "--offset", "3", "--filter", flt]).stdout)["hits"]
    assert [(h["rank"], h["id"]) for h in page] == [(h["rank"], h["id"]) for h in whole[3:6]]
    for bad, message in [('{"must": [', "filter: Invalid JSON"),
                         ('{"must": [{"key": "group", "range": {"gt": 1}}]}', "filter.must[0].range: 'group' is a "
                                                                             "keyword field"),
                         ('{"must": [{"key": "n", "match": {"value": "3"}}]}', "'n' holds number values"),
                         ('{"must": [{"near": 1}]}', "filter.must[0]: a condition is")]:
        r = runner.invoke(app, [*query, "--filter", bad])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, (bad, r.output)


@pytest.mark.slow
def test_bench_filter_report_layout(tmp_path):
    out = tmp_path / "filter.json"
    r = runner.invoke(app, ["bench", "filter", *vector_files(tmp_path, 600, 12), "--output", str(out), "--rounds", "1",
                            "--share", "0.5", "--share", "0.01"])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    filtered = report["filtered"]
    assert {(e["method"], e["correlated"], e["target"]) for e in filtered} == {
        (m, c, s) for m in ("exact", "bmp-safe", "bmp-approx@0.95", "bmp-approx@0.99", "seismic@0.95", "seismic@0.99")
        for c in (False, True) for s in (0.5, 0.01)}
    assert all(e["recall@10"] == 1.0 for e in filtered if e["method"] in ("exact", "bmp-safe"))
    chosen = report["calibration"]["chosen"]   # each operating point reaches its floor unfiltered, or is the best
    for name, point in chosen.items():
        grid = [p for p in report["calibration"]["grid"] if p["method"] == point["method"]]
        floor = float(name.split("@")[1])
        assert point["recall@10"] >= floor or point["recall@10"] == max(p["recall@10"] for p in grid)
    assert {p["k_prime"] for p in report["post_filter"]} == {10, 100, 1000}
    assert {c["direct"] for c in report["crossover"]} == {True, False}
    assert report["targets"]["exact_and_bmp_safe_identical"] is True
