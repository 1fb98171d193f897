"""lsr.training's parts that need no model: the objective, the regulariser's warm-up, the dev split, triples files
and the run's parameters (each bad input refused with a clear message)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lsr.training import objective
from lsr.training.config import DENSE_JUDGEMENTS, TrainConfig
from lsr.training.data import TrainingData, TrainingDataError, load_training_data, split_dev


def test_contrastive_is_cross_entropy_over_all_documents():
    g = torch.Generator().manual_seed(0)
    q, d = torch.rand(3, 7, generator=g), torch.rand(6, 7, generator=g)   # 3 positives, then 3 negatives
    scores = (q @ d.T).double()
    want = -torch.stack([scores[i].log_softmax(0)[i] for i in range(3)]).mean()
    assert objective.contrastive(q, d).item() == pytest.approx(want.item(), rel=1e-6)


def test_documents_judged_relevant_to_a_query_are_not_its_negatives():
    g = torch.Generator().manual_seed(1)
    q, d = torch.rand(3, 7, generator=g), torch.rand(6, 7, generator=g)
    judged = torch.zeros(3, 6, dtype=torch.bool)
    judged[0, 1] = judged[0, 4] = judged[2, 0] = True
    scores = (q @ d.T).double()
    keep = [[j for j in range(6) if not judged[i, j]] for i in range(3)]
    want = -torch.stack([scores[i, keep[i]].log_softmax(0)[keep[i].index(i)] for i in range(3)]).mean()
    got = objective.contrastive(q, d, judged)
    assert got.item() == pytest.approx(want.item(), rel=1e-6) and got.item() < objective.contrastive(q, d).item()


def test_judged_elsewhere_marks_other_queries_positives_not_the_own_column():
    from lsr.training.trainer import judged_elsewhere

    data = TrainingData([f"d{i}" for i in range(5)], ["t"] * 5, ["a", "b"], ["qa", "qb"],
                        [np.array([0, 1]), np.array([1, 3])])
    # batch: query a (positive 0), query b (positive 1); hard negatives 3 (for a) and 2 (for b)
    mask = judged_elsewhere(data, np.array([0, 1]), np.array([0, 1, 3, 2]))
    assert mask.tolist() == [[False, True, False, False],    # d1 is a's positive too, d3 is not
                             [False, False, True, False]]    # its own column (d1) is the target; d3 is b's


def test_flops_is_the_squared_mean_activation_summed_over_terms():
    w = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert objective.flops(w).item() == pytest.approx(2.0 ** 2 + 0 + 1.0 ** 2)


def test_splade_loss_adds_each_sides_regulariser():
    q, d = torch.rand(2, 5), torch.rand(4, 5)
    base = objective.contrastive(q, d)
    both = objective.splade_loss(q, d, 0.5, 0.25)
    assert both.item() == pytest.approx((base + 0.25 * objective.flops(d) + 0.5 * objective.flops(q)).item())
    assert objective.splade_loss(q, d, 0.0, 0.0).item() == pytest.approx(base.item())


def test_warmup_is_quadratic_then_flat():
    assert objective.warmup(1.0, 0, 10) == 0.0
    assert objective.warmup(1.0, 5, 10) == pytest.approx(0.25)
    assert objective.warmup(1.0, 10, 10) == 1.0 and objective.warmup(1.0, 99, 10) == 1.0
    assert objective.warmup(2.0, 3, 0) == 2.0   # no warm-up


def test_margin_mse_uses_only_pairs_the_teacher_scored():
    pos, neg = torch.tensor([3.0, 1.0, 9.0]), torch.tensor([1.0, 1.0, 0.0])
    t_pos, t_neg = torch.tensor([5.0, 2.0, 0.0]), torch.tensor([1.0, 2.0, 0.0])
    known = torch.tensor([True, True, False])
    # margins 2 vs 4 and 0 vs 0: ((2 - 4)^2 + 0) / 2
    assert objective.margin_mse(pos, neg, t_pos, t_neg, known).item() == pytest.approx(2.0)
    assert objective.margin_mse(pos, neg, t_pos, t_neg, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def _data(n: int) -> TrainingData:
    return TrainingData([f"d{i}" for i in range(n)], [f"text {i}" for i in range(n)], [f"q{i}" for i in range(n)],
                        [f"query {i}" for i in range(n)], [np.array([i]) for i in range(n)])


def test_dev_split_is_seeded_disjoint_and_sized():
    data = _data(50)
    train, dev = split_dev(data, 0.2, seed=3)
    again, dev2 = split_dev(data, 0.2, seed=3)
    assert dev.query_ids == dev2.query_ids and train.query_ids == again.query_ids
    assert len(dev) == 10 and len(train) == 40 and not set(dev.query_ids) & set(train.query_ids)
    assert split_dev(data, 0.2, seed=4)[1].query_ids != dev.query_ids
    assert [int(p[0]) for p in dev.positives] == [int(q[1:]) for q in dev.query_ids]  # rows travel with queries


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_dev_split_refuses_a_fraction_outside_0_1(fraction):
    with pytest.raises(ValueError, match="dev fraction"):
        split_dev(_data(10), fraction, 0)


def test_dev_split_refuses_too_few_queries():
    with pytest.raises(TrainingDataError, match="cannot give a dev split"):
        split_dev(_data(2), 0.1, 0)


def test_triples_file_builds_one_document_table(tmp_path):
    f = tmp_path / "t.jsonl"
    rows = [{"query": "what is a cat", "positive": "a cat is a mammal", "negatives": ["a car", "a dog"]},
            {"query": "what is a dog", "positives": ["a dog"], "negatives": ["a cat is a mammal"]}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = load_training_data(str(f))
    assert data.doc_texts == ["a cat is a mammal", "a car", "a dog"]
    assert [p.tolist() for p in data.positives] == [[0], [2]]
    assert [n.tolist() for n in data.negatives] == [[1, 2], [0]]
    assert not data.has_ids and len(data) == 2


@pytest.mark.parametrize("line, message", [
    ("{not json", "malformed JSON"),
    ('["a list"]', "non-empty 'query'"),
    ('{"query": "  ", "positive": "x"}', "non-empty 'query'"),
    ('{"query": "q"}', "no 'positive'"),
    ('{"query": "q", "positive": 3}', "'positive' must be"),
    ('{"query": "q", "positive": "p", "negatives": ["", "n"]}', "'negatives' must be"),
])
def test_bad_triples_are_refused_with_the_line(tmp_path, line, message):
    f = tmp_path / "t.jsonl"
    f.write_text('{"query": "ok", "positive": "p"}\n' + line + "\n")
    with pytest.raises(TrainingDataError, match=message) as e:
        load_training_data(str(f))
    assert "t.jsonl:2" in str(e.value)


def test_empty_triples_file_and_other_files_are_refused(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TrainingDataError, match="no triples"):
        load_training_data(str(tmp_path / "empty.jsonl"))
    (tmp_path / "t.csv").write_text("a,b\n")
    with pytest.raises(TrainingDataError, match="JSONL"):
        load_training_data(str(tmp_path / "t.csv"))


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs must be a positive integer"),
    ("max_steps", 0, "max_steps must be a positive integer or None"),
    ("batch_size", 2.5, "batch_size must be a positive integer"),
    ("lr", float("nan"), "lr must be a finite number"),
    ("lambda_d", -1.0, "lambda_d must be"),
    ("warmup", 1.5, "warmup is a fraction"),
    ("precision", "fp8", "precision must be"),
    ("hard_negatives", -1, "hard_negatives"),
    ("teacher_run", "/no/such/run.trec", "does not exist"),
])
def test_config_refuses_bad_parameters(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(dataset="beir/scifact/train", output="out", **{field: value})


def _judging(per_query: list[int]) -> TrainingData:
    docs = max(per_query) + 1
    return TrainingData([f"d{i}" for i in range(docs)], ["t"] * docs, [f"q{i}" for i in range(len(per_query))],
                        ["q"] * len(per_query), [np.arange(n, dtype=np.int64) for n in per_query])


def test_hard_negatives_default_to_none_where_judgements_are_dense():
    from lsr.training.trainer import hard_negatives_for

    assert hard_negatives_for(_judging([1, 1, 2]), {}) == 1                          # scifact-like: 1.1 per query
    assert hard_negatives_for(_judging([DENSE_JUDGEMENTS - 1] * 3), {}) == 1
    assert hard_negatives_for(_judging([DENSE_JUDGEMENTS] * 3), {}) == 0             # nfcorpus-like: 42.7
    assert hard_negatives_for(_judging([40, 50]), {(0, 1): 2.0}) == 1                # a teacher labels its negatives
