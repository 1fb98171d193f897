"""`lsr bench scale run / growth / judged` end to end on toy vectors with a tiny judged corpus folder."""

import json

import numpy as np
from typer.testing import CliRunner

from lsr.cli import app
from lsr.core.sparse import SparseBatch
from lsr.core.vectors import save_vectors
from tests.vectors import random_batch

runner = CliRunner()
NEEDLES = {"mini:a": 5, "mini:b": 150, "mini:c": 250}   # document id -> row


def make_inputs(tmp_path):
    docs = random_batch(300, 30, seed=3, vocab=300)
    ids = [f"p:{i}" for i in range(300)]
    for doc_id, row in NEEDLES.items():
        ids[row] = doc_id
    save_vectors(tmp_path / "d.npz", docs, ids)
    unjudged = random_batch(20, 8, seed=4, vocab=300)
    judged = [docs.row(NEEDLES["mini:a"]), docs.row(NEEDLES["mini:c"])]   # each finds its own document first
    rows = [unjudged.row(i) for i in range(len(unjudged))] + judged
    save_vectors(tmp_path / "q.npz", SparseBatch.from_rows(rows, 300),
                 [f"q:p:{i}" for i in range(20)] + ["q:mini:1", "q:mini:2"])
    corpus = tmp_path / "corpus"
    (corpus / "qrels").mkdir(parents=True)
    (corpus / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": "x"}) + "\n" for i in ids))
    (corpus / "queries.jsonl").write_text('{"_id": "q:mini:1", "text": "a"}\n{"_id": "q:mini:2", "text": "c"}\n')
    (corpus / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq:mini:1\tmini:a\t1\nq:mini:2\tmini:c\t1\n")
    (tmp_path / "grid.json").write_text(json.dumps({
        "builds": [{"n_postings": 400, "centroid_fraction": 0.5, "summary_energy": 1.0}],
        "queries": [{"query_cut": 8, "heap_factor": 1.0}, {"query_cut": 3, "heap_factor": 0.7}]}))
    return corpus


def test_scale_reports_growth_and_judged_queries(tmp_path):
    corpus = make_inputs(tmp_path)
    out = tmp_path / "scale"
    r = runner.invoke(app, ["bench", "scale", "run", "--docs", str(tmp_path / "d.npz"), "--queries",
                            str(tmp_path / "q.npz"), "--corpus", str(corpus), "--output-dir", str(out),
                            "--size", "100", "--size", "0", "--size", "5000", "--rounds", "1",
                            "--block-size", "8", "--quantization", "uint8", "--suite", "ours", "--suite", "seismic",
                            "--seismic-grid", str(tmp_path / "grid.json")])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.glob("*.json")) == ["100.json", "300.json"]
    for n in (100, 300):
        report = json.loads((out / f"{n}.json").read_text())
        assert report["docs"] == n and report["queries"] == 20   # the unjudged queries only
        assert report["corpus"]["name"] == "corpus" and report["corpus"]["documents"] == n
        assert report["corpus"]["prefix_of"] == 300
    r = runner.invoke(app, ["bench", "scale", "growth", "--reports", str(out), "--plot", str(out / "growth.png")])
    assert r.exit_code == 0, r.output
    series = json.loads((out / "growth.json").read_text())
    assert [p["docs"] for p in series["exact (uint8)"]] == [100, 300]
    assert (out / "growth.png").stat().st_size > 10_000
    # another suite's run of one size, in its own folder: its methods join that size's, no size repeats
    other = tmp_path / "scale-peer"
    other.mkdir()
    report = json.loads((out / "300.json").read_text())
    report["methods"] = [{**e, "name": "peer-bmp", "mean_ms": 99.0} for e in report["methods"] if e["name"] == "bmp"]
    (other / "300.json").write_text(json.dumps(report))
    r = runner.invoke(app, ["bench", "scale", "growth", "--reports", str(out), "--reports", str(other), "--plot",
                            str(tmp_path / "pooled.png")])
    assert r.exit_code == 0, r.output
    pooled = json.loads((tmp_path / "pooled.json").read_text())
    assert pooled["exact (uint8)"] == series["exact (uint8)"]   # sizes 100 and 300, once each
    assert [(p["docs"], p["mean_ms"]) for p in pooled["peer-bmp safe"]] == [(300, 99.0)]
    r = runner.invoke(app, ["bench", "scale", "judged", "--docs", str(tmp_path / "d.npz"), "--queries",
                            str(tmp_path / "q.npz"), "--corpus", str(corpus), "--report", str(out / "300.json"),
                            "--output", str(out / "judged.json")])
    assert r.exit_code == 0, r.output
    judged = json.loads((out / "judged.json").read_text())
    rows = {(x["method"], x["over"]): x for x in judged["results"]}
    assert judged["queries"] == {"mini": 2} and set(judged["settings"]) == {"exact", "bmp", "seismic"}
    assert rows["exact", "whole corpus"]["nDCG@10 mini"] == 1.0
    assert rows["exact", "needle documents alone"]["documents"] == 3
    assert rows["seismic", "whole corpus"]["share_of_exact"]["mini"] == 1.0


def test_scale_refuses_inputs_it_cannot_use(tmp_path):
    corpus = make_inputs(tmp_path)
    args = ["bench", "scale", "run", "--queries", str(tmp_path / "q.npz"), "--corpus", str(corpus), "--output-dir",
            str(tmp_path / "scale")]
    r = runner.invoke(app, args + ["--docs", str(tmp_path / "none.npz")])
    assert r.exit_code == 2 and "no such file" in r.output
    r = runner.invoke(app, args + ["--docs", str(tmp_path / "d.npz"), "--corpus", str(tmp_path)])
    assert r.exit_code == 2 and "not a BEIR folder" in r.output
    only_judged = tmp_path / "judged-only.npz"
    save_vectors(only_judged, random_batch(2, 8, seed=5, vocab=300), ["q:mini:1", "q:mini:2"])
    r = runner.invoke(app, ["bench", "scale", "run", "--docs", str(tmp_path / "d.npz"), "--queries", str(only_judged),
                            "--corpus", str(corpus)])
    assert r.exit_code == 2 and "no unjudged" in r.output
    r = runner.invoke(app, ["bench", "scale", "growth", "--reports", str(tmp_path)])
    assert r.exit_code == 2 and "no <documents>.json report" in r.output
    assert not np.any([p.name.endswith(".json") for p in tmp_path.glob("scale/*")])
