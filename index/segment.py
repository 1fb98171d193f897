"""A segment on disk: a folder of .npy arrays (plus stored documents and their metadata fields), written once, opened
memory-mapped.

Writing goes to ``NAME.tmp/``; every file is fsynced, the folder is renamed to ``NAME`` and the parent fsynced, so a
segment folder without the ``.tmp`` suffix is always complete. It only becomes part of the index when a manifest
that lists it (with each file's sha256 and size) is committed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lsr.index.docstore import DocStore, write_docs
from lsr.index.errors import IndexCorrupt
from lsr.index.fields import FIELDS_FILE, FieldIndex, write_fields
from lsr.index.manifest import SegmentInfo
from lsr.core.atomic import fsync_dir

DOCS_FILE = "docs.arrow"


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_segment(folder: Path, name: str, arrays: dict[str, np.ndarray], docs: pa.Table,
                  fields: pa.Table) -> dict[str, dict]:
    """Writes ``folder/name/`` atomically: the arrays, the stored documents and the field index
    (``lsr.index.fields.build_fields``); returns the file table for the manifest (name -> sha256, bytes)."""
    tmp = folder / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for key, array in arrays.items():
        with open(tmp / f"{key}.npy", "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
    write_docs(tmp / DOCS_FILE, docs)
    write_fields(tmp / FIELDS_FILE, fields)
    files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in sorted(tmp.iterdir())}
    fsync_dir(tmp)
    final = folder / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    fsync_dir(folder)
    return files


class Segment:
    """The arrays of one segment, memory-mapped read-only; ``seg["post_docs"]`` is what kernels read."""

    def __init__(self, info: SegmentInfo, arrays: dict[str, np.ndarray], docs: DocStore, fields: FieldIndex):
        self.info = info
        self.arrays = arrays
        self.docs = docs
        self.fields = fields
        self._local = threading.local()
        self._numbers: dict[str, int] | None = None
        self._numbers_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def num_docs(self) -> int:
        return self.info.num_docs

    @property
    def scale(self) -> float:
        return self.info.scale

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def scratch(self, method: Any) -> Any:
        """This thread's working memory for ``method`` (an ``index.methods.Method``) on this segment, made once:
        segments outlive generations, so a refresh keeps the scratch of the segments it keeps."""
        cache = self._local.__dict__
        if method.name not in cache:
            cache[method.name] = method.scratch(self)
        return cache[method.name]

    def number_of(self, doc_id: str) -> int | None:
        """The segment-local number of an external id (deleted or not), None when absent; the map is built once."""
        if self._numbers is None:
            with self._numbers_lock:
                if self._numbers is None:
                    self._numbers = {d: i for i, d in enumerate(self.docs.ids())}
        return self._numbers.get(doc_id)

    @classmethod
    def open(cls, folder: Path, info: SegmentInfo, verify: bool = True) -> "Segment":
        """Checks every listed file's size (and sha256 when ``verify``), then maps the arrays."""
        path = folder / info.name
        for fname, meta in info.files.items():
            p = path / fname
            if not p.exists():
                raise IndexCorrupt(f"{p}: missing (listed in the manifest)")
            size = p.stat().st_size
            if size != meta["bytes"]:
                raise IndexCorrupt(f"{p}: truncated or overwritten: {size} bytes, the manifest says {meta['bytes']}")
            if verify and sha256_file(p) != meta["sha256"]:
                raise IndexCorrupt(f"{p}: checksum mismatch (the file changed after the index was written)")
        arrays = {}
        for fname in info.files:
            if fname.endswith(".npy"):
                try:
                    # a plain ndarray view of the map: Numba's dispatcher takes ndarrays on its fast path
                    arrays[fname[:-4]] = np.asarray(np.load(path / fname, mmap_mode="r", allow_pickle=False))
                except ValueError as e:
                    raise IndexCorrupt(f"{path / fname}: unreadable array ({e})") from e
        if DOCS_FILE not in info.files:
            raise IndexCorrupt(f"{path}: the manifest lists no {DOCS_FILE}")
        fields = FieldIndex.open(path / FIELDS_FILE) if FIELDS_FILE in info.files else FieldIndex()
        return cls(info, arrays, DocStore(path / DOCS_FILE), fields)
