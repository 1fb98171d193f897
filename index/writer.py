"""The single writer of an index: durable adds, replacements and deletes; flushes to new segments; merges.

A write (``put`` or ``delete``; one at a time under the writer's mutex) goes through four steps:
  1. ``add`` refuses ids already present (``upsert`` replaces them);
  2. it is written to the write-ahead log as one record and applied: new documents go to the in-memory buffer;
     replaced or deleted ones are marked in their segment's deleted-documents mask, or dropped from the buffer;
  3. outside the mutex, the log is fsynced through the record (group commit: writes waiting at the same time share
     one fsync); from here it survives a crash, and the call returns (the acknowledgement). A snapshot syncs the log
     first, so searches never show a write that is not durable;
  4. once the buffer holds ``flush_docs`` documents, or its oldest write is ``flush_age`` seconds old, the flusher
     thread flushes it: frozen (a new buffer takes the next writes), written as a new segment without the mutex,
     and committed, with the masks as they were at the freeze, in a manifest whose ``wal_seq`` is the last record
     before the freeze; then the log files it covers are deleted. No flush nor merge runs on a writing thread.
A crash at any step leaves the last committed manifest plus the log; opening the writer again replays the records
after ``wal_seq``, so every acknowledged write is there exactly once (a record is all or nothing).

Every manifest holds exactly the state after its ``wal_seq``-th record, so readers in other processes only ever see
a prefix of the acknowledged writes. Hence two masks per segment: the committed one (as of ``wal_seq``, written as
delete bitmaps) and the current one (every applied record, what the writer's snapshots show).

``snapshot()`` publishes what searches see: the committed segments, copies of the current masks and the buffers'
in-memory segments (acknowledged writes only; each built once, from the documents that arrived since the last
snapshot, index/buffer.py). Readers in other processes open committed manifests only, so they
see writes from the flush that commits them.

Merges (index/merge.py) run on a background thread: the writer picks segments under its mutex, the merge builds
the documents live in their committed masks without it, and the mutex is taken again only to commit (never while a
flush is between freeze and commit), when the deletes made to the sources meanwhile are carried over to the merged
segment's two masks.

Retired segment folders are removed once no snapshot of this process uses them (other processes keep reading the
files they mapped: on POSIX an unlinked file lives while it is mapped) and, after a crash, at the next writer open.

Thread safety: all methods may be called from any thread. Writes are serialized; the mutex is held to write and
apply a record (not for its fsync), to freeze and commit, and to copy state into a snapshot, never while a segment
is built, so writes go on during flushes and merges. Searches never take it: an Index refreshes its snapshot on its
own thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np

from lsr.index.buffer import Buffer
from lsr.index.builder import build_segment
from lsr.index.deletes import write_deletes
from lsr.index.lock import WriterLock
from lsr.index.manifest import Manifest
from lsr.index.background import Background
from lsr.index.merge import TieredMergePolicy, live_documents
from lsr.index.quantize import scale_for
from lsr.index.segment import Segment
from lsr.index.snapshot import Snapshot
from lsr.index.wal import DELETE, PUT, Record, WriteAheadLog, to_replay
from lsr.core import validate
from lsr.core.documents import Document
from lsr.core.metadata import merge_kinds
from lsr.core.sparse import SparseBatch

log = logging.getLogger(__name__)


class Writer:
    def __init__(self, path: Path, lock: WriterLock, committed: Snapshot, flush_docs: int,
                 merge_policy: TieredMergePolicy, build_threads: int, flush_age: float | None = None):
        self.path = path
        self._lock = lock
        self._mutex = threading.RLock()
        self._idle = threading.Condition(self._mutex)   # notified when a flush or a merge ends
        m = self._manifest = committed.manifest
        self._segments = list(committed.segments)
        self._committed = {seg.name: (d if d is not None else np.zeros(seg.num_docs, dtype=bool))
                           for seg, d in zip(committed.segments, committed.dead)}   # as of wal_seq; never mutated
        self._dead = {name: mask.copy() for name, mask in self._committed.items()}   # as of the last record
        self._dirty: set[str] = set()       # current masks that differ from the committed ones
        self._touched: set[str] = set()     # masks changed since the last snapshot
        self._buffer = Buffer(m.vocab_size)
        self._frozen: Buffer | None = None  # the buffer a flush is writing
        self._frozen_gone: list[str] = []   # its documents deleted or replaced since the freeze
        self._seq = m.wal_seq
        self._scale = m.scale if m.scale is not None else (committed.segments[0].scale if committed.segments else None)
        self._configs = {name: m.build_params.get(name, {}) for name in m.methods}
        self._reorder = bool(m.build_params.get("reorder", True))
        self._kinds = dict(committed.kinds)   # metadata key -> kind, of every document written (lsr.core.metadata)
        self._wal = WriteAheadLog(path)
        self.flush_docs = flush_docs
        self.flush_age = flush_age
        self._pending_since: float | None = None   # monotonic time of the oldest write no flush has frozen
        self.policy = merge_policy
        self.build_threads = build_threads
        self._version = 0                   # grows with every change a snapshot would show
        self._published: tuple[int, Snapshot] | None = None
        self._published_dead: dict[str, np.ndarray | None] = {}
        self._snapshots: weakref.WeakSet[Snapshot] = weakref.WeakSet()
        self._retired: set[str] = set()     # segment folders to delete once no snapshot uses them
        self._merging: set[str] = set()     # segments a merge is reading
        self._building: set[str] = set()    # segments being written (not listed yet, but not leftovers)
        self._next_number = max([m.generation] + [int(s.name[4:]) for s in m.segments]) + 1
        self._merger: Background | None = None
        self._flusher: Background | None = None
        self.recovered_records = 0          # log records replayed at open
        self.torn_bytes = 0                 # bytes of a torn log tail cut off at open
        self.flushes = 0                    # commits by flushes, and merges committed, since open
        self.merges = 0

    # ---- open / close -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, verify: bool = True, lock_timeout: float = 0.0, flush_docs: int = 10_000,
             flush_age: float | None = None, merge_policy: TieredMergePolicy | None = None,
             background_merges: bool = True, background_flushes: bool = True,
             build_threads: int | None = None, upkeep_nice: int = 10) -> "Writer":
        """Takes the writer lock, removes what a crash left behind, replays the log after the manifest's wal_seq.
        ``flush_docs`` / ``flush_age``: the flusher thread commits the buffer once it holds that many documents, or
        once its oldest write is that many seconds old (None: by size only); ``background_flushes=False`` flushes a
        full buffer on the thread of the write that fills it instead (deterministic segments, for tests and bulk
        loads). ``build_threads``: Numba threads of flushes and merges (default: all cores but one, left to
        searches). ``upkeep_nice``: the flusher's and merger's threads run that much nicer than searches (Linux)."""
        validate.integer("flush_docs", flush_docs, 1)
        if flush_age is not None:
            validate.number("flush_age", flush_age, 0, low_open=True)
            if not background_flushes:
                raise ValueError("flush_age needs background_flushes: only the flusher thread flushes by age")
        if build_threads is not None:
            validate.integer("build_threads", build_threads, 1)
        validate.integer("upkeep_nice", upkeep_nice, 0, 19)
        build_threads = build_threads or max(1, (os.cpu_count() or 1) - 1)
        Manifest.read(path)   # a clear error for a folder that is not an index, before creating the lock file
        lock = WriterLock(path).acquire(lock_timeout)
        try:
            committed = Snapshot.open(path, verify)
            committed.manifest.remove_unlisted(path)
            writer = cls(path, lock, committed, flush_docs, merge_policy or TieredMergePolicy(), build_threads,
                         flush_age)
            writer._replay()
        except BaseException:
            lock.release()
            raise
        if background_flushes:
            writer._flusher = Background(writer.flush_due, "lsr-flush", flush_age / 4 if flush_age else None,
                                         nice=upkeep_nice)
        if background_merges:
            writer._merger = Background(writer.merge_once, "lsr-merge", nice=upkeep_nice)
            writer._merger.wake()
        return writer

    def _replay(self) -> None:
        found = self._wal.recover()
        self.torn_bytes = found.torn_bytes
        pending = to_replay(found.records, self._seq, lambda doc_id: self._find(doc_id) is not None, self._wal.dir)
        for record in pending:
            self._apply(record)
        self._wal.start_at(self._seq)
        self.recovered_records = len(pending)

    def close(self, commit: bool = True) -> None:
        """Stops merging (a running merge finishes), commits the buffer (unless ``commit`` is False: the log keeps
        it for the next writer) and releases the lock."""
        for loop in (self._flusher, self._merger):
            if loop is not None:
                loop.stop()
        self._flusher = self._merger = None
        try:
            if commit:
                self.flush()
            with self._mutex:
                self._collect()
        finally:
            self._wal.close()
            self._lock.release()

    def stats(self) -> dict:
        with self._mutex:
            return {"buffered": len(self._buffer) + len(self._frozen or ()), "flushes": self.flushes,
                    "merges": self.merges, "merging": len(self._merging) > 0, "wal_seq": self._seq,
                    "fsyncs": self._wal.fsyncs,
                    # background steps that failed (each logged with its traceback; the index stays as it was)
                    "flush_failures": self._flusher.failures if self._flusher else 0,
                    "merge_failures": self._merger.failures if self._merger else 0}

    # ---- writes -------------------------------------------------------------------------------------------------
    @property
    def scale(self) -> float | None:
        return self._scale

    def put(self, ids: list[str], vectors: SparseBatch, docs: list[Document | None] | None, replace: bool) -> None:
        """Adds (or, with ``replace``, adds or replaces) checked documents; durable on return (see the module's
        steps)."""
        with self._mutex:
            if not replace:
                present = [i for i in ids if self._find(i) is not None]
                if present:
                    raise ValueError(f"{len(present)} ids are already in the index (e.g. {present[:3]}); "
                                     "use upsert to replace documents")
            kinds = dict(self._kinds)   # a key keeps its kind: refused before anything is logged
            for i, d in enumerate(docs or ()):
                merge_kinds(kinds, d.metadata if d is not None else None, f"texts[{i}]")
            seq = self._log(Record(self._seq + 1, PUT, ids, vectors, docs))
            full = len(self._buffer) >= self.flush_docs
        self._wal.sync(seq)
        if full and self._flusher is not None:
            self._flusher.wake()
        elif full:
            self._flush(wait=False)

    def delete(self, ids: list[str]) -> int:
        """Deletes the live documents among ``ids``; returns their number. Durable on return."""
        with self._mutex:
            present = [i for i in dict.fromkeys(ids) if self._find(i) is not None]
            if not present:
                return 0
            seq = self._log(Record(self._seq + 1, DELETE, present))
        self._wal.sync(seq)
        return len(present)

    def _log(self, record: Record) -> int:
        self._wal.write(record)
        self._apply(record)
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        return record.seq

    def _apply(self, record: Record) -> None:
        for doc_id in record.ids:
            self._remove(doc_id)
        if record.op == PUT:
            if self._scale is None:   # an index created empty: its first documents fix the scale
                self._scale = scale_for(record.vectors.values, self._manifest.quantization)
            for d in record.docs or ():
                merge_kinds(self._kinds, d.metadata if d is not None else None)
            self._buffer.put(record.ids, record.vectors, record.docs)
        self._seq = record.seq
        self._version += 1

    def _find(self, doc_id: str) -> Segment | Buffer | None:
        """Where the live document ``doc_id`` is: a buffer, its segment, or None."""
        for buffer in (self._buffer, self._frozen):
            if buffer is not None and doc_id in buffer:
                return buffer
        for seg in self._segments:
            local = seg.number_of(doc_id)
            if local is not None and not self._dead[seg.name][local]:
                return seg
        return None

    def _remove(self, doc_id: str) -> None:
        where = self._find(doc_id)
        if isinstance(where, Buffer):
            where.remove(doc_id)
            if where is self._frozen:
                self._frozen_gone.append(doc_id)
        elif where is not None:
            self._dead[where.name][where.number_of(doc_id)] = True
            self._dirty.add(where.name)
            self._touched.add(where.name)

    # ---- flush / commit -----------------------------------------------------------------------------------------
    def flush(self) -> int:
        """Commits every write so far (the buffer as a new segment, and all deletes); returns the generation."""
        self._flush(wait=True)
        return self._manifest.generation

    def flush_due(self) -> bool:
        """The flusher's step: one flush when the buffer is full or its oldest write is ``flush_age`` old."""
        with self._mutex:
            since = self._pending_since
            due = len(self._buffer) >= self.flush_docs or (
                self.flush_age is not None and since is not None and time.monotonic() - since >= self.flush_age)
            if not due or self._frozen is not None:
                return False
        self._flush(wait=False)
        return True

    def _flush(self, wait: bool) -> None:
        """One flush; ``wait=False`` (a write crossing the threshold) leaves it to a flush already running."""
        with self._mutex:
            if self._frozen is not None:
                if not wait:
                    return
                while self._frozen is not None:
                    self._idle.wait()
            if not self._buffer and not self._dirty and self._manifest.wal_seq == self._seq:
                return
            frozen, self._buffer = self._buffer, Buffer(self._manifest.vocab_size)
            self._frozen, self._frozen_gone = frozen, []
            self._pending_since = None
            seq, masks = self._seq, {name: self._dead[name].copy() for name in self._dirty}
            self._dirty = set()
            self._wal.rotate()
            built = None
            if frozen:
                fwd, docs = frozen.forward(self._manifest.quantization, self._scale)
                name = self._new_name()
                self._building.add(name)
        try:
            if frozen:
                info, _ = build_segment(self.path, name, fwd, docs, reorder=self._reorder,
                                        configs=self._configs, threads=self.build_threads)
                built = self._open_segment(info)
            with self._mutex:
                segments = list(self._segments)
                if built is not None:
                    segments.append(built)
                    masks[built.name] = np.zeros(built.num_docs, dtype=bool)
                    current = masks[built.name].copy()
                    current[[built.number_of(d) for d in self._frozen_gone]] = True
                    self._dead[built.name] = current
                    if current.any():
                        self._dirty.add(built.name)
                self._commit(segments, wal_seq=seq, masks=masks)
                self._frozen = None   # its documents are in the committed segment now, in the same step
                self.flushes += 1
                self._version += 1
        except BaseException:
            with self._mutex:   # nothing committed: the frozen documents and deletes are pending again
                self._frozen = None
                if built is not None:
                    self._dead.pop(built.name, None)
                    masks.pop(built.name, None)
                self._dirty |= set(masks)
                self._buffer.absorb(frozen)
            raise
        finally:
            with self._mutex:
                if frozen:
                    self._building.discard(name)
                self._idle.notify_all()
        with self._mutex:
            self._wal.trim(seq)
        if self._merger is not None:
            self._merger.wake()

    def _open_segment(self, info) -> Segment:
        """A segment this writer has just written (sizes and arrays checked; its checksums were just computed)."""
        m = self._manifest
        return Segment.open(self.path, info, m.vocab_size, m.quantization, verify=False)

    def _new_name(self) -> str:
        self._next_number += 1
        return f"seg-{self._next_number - 1:06d}"

    def _commit(self, segments: list[Segment], wal_seq: int, masks: dict[str, np.ndarray]) -> None:
        """Writes a manifest of ``segments`` at ``wal_seq``; ``masks`` are their committed masks that changed (new
        segments included). A segment whose committed mask covers it all is dropped, unless a merge is reading it:
        that merge's commit replaces it (and finds its masks in the tables)."""
        generation = self._manifest.generation + 1
        listed = {info.name: info for info in self._manifest.segments}
        keep, infos = [], []
        for seg in segments:
            dead = masks.get(seg.name, self._committed.get(seg.name))
            count = int(dead.sum())
            if count == seg.num_docs and seg.name not in self._merging:
                continue
            info = listed[seg.name] if seg.name not in masks else replace(
                seg.info, deletes=write_deletes(self.path, seg.name, generation, dead) if count else None)
            keep.append(seg)
            infos.append(info)
        manifest = replace(self._manifest, generation=generation, segments=infos, wal_seq=wal_seq, scale=self._scale)
        manifest.write(self.path)
        self._committed.update(masks)
        kept = {seg.name for seg in keep}
        for name in list(self._dead):
            if name not in kept:
                self._retired.add(name)
                for table in (self._dead, self._committed):
                    table.pop(name, None)
                self._dirty.discard(name)
        self._manifest, self._segments = manifest, keep
        self._collect()

    def _collect(self) -> None:
        """Deletes retired segment folders no snapshot uses any more, and delete bitmaps no longer listed."""
        in_use = {seg.name for snap in list(self._snapshots) for seg in snap.segments}
        gone = {name for name in self._retired if name not in in_use}
        self._retired -= gone
        building = self._building | {f"{name}.tmp" for name in self._building}
        try:   # cleaning up is not part of any commit: a failure here is only logged (the next open retries)
            self._manifest.remove_unlisted(self.path, keep=self._retired | in_use | building)
        except OSError:
            log.exception("removing unlisted files from %s failed", self.path)
        for name in gone:
            shutil.rmtree(self.path / name, ignore_errors=True)

    # ---- snapshots ----------------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """What searches see: committed segments, current deletes, and the buffers as an in-memory segment."""
        with self._mutex:
            self._wal.sync(self._seq)   # searches show durable writes only
            if self._published is not None and self._published[0] == self._version:
                return self._published[1]
            for seg in self._segments:
                if seg.name in self._touched or seg.name not in self._published_dead:
                    mask = self._dead[seg.name]
                    self._published_dead[seg.name] = mask.copy() if mask.any() else None
            self._touched.clear()
            segments = list(self._segments)
            dead = [self._published_dead[seg.name] for seg in segments]
            for buffer in (self._frozen, self._buffer):
                for seg, mask in buffer.segments(self._manifest.quantization, self._scale) if buffer else ():
                    segments.append(seg)
                    dead.append(mask)
            snap = Snapshot(self._manifest, segments, dead, seq=self._seq)
            self._published = (self._version, snap)
            self._published_dead = {seg.name: self._published_dead[seg.name] for seg in self._segments}
            self._snapshots.add(snap)
            self._collect()
            return snap

    # ---- merges -------------------------------------------------------------------------------------------------
    def merge_once(self) -> bool:
        """Runs the merge the policy picks, if any; returns whether there was one."""
        with self._mutex:
            candidates = [(s.name, s.num_docs, int(self._dead[s.name].sum())) for s in self._segments
                          if s.name not in self._merging]
            names = self.policy.select(candidates)
            if not names:
                return False
            self._merging |= set(names)
        self._merge(names)
        return True

    def compact(self) -> int:
        """Flushes, waits for running merges, then merges every segment into one; returns the generation."""
        self._flush(wait=True)
        with self._mutex:
            while self._merging:
                self._idle.wait()
            names = [s.name for s in self._segments]
            if len(names) <= 1 and not any(self._dead[n].any() for n in names):
                return self._manifest.generation
            self._merging |= set(names)
        self._merge(names)
        return self._manifest.generation

    def _merge(self, names: list[str]) -> None:
        """Builds one segment of the live documents of ``names`` (marked merging), then commits it in their place."""
        with self._mutex:
            sources = [s for s in self._segments if s.name in names]
            start = [self._committed[s.name] for s in sources]
            name = self._new_name()
            self._building.add(name)
        try:
            fwd, docs = live_documents(sources, start, self._manifest.vocab_size)
            info, order = build_segment(self.path, name, fwd, docs, reorder=self._reorder, configs=self._configs,
                                        threads=self.build_threads)
            merged = self._open_segment(info)
            with self._mutex:
                while self._frozen is not None:   # a flush between freeze and commit holds the masks it commits
                    self._idle.wait()
                self._commit_merge(sources, start, merged, order)
        finally:
            with self._mutex:
                self._merging -= set(names)
                self._building.discard(name)
                self._idle.notify_all()

    def _commit_merge(self, sources: list[Segment], start: list[np.ndarray], merged: Segment,
                      order: np.ndarray) -> None:
        """Replaces ``sources`` by ``merged``, carrying over the deletes made to them while it was built."""
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))   # input row -> merged document number
        committed = np.zeros(merged.num_docs, dtype=bool)
        current = np.zeros(merged.num_docs, dtype=bool)
        base = 0
        for seg, was in zip(sources, start):
            alive = np.flatnonzero(~was)
            committed[position[base + np.flatnonzero(self._committed[seg.name][alive])]] = True
            current[position[base + np.flatnonzero(self._dead[seg.name][alive])]] = True
            base += len(alive)
        self._dead[merged.name] = current
        if not np.array_equal(current, committed):
            self._dirty.add(merged.name)
        self._touched.add(merged.name)
        names = {s.name for s in sources}
        first = next(i for i, s in enumerate(self._segments) if s.name in names)
        segments = self._segments[:first] + [merged] + [s for s in self._segments[first:] if s.name not in names]
        self._commit(segments, wal_seq=self._manifest.wal_seq, masks={merged.name: committed})
        self._version += 1
        self.merges += 1
