"""The CPU recipe of `lsr train` (issue 19): how long it takes on this machine, and what it buys on BEIR.

- ``dev``: models (the base one, trained ones) on the recipe's dev split, the pool and measure training uses to
  choose its checkpoint (same seed, fraction, depth and document length), beside BM25 on the same pool. This is
  what hyperparameters are chosen on; the test split is not read.
- ``run``: ``lsr train --dataset D --model M --output O`` plus any options, as a subprocess under ``nice``, with the
  load average sampled every 10 s (the machine is shared: the minutes are the loaded machine's), then the trained
  model on the test splits (``lsr.eval``: exact search, nDCG@10 and non-zeros per document) and its hybrid with
  BM25, beside the base model.
- ``interpolate``: a trained model's weights averaged with its starting model's (WiSE-FT: ``alpha`` of the trained
  ones), each mix on the dev split and the test splits: whether the base model's out-of-domain strength comes back.

    python -m bench.train_recipe dev --model splade-tiny --model models/r2 --output bench/results/train_dev.json
    python -m bench.train_recipe run --output models/scifact-tiny --json bench/results/train_recipe.json
    python -m bench.train_recipe interpolate --trained models/scifact-tiny --alpha 0.3 --alpha 0.5 --alpha 0.7 \
        --output bench/results/train_interpolate.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


TESTS = ["beir/scifact/test", "beir/nfcorpus/test"]   # the test splits every report reads


def log(*a) -> None:
    print(*a, flush=True)


def dev(models: list[str], dataset: str, out: str | None, **recipe) -> dict:
    from lsr.training.config import TrainConfig
    from lsr.training.model import SpladeModel
    from lsr.training.trainer import TrainCallbacks, prepare

    config = TrainConfig(dataset=dataset, output="unused", **recipe)
    prep = prepare(config, TrainCallbacks())
    doc = {"dataset": dataset, "dev_queries": len(prep.dev.data), "pool": len(prep.dev.pool),
           "bm25": prep.dev.bm25.as_dict(), "models": {}}
    log("bm25", doc["bm25"])
    for m in models:
        model = SpladeModel.from_pretrained(m)
        t = time.perf_counter()
        res = prep.dev.evaluate(lambda x, model=model: model.encode_sparse(x, config.dev_max_length),
                                lambda x, model=model: model.encode_sparse(x, config.query_max_length))
        doc["models"][m] = {**res.as_dict(), "seconds": round(time.perf_counter() - t, 1)}
        log(m, doc["models"][m])
    if out:
        Path(out).write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def interpolate(trained: str, base: str, alphas: list[float], dataset: str, tests: list[str]) -> dict:
    """Each mix ``alpha * trained + (1 - alpha) * base`` written beside ``trained`` and evaluated; alpha 1 is the
    trained model, 0 the base one."""
    import shutil

    from safetensors.numpy import load_file, save_file

    from lsr.encoding.models import resolve_model

    weights = {name: load_file(Path(resolve_model(name), "model.safetensors")) for name in (trained, base)}
    if weights[trained].keys() != weights[base].keys():
        raise SystemExit(f"{trained} and {base} do not have the same tensors")
    folders = {}
    for a in alphas:
        folder = folders[a] = f"{trained.rstrip('/')}-interpolated-{a:g}"
        shutil.copytree(trained, folder, dirs_exist_ok=True)
        save_file({k: (a * v + (1 - a) * weights[base][k]).astype(v.dtype) for k, v in weights[trained].items()},
                  Path(folder, "model.safetensors"))
    folders.update({1.0: trained, 0.0: base})
    order = sorted(folders)
    doc = {"trained": trained, "base": base, "dev": dev([folders[a] for a in order], dataset, None), "mixes": []}
    for a in order:
        row = {"alpha": a, "dev": doc["dev"]["models"][folders[a]]}
        row.update({ds: evaluate(folders[a], ds)[0]["metrics"]["nDCG@10"] for ds in tests})
        log(json.dumps(row))
        doc["mixes"].append(row)
    return doc


class LoadSampler:
    """The 1-minute load average every ``every`` seconds, on a thread."""

    def __init__(self, every: float = 10.0):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(every)

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = sorted(self.samples) or [float("nan")]
        return {"min": s[0], "median": s[len(s) // 2], "max": s[-1], "samples": len(self.samples)}


def evaluate(model: str, dataset: str, method: str = "exact", settings: list[dict] | None = None) -> list[dict]:
    from lsr.eval.datasets import load_eval_set
    from lsr.eval.evaluate import Options, evaluate as run_eval

    es = load_eval_set(dataset)
    pairs = run_eval(es, method, settings or [{}], Options(model=model, latency_queries=50))
    out = []
    for result, _ in pairs:
        result.pop("per_query", None)
        out.append(result)
    return out


def doc_nnz(model: str, dataset: str) -> float:
    """Mean non-zeros per document of the cached vectors the evaluation just used (its cache key, recomputed)."""
    from lsr.core.vectors import load_vectors
    from lsr.encoding.encoder import vector_settings
    from lsr.eval.cache import VectorCache
    from lsr.eval.datasets import load_eval_set
    from lsr.eval.evaluate import Options, window_overlap

    opts = Options(model=model)
    settings = vector_settings(opts.device, max_length=opts.max_length, window_overlap=window_overlap(opts))
    v = load_vectors(VectorCache().path(load_eval_set(dataset).docs_key, model, "docs", settings)).vectors
    return v.nnz / len(v)


def run(output: str, dataset: str, model: str, extra: list[str], tests: list[str], base: bool,
        trained: dict | None = None) -> dict:
    """``trained``: {"wall_s", "load"} of a run already finished into ``output`` (its evaluation alone is run)."""
    cmd = [sys.executable, "-m", "lsr", "train", "--dataset", dataset, "--model", model, "--output", output, *extra]
    if trained is None:
        log("$ nice -n 10", " ".join(cmd[2:]))
        with LoadSampler() as load:
            t = time.perf_counter()
            proc = subprocess.run(["nice", "-n", "10", *cmd], capture_output=True, text=True)
            wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"lsr train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        trained = {"wall_s": round(wall, 1), "load": load.summary()}
    record = json.loads(Path(output, "training.json").read_text())
    wall = trained["wall_s"]
    doc = {"command": " ".join(["lsr", *cmd[3:]]), **trained,
           "cores": os.cpu_count(), "training": {k: record[k] for k in ("dev", "dev_bm25", "chosen", "threads",
                                                                        "seconds_this_session")},
           "test": {}}
    log(f"trained in {wall:.0f} s (load {doc['load']})")
    for ds in tests:
        rows = {"trained": evaluate(output, ds)[0], "bm25": evaluate(output, ds, "bm25")[0]}
        if base:
            rows["base"] = evaluate(model, ds)[0]
        hybrid = evaluate(output, ds, "hybrid", [{"fusion": "rrf"}, {"fusion": "linear", "weight": 0.3},
                                                 {"fusion": "linear", "weight": 0.5}])
        doc["test"][ds] = {
            **{k: {"nDCG@10": r["metrics"]["nDCG@10"], "R@100": r["metrics"]["R@100"]} for k, r in rows.items()},
            "hybrid": [{"params": {k: v for k, v in r["params"].items() if k in ("fusion", "weight", "rrf_k")},
                        "nDCG@10": r["metrics"]["nDCG@10"]} for r in hybrid],
            "trained_doc_nnz": round(doc_nnz(output, ds), 1),
        }
        if base:
            doc["test"][ds]["base_doc_nnz"] = round(doc_nnz(model, ds), 1)
        log(ds, json.dumps(doc["test"][ds]))
    return doc


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dev")
    d.add_argument("--model", action="append", required=True)
    d.add_argument("--dataset", default="beir/scifact/train")
    d.add_argument("--output")
    r = sub.add_parser("run")
    r.add_argument("--output", required=True, help="the trained model's folder (new)")
    r.add_argument("--dataset", default="beir/scifact/train")
    r.add_argument("--model", default="splade-tiny")
    r.add_argument("--test", action="append", default=None, help="test splits (default scifact and nfcorpus)")
    r.add_argument("--no-base", action="store_true", help="skip the base model's evaluation")
    r.add_argument("--json", help="append the result to this JSON list")
    r.add_argument("--trained", help='JSON {"wall_s", "load"} of a run already in --output: evaluate it only')
    i = sub.add_parser("interpolate")
    i.add_argument("--trained", required=True, help="a trained model's folder")
    i.add_argument("--base", default="splade-tiny", help="the model it started from")
    i.add_argument("--alpha", action="append", type=float, required=True, help="share of the trained weights")
    i.add_argument("--dataset", default="beir/scifact/train", help="whose dev split (the recipe's)")
    i.add_argument("--test", action="append", default=None)
    i.add_argument("--output", required=True, help="JSON file")
    args, extra = ap.parse_known_args()
    if args.cmd == "dev":
        dev(args.model, args.dataset, args.output)
        return
    if args.cmd == "interpolate":
        doc = interpolate(args.trained, args.base, args.alpha, args.dataset,
                          args.test or TESTS)
        Path(args.output).write_text(json.dumps(doc, indent=1) + "\n")
        return
    doc = run(args.output, args.dataset, args.model, extra, args.test or TESTS,
              not args.no_base, json.loads(args.trained) if args.trained else None)
    if args.json:
        path = Path(args.json)
        runs = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps(runs + [doc], indent=1) + "\n")


if __name__ == "__main__":
    main()
