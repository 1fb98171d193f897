"""`lsr train` end to end on a scifact subset (16 judged queries, their documents and 40 others, 32 tokens):
the output loads everywhere a model does, a run interrupted and resumed ends with the same weights, the
inference-free mode, distillation, triples, bad input.
Full-collection figures come from bench/train_recipe.py (BENCHMARKS.md)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file
from typer.testing import CliRunner

from lsr.cli import app
from lsr.training.config import TrainConfig
from lsr.training.data import TrainingDataError, load_training_data
from lsr.training.trainer import TrainCallbacks, train
from tests.eval_data import beir_folder

@pytest.fixture(scope="module")
def folder(tmp_path_factory, ir_datasets_home):
    return beir_folder("scifact", tmp_path_factory.mktemp("train") / "scifact-16", n_queries=16, n_other=40)


def tiny(folder, output, **kw) -> TrainConfig:
    """12 training queries in 3 steps of 4 per epoch, 4 dev queries; 32-token documents; one thread."""
    base = dict(dataset=str(folder), split="test", output=str(output), epochs=2, batch_size=4, doc_max_length=32,
                query_max_length=16, dev_fraction=0.25, dev_depth=3, dev_max_length=32, negative_depth=5,
                checkpoint_every=2, threads=1)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "model"
    steps = []
    record = train(tiny(folder, out), TrainCallbacks(step=steps.append))
    return out, record, steps


def weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("collection, hard", [("scifact", 1), ("nfcorpus", 0)])
def test_the_default_hard_negatives_follow_each_collections_judgements(ir_datasets_home, collection, hard):
    from lsr.training.trainer import hard_negatives_for

    assert hard_negatives_for(load_training_data(f"beir/{collection}/train", "train"), {}) == hard


def test_run_reports_steps_and_chooses_a_checkpoint_on_dev(trained):
    out, record, steps = trained
    assert [s.step for s in steps] == list(range(1, 7)) and steps[-1].total == 6
    assert all(np.isfinite(s.loss) and s.doc_nnz > 0 and s.query_nnz > 0 for s in steps)
    assert [h["epoch"] for h in record["dev"]] == [1, 2]
    assert record["chosen"]["nDCG@10"] == max(h["nDCG@10"] for h in record["dev"])
    assert record["train_queries"] == 12 and record["dev_queries"] == 4 and record["hard_negatives"] == 1
    assert not (out / ".train").exists()   # checkpoints go once the run is finished
    assert json.loads((out / "training.json").read_text())["chosen"] == record["chosen"]


def test_a_step_budget_stops_within_an_epoch_and_evaluates_there(folder, tmp_path):
    steps = []
    record = train(tiny(folder, tmp_path / "cut", max_steps=4), TrainCallbacks(step=steps.append))
    assert [s.step for s in steps] == [1, 2, 3, 4] and steps[-1].total == 4   # 2 epochs of 3 steps, cut at 4
    assert [(h["epoch"], h["step"]) for h in record["dev"]] == [(1, 3), (2, 4)]   # the last step is evaluated too
    assert record["chosen"] in record["dev"]


def test_output_loads_in_encoder_index_search_eval_and_serve(trained, folder, tmp_path, encoder):
    from lsr.encoding.encoder import Encoder
    from lsr.service import Settings, create_app

    out = trained[0]
    tuned = Encoder.from_pretrained(str(out), device="cpu")
    text = ["Vitamin D deficiency is linked to fractures."]
    a, b = tuned.encode_documents(text, max_length=32), encoder.encode_documents(text, max_length=32)
    assert a.nnz > 0 and not (a.nnz == b.nnz and np.allclose(a.values, b.values))   # trained, not a copy
    runner = CliRunner()
    res = runner.invoke(app, ["index", str(folder), "-o", str(tmp_path / "idx"), "--model", str(out),
                              "--max-length", "32", "--method", "exact"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["search", "--index", str(tmp_path / "idx"), "vitamin d and bone fractures", "--json"])
    assert res.exit_code == 0 and res.output.strip(), res.output
    res = runner.invoke(app, ["eval", "-d", str(folder), "--model", str(out), "--max-length", "32",
                              "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert 0 < json.loads((tmp_path / "r.json").read_text())["metrics"]["nDCG@10"] <= 1
    with TestClient(create_app(tmp_path / "idx", Settings())) as client:   # the index's model: the trained one
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        hits = client.post("/search", json={"query": "vitamin d and bone fractures", "k": 3}).json()["hits"]
        assert len(hits) == 3


def test_interrupted_run_resumes_to_the_same_weights(trained, folder, tmp_path):
    out = tmp_path / "model"
    config = tiny(folder, out)

    def stop_at_5(report):
        if report.step == 5:   # after step 5, whose checkpoint (at 6) was never written: a kill
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, TrainCallbacks(step=stop_at_5))
    assert torch.load(out / ".train" / "checkpoint.pt", weights_only=False)["step"] == 4
    with pytest.raises(ValueError, match="another recipe"):
        train(replace(config, lr=1e-3))
    resumed = []
    record = train(config, TrainCallbacks(step=resumed.append))
    assert [s.step for s in resumed] == [5, 6]
    want, got = weights(trained[0]), weights(out)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert record["dev"] == trained[1]["dev"]
    with pytest.raises(FileExistsError, match="already holds a trained model"):
        train(config)


def test_inference_free_trains_documents_and_writes_idf_json(folder, tmp_path):
    from lsr.encoding.encoder import Encoder

    out = tmp_path / "free"
    record = train(tiny(folder, out, epochs=1, inference_free=True))
    assert record["query_mode"] == "idf"
    table = json.loads((out / "idf.json").read_text())
    assert table and all(w > 0 for w in table.values())
    enc = Encoder.from_pretrained(str(out), device="cpu", query_mode="idf")
    q = enc.encode_queries(["vitamin d fractures"])
    tokens = enc.tokenizer.convert_ids_to_tokens(q.indices.tolist())
    assert q.values.tolist() == pytest.approx([table[t] for t in tokens])
    assert all(h["query_nnz"] <= 16 for h in record["dev"])   # a query's own tokens, no expansion


def test_teacher_run_distills_with_marginmse(folder, tmp_path):
    data = load_training_data(str(folder), "test")
    lines = []
    for q, pos in zip(data.query_ids, data.positives):   # a teacher that likes the positives, then a few others
        ranked = list(pos) + [d for d in range(len(data.doc_ids)) if d not in set(pos)][:6]
        lines += [f"{q} Q0 {data.doc_ids[d]} {r + 1} {10.0 - r:.1f} teacher" for r, d in enumerate(ranked)]
    run = tmp_path / "teacher.trec"
    run.write_text("\n".join(lines) + "\n")
    record = train(tiny(folder, tmp_path / "distilled", epochs=1, teacher_run=str(run), distill_weight=0.5))
    assert record["config"]["teacher_run"] == str(run) and record["steps"] == 3
    (tmp_path / "strangers.trec").write_text("nobody Q0 x 1 1.0 t\n")
    with pytest.raises(TrainingDataError, match="no query of the training split"):
        train(tiny(folder, tmp_path / "none", teacher_run=str(tmp_path / "strangers.trec")))


def test_triples_file_trains(folder, tmp_path):
    data = load_training_data(str(folder), "test")
    rows = [{"query": q, "positive": data.doc_texts[p[0]], "negatives": [data.doc_texts[-1 - i]]}
            for i, (q, p) in enumerate(zip(data.query_texts, data.positives))]
    triples = tmp_path / "triples.jsonl"
    triples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = train(tiny(triples, tmp_path / "from-triples", epochs=1))
    assert record["train_queries"] == 12 and (tmp_path / "from-triples" / "model.safetensors").exists()
    run = tmp_path / "t.trec"
    run.write_text("q0 Q0 d0 1 1.0 t\n")
    with pytest.raises(TrainingDataError, match="needs an ir_datasets id or a BEIR folder"):
        train(tiny(triples, tmp_path / "nope", teacher_run=str(run)))


@pytest.mark.parametrize("args, message", [
    (["--dataset", "beir/no-such-set/train"], "neither a BEIR folder nor a known ir_datasets id"),
    (["--epochs", "0"], "epochs"),
    (["--precision", "fp8"], "precision must be"),
    (["--model", "/no/such/model"], "does not exist"),
])
def test_cli_refuses_bad_input(folder, tmp_path, args, message):
    base = {"--dataset": str(folder), "--split": "test", "--output": str(tmp_path / "o")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    res = CliRunner().invoke(app, ["train", *[x for kv in base.items() for x in kv]])
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_cli_refuses_a_folder_that_is_not_a_run(folder, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    res = CliRunner().invoke(app, ["train", "-d", str(folder), "--split", "test", "-o", str(tmp_path / "busy")])
    assert res.exit_code == 2 and "not empty" in res.output
