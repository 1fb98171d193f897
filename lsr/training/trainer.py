"""The training loop: batches of (query, positive, hard negatives), the loss, checkpoints, the dev split, the output.

Determinism is by construction, so that a run killed at any moment and resumed ends with the same weights as one
that never stopped: step s draws its queries from the permutation of its epoch (seeded by (seed, epoch)), its
positives and negatives from a generator seeded by (seed, step), and dropout from ``torch.manual_seed`` of
(seed, step); the checkpoint holds what the steps change (weights, optimizer, schedule, mined negatives, the dev
history and the best checkpoint's name), written atomically, so a resume repeats nothing and skips nothing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lsr.core.atomic import atomic_open, atomic_write_text
from lsr.core.progress import ProgressFactory, no_progress
from lsr.training import objective
from lsr.training.config import DENSE_JUDGEMENTS, TrainConfig
from lsr.training.data import TrainingData, TrainingDataError, load_training_data, split_dev
from lsr.training.devset import DevSet
from lsr.training.mining import BM25Miner, search
from lsr.training.model import IdfQueries, SpladeModel

STATE = ".train"            # inside the output folder while a run is unfinished
RECORD = "training.json"    # written last: the run is finished


@dataclass
class StepReport:
    """What the progress bar shows after each step."""

    step: int
    total: int
    epoch: int
    loss: float
    doc_nnz: float      # mean non-zeros of the step's document vectors
    query_nnz: float
    lr: float


@dataclass
class TrainCallbacks:
    """How a caller watches a run: ``stages`` for the long preparations (progress factory), ``step`` after every
    optimizer step (resumed runs start past 0), ``dev`` after every dev evaluation (epoch, result dict)."""

    stages: ProgressFactory = no_progress
    step: Callable[[StepReport], None] = lambda report: None
    dev: Callable[[int, dict], None] = lambda epoch, result: None


@dataclass
class Prepared:
    """Everything fixed before the first step: data, negatives' candidates, teacher scores, dev set."""

    train: TrainingData
    dev: DevSet
    candidates: list[np.ndarray]
    hard_negatives: int   # per query and step (the config's, or hard_negatives_for's choice)
    teacher: dict[tuple[int, int], float] = field(default_factory=dict)   # (query row, doc row) -> score


def cpu_threads(threads: int | None, device: torch.device) -> int | None:
    """torch's CPU threads for the run (None: leave torch's). Asked for none on a CPU: every core, but one alone
    when the load average says the cores are already busy, where threads that wait on each other at every
    parallel region ran slower than one (measured on the 2 shared cores, BENCHMARKS.md). Fixed at the start and
    kept on resume, since the arithmetic's last bits depend on it."""
    if threads is not None or device.type != "cpu":
        return threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if os.getloadavg()[0] > cores - 0.5 else cores


def _device(config: TrainConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def _teacher(train: TrainingData, path: str) -> tuple[dict[tuple[int, int], float], list[np.ndarray]]:
    """Teacher scores by (query row, doc row) and, per query, the teacher's ranking as negative candidates."""
    from lsr.eval.runs import read_trec_run

    if not train.has_ids:
        raise TrainingDataError("a teacher run refers to query and document ids: it needs an ir_datasets id or a "
                                "BEIR folder, not a file of triples")
    run = read_trec_run(path)
    doc_row = {d: i for i, d in enumerate(train.doc_ids)}
    scores, ranked = {}, []
    for qi, q in enumerate(train.query_ids):
        rows = []
        for d, s in run.get(q, []):
            if d in doc_row:
                scores[(qi, doc_row[d])] = s
                rows.append(doc_row[d])
        ranked.append(np.asarray(rows, np.int64))
    if not any(len(r) for r in ranked):
        raise TrainingDataError(f"{path}: no query of the training split is in the teacher run")
    return scores, ranked


def prepare(config: TrainConfig, callbacks: TrainCallbacks) -> Prepared:
    data = load_training_data(config.dataset, config.split)
    train, dev = split_dev(data, config.dev_fraction, config.seed)
    with callbacks.stages(f"BM25 over {len(data.doc_texts)} documents", None):
        bm25 = BM25Miner(data.doc_texts)
        dev_set = DevSet(dev, bm25, config.dev_depth)
        teacher: dict = {}
        if config.teacher_run is not None:
            teacher, ranked = _teacher(train, config.teacher_run)
            mined = [r[:config.negative_depth] for r in ranked]
        else:
            mined = list(bm25.rank(train.query_texts, config.negative_depth))
    hard = config.hard_negatives if config.hard_negatives is not None else hard_negatives_for(train, teacher)
    return Prepared(train, dev_set, negative_pools(mined, train), hard, teacher)


def hard_negatives_for(train: TrainingData, teacher: dict) -> int:
    """The default number of mined hard negatives: one, but none where the training queries judge
    ``DENSE_JUDGEMENTS`` or more documents each on average. Such judgements are dense and incomplete, so the
    unjudged documents the miner ranks highest are often relevant: pushing them away cost nfcorpus (42.7 judged per
    query) 0.011 nDCG@10 on its dev split and on test, where scifact (1.1 per query) needs them (dev 0.7776 against
    0.7688, test 0.6872 against 0.6482; BENCHMARKS.md, training runs 7-11). A teacher's scores label the negatives
    themselves, so distillation keeps one."""
    if teacher:
        return 1
    judged = np.mean([len(p) for p in train.positives]) if len(train) else 0.0
    return 0 if judged >= DENSE_JUDGEMENTS else 1


def negative_pools(ranked, train: TrainingData) -> list[np.ndarray]:
    """Per query: the ranked rows (-1 padding allowed) and the given negatives, without its positives."""
    return [np.setdiff1d(np.union1d(r[r >= 0], given), pos)
            for r, given, pos in zip(ranked, train.negatives, train.positives)]


def judged_elsewhere(train: TrainingData, queries: np.ndarray, doc_rows: np.ndarray) -> np.ndarray:
    """(B, N) True where batch document j is judged relevant to batch query i but is not its positive (column i):
    another query's positive, or a hard negative mined for another query."""
    mask = np.stack([np.isin(doc_rows, train.positives[q]) for q in queries])
    mask[np.arange(len(queries)), np.arange(len(queries))] = False
    return mask


class Trainer:
    """One run: ``run()`` trains (or resumes) and writes the output folder; returns the run's record."""

    def __init__(self, config: TrainConfig, callbacks: TrainCallbacks | None = None):
        self.config = config
        self.callbacks = callbacks or TrainCallbacks()
        self.out = Path(config.output)
        self.state_dir = self.out / STATE
        self.device = _device(config)
        self.half = config.precision == "bf16" or (config.precision == "auto" and self.device.type == "cuda")

    # ---- the output folder ------------------------------------------------------------------------------------
    def _check_output(self) -> dict | None:
        """The checkpoint to resume from, if any; refuses a finished run, a foreign folder or another recipe."""
        if (self.out / RECORD).exists():
            raise FileExistsError(f"{self.out} already holds a trained model ({RECORD}); choose another --output")
        if self.out.exists() and not self.out.is_dir():
            raise FileExistsError(f"{self.out} exists and is not a folder")
        if self.out.exists() and not self.state_dir.is_dir() and any(self.out.iterdir()):
            raise FileExistsError(f"{self.out} is not empty and holds no unfinished run; choose a new folder")
        recipe_file = self.state_dir / "recipe.json"
        if not recipe_file.exists():
            return None
        recipe = json.loads(recipe_file.read_text())
        if recipe != json.loads(json.dumps(self.config.recipe())):
            changed = sorted(k for k in set(recipe) | set(self.config.recipe())
                             if recipe.get(k) != json.loads(json.dumps(self.config.recipe())).get(k))
            raise ValueError(f"{self.out} holds an unfinished run of another recipe (differs in {changed}); "
                             "resume it with the same options or choose another --output")
        ckpt = self.state_dir / "checkpoint.pt"
        return torch.load(ckpt, map_location="cpu", weights_only=False) if ckpt.exists() else None

    def _save_checkpoint(self, state: dict) -> None:
        with atomic_open(self.state_dir / "checkpoint.pt", "wb") as f:
            torch.save(state, f)

    # ---- one step ---------------------------------------------------------------------------------------------
    def _batch(self, prep: Prepared, step: int, steps_per_epoch: int, candidates: list[np.ndarray]):
        c = self.config
        epoch, i = divmod(step, steps_per_epoch)
        order = np.random.default_rng([c.seed, epoch]).permutation(len(prep.train))
        queries = order[i * c.batch_size:(i + 1) * c.batch_size]
        rng = np.random.default_rng([c.seed, 1, step])
        positives = np.array([rng.choice(prep.train.positives[q]) for q in queries], np.int64)
        negatives = np.zeros((len(queries), prep.hard_negatives), np.int64)
        for j, q in enumerate(queries):
            pool = candidates[q]
            if len(pool) == 0:  # nothing mined: any document that is not a positive
                pool = np.setdiff1d(np.arange(len(prep.train.doc_texts)), prep.train.positives[q])
            negatives[j] = rng.choice(pool, size=prep.hard_negatives, replace=len(pool) < prep.hard_negatives)
        return queries, positives, negatives

    def _loss(self, model: SpladeModel, idf: IdfQueries | None, prep: Prepared, queries, positives, negatives,
              step: int, total: int):
        c = self.config
        texts = prep.train.doc_texts
        doc_rows = np.concatenate([positives, negatives.T.reshape(-1)])  # positives first, then negatives
        d = model.encode([texts[r] for r in doc_rows], c.doc_max_length)
        q_texts = [prep.train.query_texts[q] for q in queries]
        q = idf.dense(q_texts, c.query_max_length, d.device) if idf else model.encode(q_texts, c.query_max_length)
        reg_steps = int(c.flops_warmup * total)
        loss = objective.splade_loss(q, d, 0.0 if idf else objective.warmup(c.lambda_q, step, reg_steps),
                                     objective.warmup(c.lambda_d, step, reg_steps),
                                     torch.from_numpy(judged_elsewhere(prep.train, queries, doc_rows)).to(d.device))
        if prep.teacher and prep.hard_negatives:
            B = len(queries)
            pos_s = (q * d[:B]).sum(1)
            for k in range(prep.hard_negatives):
                neg_rows = negatives[:, k]
                neg_s = (q * d[B * (k + 1):B * (k + 2)]).sum(1)
                t_pos = [prep.teacher.get((qq, r)) for qq, r in zip(queries, positives)]
                t_neg = [prep.teacher.get((qq, r)) for qq, r in zip(queries, neg_rows)]
                known = torch.tensor([a is not None and b is not None for a, b in zip(t_pos, t_neg)], device=d.device)
                as_tensor = (lambda xs: torch.tensor([x or 0.0 for x in xs], device=d.device))
                loss = loss + c.distill_weight * objective.margin_mse(pos_s, neg_s, as_tensor(t_pos),
                                                                      as_tensor(t_neg), known)
        return loss, float((d > 0).sum(1).float().mean()), float((q > 0).sum(1).float().mean())

    # ---- the run ----------------------------------------------------------------------------------------------
    def run(self) -> dict:
        c = self.config
        resume = self._check_output()
        started = time.perf_counter()
        model = SpladeModel.from_pretrained(c.model, head=c.head, half=self.half).to(self.device)
        prep = prepare(c, self.callbacks)
        seconds = {"prepare": time.perf_counter() - started, "dev": 0.0, "mining": 0.0}
        model.train()
        idf = IdfQueries(model.tokenizer, prep.train.doc_texts, int(model.decoder.weight.shape[0]),
                         c.dev_max_length) if c.inference_free else None
        steps_per_epoch = math.ceil(len(prep.train) / c.batch_size)
        total = min(steps_per_epoch * c.epochs, c.max_steps) if c.max_steps else steps_per_epoch * c.epochs
        optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        warm = max(1, int(c.warmup * total))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
        state = {"step": 0, "candidates": prep.candidates, "mined_epoch": 0, "history": [], "best": None,
                 "threads": cpu_threads(c.threads, self.device)}
        if resume is not None:
            model.load_state_dict(resume["model"])
            optimizer.load_state_dict(resume["optimizer"])
            schedule.load_state_dict(resume["schedule"])
            state = {k: resume[k] for k in state}
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.state_dir / "recipe.json", json.dumps(c.recipe(), indent=1))
        bm25_dev = prep.dev.bm25.as_dict()

        def checkpoint() -> None:
            self._save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                   "schedule": schedule.state_dict(), **state})

        def encode_docs(texts: list[str]):
            return model.encode_sparse(texts, c.dev_max_length)

        def encode_queries(texts: list[str]):
            return idf.vectors(texts, c.query_max_length) if idf else model.encode_sparse(texts, c.query_max_length)

        for step in range(state["step"], total):
            epoch = step // steps_per_epoch
            if c.model_negatives and epoch > state["mined_epoch"]:
                t = time.perf_counter()
                with self.callbacks.stages(f"mining with the model over {len(prep.train.doc_texts)} documents",
                                           None):
                    docs = encode_docs(prep.train.doc_texts)
                    ranked = search(docs, encode_queries(prep.train.query_texts), c.negative_depth)
                seconds["mining"] += time.perf_counter() - t
                state["candidates"] = [np.union1d(a, b) for a, b in
                                       zip(negative_pools(ranked, prep.train), prep.candidates)]
                state["mined_epoch"] = epoch
            if state["threads"]:  # each step: Numba's OpenMP start-up (index builds) resets the shared count
                torch.set_num_threads(state["threads"])
            torch.manual_seed(c.seed * 1_000_003 + step)
            batch = self._batch(prep, step, steps_per_epoch, state["candidates"])
            loss, doc_nnz, query_nnz = self._loss(model, idf, prep, *batch, step, total)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            state["step"] = step + 1
            self.callbacks.step(StepReport(step + 1, total, epoch, loss.item(), doc_nnz, query_nnz,
                                           schedule.get_last_lr()[0]))
            if state["step"] % steps_per_epoch == 0 or state["step"] == total:   # each epoch's end, and the last step
                t = time.perf_counter()
                with self.callbacks.stages(f"dev: {len(prep.dev.pool)} documents, {len(prep.dev.data)} queries",
                                           None):
                    result = {"epoch": epoch + 1, "step": step + 1,
                              **prep.dev.evaluate(encode_docs, encode_queries).as_dict()}
                seconds["dev"] += time.perf_counter() - t
                state["history"].append(result)
                self.callbacks.dev(epoch + 1, result)
                best = state["best"]
                if best is None or result["nDCG@10"] > best["nDCG@10"]:
                    folder = self.state_dir / f"best-{step + 1:06d}"
                    shutil.rmtree(folder, ignore_errors=True)
                    model.save(folder)
                    state["best"] = {**result, "folder": folder.name}
                checkpoint()
                for old in self.state_dir.glob("best-*"):
                    if old.name != state["best"]["folder"]:
                        shutil.rmtree(old)
            elif state["step"] % c.checkpoint_every == 0:
                checkpoint()
        seconds["total"] = time.perf_counter() - started
        seconds["steps"] = seconds["total"] - seconds["prepare"] - seconds["dev"] - seconds["mining"]
        return self._finish(idf, prep, state, bm25_dev, seconds)

    def _finish(self, idf: IdfQueries | None, prep: Prepared, state: dict, bm25_dev: dict,
                seconds: dict[str, float]) -> dict:
        for f in (self.state_dir / state["best"]["folder"]).iterdir():  # copies: a kill here can finish again
            shutil.copy2(f, self.out / f.name)
        if idf is not None:
            idf.save(self.out)
        record = {"config": asdict(self.config), "train_queries": len(prep.train), "dev_queries": len(prep.dev.data),
                  "dev_pool": len(prep.dev.pool), "hard_negatives": prep.hard_negatives, "steps": state["step"],
                  "dev": state["history"],
                  "dev_bm25": bm25_dev, "chosen": {k: v for k, v in state["best"].items() if k != "folder"},
                  "seconds_this_session": {k: round(v, 1) for k, v in seconds.items()}, "device": str(self.device),
                  "threads": state["threads"],
                  "query_mode": "idf" if idf is not None else "model"}
        atomic_write_text(self.out / RECORD, json.dumps(record, indent=2) + "\n")
        if not self.config.keep_checkpoints:
            shutil.rmtree(self.state_dir)
        return record


def train(config: TrainConfig, callbacks: TrainCallbacks | None = None) -> dict:
    """Trains ``config.model`` on ``config.dataset`` and writes a Hugging Face checkpoint to ``config.output``;
    the same call on an unfinished output folder resumes it."""
    return Trainer(config, callbacks).run()
