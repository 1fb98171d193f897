"""A large corpus encoded on a borrowed GPU in parts small enough to travel (issue 18).

The device machine takes at most 64 MiB each way per call, and the scale corpus is 1.5 GB of text. So:

- ``pack`` (here): the corpus's texts in order (``Document.full_text``, one per line), cut into parts of N documents,
  each zstd-compressed; the ids stay here (``ids.txt``, same order).
- ``encode`` (on the device): one part through ``Encoder.encode_documents`` (CUDA, bfloat16, the fused head), written
  compactly: per document its number of terms (uint16), its term ids as ascending deltas (uint16), its weights as
  uint8 levels of one fixed scale (``--max-weight`` / 255: the scale ``lsr.index`` stores uint8 impacts at, so the
  index's own quantization loses nothing more); zstd-compressed and split into files of at most 15 MiB.
- ``unpack`` (here): every part's files back into one vectors file (``lsr.core.vectors``), ids from ``ids.txt``.

A weight above ``--max-weight`` saturates at level 255 and is counted in the part's JSON; the first part's maximum
sets the scale for all (with head room), so the count stays at zero or near it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

PIECE_BYTES = 15 << 20   # one returned file (the device returns files of at most 16 MiB)


def _zstd():
    import zstandard

    return zstandard


def pack(corpus: str, output: Path, docs_per_part: int, limit: int | None = None, level: int = 6) -> dict:
    """``output``/part-NNN.txt.zst (texts) and ``output``/ids.txt (ids); returns counts and sizes."""
    from lsr.core.corpus import read_corpus

    zstd = _zstd()
    output.mkdir(parents=True, exist_ok=True)
    parts: list[dict] = []
    lines: list[str] = []

    def flush() -> None:
        raw = "".join(lines).encode()
        path = output / f"part-{len(parts):03d}.txt.zst"
        path.write_bytes(zstd.ZstdCompressor(level=level, threads=-1).compress(raw))
        parts.append({"file": path.name, "docs": len(lines), "raw_bytes": len(raw), "bytes": path.stat().st_size})
        lines.clear()

    n = 0
    with open(output / "ids.txt", "w") as ids:
        for doc in read_corpus(corpus):
            if limit is not None and n >= limit:
                break
            ids.write(doc.id.replace("\n", " ") + "\n")
            lines.append(" ".join(doc.full_text.split()) + "\n")
            n += 1
            if len(lines) == docs_per_part:
                flush()
    if lines:
        flush()
    summary = {"corpus": str(corpus), "documents": n, "parts": parts}
    (output / "parts.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def compact(vectors, max_weight: float) -> bytes:
    """Terms per document (uint16), term-id deltas (uint16; a document's first is its first id), uint8 levels."""
    levels = np.clip(np.rint(vectors.values / np.float32(max_weight / 255)), 1, 255).astype(np.uint8)  # never 0
    lengths = np.diff(vectors.indptr)
    if len(lengths) and lengths.max() > np.iinfo(np.uint16).max:
        raise ValueError("a document with more than 65,535 terms")
    starts = vectors.indptr[:-1][lengths > 0]
    deltas = np.diff(vectors.indices.astype(np.int64), prepend=0)
    deltas[starts] = vectors.indices[starts]
    if np.any(deltas < 0) or (len(deltas) and np.count_nonzero(deltas == 0) > np.count_nonzero(
            vectors.indices[starts] == 0)):
        raise ValueError("term ids are not strictly ascending within a document")
    return b"".join(a.tobytes() for a in (lengths.astype(np.uint16), deltas.astype(np.uint16), levels))


def expand(blob: bytes, n: int, nnz: int, max_weight: float, vocab_size: int):
    """The SparseBatch that ``compact`` wrote."""
    from lsr.core.sparse import SparseBatch

    lengths = np.frombuffer(blob, np.uint16, n).astype(np.int64)
    running = np.cumsum(np.frombuffer(blob, np.uint16, nnz, 2 * n).astype(np.int64))
    levels = np.frombuffer(blob, np.uint8, nnz, 2 * n + 2 * nnz)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    before = np.concatenate([[0], running])[indptr[:-1]]   # the running sum where each document starts
    indices = (running - np.repeat(before, lengths)).astype(np.int32)
    values = levels.astype(np.float32) * np.float32(max_weight / 255)
    return SparseBatch(indptr, indices, values, vocab_size).validate()


def encode(part: Path, out: Path, max_weight: float | None, batch_size: int = 128, max_length: int = 256,
           model: str = "splade-tiny") -> dict:
    """Encodes one packed part on CUDA into ``out``/<part>.vNN files; returns the part's figures."""
    import torch

    from lsr.encoding.encoder import Encoder

    zstd = _zstd()
    texts = zstd.ZstdDecompressor().decompress(part.read_bytes()).decode().splitlines()
    enc = Encoder.from_pretrained(model, device="cuda")
    enc.encode_documents(texts[:2048], max_length=max_length, batch_size=batch_size)   # warm-up: kernels, autotune
    torch.cuda.synchronize()
    start = time.perf_counter()
    vectors = enc.encode_documents(texts, max_length=max_length, batch_size=batch_size)
    seconds = time.perf_counter() - start
    top = float(vectors.values.max()) if vectors.nnz else 0.0
    max_weight = max_weight or top * 1.25
    packed = zstd.ZstdCompressor(level=9, threads=-1).compress(compact(vectors, max_weight))
    out.mkdir(parents=True, exist_ok=True)
    stem = part.name.split(".")[0]
    files = []
    for i in range(0, len(packed), PIECE_BYTES):
        path = out / f"{stem}.v{i // PIECE_BYTES:02d}"
        path.write_bytes(packed[i:i + PIECE_BYTES])
        files.append(path.name)
    info = {"part": part.name, "docs": len(texts), "nnz": int(vectors.nnz), "seconds": seconds,
            "docs_per_s": len(texts) / seconds, "max_weight": float(max_weight), "part_max": top,
            "saturated": int(np.count_nonzero(vectors.values > max_weight)), "files": files,
            "bytes": len(packed), "truncated": enc.stats.truncated, "device": torch.cuda.get_device_name(),
            "meta": enc.vector_meta(max_length)}
    (out / f"{stem}.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def unpack(parts: Path, results: Path, output: Path, vocab_size: int = 30522) -> dict:
    """Every encoded part (``results``: the folders the device's files were copied to) into one vectors file."""
    from lsr.core.sparse import SparseBatch
    from lsr.core.vectors import save_vectors

    zstd = _zstd()
    plan = json.loads((parts / "parts.json").read_text())
    ids = (parts / "ids.txt").read_text().splitlines()
    batches, meta, saturated = [], None, 0
    for entry in plan["parts"]:
        stem = entry["file"].split(".")[0]
        found = list(results.rglob(f"{stem}.json"))
        if not found:
            raise FileNotFoundError(f"{stem}: not encoded yet (no {stem}.json under {results})")
        info = json.loads(found[0].read_text())
        packed = b"".join((found[0].parent / f).read_bytes() for f in info["files"])
        blob = zstd.ZstdDecompressor().decompress(packed, max_output_size=info["docs"] * 2 + info["nnz"] * 3)
        batches.append(expand(blob, info["docs"], info["nnz"], info["max_weight"], vocab_size))
        meta = meta or info["meta"]
        saturated += info["saturated"]
    vectors = SparseBatch.concat(batches)
    if len(ids) < len(vectors):
        raise ValueError("fewer ids than vectors")
    save_vectors(output, vectors, ids[:len(vectors)], {**meta, "encoded_on": "cuda (bench.gpu_parts)",
                                                     "weights": "uint8 levels of one scale", "saturated": saturated})
    return {"output": str(output), "documents": len(vectors), "nnz": int(vectors.nnz), "saturated": saturated}
