"""Stored documents of a segment (id, title, text) in an Arrow IPC file, memory-mapped for random access by row.

Every segment stores its external ids here (title and text are null when the build was given no texts). Arrow IPC
rather than Parquet: rows are fetched one at a time to show hits, and an uncompressed IPC file is read in place
(zero copy) instead of decoding a row group per lookup.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from lsr.corpus import Document

_SCHEMA = pa.schema([("id", pa.string()), ("title", pa.string()), ("text", pa.string())])


def write_docs(path: Path, ids: Sequence[str], docs: Sequence[Document] | None) -> None:
    """Writes ids (and documents, if any) in the given (segment) order and fsyncs the file."""
    titles = [d.title or "" for d in docs] if docs is not None else None
    texts = [d.text for d in docs] if docs is not None else None
    table = pa.table({"id": list(ids), "title": titles or pa.nulls(len(ids), pa.string()),
                      "text": texts or pa.nulls(len(ids), pa.string())}, schema=_SCHEMA)
    with open(path, "wb") as f:
        with pa.ipc.new_file(f, _SCHEMA) as writer:
            writer.write_table(table, max_chunksize=65536)
        f.flush()
        os.fsync(f.fileno())


class DocStore:
    """Row access to a segment's stored documents."""

    def __init__(self, path: Path):
        self._table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()

    def __len__(self) -> int:
        return self._table.num_rows

    def ids(self) -> np.ndarray:
        return np.asarray(self._table.column("id").to_pylist(), dtype=object)

    def id(self, row: int) -> str:
        return self._table.column("id")[row].as_py()

    def get(self, row: int) -> dict:
        """{"id", "title", "text"}; title and text are "" when the index stores no text."""
        return {name: self._table.column(name)[row].as_py() or "" for name in ("id", "title", "text")}
