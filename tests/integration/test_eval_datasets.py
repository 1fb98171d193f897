"""Test collections: local BEIR folders, ir_datasets ids (BEIR from the shared data, MS MARCO from a fixture)."""

import json
import os
import subprocess
import sys

import pytest

from lsr.eval.datasets import BEIR_MEASURES, MSMARCO_DEV_MEASURES, TREC_DL_MEASURES, DatasetError, default_measures
from lsr.eval.datasets import load_eval_set
from tests.eval_data import REPO, msmarco_home, write_beir_folder

CORPUS = [{"_id": "d1", "title": "Cats", "text": "small mammals"}, {"_id": "d2", "text": "dogs bark"}]


def test_local_beir_folder(tmp_path):
    folder = write_beir_folder(tmp_path / "set", CORPUS, {"q1": "cats", "q2": "dogs", "q3": "unjudged"},
                               {"q1": {"d1": 1}, "q2": {"d2": 2, "d1": 0}})
    es = load_eval_set(folder)
    assert es.queries == {"q1": "cats", "q2": "dogs"} and es.qrels["q2"] == {"d2": 2, "d1": 0}
    assert es.measures == BEIR_MEASURES and es.drop_self_hits
    assert [(d.id, d.full_text) for d in es.docs()] == [("d1", "Cats small mammals"), ("d2", "dogs bark")]
    assert list(es.with_queries(1).queries) == ["q1"]
    key = es.docs_key
    (folder / "corpus.jsonl").write_text((folder / "corpus.jsonl").read_text() + '{"_id": "d3", "text": "new"}\n')
    assert load_eval_set(folder).docs_key != key  # an edited corpus is another cache entry


def test_bad_collections(tmp_path):
    folder = write_beir_folder(tmp_path / "b", CORPUS, {"q1": "x"}, {"q1": {"d1": 1}})
    with pytest.raises(DatasetError, match="qrels/dev.tsv is missing"):
        load_eval_set(folder, split="dev")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(DatasetError, match="test.tsv:2: expected"):
        load_eval_set(folder)
    (folder / "qrels" / "test.tsv").write_text("q9\td1\t1\n")
    with pytest.raises(DatasetError, match="no query has relevance judgements"):
        load_eval_set(folder)
    (folder / "queries.jsonl").write_text('{"id": "q1"}\n')
    with pytest.raises(DatasetError, match="'_id' and 'text'"):
        load_eval_set(folder)
    with pytest.raises(DatasetError, match="is a file"):
        load_eval_set(folder / "corpus.jsonl")


def test_default_measures():
    assert default_measures("beir/arguana") == BEIR_MEASURES
    assert default_measures("msmarco-passage/dev/small") == MSMARCO_DEV_MEASURES
    assert default_measures("msmarco-passage/trec-dl-2020/judged") == TREC_DL_MEASURES


def _in_subprocess(code: str, home) -> dict:
    """ir_datasets fixes its home at import, so collections of another home are read in a fresh interpreter."""
    env = {**os.environ, "IR_DATASETS_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


LOAD = ("import json, sys; from lsr.eval.datasets import load_eval_set; es = load_eval_set(sys.argv[1]); "
        "print(json.dumps({'corpus': es.corpus, 'queries': len(es.queries), 'qrels': sum(map(len, es.qrels.values())),"
        " 'docs': sum(1 for _ in es.docs()), 'measures': es.measures, 'drop': es.drop_self_hits}))")


def test_msmarco_passage_dev_small_from_fixture(tmp_path):
    home = msmarco_home(tmp_path)
    got = _in_subprocess(LOAD.replace("sys.argv[1]", "'msmarco-passage/dev/small'"), home)
    assert got == {"corpus": "msmarco-passage", "queries": 3, "qrels": 3, "docs": 6,
                   "measures": list(MSMARCO_DEV_MEASURES), "drop": False}
