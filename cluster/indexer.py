"""``lsr index --ray``: encode a corpus on a Ray cluster, then build one index, or N shards, from the chunks.

Encoding is resumable (``cluster.encode``, ``cluster.chunklog``). The build starts once every chunk is encoded,
because the uint8 scale is the largest weight of the whole corpus: a one-index build then equals ``lsr index`` in one
process file for file, and a sharded build runs one Ray task per shard, each loading only its own chunks and texts.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from lsr.cluster.chunklog import ChunkLog
from lsr.cluster.encode import EncodeReport, EncodeSettings, encode_chunks, resolve_device
from lsr.cluster.shards import LAYOUT, Layout, ShardInfo, shard_name, split_contiguous
from lsr.core.chunks import CHUNK_DOCS, ChunkPlan, plan_chunks
from lsr.core.documents import Document
from lsr.core.sparse import SparseBatch


@dataclass
class BuildSettings:
    quantization: str = "uint8"
    reorder: bool = True
    methods: Sequence[str] = ("exact", "bmp")
    params: dict = field(default_factory=dict)     # method build parameters, e.g. {"block_size": 32}

    def kwargs(self) -> dict:
        return {"quantization": self.quantization, "reorder": self.reorder, "methods": tuple(self.methods),
                **self.params}


Part = tuple[SparseBatch, list[str], list[Document] | None]


def _chunks_part(log: ChunkLog, plan: ChunkPlan, numbers: list[int]) -> Part:
    """The vectors, ids and documents of consecutive chunks, loaded where the build runs."""
    files = [log.load(n) for n in numbers]
    docs = [d for n in numbers for d in plan.read(plan.chunks[n])]
    ids = [str(i) for f in files for i in f.ids]
    if [d.id for d in docs] != ids:
        raise ValueError(f"{plan.source}: the documents no longer match the encoded chunks {numbers[0]}..{numbers[-1]}")
    return SparseBatch.concat([f.vectors for f in files]), ids, docs


def _rows_part(vectors: SparseBatch, ids: Sequence[str], texts: Sequence[Document] | None, lo: int, hi: int) -> Part:
    return (vectors.take(np.arange(lo, hi)), [str(i) for i in ids[lo:hi]],
            None if texts is None else list(texts[lo:hi]))


def _id_hashes(ids: Sequence[str]) -> np.ndarray:
    """128-bit hashes of document ids (two uint64 columns): a light way to find ids repeated across shards."""
    digest = b"".join(hashlib.blake2b(i.encode(), digest_size=16).digest() for i in ids)
    return np.frombuffer(digest, dtype=np.uint64).reshape(-1, 2)


def _build_one(path: str, part: Callable[[], Part], scale: float, meta: dict, build: dict) -> tuple[int, np.ndarray]:
    """Builds one shard; returns its document count and id hashes."""
    from lsr.index import Index

    vectors, ids, docs = part()
    return Index.build(path, vectors, ids, texts=docs, scale=scale, **meta, **build).num_docs, _id_hashes(ids)


def _prepare(output: Path, overwrite: bool) -> None:
    if output.exists() and any(output.iterdir()):
        if not (output / LAYOUT).exists() or not overwrite:
            raise FileExistsError(f"{output} is not empty; choose a new folder (or pass overwrite=True to replace a "
                                  "sharded index)")
        (output / LAYOUT).unlink()
        for p in output.glob("shard-*"):
            shutil.rmtree(p)
    output.mkdir(parents=True, exist_ok=True)


def build_shards(output: str | Path, parts: list[Callable[[], Part]], *, scale: float, vocab_size: int,
                 model: str | None, vocab_fingerprint: str | None, build: BuildSettings, on_ray: bool = False,
                 overwrite: bool = False) -> Layout:
    """Builds one index per part (a callable returning vectors, ids, documents) under ``output``, all with ``scale``;
    the parts run as Ray tasks (one CPU each) when ``on_ray``. The layout file is written last."""
    output = Path(output)
    _prepare(output, overwrite)
    meta = {"model": model, "vocab_fingerprint": vocab_fingerprint}
    paths = [str(output / shard_name(i)) for i in range(len(parts))]
    if on_ray:
        import ray

        task = ray.remote(num_cpus=1, max_retries=2)(_build_one)
        built = ray.get([task.remote(p, part, scale, meta, build.kwargs()) for p, part in zip(paths, parts)])
    else:
        built = [_build_one(p, part, scale, meta, build.kwargs()) for p, part in zip(paths, parts)]
    docs = [n for n, _ in built]
    hashes = np.concatenate([h for _, h in built])
    if len(np.unique(hashes, axis=0)) != len(hashes):
        raise ValueError("document ids are not unique across the shards; no sharded index was written")
    firsts = np.concatenate([[0], np.cumsum(docs)[:-1]]).tolist()
    layout = Layout(scale=float(scale), quantization=build.quantization, model=model,
                    vocab_fingerprint=vocab_fingerprint, vocab_size=vocab_size, methods=list(dict.fromkeys(["exact", *build.methods])),
                    shards=[ShardInfo(shard_name(i), int(d), int(f)) for i, (d, f) in enumerate(zip(docs, firsts))],
                    build={"reorder": build.reorder, **build.params})
    layout.write(output)
    return layout


def shard_vectors(output: str | Path, vectors: SparseBatch, ids: Sequence[str], shards: int, *,
                  texts: Sequence[Document] | None = None, model: str | None = None,
                  vocab_fingerprint: str | None = None, build: BuildSettings = BuildSettings(),
                  overwrite: bool = False) -> Layout:
    """A sharded index of vectors in memory (consecutive ranges of rows), built here, one shard after another."""
    from lsr.index.quantize import scale_for

    bounds = np.linspace(0, len(vectors), shards + 1).astype(int)
    if shards < 1 or np.any(np.diff(bounds) == 0):
        raise ValueError(f"cannot split {len(vectors)} documents into {shards} shards")
    parts = [partial(_rows_part, vectors, ids, texts, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return build_shards(output, parts, scale=scale_for(vectors.values, build.quantization),
                        vocab_size=vectors.vocab_size, model=model, vocab_fingerprint=vocab_fingerprint, build=build,
                        overwrite=overwrite)


@dataclass
class RayIndexReport:
    output: str
    documents: int
    shards: int | None
    encode: EncodeReport
    bytes: int = 0
    extra: dict = field(default_factory=dict)


def index_on_ray(corpus: str, output: str | Path, *, encode: EncodeSettings = EncodeSettings(),
                 build: BuildSettings = BuildSettings(), shards: int | None = None, actors: int = 1,
                 cpus_per_actor: float | None = None, chunk_docs: int = CHUNK_DOCS, work_dir: str | Path | None = None,
                 keep_chunks: bool = False, overwrite: bool = False,
                 progress: Callable[[int], None] | None = None) -> RayIndexReport:
    """Encodes ``corpus`` on the connected Ray cluster (resuming from ``work_dir``, by default ``OUTPUT.chunks``),
    then builds one index at ``output`` or ``shards`` shards. The chunk files are removed after a successful build
    unless ``keep_chunks``."""
    from lsr.index.quantize import scale_for

    output = Path(output)
    work = Path(work_dir) if work_dir else output.with_name(output.name + ".chunks")
    if not overwrite and output.exists() and any(output.iterdir()):
        raise FileExistsError(f"{output} is not empty; choose a new folder or pass overwrite")
    plan = plan_chunks(corpus, chunk_docs)
    if plan.num_docs == 0:
        raise ValueError(f"{corpus}: no documents")
    device = resolve_device(encode.device)
    log = ChunkLog.open(work, encode.job(plan, device))
    report = encode_chunks(plan, log, encode, device, actors=actors, cpus_per_actor=cpus_per_actor,
                           progress=progress)
    numbers = [c.number for c in plan.chunks]
    meta = log.load(numbers[0]).meta
    model, fingerprint, vocab_size = meta.get("model"), meta.get("vocab_fingerprint"), int(meta["vocab_size"])
    if shards is None:   # exactly what `lsr index` does in one process, on the same vectors
        from lsr.index import Index

        vectors, ids, docs = _chunks_part(log, plan, numbers)
        idx = Index.build(output, vectors, ids, texts=docs, model=model, vocab_fingerprint=fingerprint,
                          overwrite=overwrite, **build.kwargs())
        result = RayIndexReport(str(output), idx.num_docs, None, report, idx.nbytes())
    else:   # the whole corpus's scale, from the largest weight of each chunk
        scale = scale_for(np.array([max(log.done[n].max_weight for n in numbers)], np.float32), build.quantization)
        groups = split_contiguous([c.docs for c in plan.chunks], shards)
        parts = [partial(_chunks_part, log, plan, [numbers[i] for i in g]) for g in groups]
        layout = build_shards(output, parts, scale=scale, vocab_size=vocab_size, model=model,
                              vocab_fingerprint=fingerprint, build=build, on_ray=True, overwrite=overwrite)
        result = RayIndexReport(str(output), layout.num_docs, shards, report)
    if not keep_chunks:
        shutil.rmtree(work)
    return result


def report_dict(report: RayIndexReport) -> dict:
    return asdict(report)
