"""`lsr train`: fine-tune a SPLADE model on a collection's training split (or triples) into a checkpoint folder."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer

from lsr.cli.common import echo_json, reported
from lsr.training.config import DENSE_JUDGEMENTS, TrainConfig

app = typer.Typer()


def _default(name: str):
    return TrainConfig.__dataclass_fields__[name].default


@contextmanager
def _display() -> Iterator[tuple]:
    """One rich display for the whole run: a bar over the optimizer steps with the loss and the vectors' mean
    non-zeros, and a line per long stage (BM25, dev evaluations, mining). Yields (stages, step)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                  disable=not sys.stderr.isatty()) as p:
        bar = None

        @contextmanager
        def stages(description: str, total: int | None):
            task = p.add_task(description, total=total, info="")
            yield lambda n: p.advance(task, n)
            p.update(task, total=1, completed=1)

        def step(r) -> None:
            nonlocal bar
            if bar is None:  # a resumed run starts past 0
                bar = p.add_task("training", total=r.total, completed=r.step - 1, info="")
            info = f"loss {r.loss:.4f}  doc nnz {r.doc_nnz:.0f}  query nnz {r.query_nnz:.0f}"
            p.update(bar, completed=r.step, description=f"training, epoch {r.epoch + 1}", info=info)
            if p.disable and (r.step % max(1, r.total // 20) == 0 or r.step == r.total):   # a log, not a terminal
                typer.echo(f"step {r.step}/{r.total} (epoch {r.epoch + 1}): {info}", err=True)

        yield stages, step


def _dev_line(epoch: int, result: dict) -> None:
    typer.echo(f"dev after epoch {epoch}: nDCG@10 {result['nDCG@10']:.4f}, document non-zeros "
               f"{result['doc_nnz']:.0f}, query non-zeros {result['query_nnz']:.0f}", err=True)


@app.command()
def train(
    dataset: str = typer.Option(..., "--dataset", "-d", help="ir_datasets id with a training split "
                                "(beir/scifact/train), a BEIR folder (its qrels/SPLIT.tsv), or a JSONL file of "
                                "triples {query, positive(s), negatives}"),
    output: Path = typer.Option(..., "--output", "-o", help="folder for the trained checkpoint; the same command "
                                "on an unfinished folder resumes the run"),
    model: str = typer.Option(_default("model"), help="masked-LM checkpoint to start from"),
    split: str = typer.Option(_default("split"), help="judgements of a BEIR folder: qrels/SPLIT.tsv"),
    seed: int = typer.Option(_default("seed")),
    epochs: int = typer.Option(_default("epochs"), min=1),
    max_steps: int = typer.Option(_default("max_steps"), min=0, help="stop after this many steps, within an "
                                   "epoch if need be (the recipe's CPU budget); 0: every epoch"),
    batch_size: int = typer.Option(_default("batch_size"), min=1, help="queries per step"),
    lr: float = typer.Option(_default("lr"), min=0.0),
    warmup: float = typer.Option(_default("warmup"), help="fraction of steps with a rising learning rate"),
    doc_max_length: int = typer.Option(_default("doc_max_length"), min=8, help="document tokens in training"),
    query_max_length: int = typer.Option(_default("query_max_length"), min=4),
    hard_negatives: Optional[int] = typer.Option(None, min=0, help="per query and step (default: 1, or 0 where "
                                                 f"the training queries judge {DENSE_JUDGEMENTS} or more documents "
                                                 "each: dense, incomplete judgements make the miner's top unjudged "
                                                 "documents often relevant)"),
    negative_depth: int = typer.Option(_default("negative_depth"), min=1, help="negatives come from BM25's top N "
                                       "(or the teacher run's)"),
    model_negatives: bool = typer.Option(_default("model_negatives"), help="after each epoch, mine negatives "
                                         "again with the model being trained (encodes the whole corpus)"),
    lambda_d: float = typer.Option(_default("lambda_d"), min=0.0, help="FLOPS weight of documents"),
    lambda_q: float = typer.Option(_default("lambda_q"), min=0.0, help="FLOPS weight of queries"),
    flops_warmup: float = typer.Option(_default("flops_warmup"), help="fraction of steps over which the FLOPS "
                                       "weights rise quadratically to their values"),
    teacher_run: Optional[Path] = typer.Option(None, help="TREC run of teacher scores: MarginMSE distillation "
                                               "(negatives then come from the run)"),
    distill_weight: float = typer.Option(_default("distill_weight"), min=0.0),
    inference_free: bool = typer.Option(False, "--inference-free", help="train the document encoder only; "
                                        "queries are IDF-weighted tokens (writes idf.json)"),
    dev_fraction: float = typer.Option(_default("dev_fraction"), help="training queries held out to choose the "
                                       "checkpoint"),
    dev_depth: int = typer.Option(_default("dev_depth"), min=1, help="BM25's top-k per dev query in the dev pool"),
    device: str = typer.Option(_default("device")),
    precision: str = typer.Option(_default("precision"), help="auto (bf16 autocast on CUDA), fp32, bf16"),
    threads: Optional[int] = typer.Option(None, min=1, help="torch CPU threads (default: all cores, or one when "
                                         "the load average says they are busy; kept on resume)"),
    checkpoint_every: int = typer.Option(_default("checkpoint_every"), min=1, help="steps between checkpoints"),
    keep_checkpoints: bool = typer.Option(False, help="keep the checkpoint folder after a finished run"),
) -> None:
    """Fine-tune a SPLADE model: in-batch and BM25 hard negatives, contrastive loss, FLOPS regulariser."""
    from lsr.encoding.encoder import ModelLoadError
    from lsr.training.data import TrainingDataError
    from lsr.training.trainer import TrainCallbacks, train as run

    with reported(TrainingDataError, ModelLoadError, ValueError, FileExistsError, OSError):
        config = TrainConfig(dataset=dataset, output=str(output), model=model, split=split, seed=seed, epochs=epochs,
                             max_steps=max_steps or None,
                             batch_size=batch_size, lr=lr, warmup=warmup, doc_max_length=doc_max_length,
                             query_max_length=query_max_length, hard_negatives=hard_negatives,
                             negative_depth=negative_depth, model_negatives=model_negatives, lambda_d=lambda_d,
                             lambda_q=lambda_q, flops_warmup=flops_warmup,
                             teacher_run=None if teacher_run is None else str(teacher_run),
                             distill_weight=distill_weight, inference_free=inference_free,
                             dev_fraction=dev_fraction, dev_depth=dev_depth, device=device, precision=precision,
                             threads=threads, checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints)
        with _display() as (stages, step):
            record = run(config, TrainCallbacks(stages=stages, step=step, dev=_dev_line))
    echo_json({"output": str(output), "chosen": record["chosen"], "dev_bm25": record["dev_bm25"],
               "steps": record["steps"], "seconds": record["seconds_this_session"]["total"]})
