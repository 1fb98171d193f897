"""Distributed encoding on Ray Data: read tasks stream the corpus chunk by chunk as Arrow tables, a pool of actors
that each hold an Encoder (on a GPU when the cluster has them) encodes whole chunks, and the driver writes each
chunk's vectors as it finishes (``ChunkLog``). Only the chunks the log lacks are read and encoded, so a killed job
resumes where it stopped, and a chunk encoded here is bit for bit the chunk ``lsr index`` encodes in one process.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa

from lsr.cluster.chunklog import ChunkLog
from lsr.core.chunks import Chunk, ChunkPlan


@dataclass(frozen=True)
class EncodeSettings:
    model: str = "splade-tiny"
    max_length: int = 256
    batch_size: int = 32
    device: str = "auto"          # auto (cuda when the cluster has GPUs), cpu, cuda

    def job(self, plan: ChunkPlan, device: str) -> dict:
        """What a resumed job must share with the chunks already encoded."""
        return {"corpus": plan.describe(), "model": self.model, "max_length": self.max_length,
                "batch_size": self.batch_size, "device": device}


def _chunk_table(plan: ChunkPlan, chunk: Chunk) -> list[pa.Table]:
    """A chunk as ONE row (its ids and texts as lists): Ray Data cannot split a row, so a batch of one row is a
    whole chunk, on CPU actors and on GPU actors (which need a fixed batch size) alike."""
    docs = plan.read(chunk)
    return [pa.table({"chunk": pa.array([chunk.number], pa.int64()),
                      "ids": pa.array([[d.id for d in docs]], pa.list_(pa.string())),
                      "texts": pa.array([[d.full_text for d in docs]], pa.list_(pa.string()))})]


def chunk_source(plan: ChunkPlan, chunks: list[Chunk]):
    """A Ray Data datasource with one read task (one block) per chunk."""
    from functools import partial

    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class ChunkSource(Datasource):
        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            return [ReadTask(partial(_chunk_table, plan, c),
                             BlockMetadata(num_rows=1, size_bytes=None, exec_stats=None, input_files=None))
                    for c in chunks]

    return ChunkSource()


class ChunkEncoder:
    """A Ray Data actor: loads the encoder once, then turns each row (one whole chunk) into a vectors file."""

    def __init__(self, settings: EncodeSettings, device: str):
        import ray
        import torch

        from lsr.encoding.encoder import Encoder

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        torch.set_num_threads(max(1, int(cpus)))
        self.settings = settings
        self.encoder = Encoder.from_pretrained(settings.model, device=device)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from lsr.core.vectors import write_vectors

        rows = {"chunk": [], "docs": [], "nnz": [], "max_weight": [], "seconds": [], "vectors": []}
        for number, ids, texts in zip(*(batch.column(c).to_pylist() for c in ("chunk", "ids", "texts"))):
            start = time.perf_counter()
            vectors = self.encoder.encode_documents(texts,
                                                    max_length=self.settings.max_length,
                                                    batch_size=self.settings.batch_size)
            buf = io.BytesIO()
            write_vectors(buf, vectors, ids,
                          {"model": self.encoder.name, "vocab_size": self.encoder.vocab_size,
                           "vocab_fingerprint": self.encoder.vocab_fingerprint,
                           "max_length": self.settings.max_length, "pooling": self.encoder.pooling,
                           "chunk": int(number)})
            rows["chunk"].append(int(number))
            rows["docs"].append(len(vectors))
            rows["nnz"].append(vectors.nnz)
            rows["max_weight"].append(float(vectors.values.max()) if vectors.nnz else 0.0)
            rows["seconds"].append(time.perf_counter() - start)
            rows["vectors"].append(buf.getvalue())
        return pa.table({**{k: v for k, v in rows.items() if k != "vectors"},
                         "vectors": pa.array(rows["vectors"], pa.large_binary())})


@dataclass
class EncodeReport:
    chunks: int            # chunks in the corpus
    encoded: int           # chunks encoded by this run
    skipped: int           # chunks found done by an earlier run
    docs: int              # documents encoded by this run
    seconds: float         # wall time of this run's encoding (actors started to last chunk written)
    actor_seconds: float   # time the actors spent inside the encoder


def resolve_device(device: str) -> str:
    """``auto`` is cuda when the cluster has GPUs, else cpu."""
    import ray

    if device == "auto":
        return "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda on Ray, got {device!r}")
    return device


def encode_chunks(plan: ChunkPlan, log: ChunkLog, settings: EncodeSettings, device: str, *, actors: int = 1,
                  cpus_per_actor: float | None = None, progress: Callable[[int], None] | None = None) -> EncodeReport:
    """Encodes the chunks of ``plan`` that ``log`` lacks on the connected Ray cluster, writing each as it finishes.

    CPU actors take ``cpus_per_actor`` cores each (default: the cluster's CPUs shared out), GPU actors one GPU each.
    """
    import ray
    from ray.data import ActorPoolStrategy, DataContext, TaskPoolStrategy

    pending = [c for c in plan.chunks if c.number not in log.done]
    report = EncodeReport(len(plan.chunks), 0, len(plan.chunks) - len(pending), 0, 0.0, 0.0)
    if not pending:
        return report
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    if cpus_per_actor is None:   # a GPU actor needs one core to feed it (the tokenizer's own threads are not pinned)
        cpus_per_actor = 1.0 if device == "cuda" else max(1.0, ray.cluster_resources().get("CPU", 1) // actors)
    # reading is light: it takes no CPU slot from the actors, and at most two chunks per actor are read ahead
    ds = ray.data.read_datasource(chunk_source(plan, pending), override_num_blocks=len(pending), num_cpus=0,
                                  compute=TaskPoolStrategy(size=2 * actors))
    ds = ds.map_batches(ChunkEncoder, batch_size=1, batch_format="pyarrow", compute=ActorPoolStrategy(size=actors),
                        num_cpus=cpus_per_actor, num_gpus=1 if device == "cuda" else None,
                        fn_constructor_kwargs={"settings": settings, "device": device})
    start = time.perf_counter()
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
        for row in batch.to_pylist():
            log.add(row["chunk"], row["vectors"], row["docs"], row["nnz"], row["max_weight"])
            report.encoded += 1
            report.docs += row["docs"]
            report.actor_seconds += row["seconds"]
            if progress:
                progress(row["docs"])
    report.seconds = time.perf_counter() - start
    return report
