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

A process killed in the middle of an append leaves a torn tail: a prefix of the last record (an append is one
``write`` of the whole record, so what reaches the file is a prefix of it), or zeros where a file system extended
the file before the data landed. Replay keeps every complete record before it and the writer cuts the tail off
(it was never acknowledged). Anything else is damage and is refused (IndexCorrupt), never cut: a complete record
(its declared length fits in the file, or its checksum holds over the rest of the file) whose checksum fails, a
header that is not a record's, a bad record followed by good ones, records out of sequence, and a manifest whose
``wal_seq`` the log contradicts (records missing after it, a log ending before it, or records at or below it whose
documents the segments do not hold). ``lsr index --repair`` keeps the records before the damage and moves the rest
aside (``repair``).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from lsr.index.errors import IndexCorrupt, IndexLocked
from lsr.index.lock import WriterLock
from lsr.core.atomic import fsync_dir
from lsr.core.documents import Document
from lsr.core.sparse import SparseBatch

if TYPE_CHECKING:
    from lsr.index.snapshot import Snapshot

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
        """The record of a body whose checksum held; ValueError when its contents are not a record's."""
        try:
            seq, op, n, meta_len = _BODY.unpack_from(body)
            at = _BODY.size
            meta = json.loads(body[at:at + meta_len])
            at += meta_len
            ids = meta["ids"]
            if op not in (PUT, DELETE) or len(ids) != n or not all(isinstance(i, str) for i in ids):
                raise ValueError(f"op {op}, {n} ids")
            docs = None
            if meta.get("docs") is not None:
                if len(meta["docs"]) != n:
                    raise ValueError("stored documents do not match the ids")
                docs = [_document(i, d) for i, d in zip(ids, meta["docs"])]
            vectors = None
            if op == PUT:
                indptr = np.frombuffer(body, np.int64, n + 1, at)
                at += indptr.nbytes
                nnz = int(indptr[-1])
                indices = np.frombuffer(body, np.int32, nnz, at)
                values = np.frombuffer(body, np.float32, nnz, at + indices.nbytes)
                if at + indices.nbytes + values.nbytes != len(body):
                    raise ValueError("trailing bytes")
                vectors = SparseBatch(indptr, indices, values, meta["vocab_size"]).validate()
            return cls(seq, op, ids, vectors, docs)
        except (ValueError, TypeError, KeyError, IndexError, struct.error) as e:   # json errors are ValueErrors
            raise ValueError(f"not a write-ahead-log record ({e})") from e


def _document(doc_id: str, stored: object) -> Document | None:
    """A record's stored document: None, or [title, text] with its metadata after them when it has any."""
    if stored is None:
        return None
    if type(stored) is not list or not 2 <= len(stored) <= 3:
        raise ValueError("stored documents do not match the ids")
    title, text, *rest = stored
    metadata = rest[0] if rest else None
    if not (title is None or type(title) is str) or not (text is None or type(text) is str) or not (
            metadata is None or type(metadata) is dict):
        raise ValueError("stored documents do not match the ids")
    return Document(doc_id, text, title, metadata)


@dataclass(frozen=True)
class Recovery:
    """What reading the log found: complete records, and the torn tail cut off (file, offset, bytes), if any."""

    records: list[Record]
    torn_file: Path | None = None
    torn_offset: int = 0
    torn_bytes: int = 0


@dataclass(frozen=True)
class Damage:
    """Where a log stops being trustworthy: the file and offset of the first damaged byte, and why."""

    file: Path
    offset: int
    reason: str


@dataclass(frozen=True)
class Scan:
    """A log read up to its first damage: the good records before it, and the damage (None: none)."""

    records: list[Record] = field(default_factory=list)
    damage: Damage | None = None
    torn: Recovery | None = None


def _complete(data: bytes, at: int) -> tuple[Record, int] | str:
    """The record at ``at`` and the offset after it, or why there is none: "torn" for a prefix of a record (or
    zeros) that ends the data, else a description of the damage. Only the record's own bytes are copied: a copy of
    all the data after ``at`` made reading a log quadratic in its records."""
    left = len(data) - at
    if left < _HEAD.size:
        rest = data[at:]
        return "torn" if MAGIC.startswith(rest[:4]) or not rest.strip(b"\0") else "not a record header"
    magic, length, crc = _HEAD.unpack_from(data, at)
    if magic != MAGIC:
        return "torn" if not data[at:].strip(b"\0") else "not a record header"
    start = at + _HEAD.size
    if left - _HEAD.size < length:   # runs past the end: a torn append, unless the rest is a whole record
        return "torn" if zlib.crc32(memoryview(data)[start:]) != crc else "a complete record with a damaged length"
    body = data[start:start + length]
    if length < _BODY.size or zlib.crc32(body) != crc:
        return "a complete record whose checksum fails"
    try:
        return Record.decode(body), start + length
    except ValueError as e:
        return str(e)


def _valid_record_after(data: bytes, at: int) -> int | None:
    """Offset of a complete, checksummed record starting after ``at``: proof that the bad bytes are damage."""
    pos = data.find(MAGIC, at + 1)
    while pos >= 0:
        if isinstance(_complete(data, pos), tuple):
            return pos
        pos = data.find(MAGIC, pos + 1)
    return None


def read_records(path: Path, offset: int) -> tuple[list[Record], int]:
    """The complete records of one log file from ``offset`` on, and the offset after the last of them; reading
    stops at the first incomplete or bad one (for a reader following a live log: the writer judges damage)."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    records, at = [], 0
    while at < len(data):
        parsed = _complete(data, at)
        if isinstance(parsed, str):
            break
        records.append(parsed[0])
        at = parsed[1]
    return records, offset + at


def log_files(folder: Path) -> list[Path]:
    return sorted((folder / WAL_DIR).glob("*.log")) if (folder / WAL_DIR).is_dir() else []


def scan_log(folder: Path) -> Scan:
    """The records of ``folder/wal`` in order up to the first damage (see the module's doc for what is damage)."""
    records: list[Record] = []
    files = log_files(folder)
    for i, path in enumerate(files):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            parsed = _complete(data, at)
            if isinstance(parsed, str):
                later = _valid_record_after(data, at)
                if parsed == "torn" and later is None and not any(p.stat().st_size for p in files[i + 1:]):
                    return Scan(records, torn=Recovery(records, path, at, len(data) - at))
                if parsed == "torn":
                    parsed = "a damaged record followed by complete records"
                return Scan(records, Damage(path, at, parsed))
            record, end = parsed
            if at == 0 and path.stem != f"{record.seq:016d}":
                return Scan(records, Damage(path, at, f"the file's first record is {record.seq}"))
            if records and record.seq != records[-1].seq + 1:
                return Scan(records, Damage(path, at, f"record {record.seq} follows {records[-1].seq}"))
            records.append(record)
            at = end
    return Scan(records)


def read_log(folder: Path) -> Recovery:
    """Every complete record in ``folder/wal`` in order; a torn tail (last file only) is reported, not returned;
    damage is IndexCorrupt."""
    scan = scan_log(folder)
    if scan.damage is not None:
        d = scan.damage
        raise IndexCorrupt(f"{d.file}: damaged write-ahead-log record at offset {d.offset} ({d.reason}); "
                           f"acknowledged writes may be lost. {REPAIR_HINT}")
    return scan.torn or Recovery(scan.records)


REPAIR_HINT = ("`lsr index -o INDEX --repair` keeps the records before the damage and moves the rest aside "
               "(wal/damaged-*/), or restore the index from a backup")


def to_replay(records: list[Record], wal_seq: int, present: Callable[[str], bool], where: Path) -> list[Record]:
    """The records after ``wal_seq`` (the manifest's), once the log is shown to agree with it: no record missing
    after it, the log not ending before it, and every record at or below it held by the committed segments
    (``present(id)``: the id is a live document there; an id a later record at or below wal_seq deleted must not
    be). IndexCorrupt otherwise."""
    if not records:
        return []
    first, last = records[0].seq, records[-1].seq
    if first > wal_seq + 1:
        raise IndexCorrupt(f"{where}: write-ahead-log records {wal_seq + 1}..{first - 1} are missing; acknowledged "
                           f"writes are lost. {REPAIR_HINT}")
    if last < wal_seq:
        raise IndexCorrupt(f"{where}: the manifest says its segments hold the log up to record {wal_seq}, but the "
                           f"log ends at record {last}: the manifest or the log is damaged; restore from a backup")
    live: dict[str, bool] = {}
    for r in records:
        if r.seq > wal_seq:
            break
        live.update((i, r.op == PUT) for i in r.ids)
    wrong = [i for i, alive in live.items() if present(i) != alive]
    if wrong:
        raise IndexCorrupt(f"{where}: the manifest's wal_seq {wal_seq} says the segments hold the log's records up to "
                           f"it, but they disagree on {len(wrong)} documents (e.g. {wrong[0]!r}): the manifest or the "
                           "log is damaged; restore from a backup")
    return [r for r in records if r.seq > wal_seq]


def check_replay(folder: Path, committed: "Snapshot") -> None:
    """IndexCorrupt unless the log of ``folder`` would replay onto its ``committed`` snapshot, as a writer opening
    it would find; read-only (a torn tail is reported, not cut). Skipped while another writer holds the lock (it
    has replayed the log), or when the lock cannot be taken (a read-only folder)."""
    try:
        lock = WriterLock(folder).acquire(0)
    except (IndexLocked, OSError):
        return
    try:
        to_replay(read_log(folder).records, committed.manifest.wal_seq,
                  lambda doc_id: committed.find(doc_id) is not None, folder / WAL_DIR)
    finally:
        lock.release()


def repair(folder: Path) -> dict:
    """Cuts the log at its first damage: the damaged file keeps its bytes before it, and the rest of that file and
    every later file move to ``wal/damaged-<time>/``. Call it holding the writer lock. Returns what it did."""
    scan = scan_log(folder)
    if scan.damage is None:
        return {"damaged": False, "kept_records": len(scan.records)}
    d = scan.damage
    aside = folder / WAL_DIR / f"damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    aside.mkdir()
    data = d.file.read_bytes()
    (aside / f"{d.file.name}.from-{d.offset}").write_bytes(data[d.offset:])
    later = [p for p in log_files(folder) if p > d.file]
    set_aside = _count_records(data[d.offset:]) + sum(_count_records(p.read_bytes()) for p in later)
    for p in later:
        os.replace(p, aside / p.name)
    fsync_dir(aside)
    with open(d.file, "r+b") as f:
        f.truncate(d.offset)
        os.fsync(f.fileno())
    if d.offset == 0:
        d.file.unlink()
    fsync_dir(folder / WAL_DIR)
    last = scan.records[-1].seq if scan.records else None
    return {"damaged": True, "file": d.file.name, "offset": d.offset, "reason": d.reason,
            "kept_records": len(scan.records), "last_kept_seq": last, "complete_records_set_aside": set_aside,
            "set_aside_in": str(aside.relative_to(folder))}


def _count_records(data: bytes) -> int:
    """Complete, checksummed records found anywhere in ``data`` (what a set-aside piece may still hold)."""
    count, pos = 0, data.find(MAGIC)
    while pos >= 0:
        parsed = _complete(data, pos)
        if isinstance(parsed, tuple):
            count += 1
            pos = data.find(MAGIC, parsed[1])
        else:
            pos = data.find(MAGIC, pos + 1)
    return count


class WriteAheadLog:
    """Appends records to the current file of ``folder/wal``; ``sync`` makes them durable.

    Group commit: ``write`` only hands a record to the file (the caller serializes writes); ``sync(seq)`` returns once
    every record through ``seq`` is on disk, and callers waiting at the same time share one fsync (the first one in
    syncs everything written so far, the others find their record covered), so concurrent writers pay for one fsync
    per group, not one each."""

    def __init__(self, folder: Path):
        self.dir = Path(folder) / WAL_DIR
        self.dir.mkdir(exist_ok=True)
        self._fd: int | None = None
        self._written = 0                     # seq of the last record written
        self._synced = 0                      # seq of the last record known on disk
        self._sync_lock = threading.Lock()    # one fsync at a time; the file is never closed during one
        self.fsyncs = 0

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

    def start_at(self, seq: int) -> None:
        """The records through ``seq`` are on disk already (read back at open)."""
        self._written = self._synced = seq

    def write(self, record: Record) -> None:
        """Writes ``record`` (one ``write`` call, so a crash leaves a prefix of it at worst); not yet durable."""
        if self._fd is None:
            path = self.dir / f"{record.seq:016d}.log"
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            fsync_dir(self.dir)
        data = memoryview(record.encode())
        while data:
            data = data[os.write(self._fd, data):]
        self._written = record.seq

    def sync(self, seq: int) -> None:
        """Returns once the records through ``seq`` are on disk (they survive a crash from then on)."""
        if self._synced >= seq:
            return
        with self._sync_lock:
            if self._synced >= seq:   # another caller's fsync covered it meanwhile
                return
            self._sync_locked()

    def _sync_locked(self) -> None:
        target = self._written
        if self._fd is not None:
            os.fsync(self._fd)
            self.fsyncs += 1
        self._synced = max(self._synced, target)

    def rotate(self) -> None:
        """Syncs and closes the current file: the next record starts a new one (a flush freezes the log here)."""
        self.close()

    def trim(self, through_seq: int) -> None:
        """Deletes the files of records up to ``through_seq``, once a committed manifest covers them (files end
        at a rotation, so a file named after a record <= through_seq holds no later one)."""
        for path in log_files(self.dir.parent):
            if int(path.stem) <= through_seq:
                path.unlink()
        fsync_dir(self.dir)

    def close(self) -> None:
        with self._sync_lock:
            if self._fd is not None:
                self._sync_locked()
                fd, self._fd = self._fd, None
                os.close(fd)
