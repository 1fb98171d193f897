"""Stored documents of a segment (id, title, text, metadata) in an Arrow IPC file, memory-mapped for random access by
row.

Every segment stores its external ids here (title and text are null when the build was given no texts). Metadata is
a JSON object string per document (null when it has none): it comes back exactly as given, with its integers and
lists, while the segment's field index (index/fields.py) serves filters. Segments written before metadata existed
have no such column and read as having none. Arrow IPC rather than Parquet: rows are fetched one at a time to show
hits, and an uncompressed IPC file is read in place (zero copy) instead of decoding a row group per lookup.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from lsr.core.documents import Document
from lsr.index.errors import IndexCorrupt

_SCHEMA = pa.schema([("id", pa.string()), ("title", pa.string()), ("text", pa.string()), ("metadata", pa.string())])


def _metadata(doc: Document | None) -> str | None:
    return json.dumps(doc.metadata, ensure_ascii=False) if doc is not None and doc.metadata else None


def doc_table(ids: Sequence[str], docs: Sequence[Document | None] | None) -> pa.Table:
    """The stored form of documents: missing ones (``docs`` None, or a None row) get a null title, text and
    metadata."""
    if docs is None:
        return pa.table({"id": list(ids), "title": pa.nulls(len(ids), pa.string()),
                         "text": pa.nulls(len(ids), pa.string()), "metadata": pa.nulls(len(ids), pa.string())},
                        schema=_SCHEMA)
    return pa.table({"id": list(ids), "title": [d.title or "" if d is not None else None for d in docs],
                     "text": [d.text if d is not None else None for d in docs],
                     "metadata": [_metadata(d) for d in docs]}, schema=_SCHEMA)


def write_docs(path: Path, table: pa.Table) -> None:
    """Writes a ``doc_table`` (rows in segment order) and fsyncs the file."""
    with open(path, "wb") as f:
        with pa.ipc.new_file(f, _SCHEMA) as writer:
            writer.write_table(table, max_chunksize=65536)
        f.flush()
        os.fsync(f.fileno())


def metadata_of(table: pa.Table) -> list[dict[str, Any] | None]:
    """The metadata of every row of a ``doc_table``, parsed."""
    return [None if m is None else json.loads(m) for m in table.column("metadata").to_pylist()]


class DocStore:
    """Row access to a segment's stored documents (from its file, or in memory for the writer's recent ones)."""

    def __init__(self, path: Path | None, table: pa.Table | None = None):
        table = table if path is None else pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        if "metadata" not in table.column_names:   # written before metadata existed
            table = table.append_column("metadata", pa.nulls(table.num_rows, pa.string()))
        self.table = table

    @classmethod
    def open(cls, path: Path, num_docs: int) -> "DocStore":
        """The stored documents of a segment file, checked: the schema, ``num_docs`` rows, no null id, and Arrow's
        full validation (offsets in bounds, valid UTF-8); IndexCorrupt otherwise."""
        try:
            store = cls(path)
            store.table.validate(full=True)
        except (pa.ArrowException, OSError, ValueError) as e:
            raise IndexCorrupt(f"{path}: unreadable stored documents ({e})") from e
        t = store.table
        if t.schema != _SCHEMA or t.num_rows != num_docs or t.column("id").null_count:
            raise IndexCorrupt(f"{path}: stored documents do not match the segment ({t.num_rows} rows of "
                               f"{t.schema.names}, {num_docs} expected, ids never null)")
        return store

    def __len__(self) -> int:
        return self.table.num_rows

    def ids(self) -> np.ndarray:
        return np.asarray(self.table.column("id").to_pylist(), dtype=object)

    def id(self, row: int) -> str:
        return self.table.column("id")[row].as_py()

    def get(self, row: int) -> dict:
        """{"id", "title", "text", "metadata"}; title and text are "" when the index stores no text, metadata None
        when the document has none."""
        out = {name: self.table.column(name)[row].as_py() or "" for name in ("id", "title", "text")}
        meta = self.table.column("metadata")[row].as_py()
        out["metadata"] = None if meta is None else json.loads(meta)
        return out
