"""On-disk snapshots (lsr.index.backup, lsr snapshot): taken while writes, flushes and merges go on, a restored
snapshot holds exactly the documents the index held at its point (its wal_seq) and answers searches as a build of
them does; snapshots survive the index's later merges; bad names, taken names, held locks are refused clearly."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lsr.cli import app as cli
from lsr.core.documents import Document
from lsr.index import Index, IndexLocked
from lsr.index import backup
from lsr.index.backup import BackupError, BackupExists, BackupNotFound
from lsr.index.merge import TieredMergePolicy
from tests.live_check import Model, assert_matches_scratch


@pytest.fixture()
def base(live_corpus, tmp_path):
    vectors, ids, docs, _ = live_corpus
    Index.build(tmp_path / "idx", vectors.take(np.arange(200)), ids[:200], texts=docs[:200], methods=["exact", "bmp"])
    model = Model(vectors, docs)
    model.put(ids[:200], list(range(200)), [d.text for d in docs[:200]])
    return tmp_path / "idx", model


def test_snapshots_taken_during_writes_restore_the_index_at_their_point(base, live_corpus, tmp_path):
    path, model = base
    vectors, ids, docs, queries = live_corpus
    idx = Index.open(path, writable=True, flush_docs=60, background_flushes=False,   # the writes take as long as
                     merge_policy=TieredMergePolicy(segments_per_tier=3, floor_docs=20))   # several snapshots
    models = {idx.stats()["wal_seq"]: model.copy()}   # the documents the index holds after each record
    taken: list[backup.BackupInfo] = []
    rng = np.random.default_rng(3)
    half = threading.Event()

    def write() -> None:
        for lo in range(200, 600, 20):
            rows = np.arange(lo, lo + 20)
            idx.add([ids[i] for i in rows], vectors.take(rows), [docs[i] for i in rows])
            model.put([ids[i] for i in rows], list(rows), [docs[i].text for i in rows])
            models[idx.stats()["wal_seq"]] = model.copy()
            gone = [str(i) for i in rng.choice(list(model.live), 5, replace=False)]
            assert idx.delete(gone) == 5
            model.delete(gone)
            models[idx.stats()["wal_seq"]] = model.copy()
            again = [str(i) for i in rng.choice(list(model.live), 3, replace=False)]
            rows = rng.integers(0, len(ids), len(again))
            idx.upsert(again, vectors.take(rows), [Document(d, f"replaced {d}") for d in again])
            model.put(again, list(rows), [f"replaced {d}" for d in again])
            models[idx.stats()["wal_seq"]] = model.copy()
            if lo >= 400:
                half.set()
            if lo % 100 == 0:   # a loaded machine may snapshot less often than this writes: wait for one here
                seq, deadline = idx.stats()["wal_seq"], time.monotonic() + 120
                while not any(b.wal_seq == seq for b in taken) and time.monotonic() < deadline:
                    time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive():   # snapshots one after another while the writer writes
        taken.append(backup.create(idx, tmp_path / "snaps"))
    writer.join()
    assert half.is_set() and len(taken) >= 3
    taken.append(backup.create(idx, tmp_path / "snaps", name="final"))
    idx.compact()   # the segments the snapshots link are retired from the index: the snapshots keep their files
    idx.close()

    listed = backup.list_backups(tmp_path / "snaps")
    assert [b.name for b in listed] == [b.name for b in sorted(taken, key=lambda b: (b.generation, b.created,
                                                                                       b.name))]
    seqs = sorted({b.wal_seq for b in taken})
    assert len(seqs) >= 3, seqs   # points spread over the run
    for info in {b.wal_seq: b for b in taken}.values():
        out = tmp_path / f"restored-{info.name}"
        assert backup.restore(tmp_path / "snaps", info.name, out) == info
        restored = Index.open(out)   # every file's sha256 checked
        assert restored.generation == info.generation and restored.num_docs == info.documents
        models[info.wal_seq].assert_holds(restored)   # exactly the acknowledged writes up to its point
        assert_matches_scratch(restored, models[info.wal_seq], queries, tmp_path / "ref", methods=("exact", "bmp"))
    final = backup.list_backups(tmp_path / "snaps")[-1]
    assert final.name == "final" and final.wal_seq == max(models)   # flushed first: every write is in


def test_restored_index_takes_writes_and_leaves_its_snapshot_unchanged(base, live_corpus, tmp_path):
    path, _ = base
    vectors, ids, docs, _ = live_corpus
    with Index.open(path, writable=True) as idx:
        idx.add([ids[300]], vectors.take(np.array([300])), [docs[300]])   # only in the log until create flushes
        info = backup.create(idx, tmp_path / "snaps", name="before")
    assert info.documents == 201 and info.segments == 2
    out = tmp_path / "restored"
    backup.restore(tmp_path / "snaps", "before", out)
    with Index.open(out, writable=True) as r:
        r.delete([ids[0]])
        r.add([ids[301]], vectors.take(np.array([301])), [docs[301]])
        r.compact()
    assert Index.open(out).num_docs == 201
    snap = Index.open(backup.find(tmp_path / "snaps", "before"))   # sha256 of every file still holds
    assert snap.num_docs == 201 and snap.document(ids[0])["text"] == docs[0].text


def test_bad_requests_are_refused_clearly(base, tmp_path):
    path, _ = base
    snaps = tmp_path / "snaps"
    idx = Index.open(path)
    backup.create(idx, snaps, name="one")
    with pytest.raises(BackupExists, match="'one' already exists"):
        backup.create(idx, snaps, name="one")
    for bad in ("", "../x", "a/b", ".hidden", "x.tmp", "x" * 65):
        with pytest.raises(BackupError, match="bad snapshot name"):
            backup.create(idx, snaps, name=bad)
    with pytest.raises(BackupNotFound, match="no snapshot named 'two'"):
        backup.restore(snaps, "two", tmp_path / "out")
    with pytest.raises(BackupError, match="exists; restore into a new folder"):
        backup.restore(snaps, "one", path)
    with Index.open(path, writable=True):
        with pytest.raises(IndexLocked):
            backup.restore(snaps, "one", path, overwrite=True)
    assert Index.open(path).num_docs == 200
    backup.delete(snaps, "one")
    assert backup.list_backups(snaps) == [] and not any(snaps.iterdir())
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != tmp_path.stat().st_dev:
        with pytest.raises(BackupError, match="on the index's file system"):
            backup.create(idx, shm / f"lsr-test-{os.getpid()}")


def test_cli(base, tmp_path):
    path, _ = base
    runner = CliRunner()
    r = runner.invoke(cli, ["snapshot", "create", "--index", str(path), "--name", "s1"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["documents"] == 200
    assert (path.parent / "idx.snapshots" / "s1" / "manifest.json").exists()   # the default repository
    r = runner.invoke(cli, ["snapshot", "list", "--index", str(path)])
    assert [json.loads(line)["name"] for line in r.stdout.splitlines()] == ["s1"]
    r = runner.invoke(cli, ["snapshot", "restore", "s1", "--index", str(path), "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert Index.open(tmp_path / "out").num_docs == 200
    with Index.open(path, writable=True):   # a server holding the writer lock
        r = runner.invoke(cli, ["snapshot", "create", "--index", str(path), "--wait", "0"])
        assert r.exit_code == 2 and "POST /indexes/NAME/snapshots" in r.output
    r = runner.invoke(cli, ["snapshot", "create", "--index", str(path), "--name", "../x"])
    assert r.exit_code == 2 and "bad snapshot name" in r.output
    assert runner.invoke(cli, ["snapshot", "delete", "s1", "--index", str(path)]).exit_code == 0
    r = runner.invoke(cli, ["snapshot", "delete", "s1", "--index", str(path)])
    assert r.exit_code == 2 and "no snapshot named 's1'" in r.output
