"""``lsr bench snapshots``: what an on-disk snapshot (lsr.index.backup) costs, on real vectors.

1. Idle: the time of ``backup.create`` of an index against the peer, a copy of the same folder (``shutil.copytree``;
   as is, and with every file and folder fsynced, as a backup must be; neither would be consistent under writes),
   and the bytes each adds to the disk.
2. Under writes: one writer thread adds the rest of the documents in batches through ``Index.add`` (each fsynced),
   flushing every ``flush_docs``, while the main thread alternates periods of taking snapshots back to back with
   periods of none (``period_s`` each). Each write is labelled by whether a snapshot ran during any of it, so both
   latencies come from the same index, the same minutes and the same load. Every snapshot is then checked: it opens
   with every file's sha256 verified, and holds as many documents as the index at its ``wal_seq``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from lsr.core.atomic import fsync_dir
from lsr.core.vectors import load_vectors
from lsr.index import Index, backup


def _ms(values: list[float]) -> dict:
    a = np.asarray(values) * 1000
    if not len(a):
        return {"n": 0}
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


def _durable_copy(source: str, dest: str) -> None:
    """The peer's copy of one file, fsynced as a snapshot's files are (they are the index's, already durable)."""
    shutil.copy2(source, dest)
    with open(dest, "rb") as f:
        os.fsync(f.fileno())


def _disk_bytes(folder: Path) -> int:
    """Bytes of the files only this folder holds (a hard-linked file costs nothing more)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.stat().st_nlink == 1)


def run(docs_path: Path, output: Path, *, start: int, batch: int, flush_docs: int, period_s: float,
        methods: tuple[str, ...]) -> dict:
    vf = load_vectors(docs_path)
    docs, ids = vf.vectors, [str(i) for i in vf.ids]
    result: dict = {"config": {"docs": str(docs_path), "documents": len(docs), "start": start, "batch": batch,
                               "flush_docs": flush_docs, "period_s": period_s, "methods": list(methods),
                               "cpus": os.cpu_count(), "machine": platform.machine(),
                               "load_before": os.getloadavg()[0]}}
    with tempfile.TemporaryDirectory(dir=output.parent) as tmp:   # snapshots are hard links: one file system
        work = Path(tmp)
        rows = np.arange(min(start, len(docs)))
        Index.build(work / "idx", docs.take(rows), ids[:len(rows)], methods=methods)
        t = time.perf_counter()
        shutil.copytree(work / "idx", work / "copy")
        copy_s = time.perf_counter() - t
        t = time.perf_counter()
        shutil.copytree(work / "idx", work / "durable", copy_function=_durable_copy)
        for folder in [work / "durable", *[p for p in (work / "durable").rglob("*") if p.is_dir()]]:
            fsync_dir(folder)
        durable_s = time.perf_counter() - t
        t = time.perf_counter()
        info = backup.create(Index.open(work / "idx", verify=False), work / "snaps", name="idle")
        snap_s = time.perf_counter() - t
        result["idle"] = {"documents": info.documents, "index_bytes": info.bytes, "copy_ms": round(copy_s * 1000, 2),
                          "durable_copy_ms": round(durable_s * 1000, 2), "snapshot_ms": round(snap_s * 1000, 2),
                          "copy_over_snapshot": round(copy_s / snap_s, 2),
                          "durable_copy_over_snapshot": round(durable_s / snap_s, 2),
                          "copy_new_bytes": _disk_bytes(work / "copy"),
                          "snapshot_new_bytes": _disk_bytes(work / "snaps" / "idle")}
        shutil.rmtree(work / "copy")
        shutil.rmtree(work / "durable")

        idx = Index.open(work / "idx", writable=True, flush_docs=flush_docs)
        counts = {idx.stats()["wal_seq"]: idx.num_docs}
        snapshotting = threading.Event()
        writes: dict[bool, list[float]] = {True: [], False: []}
        done = threading.Event()

        def write() -> None:
            for lo in range(len(rows), len(docs), batch):
                part = np.arange(lo, min(lo + batch, len(docs)))
                during = snapshotting.is_set()
                t0 = time.perf_counter()
                idx.add([ids[i] for i in part], docs.take(part))
                elapsed = time.perf_counter() - t0
                writes[during or snapshotting.is_set()].append(elapsed)
                counts[idx.stats()["wal_seq"]] = counts[max(counts)] + len(part)
            done.set()

        writer = threading.Thread(target=write)
        t_ingest = time.perf_counter()
        writer.start()
        taken, times, on = [], [], False
        while not done.is_set():
            phase_end = time.perf_counter() + period_s
            while not done.is_set() and time.perf_counter() < phase_end:
                if on:
                    snapshotting.set()
                    t0 = time.perf_counter()
                    taken.append(backup.create(idx, work / "snaps"))
                    times.append(time.perf_counter() - t0)
                    snapshotting.clear()
                else:
                    time.sleep(0.01)
            on = not on
        writer.join()
        ingest_s = time.perf_counter() - t_ingest
        idx.close()
        for b in taken:   # each is whole (sha256) and holds the index as of its wal_seq
            snap = Index.open(backup.find(work / "snaps", b.name), verify=True)
            assert snap.num_docs == counts[b.wal_seq] == b.documents, (b, counts.get(b.wal_seq))
        result["under_writes"] = {
            "documents_added": len(docs) - len(rows), "ingest_docs_per_s": round((len(docs) - len(rows)) / ingest_s),
            "snapshots": len(taken), "snapshot": _ms(times), "write_alone": _ms(writes[False]),
            "write_during_snapshot": _ms(writes[True]), "all_checked": True}
        w = result["under_writes"]
        if w["write_alone"]["n"] and w["write_during_snapshot"]["n"]:
            w["p50_ratio"] = round(w["write_during_snapshot"]["p50_ms"] / w["write_alone"]["p50_ms"], 2)
            w["p99_ratio"] = round(w["write_during_snapshot"]["p99_ms"] / w["write_alone"]["p99_ms"], 2)
    result["config"]["load_after"] = os.getloadavg()[0]
    output.write_text(json.dumps(result, indent=1) + "\n")
    return result
