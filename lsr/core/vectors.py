"""The vectors file that ``lsr encode`` writes and ``lsr index`` / ``lsr bench`` read.

An uncompressed ``.npz`` (numpy's zip of ``.npy`` arrays, readable from any language with a zip reader):
  indptr  int64 (n + 1)   CSR row pointers
  indices int32 (nnz)     vocabulary term ids, sorted within each row
  values  float32 (nnz)   weights > 0
  ids     str (n)         external document ids (optional for benchmark files)
  meta    str (0-d)       JSON: {"format": "lsr-vectors", "version": 1, "model", "vocab_size", "vocab_fingerprint",
                          "max_length", "pooling", ...}
A compressed file (``compress=True``, for large corpora kept on disk or shipped) deflates every array and stores the
term ids as uint16 when the vocabulary fits: lossless, read back to the same int32 and float32 arrays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from lsr.core.atomic import atomic_open
from lsr.core.sparse import SparseBatch

FORMAT = "lsr-vectors"
VERSION = 1


@dataclass
class VectorsFile:
    vectors: SparseBatch
    ids: np.ndarray
    meta: dict = field(default_factory=dict)


def write_vectors(f: IO[bytes], vectors: SparseBatch, ids, meta: dict | None = None, compress: bool = False) -> None:
    """Writes a vectors file into an open binary file (or a BytesIO, to ship it elsewhere whole)."""
    ids = np.asarray([str(i) for i in ids])
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
    meta = {"format": FORMAT, "version": VERSION, "vocab_size": vectors.vocab_size, **(meta or {})}
    narrow = compress and vectors.vocab_size <= 2**16
    (np.savez_compressed if compress else np.savez)(
        f, indptr=vectors.indptr, indices=vectors.indices.astype(np.uint16) if narrow else vectors.indices,
        values=vectors.values, ids=ids, meta=np.array(json.dumps(meta)))


def save_vectors(path: str | Path, vectors: SparseBatch, ids, meta: dict | None = None, compress: bool = False) -> None:
    """Writes atomically (a crash leaves the old file or the complete new one), creating the folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        write_vectors(f, vectors, ids, meta, compress)


def load_vectors(path: str | Path, validate: bool = True) -> VectorsFile:
    """Reads a vectors file, or a bare benchmark npz (indptr/indices/values, optional ids and vocab_size)."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npz vectors file ({e})") from e
    with z:
        missing = {"indptr", "indices", "values"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
        indices = z["indices"]
        vocab = int(meta.get("vocab_size") or (z["vocab_size"] if "vocab_size" in z.files else
                                               (int(indices.max()) + 1 if len(indices) else 0)))
        vectors = SparseBatch(z["indptr"], indices, z["values"], vocab)
        ids = z["ids"] if "ids" in z.files else np.arange(len(vectors)).astype(str)
    if validate:
        vectors.validate()
    if len(ids) != len(vectors):
        raise ValueError(f"{path}: {len(ids)} ids for {len(vectors)} vectors")
    return VectorsFile(vectors, ids, meta)
