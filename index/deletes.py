"""Deleted documents of a segment: a bitmap beside the (immutable) segment folder, one file per generation.

A segment never changes after it is written, so deleting one of its documents writes a new bitmap
``seg-NNNNNN.gGGGGGG.del`` (packed bits, one per segment document, 1 = deleted) with the commit of generation G;
the manifest lists it with its sha256, size and count. Readers load it whole into a bool mask at open (it is small:
a bit per document), so the writer may remove an older bitmap as soon as a newer manifest is committed. Deleted
documents stay in the segment's arrays until a merge rewrites the segment without them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lsr.index.errors import IndexCorrupt
from lsr.index.manifest import SegmentInfo
from lsr.core.atomic import atomic_write_bytes


def file_name(segment: str, generation: int) -> str:
    return f"{segment}.g{generation:06d}.del"


def write_deletes(folder: Path, segment: str, generation: int, dead: np.ndarray) -> dict:
    """Writes the mask of ``segment`` atomically; returns its manifest entry."""
    data = np.packbits(dead.astype(bool)).tobytes()
    name = file_name(segment, generation)
    atomic_write_bytes(folder / name, data)
    return {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "count": int(dead.sum())}


def read_deletes(folder: Path, info: SegmentInfo) -> np.ndarray:
    """The segment's deleted-document mask (bool, one per document; all False when it has no bitmap)."""
    if not info.deletes:
        return np.zeros(info.num_docs, dtype=bool)
    meta = info.deletes
    path = folder / meta["file"]
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IndexCorrupt(f"{path}: missing (listed in the manifest)") from None
    if len(data) != meta["bytes"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise IndexCorrupt(f"{path}: checksum mismatch (the deleted-documents bitmap changed after it was written)")
    dead = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=info.num_docs).astype(bool)
    if int(dead.sum()) != meta["count"]:
        raise IndexCorrupt(f"{path}: {int(dead.sum())} deleted documents, the manifest says {meta['count']}")
    return dead
