"""A segment on disk: a folder of .npy arrays (plus stored documents and their metadata fields), written once, opened
memory-mapped.

Writing goes to ``NAME.tmp/``; every file is fsynced, the folder is renamed to ``NAME`` and the parent fsynced, so a
segment folder without the ``.tmp`` suffix is always complete. It only becomes part of the index when a manifest
that lists it (with each file's sha256 and size) is committed.

Opening checks the files against the manifest (sizes, sha256 when asked), then the arrays against the manifest's
numbers: every array the kernels index has the dtype and shape they assume, offsets are monotone and end where their
arrays end, ids lie below the number of documents or terms, and each method checks its own arrays
(``Method.check_arrays``). Numba kernels do not check bounds, so this is what keeps a damaged or crafted file from
making a search read or write outside an array: it is refused as IndexCorrupt instead. The checks are vectorized
passes over the arrays (their pages come into the page cache, as the first searches would bring them).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from lsr.index.docstore import DocStore, write_docs
from lsr.index.errors import IndexCorrupt
from lsr.index.fields import FIELDS_FILE, FieldIndex, write_fields
from lsr.index.manifest import SegmentInfo
from lsr.index.quantize import DTYPES
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
        """The segment-local number of an external id (deleted or not), None when absent."""
        return self._number_map().get(doc_id)

    def numbers_of(self, doc_ids: Sequence[str]) -> list[int | None]:
        """``number_of`` of each id, in one pass (a follower looks up every id a log record names)."""
        numbers = self._number_map()
        return [numbers.get(d) for d in doc_ids]

    def _number_map(self) -> dict[str, int]:
        """External id -> local number, built once."""
        if self._numbers is None:
            with self._numbers_lock:
                if self._numbers is None:
                    self._numbers = {d: i for i, d in enumerate(self.docs.ids())}
        return self._numbers

    @classmethod
    def open(cls, folder: Path, info: SegmentInfo, vocab_size: int, quantization: str,
             verify: bool = True) -> "Segment":
        """Checks every listed file's size (and sha256 when ``verify``), maps the arrays and checks them against
        the manifest (``check_core_arrays``, then each of the segment's methods)."""
        from lsr.index import methods as registry

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
                except (ValueError, OSError, EOFError) as e:
                    raise IndexCorrupt(f"{path / fname}: unreadable array ({e})") from e
        if DOCS_FILE not in info.files:
            raise IndexCorrupt(f"{path}: the manifest lists no {DOCS_FILE}")
        fields = FieldIndex.open(path / FIELDS_FILE, info.num_docs) if FIELDS_FILE in info.files else FieldIndex()
        seg = cls(info, arrays, DocStore.open(path / DOCS_FILE, info.num_docs), fields)
        check_core_arrays(seg, vocab_size, quantization)
        for name in info.methods:
            try:
                method = registry.get(name)
            except ValueError:
                raise IndexCorrupt(f"{path}: unknown search method {name!r} in the manifest") from None
            method.check_arrays(seg)
        return seg


def array(seg: Segment, name: str, dtype, shape: tuple[int | None, ...]) -> np.ndarray:
    """The array ``name`` of ``seg``, checked to have ``dtype`` and ``shape`` (None: any length on that axis)."""
    a = seg.arrays.get(name)
    if a is None:
        raise IndexCorrupt(f"segment {seg.name}: array {name} is missing")
    if a.dtype != np.dtype(dtype) or a.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(a.shape, shape)):
        raise IndexCorrupt(f"segment {seg.name}: array {name} is {a.dtype}{list(a.shape)}, expected "
                           f"{np.dtype(dtype)}{['*' if d is None else d for d in shape]}")
    return a


def offsets(seg: Segment, name: str, length: int, total: int | None = None) -> np.ndarray:
    """The int64 offsets array ``name`` (``length`` entries): starts at 0, never decreases, ends at ``total``
    (when given); returns it."""
    a = array(seg, name, np.int64, (length,))
    if length and (a[0] != 0 or (total is not None and a[-1] != total) or bool(np.any(a[1:] < a[:-1]))):
        raise IndexCorrupt(f"segment {seg.name}: offsets {name} do not run from 0 up to {total}")
    return a


def within(seg: Segment, name: str, a: np.ndarray, low: int, high: int) -> None:
    """Every value of ``a`` (the array ``name``) lies in [low, high)."""
    if len(a) and (int(a.min()) < low or int(a.max()) >= high):
        raise IndexCorrupt(f"segment {seg.name}: {name} holds values outside [{low}, {high})")


def check_impacts(seg: Segment, name: str, a: np.ndarray) -> None:
    """Stored impacts decode to finite weights >= 0 (uint8 levels always do)."""
    if a.dtype == np.float32:
        bad = not bool(np.all(np.isfinite(a) & (a >= 0))) if a.size else False
    elif a.dtype == np.uint16:   # float16 bits: sign clear, exponent not all ones
        bad = bool(np.any((a & 0x8000) | ((a & 0x7C00) == 0x7C00))) if a.size else False
    else:
        bad = False
    if bad:
        raise IndexCorrupt(f"segment {seg.name}: {name} holds negative or non-finite impacts")


def check_core_arrays(seg: Segment, vocab_size: int, quantization: str) -> None:
    """The forward index and postings of ``seg`` agree with the manifest (documents, postings, vocabulary,
    impact type) and with each other, as the kernels assume."""
    n, nnz, impacts = seg.num_docs, seg.info.nnz, DTYPES[quantization]
    offsets(seg, "fwd_indptr", n + 1, nnz)
    terms = array(seg, "fwd_terms", np.uint16 if vocab_size <= 1 << 16 else np.int32, (nnz,))
    within(seg, "fwd_terms", terms, 0, vocab_size)
    check_impacts(seg, "fwd_values", array(seg, "fwd_values", impacts, (nnz,)))
    post = offsets(seg, "post_indptr", vocab_size + 1)
    total = int(post[-1])
    within(seg, "post_docs", array(seg, "post_docs", np.uint32, (total,)), 0, n)
    check_impacts(seg, "post_values", array(seg, "post_values", impacts, (total,)))
    dense = array(seg, "dense", impacts, (None, n))
    check_impacts(seg, "dense", dense)
    within(seg, "dense_row", array(seg, "dense_row", np.int32, (vocab_size,)), -1, dense.shape[0])
    check_impacts(seg, "term_max", array(seg, "term_max", impacts, (vocab_size,)))
