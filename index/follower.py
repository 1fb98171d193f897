"""A reader that follows another process's writer through its write-ahead log, so acknowledged writes are searchable
in every process before a flush commits them (``Index.open(path, follow=True)``).

A follower's state is the latest committed snapshot plus the log records after its ``wal_seq``, applied the way the
writer applies them: new documents to an in-memory buffer (searched as exact in-memory segments), replaced and
deleted ones marked in copies of the segments' delete masks. Each refresh reads only the bytes appended since the
last one. A record is read once complete (the writer's one ``write`` call puts it in the page cache whole, before
its fsync and its acknowledgement); an incomplete tail is an append in progress, read at the next refresh. When a
newer generation is committed the follower starts again from it; when the records it needs next are gone (a commit
trimmed them), a newer manifest exists and it moves to that one. Every snapshot therefore holds a prefix of the
log, as the writer's own do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lsr.index.buffer import Buffer
from lsr.index.manifest import MANIFEST, file_identity
from lsr.index.quantize import scale_for
from lsr.index.snapshot import Snapshot
from lsr.index.wal import PUT, Record, log_files, read_records

_ATTEMPTS = 5   # moves to a newer manifest within one refresh before giving up until the next one


class Follower:
    def __init__(self, path: Path, verify: bool):
        self.path = path
        self._stat = file_identity(path / MANIFEST)
        self._start(Snapshot.open(path, verify))

    def _start(self, base: Snapshot) -> None:
        """Follows from the committed generation ``base``: an empty buffer, the log read from its ``wal_seq`` on."""
        m = base.manifest
        self._base = base
        self._scale = m.scale if m.scale is not None else (base.segments[0].scale if base.segments else None)
        self._buffer = Buffer(m.vocab_size)
        self._records: list[tuple[int, list[str], int | None]] = []   # (seq, ids, buffer batch) applied since
        self._dead: dict[str, np.ndarray] = {}    # copies of committed masks that later records changed
        self._seq = m.wal_seq
        self._position: tuple[Path, int] | None = None   # the file and offset after the last record applied
        self._snap = base

    def _move(self, base: Snapshot) -> None:
        """Moves onto ``base``, a newer committed generation. The records after its ``wal_seq`` that this follower
        has applied are kept, as their buffer batches: only their ids are looked up again, in the new segments.
        Reading them from the log again made the refresh after each flush take seconds under ingest (the records
        logged while the flush built its segment, decoded and indexed again)."""
        m = base.manifest
        kept = [r for r in self._records if r[0] > m.wal_seq] if m.generation > self._base.manifest.generation else []
        if not kept or kept[0][0] != m.wal_seq + 1:   # nothing applied past the commit: from the log
            self._start(base)
            return
        buffer, seq, position = self._buffer, self._seq, self._position
        self._start(base)
        first = min((b for _, _, b in kept if b is not None), default=len(buffer.batches))
        self._buffer = buffer.since(first)
        self._records = [(n, ids, None if b is None else b - first) for n, ids, b in kept]
        self._seq, self._position = seq, position
        for s, local in base.find_many([d for _, ids, _ in kept for d in ids]):
            self._kill(s, local)
        self._publish()

    @property
    def seq(self) -> int:
        return self._seq

    def snapshot(self) -> Snapshot:
        """The latest state: a newer committed generation, and the records appended since the last call.

        The segments a newer generation adds are opened with their sizes and arrays checked but not their sha256:
        the writer committed them moments ago, so their bytes come from the page cache it filled, and hashing them
        checks memory against itself, not the disk (the segments present when the follower opened are hashed, as
        any open does). Hashing a merge's output held the refresh after it, and with it every write's visibility,
        for a third of its time at least."""
        for _ in range(_ATTEMPTS):
            stat = file_identity(self.path / MANIFEST)
            if stat != self._stat:
                self._stat = stat
                self._move(Snapshot.open(self.path, verify=False, reuse={s.name: s for s in self._base.segments}))
            if self._tail():
                break
        return self._snap

    def _tail(self) -> bool:
        """Applies the complete records after ``seq``; False when they are no longer in the log (a newer
        generation trimmed them)."""
        files = log_files(self.path)
        if self._position is not None and self._position[0] in files:
            start, offset = files.index(self._position[0]), self._position[1]
        else:   # the file holding seq + 1: the last one named at or before it
            before = [i for i, f in enumerate(files) if int(f.stem) <= self._seq + 1]
            if files and not before:
                return False
            start, offset = (before[-1] if before else len(files)), 0
        applied = False
        for i in range(start, len(files)):
            try:
                records, end = read_records(files[i], offset if i == start else 0)
            except FileNotFoundError:   # trimmed by a commit since it was listed
                return False
            for record in records:
                if record.seq <= self._seq:
                    continue
                if record.seq != self._seq + 1:
                    return False
                self._apply(record)
                applied = True
            self._position = (files[i], end)
            if end < _size(files[i]):
                break   # an incomplete record: an append in progress (or a torn tail the next writer cuts)
        if applied:
            self._publish()
        return True

    def _apply(self, record: Record) -> None:
        for s, local in self._base.find_many([d for d in record.ids if not self._buffer.remove(d)]):
            self._kill(s, local)
        batch = None
        if record.op == PUT:
            if self._scale is None:   # as the writer fixes it: from an empty index's first documents
                self._scale = scale_for(record.vectors.values, self._base.manifest.quantization)
            batch = len(self._buffer.batches)
            self._buffer.put(record.ids, record.vectors, record.docs)
        self._records.append((record.seq, record.ids, batch))
        self._seq = record.seq

    def _kill(self, s: int, local: int) -> None:
        """Marks document ``local`` of committed segment ``s`` deleted, in this follower's copy of its mask."""
        name = self._base.segments[s].name
        if name not in self._dead:
            committed = self._base.dead[s]
            self._dead[name] = committed.copy() if committed is not None else np.zeros(
                self._base.segments[s].num_docs, dtype=bool)
        self._dead[name][local] = True

    def _publish(self) -> None:
        base = self._base
        segments = list(base.segments)
        dead = [self._dead[seg.name].copy() if seg.name in self._dead else d for seg, d in zip(segments, base.dead)]
        for seg, mask in self._buffer.segments(base.manifest.quantization, self._scale) if self._buffer else ():
            segments.append(seg)
            dead.append(mask)
        self._snap = Snapshot(base.manifest, segments, dead, seq=self._seq)



def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
