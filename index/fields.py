"""The metadata fields of a segment, indexed for filters: one Arrow IPC file, ``fields.arrow``, one row per key.

Built from the segment's stored metadata (index/docstore.py) in segment order, at every build, flush and merge, and
listed with its sha256 in the manifest like every other segment file. A row holds the key's ``name``, its ``kind``
(lsr.core.metadata) and:
  keyword, bool  ``keys`` the distinct values, sorted (booleans as "false" / "true"); ``ptr`` offsets into ``docs``,
                 the ascending document numbers holding each value (a document listing a value twice, once);
  number         ``values`` ascending (float64) with the document holding each in ``docs``: a range is one binary
                 search per bound and a slice. A document with a list of numbers appears once per number.
The file is memory-mapped and its arrays are read in place (zero copy). Segments written before metadata existed
have no such file: they hold no fields.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from lsr.core.metadata import NUMBER, kind
from lsr.index.errors import IndexCorrupt

FIELDS_FILE = "fields.arrow"
_SCHEMA = pa.schema([("name", pa.string()), ("kind", pa.string()), ("keys", pa.list_(pa.string())),
                     ("ptr", pa.list_(pa.int64())), ("docs", pa.list_(pa.int32())), ("values", pa.list_(pa.float64()))])
_NONE = np.zeros(0, dtype=np.int32)


def keyword(value: Any) -> str:
    """The stored key of a keyword or bool value."""
    return ("true" if value else "false") if isinstance(value, bool) else value


def build_fields(metadata: Sequence[Mapping[str, Any] | None]) -> pa.Table:
    """The field index of documents ``0..len(metadata) - 1`` (checked metadata, lsr.core.metadata)."""
    pairs: dict[str, tuple[str, list, list]] = {}   # name -> (kind, values, docs)
    for d, meta in enumerate(metadata):
        for name, value in (meta or {}).items():
            k = kind(value)
            if k is None:
                continue
            entry = pairs.setdefault(name, (k, [], []))
            values = value if isinstance(value, list) else [value]
            entry[1].extend(values)
            entry[2].extend([d] * len(values))
    rows = []
    n = len(metadata) + 1
    for name in sorted(pairs):
        k, values, docs = pairs[name]
        docs = np.asarray(docs, dtype=np.int32)
        if k == NUMBER:
            values = np.asarray(values, dtype=np.float64)
            order = np.lexsort((docs, values))
            rows.append((name, k, [], [], docs[order], values[order]))
            continue
        keys, codes = np.unique(np.array([keyword(v) for v in values], dtype=object), return_inverse=True)
        pair = np.unique(codes.astype(np.int64) * n + docs)   # (key, doc), each once, sorted
        ptr = np.zeros(len(keys) + 1, dtype=np.int64)
        np.cumsum(np.bincount(pair // n, minlength=len(keys)), out=ptr[1:])
        rows.append((name, k, list(keys), ptr, (pair % n).astype(np.int32), []))
    return pa.table({c: [r[i] for r in rows] for i, c in enumerate(_SCHEMA.names)}, schema=_SCHEMA)


def write_fields(path: Path, table: pa.Table) -> None:
    """Writes a ``build_fields`` table and fsyncs the file."""
    with open(path, "wb") as f:
        with pa.ipc.new_file(f, _SCHEMA) as writer:
            writer.write_table(table)
        f.flush()
        os.fsync(f.fileno())


class Field:
    """One key of one segment: the documents holding a value, or a range of values."""

    def __init__(self, kind_: str, keys: pa.Array, ptr: np.ndarray, docs: np.ndarray, values: np.ndarray):
        self.kind = kind_
        self._keys = keys
        self._ptr = ptr
        self.docs = docs
        self.values = values
        self._slots: dict[str, int] | None = None

    def matching(self, wanted: Iterable[Any]) -> Iterable[np.ndarray]:
        """Document numbers holding any of ``wanted`` (values of this field's kind), as one array per value."""
        if self.kind == NUMBER:
            return [self.between(v, True, v, True) for v in wanted]
        if self._slots is None:   # built on first use; a dict read is faster than a binary search over Arrow
            self._slots = {key: i for i, key in enumerate(self._keys.to_pylist())}
        slots = (self._slots.get(keyword(v)) for v in wanted)
        return [self.docs[self._ptr[s]:self._ptr[s + 1]] for s in slots if s is not None]

    def between(self, low: float | None, low_closed: bool, high: float | None, high_closed: bool) -> np.ndarray:
        """Documents holding a number in the interval (None: unbounded on that side)."""
        lo = 0 if low is None else np.searchsorted(self.values, low, side="left" if low_closed else "right")
        hi = len(self.values) if high is None else np.searchsorted(self.values, high,
                                                                   side="right" if high_closed else "left")
        return self.docs[lo:max(lo, hi)]


class FieldIndex:
    """Every field of a segment by name (none for a segment written before metadata existed)."""

    def __init__(self, table: pa.Table | None = None):
        self.fields: dict[str, Field] = {}
        if table is None or table.num_rows == 0:   # (combining no chunks would import pandas)
            return
        names, kinds = table.column("name").to_pylist(), table.column("kind").to_pylist()
        columns = {c: table.column(c).combine_chunks() for c in ("keys", "ptr", "docs", "values")}
        for i, (name, k) in enumerate(zip(names, kinds)):
            arrays = {c: columns[c][i].values for c in columns}
            self.fields[name] = Field(k, arrays["keys"], _view(arrays["ptr"], np.int64),
                                      _view(arrays["docs"], np.int32), _view(arrays["values"], np.float64))

    @classmethod
    def open(cls, path: Path, num_docs: int) -> "FieldIndex":
        """The field index of a segment file, checked as the filters use it: the schema, Arrow's full validation,
        document numbers below ``num_docs``, offsets that stay within their row; IndexCorrupt otherwise."""
        try:
            table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
            table.validate(full=True)
            if table.schema != _SCHEMA:
                raise IndexCorrupt(f"{path}: field index columns {table.schema.names}, expected {_SCHEMA.names}")
            index = cls(table)
        except (pa.ArrowException, OSError, ValueError) as e:
            raise IndexCorrupt(f"{path}: unreadable field index ({e})") from e
        for name, f in index.fields.items():
            n = len(f.docs)
            if len(f.docs) and (int(f.docs.min()) < 0 or int(f.docs.max()) >= num_docs) or (
                    f.kind == NUMBER and len(f.values) != n) or (
                    f.kind != NUMBER and (len(f._ptr) != len(f._keys) + 1 or (len(f._ptr) and (
                        f._ptr[0] != 0 or f._ptr[-1] != n or bool(np.any(np.diff(f._ptr) < 0)))))):
                raise IndexCorrupt(f"{path}: field {name!r} does not match the segment's {num_docs} documents")
        return index

    @property
    def kinds(self) -> dict[str, str]:
        return {name: f.kind for name, f in self.fields.items()}

    def get(self, name: str) -> Field | None:
        return self.fields.get(name)


def _view(array: pa.Array, dtype: type) -> np.ndarray:
    """A zero-copy numpy view of a primitive column's values (``Array.to_numpy`` would import pandas: 0.4 s of every
    `lsr search`)."""
    if array.null_count:
        raise ValueError("null values in a field index column")
    if not len(array):
        return _NONE
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array),
                         offset=array.offset * np.dtype(dtype).itemsize)

