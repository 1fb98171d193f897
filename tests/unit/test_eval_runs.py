"""Runs, TREC run files, measures and command-line parameters."""

import pytest

from lsr.eval.metrics import evaluate_run, within_depth
from lsr.eval.params import parse_settings
from lsr.eval.runs import from_hits, read_trec_run, write_trec_run

QRELS = {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}, "q3": {"d4": 1}}


def test_trec_run_roundtrip(tmp_path):
    run = {"q1": [("d1", 2.5), ("d2", 1.0)], "q2": [("d3", 0.125)]}
    write_trec_run(tmp_path / "run.trec", run, "lsr-exact")
    lines = (tmp_path / "run.trec").read_text().splitlines()
    assert lines[0] == "q1 Q0 d1 1 2.5 lsr-exact" and len(lines) == 3
    assert read_trec_run(tmp_path / "run.trec") == run
    with pytest.raises(ValueError, match="one word"):
        write_trec_run(tmp_path / "x.trec", run, "two words")


def test_malformed_run_files(tmp_path):
    (tmp_path / "a").write_text("q1 Q0 d1 1\n")
    with pytest.raises(ValueError, match="a:1: expected"):
        read_trec_run(tmp_path / "a")
    (tmp_path / "b").write_text("q1 Q0 d1 1 high tag\n")
    with pytest.raises(ValueError, match="not a number"):
        read_trec_run(tmp_path / "b")


def test_from_hits_drops_self_hits():
    run = from_hits(["q1", "d9"], [["d1", "d2"], ["d9", "d1", "d2"]], [[2.0, 1.0], [3.0, 2.0, 1.0]], k=2,
                    drop_self_hits=True)
    assert run == {"q1": [("d1", 2.0), ("d2", 1.0)], "d9": [("d1", 2.0), ("d2", 1.0)]}
    kept = from_hits(["d9"], [["d9", "d1"]], [[3.0, 2.0]], k=2)
    assert kept["d9"][0] == ("d9", 3.0)


def test_unanswered_queries_count_as_zero():
    run = {"q1": [("d1", 1.0)], "q2": [("d3", 1.0)], "q3": []}
    agg, per_query = evaluate_run(run, QRELS, ["nDCG@10", "RR@10"])
    assert per_query["nDCG@10"] == {"q1": 1.0, "q2": 1.0, "q3": 0.0}
    assert agg["nDCG@10"] == pytest.approx(2 / 3) and agg["RR@10"] == pytest.approx(2 / 3)
    # graded relevance and a relevance threshold, as TREC DL uses
    agg, _ = evaluate_run({"q2": [("d3", 1.0)]}, {"q2": {"d3": 1}}, ["RR(rel=2)@10", "R@100"])
    assert agg == {"RR(rel=2)@10": 0.0, "R@100": 1.0}
    with pytest.raises(ValueError, match="unknown measure"):
        evaluate_run(run, QRELS, ["nDCG@@10"])
    with pytest.raises(ValueError, match="no measures"):
        evaluate_run(run, QRELS, [])


def test_parse_settings():
    assert parse_settings([]) == [{}]
    assert parse_settings(["alpha=0.8,1", "beta=0.5", "mode=safe", "flag=true"]) == [
        {"alpha": 0.8, "beta": 0.5, "mode": "safe", "flag": True}, {"alpha": 1, "beta": 0.5, "mode": "safe", "flag": True}]
    for bad in (["alpha"], ["=1"], ["alpha="], ["a b=1"]):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            parse_settings(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_settings(["a=1", "a=2"])


def test_default_measures_fit_the_run_depth():
    assert within_depth(["nDCG@10", "R@100", "R@1000", "AP"], 100) == ["nDCG@10", "R@100", "AP"]
