"""The write-ahead log: every write is appended here and fsynced before it is acknowledged.

A write (add or replace documents, delete ids) becomes one record, so a batch is all or nothing:

    magic b"LSRW" | u32 body length | u32 crc32(body) | body
    body = u64 seq | u8 op | u32 n | u32 meta length | meta (JSON: ids, and for PUT the stored documents as
           [title, text] or, with metadata, [title, text, metadata]: logs written before metadata stay readable)
           [PUT only: indptr int64 (n + 1) | indices int32 (nnz) | values float32 (nnz)]

Sequence numbers grow by one per record. The manifest records ``wal_seq``, the last record whose effects its segments
hold; on open the writer replays the records after it. Files live in ``wal/`` and are named by their first sequence
number; each writer session starts a new file and so does each flush (at its freeze), and a flush's commit deletes
the files it covers.

A process killed in the middle of an append leaves a torn tail: a short header, a short body or a checksum that does
not match. Replay keeps every complete record before it and the writer cuts the tail off (it was never
acknowledged). A bad record followed by good ones is not a torn tail but damage, and is refused (IndexCorrupt).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lsr.index.errors import IndexCorrupt
from lsr.core.atomic import fsync_dir
from lsr.core.documents import Document
from lsr.core.sparse import SparseBatch

log = logging.getLogger(__name__)

MAGIC = b"LSRW"
_HEAD = struct.Struct("<4sII")      # magic, body length, crc32 of the body
_BODY = struct.Struct("<QBII")      # seq, op, n, meta length
PUT, DELETE = 1, 2
WAL_DIR = "wal"


@dataclass(frozen=True)
class Record:
    """One acknowledged write: PUT adds (or replaces) ``ids`` with ``vectors`` and ``docs``; DELETE removes ids."""

    seq: int
    op: int
    ids: list[str]
    vectors: SparseBatch | None = None
    docs: list[Document | None] | None = None

    def encode(self) -> bytes:
        meta: dict = {"ids": self.ids}
        if self.docs is not None:
            meta["docs"] = [None if d is None else [d.title, d.text] + ([d.metadata] if d.metadata else [])
                             for d in self.docs]
        if self.vectors is not None:
            meta["vocab_size"] = self.vectors.vocab_size
        raw = json.dumps(meta, ensure_ascii=False).encode()
        parts = [_BODY.pack(self.seq, self.op, len(self.ids), len(raw)), raw]
        if self.vectors is not None:
            parts += [self.vectors.indptr.tobytes(), self.vectors.indices.tobytes(), self.vectors.values.tobytes()]
        body = b"".join(parts)
        return _HEAD.pack(MAGIC, len(body), zlib.crc32(body)) + body

    @classmethod
    def decode(cls, body: bytes) -> "Record":
        seq, op, n, meta_len = _BODY.unpack_from(body)
        at = _BODY.size
        meta = json.loads(body[at:at + meta_len])
        at += meta_len
        ids = meta["ids"]
        docs = None
        if meta.get("docs") is not None:
            docs = [None if d is None else Document(i, d[1], d[0], d[2] if len(d) > 2 else None)
                    for i, d in zip(ids, meta["docs"])]
        vectors = None
        if op == PUT:
            indptr = np.frombuffer(body, np.int64, n + 1, at)
            at += indptr.nbytes
            nnz = int(indptr[-1])
            indices = np.frombuffer(body, np.int32, nnz, at)
            values = np.frombuffer(body, np.float32, nnz, at + indices.nbytes)
            vectors = SparseBatch(indptr, indices, values, meta["vocab_size"])
        return cls(seq, op, ids, vectors, docs)


@dataclass(frozen=True)
class Recovery:
    """What reading the log found: complete records, and the torn tail cut off (file, offset, bytes), if any."""

    records: list[Record]
    torn_file: Path | None = None
    torn_offset: int = 0
    torn_bytes: int = 0


def _parse(data: bytes, at: int) -> tuple[Record, int] | None:
    """The record at ``at`` and the offset after it, or None when it is short or fails its checksum."""
    if len(data) - at < _HEAD.size:
        return None
    magic, length, crc = _HEAD.unpack_from(data, at)
    end = at + _HEAD.size + length
    if magic != MAGIC or end > len(data) or length < _BODY.size:
        return None
    body = data[at + _HEAD.size:end]
    if zlib.crc32(body) != crc:
        return None
    return Record.decode(body), end


def _valid_record_after(data: bytes, at: int) -> int | None:
    """Offset of a complete, checksummed record starting after ``at``: proof that the bad bytes are damage."""
    pos = data.find(MAGIC, at + 1)
    while pos >= 0:
        if _parse(data, pos) is not None:
            return pos
        pos = data.find(MAGIC, pos + 1)
    return None


def log_files(folder: Path) -> list[Path]:
    return sorted((folder / WAL_DIR).glob("*.log")) if (folder / WAL_DIR).is_dir() else []


def read_log(folder: Path) -> Recovery:
    """Every complete record in ``folder/wal`` in order; a torn tail (last file only) is reported, not returned."""
    records: list[Record] = []
    files = log_files(folder)
    for i, path in enumerate(files):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            parsed = _parse(data, at)
            if parsed is None:
                later = _valid_record_after(data, at)
                if later is not None or any(p.stat().st_size for p in files[i + 1:]):
                    where = f"offset {later}" if later is not None else "a later file"
                    raise IndexCorrupt(f"{path}: damaged write-ahead-log record at offset {at}, followed by complete "
                                       f"records ({where}); acknowledged writes may be lost, restore from a backup")
                return Recovery(records, path, at, len(data) - at)
            record, at = parsed
            if records and record.seq != records[-1].seq + 1:
                raise IndexCorrupt(f"{path}: write-ahead-log record {record.seq} follows {records[-1].seq}")
            records.append(record)
    return Recovery(records)


class WriteAheadLog:
    """Appends records to the current file of ``folder/wal``, fsyncing each before returning."""

    def __init__(self, folder: Path):
        self.dir = Path(folder) / WAL_DIR
        self.dir.mkdir(exist_ok=True)
        self._fd: int | None = None

    def recover(self) -> Recovery:
        """Reads the log and cuts a torn tail off its file, so that nothing follows it."""
        found = read_log(self.dir.parent)
        if found.torn_file is not None:
            log.warning("%s: torn write-ahead-log tail (%d bytes at offset %d, never acknowledged) ignored",
                        found.torn_file, found.torn_bytes, found.torn_offset)
            with open(found.torn_file, "r+b") as f:
                f.truncate(found.torn_offset)
                os.fsync(f.fileno())
        return found

    def append(self, record: Record) -> None:
        """Writes ``record`` and fsyncs it: once this returns, the write survives a crash."""
        if self._fd is None:
            path = self.dir / f"{record.seq:016d}.log"
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            fsync_dir(self.dir)
        data = memoryview(record.encode())
        while data:
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)

    def rotate(self) -> None:
        """Closes the current file: the next record starts a new one (a flush freezes the log at this point)."""
        self.close()

    def trim(self, through_seq: int) -> None:
        """Deletes the files of records up to ``through_seq``, once a committed manifest covers them (files end
        at a rotation, so a file named after a record <= through_seq holds no later one)."""
        for path in log_files(self.dir.parent):
            if int(path.stem) <= through_seq:
                path.unlink()
        fsync_dir(self.dir)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
