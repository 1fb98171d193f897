"""The parameters of a training run, one typed object (no torch here: the CLI reads its defaults at import)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional


DENSE_JUDGEMENTS = 10   # judged documents per training query from which the miner's unjudged top are suspect


@dataclass
class TrainConfig:
    """A training run. Defaults are the CPU recipe chosen on scifact's dev split (BENCHMARKS.md, issue 19)."""

    dataset: str
    output: str
    model: str = "splade-tiny"
    split: str = "train"
    seed: int = 13
    epochs: int = 8                   # dev nDCG@10 still rose at epoch 8 (0.7717; 0.7519 at 4): BENCHMARKS.md
    max_steps: Optional[int] = 1200   # the CPU budget: 8 epochs of nfcorpus (1,168 steps, 25 min here) or of scifact
                                      # (368 steps, 14-16 min); a larger collection stops within an epoch (its dev
                                      # evaluation runs at the last step)
    batch_size: int = 16              # queries per step; each brings its positive and its hard negatives
    lr: float = 1e-4                  # dev nDCG@10 on scifact 0.7413 vs 0.7352 at 5e-5 (4 epochs, 128 tokens)
    weight_decay: float = 0.01
    warmup: float = 0.1               # fraction of the steps with a linearly rising learning rate
    doc_max_length: int = 256         # as the evaluation encodes them: dev 0.7519 vs 0.7413 at 128 tokens
    query_max_length: int = 64
    hard_negatives: Optional[int] = None   # per query and step, drawn from the miner's top negative_depth; None:
                                      # chosen from the judgements (trainer.hard_negatives_for)
    negative_depth: int = 30
    model_negatives: bool = False     # after each epoch, mine again with the model being trained (whole corpus)
    lambda_d: float = 1e-4            # FLOPS weights, reached after flops_warmup of the steps (quadratic rise);
    lambda_q: float = 1e-4            # ~158 document non-zeros at 1e-4 (the base model has ~250)
    flops_warmup: float = 0.5
    teacher_run: Optional[str] = None   # TREC run of a teacher's scores: MarginMSE, negatives from the run
    distill_weight: float = 1.0
    inference_free: bool = False      # train the document encoder only; queries are IDF-weighted tokens
    dev_fraction: float = 0.1
    dev_depth: int = 10               # BM25's top-k per dev query in the dev pool
    dev_max_length: int = 256
    device: str = "auto"
    precision: str = "auto"           # auto: bfloat16 autocast on CUDA, float32 elsewhere; or fp32, bf16
    head: str = "fused"               # fused (splade_max_pool), textbook, compiled (for comparisons)
    threads: Optional[int] = None     # torch CPU threads (None: all cores, or one when they are busy)
    checkpoint_every: int = 20        # steps; and at the end of every epoch
    keep_checkpoints: bool = False

    # what may differ when a killed run is resumed (it does not change the result on the same machine)
    RESUME_FREE = ("keep_checkpoints", "checkpoint_every")

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "doc_max_length", "query_max_length", "negative_depth", "dev_depth",
                    "dev_max_length", "checkpoint_every")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.hard_negatives is not None and self.hard_negatives < 0:
            raise ValueError(f"hard_negatives must be >= 0, got {self.hard_negatives}")
        for name in ("lr", "weight_decay", "lambda_d", "lambda_q", "distill_weight"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")
        for name in ("warmup", "flops_warmup"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a fraction of the steps in [0, 1], got {getattr(self, name)!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.max_steps is not None and (isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int)
                                           or self.max_steps < 1):
            raise ValueError(f"max_steps must be a positive integer or None, got {self.max_steps!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be positive, got {self.threads}")
        if self.teacher_run is not None and not Path(self.teacher_run).is_file():
            raise ValueError(f"teacher run {self.teacher_run} does not exist")

    def recipe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.RESUME_FREE}
