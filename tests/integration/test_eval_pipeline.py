"""`lsr eval` end to end on real collections: our pipeline against an independent reference, index methods
against exact search, BM25 against bm25s and published figures, hybrid fusion, the vector cache, reports,
the MS MARCO path, and bad input.

CPU-sized: SPLADE runs on a scifact subset (20 judged test queries, their judged documents and 40 others, 128
tokens); the full-collection figures come from bench/eval_beir.py (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bench.bm25s_peer import bm25s_run
from bench.reference_eval import reference_metrics
from lsr.retrieval.analyzer import Analyzer
from lsr.eval.datasets import load_eval_set
from lsr.retrieval.fusion import reciprocal_rank_fusion
from lsr.eval.metrics import evaluate_run
from lsr.eval.runs import read_trec_run
from lsr.cli import app
from tests.eval_data import REPO, beir_folder, ir_datasets_home, msmarco_home, write_beir_folder

MAX_LENGTH = 128


def lsr_eval(*args: str) -> dict | list:
    """Runs `lsr eval` in this process; returns the results JSON it wrote."""
    out = next((args[i + 1] for i, a in enumerate(args) if a in ("-o", "--output")), None)
    res = CliRunner().invoke(app, ["eval", *args])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return json.loads(open(out).read()) if out else {}


def lsr_eval_fails(*args: str) -> str:
    res = CliRunner().invoke(app, ["eval", *args])
    assert res.exit_code == 2, res.output + repr(res.exception)
    return res.output


def has_method(name: str) -> bool:
    from lsr.index import methods

    return name in methods.names()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("eval")


@pytest.fixture(scope="module")
def subset(work):
    return beir_folder("scifact", work / "scifact-subset", n_queries=20, n_other=40)


@pytest.fixture(scope="module")
def common(work, subset):
    return ["--dataset", str(subset), "--max-length", str(MAX_LENGTH), "--cache-dir", str(work / "cache"),
            "--latency-queries", "10", "--report", str(work / "report")]


@pytest.fixture(scope="module")
def exact(work, common):
    return lsr_eval(*common, "--method", "exact", "-o", str(work / "exact.json"), "--run", str(work / "exact.trec"))


@pytest.fixture(scope="module")
def bm25(work, common):
    return lsr_eval(*common, "--method", "bm25", "-o", str(work / "bm25.json"), "--run", str(work / "bm25.trec"))


@pytest.mark.slow
def test_exact_matches_independent_reference(exact, subset):
    es = load_eval_set(subset)
    docs = list(es.docs())
    ref = reference_metrics([d.id for d in docs], [d.full_text for d in docs], es.queries, es.qrels,
                            max_length=MAX_LENGTH)
    assert exact["documents"] == len(docs) and exact["queries"] == 20
    assert abs(exact["metrics"]["nDCG@10"] - ref["nDCG@10"]) <= 0.002, (exact["metrics"], ref)
    assert abs(exact["metrics"]["R@100"] - ref["R@100"]) <= 0.002
    assert exact["latency_ms"] > 0 and set(exact["per_query"]["nDCG@10"]) == set(es.queries)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["bmp", "seismic"])
def test_pruned_methods_against_exact(method, exact, work, common):
    if not has_method(method):
        pytest.skip(f"index method {method!r} is not in this build of index/ yet")
    if method == "bmp":
        safe = lsr_eval(*common, "--method", "bmp", "-p", "alpha=1.0", "-o", str(work / "bmp-safe.json"))
        assert safe["metrics"]["nDCG@10"] == pytest.approx(exact["metrics"]["nDCG@10"], abs=1e-9)
    default = lsr_eval(*common, "--method", method, "-o", str(work / f"{method}.json"))
    assert default["metrics"]["nDCG@10"] >= 0.99 * exact["metrics"]["nDCG@10"]


@pytest.mark.slow
def test_vectors_are_cached(exact, work, common, monkeypatch):
    from lsr.encoding.encoder import Encoder

    def no_model(*a, **k):
        raise AssertionError("the model was loaded although its vectors are cached")

    monkeypatch.setattr(Encoder, "from_pretrained", no_model)
    again = lsr_eval(*common, "--method", "exact", "-o", str(work / "again.json"))
    assert again["metrics"] == exact["metrics"]
    monkeypatch.undo()
    # a damaged cache file is reported and encoded again, never trusted
    cached = [p for p in (work / "cache").rglob("queries-*.npz")]
    assert cached
    for p in cached:
        p.write_bytes(b"not a zip")
    healed = lsr_eval(*common, "--method", "exact", "-o", str(work / "healed.json"))
    assert healed["metrics"] == exact["metrics"]


@pytest.mark.slow
def test_query_length_is_recorded_and_truncation_reported(exact, work, common):
    """Queries default to 256 tokens; a shorter --query-max-length truncates them, counted in the result and said
    on stderr (documents likewise, with --max-length)."""
    assert exact["query_max_length"] == 256 and exact["queries_truncated"] == 0
    assert exact["documents_truncated"] > 0   # scifact abstracts run past 128 tokens
    res = CliRunner().invoke(app, ["eval", *common, "--query-max-length", "8", "-o", str(work / "short.json")])
    assert res.exit_code == 0, res.output + repr(res.exception)
    short = json.loads((work / "short.json").read_text())
    assert short["query_max_length"] == 8 and 0 < short["queries_truncated"] <= short["queries"]
    assert f"{short['queries_truncated']} of 20 queries were longer than 8 tokens" in res.output
    assert f"{exact['documents_truncated']} of {exact['documents']} documents were longer than 128" in res.output
    assert short["metrics"] != exact["metrics"]
    assert "--query-max-length" in lsr_eval_fails(*common, "--query-max-length", "1")


@pytest.mark.slow
def test_hybrid_fuses_the_two_runs(exact, bm25, work, common):
    hybrid = lsr_eval(*common, "--method", "hybrid", "-p", "fusion=rrf", "-o", str(work / "hybrid.json"),
                      "--run", str(work / "hybrid.trec"))
    assert hybrid["model"] == f"splade-tiny+{bm25['model']}" and hybrid["params"]["fusion"] == "rrf"
    runs = read_trec_run(work / "exact.trec"), read_trec_run(work / "bm25.trec")
    fused = read_trec_run(work / "hybrid.trec")
    for q, hits in fused.items():
        want = dict(reciprocal_rank_fusion([runs[0].get(q, []), runs[1].get(q, [])], k=1000))
        assert len(hits) == len(want)
        assert [s for _, s in hits] == pytest.approx([want[d] for d, _ in hits], rel=1e-4)
    sweep = lsr_eval(*common, "--method", "hybrid", "-p", "fusion=linear", "-p", "weight=0.3,0.7",
                     "-o", str(work / "linear.json"))
    assert [r["params"]["weight"] for r in sweep] == [0.3, 0.7]
    assert all(0 < r["metrics"]["nDCG@10"] <= 1 for r in sweep)


@pytest.mark.slow
def test_report_lists_every_result(exact, bm25, work):
    lsr_eval("--report", str(work / "report"))
    table = (work / "report" / "report.md").read_text()
    for label in ("| splade-tiny | exact |", f"| {bm25['model']} | bm25 |"):
        assert label in table
    assert (work / "report" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = [json.loads(p.read_text()) for p in (work / "report").glob("*.json")]
    assert {"exact", "bm25"} <= {r["method"] for r in results}


def test_self_hits_are_dropped_on_beir(tmp_path):
    corpus = [{"_id": "q1", "text": "whales are large marine mammals"}, {"_id": "d2", "text": "whales sing songs"},
              {"_id": "d3", "text": "marine mammals include seals"}]
    folder = write_beir_folder(tmp_path / "set", corpus, {"q1": "whales are large marine mammals"},
                               {"q1": {"d2": 1}})
    lsr_eval("--dataset", str(folder), "--method", "bm25", "--cache-dir", str(tmp_path / "c"),
             "--run", str(tmp_path / "run"), "-k", "2")
    assert sorted(d for d, _ in read_trec_run(tmp_path / "run")["q1"]) == ["d2", "d3"]  # q1 itself would lead


@pytest.mark.slow
def test_bm25_reproduces_published_figures_and_bm25s(tmp_path):
    """nfcorpus whole (scifact, larger, is in bench/eval_beir.py): Anserini's BM25 flat has nDCG@10 0.322."""
    folder = beir_folder("nfcorpus", tmp_path / "nfcorpus")
    ours = lsr_eval("--dataset", str(folder), "--method", "bm25", "--cache-dir", str(tmp_path / "c"),
                    "--latency-queries", "10", "-o", str(tmp_path / "bm25.json"))
    assert abs(ours["metrics"]["nDCG@10"] - 0.322) <= 0.02, ours["metrics"]
    es = load_eval_set(folder)
    run, _, _ = bm25s_run(es, analyzer=Analyzer())
    peer, _ = evaluate_run(run, es.qrels, ["nDCG@10"])
    assert abs(ours["metrics"]["nDCG@10"] - peer["nDCG@10"]) <= 0.01, (ours["metrics"], peer)


def _cli_subprocess(home, *args: str, code: int = 0) -> str:
    """ir_datasets fixes its home at import, so runs against another home go through a fresh `python -m lsr`."""
    env = {**os.environ, "IR_DATASETS_HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "lsr", "eval", *args], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == code, out.stderr[-3000:]
    return out.stderr


@pytest.mark.slow
def test_msmarco_passage_through_ir_datasets(tmp_path):
    home = msmarco_home(tmp_path / "home")
    _cli_subprocess(home, "--dataset", "msmarco-passage/dev/small", "--method", "bm25", "--cache-dir",
                    str(tmp_path / "c"), "-o", str(tmp_path / "r.json"), "--run", str(tmp_path / "run"), "-k", "3")
    result = json.loads((tmp_path / "r.json").read_text())
    assert list(result["metrics"]) == ["RR@10", "nDCG@10", "R@100", "R@1000"]
    assert result["metrics"]["RR@10"] == 1.0 and result["queries"] == 3 and result["documents"] == 6
    assert {q: hits[0][0] for q, hits in read_trec_run(tmp_path / "run").items()} == {
        "1001": "0", "1002": "3", "1003": "4"}


@pytest.mark.slow
def test_beir_id_through_ir_datasets(tmp_path):
    home = ir_datasets_home(tmp_path)
    _cli_subprocess(home, "--dataset", "beir/nfcorpus/test", "--method", "bm25", "--limit-queries", "20",
                    "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "r.json"))
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["dataset"] == "beir/nfcorpus/test" and result["queries"] == 20 and result["documents"] == 3633
    assert list(result["metrics"]) == ["nDCG@10", "R@100", "R@1000"] and 0 < result["metrics"]["nDCG@10"] < 1
    assert "has no qrels" in _cli_subprocess(home, "--dataset", "beir/nfcorpus", "--method", "bm25", code=2)


def test_bad_input_is_refused(tmp_path):
    folder = write_beir_folder(tmp_path / "set", [{"_id": "d1", "text": "a cat"}], {"q1": "cat"}, {"q1": {"d1": 1}})
    cache = ["--cache-dir", str(tmp_path / "c")]
    assert "known ir_datasets id" in lsr_eval_fails("--dataset", "no/such/set", *cache)
    assert "give --dataset" in lsr_eval_fails()
    assert "KEY=VALUE" in lsr_eval_fails("--dataset", str(folder), "-p", "alpha", *cache)
    assert "one run" in lsr_eval_fails("--dataset", str(folder), "-p", "alpha=1,2", "--run", "x", *cache)
    assert "unknown measure" in lsr_eval_fails("--dataset", str(folder), "--method", "bm25", "-m", "nDCG@", *cache)
    assert "holds no evaluation results" in lsr_eval_fails("--report", str(tmp_path))
    assert "no search parameters" in lsr_eval_fails("--dataset", str(folder), "--method", "bm25", "-p", "a=1", *cache)
    assert "unknown fusion" in lsr_eval_fails("--dataset", str(folder), "--method", "hybrid", "-p", "fusion=max",
                                              *cache)
    assert "weight" in lsr_eval_fails("--dataset", str(folder), "--method", "hybrid", "-p", "weight=2",
                                      "--doc-vectors", str(_vectors(tmp_path, ["d1"])), *cache)
    assert "none of the judged documents" in lsr_eval_fails("--dataset", str(folder), "--doc-vectors",
                                                            str(_vectors(tmp_path, ["other"])), *cache)
    assert "unknown search method" in lsr_eval_fails("--dataset", str(folder), "--method", "nope", "--doc-vectors",
                                                     str(_vectors(tmp_path, ["d1"])), *cache)


def _vectors(tmp_path, ids):
    """A tiny vectors file in splade-tiny's vocabulary (with its model and max_length recorded)."""
    import numpy as np

    from lsr.core.sparse import SparseBatch
    from lsr.core.vectors import save_vectors

    path = tmp_path / f"v-{'-'.join(ids)}.npz"
    batch = SparseBatch(np.arange(len(ids) + 1, dtype=np.int64), np.full(len(ids), 2000, np.int32),
                        np.ones(len(ids), np.float32), 30522)
    save_vectors(path, batch, ids, {"model": "splade-tiny", "max_length": 256})
    return path
