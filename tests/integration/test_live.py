"""Live updates: add, replace and delete without rebuilding; results equal a from-scratch build; readers on
consistent generations; one writer; bad writes refused; a torn log tail and damaged files detected."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
import time

import numpy as np
import pytest

from lsr.index import Index, IndexCorrupt, VocabularyMismatch
from lsr.index.errors import IndexLocked, ReadOnlyIndex
from lsr.index.merge import TieredMergePolicy
from lsr.index.wal import PUT, Record, log_files
from lsr.core.documents import Document
from lsr.core.sparse import SparseBatch
from tests.live_check import Model, assert_matches_scratch, assert_same_topk

SMALL_TIERS = TieredMergePolicy(segments_per_tier=3, floor_docs=20)


def texts_of(docs, rows):
    return [docs[i] for i in rows]


@pytest.fixture()
def base(live_corpus, tmp_path):
    """An index built from the first 200 documents, and the model of it."""
    vectors, ids, docs, _ = live_corpus
    Index.build(tmp_path / "idx", vectors.take(np.arange(200)), ids[:200], texts=docs[:200],
                methods=["exact", "bmp", "seismic"])
    model = Model(vectors, docs)
    model.put(ids[:200], list(range(200)), [d.text for d in docs[:200]])
    return tmp_path / "idx", model


def ingest(idx: Index, model: Model, live_corpus, rng) -> None:
    """Adds documents 200..599 in batches, replaces some (new text, another document's vector), deletes some."""
    vectors, ids, docs, _ = live_corpus
    for lo in range(200, 600, 40):
        rows = np.arange(lo, lo + 40)
        idx.add([ids[i] for i in rows], vectors.take(rows), texts_of(docs, rows))
        model.put([ids[i] for i in rows], list(rows), [docs[i].text for i in rows])
        live = list(model.live)
        gone = [str(i) for i in rng.choice(live, 8, replace=False)]
        assert idx.delete(gone + ["never-added"]) == 8
        model.delete(gone)
        again = [str(i) for i in rng.choice(list(model.live), 4, replace=False)]
        rows = rng.integers(0, len(ids), len(again))
        idx.upsert(again, vectors.take(rows), [Document(d, f"replaced {d}") for d in again])
        model.put(again, list(rows), [f"replaced {d}" for d in again])


def test_writes_equal_a_build_from_scratch(base, live_corpus, tmp_path):
    path, model = base
    queries = live_corpus[3]
    idx = Index.open(path, writable=True, refresh_interval=0, flush_docs=90, merge_policy=SMALL_TIERS)
    ingest(idx, model, live_corpus, np.random.default_rng(1))
    # near-real-time: the acknowledged writes are searchable before any flush covers them all
    assert len(idx._writer._buffer) > 0
    model.assert_holds(idx)
    doc_id = next(iter(model.live))
    terms, weights = idx.vector(doc_id)
    np.testing.assert_allclose(weights, model.vectors.row(model.live[doc_id][0])[1], atol=idx.scale / 2 + 1e-6)
    ref = assert_matches_scratch(idx, model, queries, tmp_path / "ref")
    idx.flush()
    model.assert_holds(idx)
    assert_matches_scratch(idx, model, queries, tmp_path / "ref", ref=ref)
    assert 1 < len(idx.segments) and sum(s.deletes is not None for s in idx.manifest.segments) >= 1
    # seismic over several segments with deletes: only live documents, and (the documents of these tests tie
    # often, so scores rather than ids) nearly the exact top-k's score mass
    exact = ref.search(queries, k=10)
    got = idx.search(queries, k=10, method="seismic")
    assert all(h in model.live for row in got.ids for h in row)
    assert np.mean(got.scores.sum(1) / exact.scores.sum(1)) >= 0.99
    idx.compact()
    assert len(idx.segments) == 1 and idx.manifest.segments[0].deletes is None
    model.assert_holds(idx)
    assert_matches_scratch(idx, model, queries, tmp_path / "ref", ref=ref)
    idx.close()
    # reopened (read-only): the committed state, the same results
    again = Index.open(path)
    model.assert_holds(again)
    assert_matches_scratch(again, model, queries, tmp_path / "ref", ref=ref)


def test_search_one_and_batches_across_segments_with_deletes(base, live_corpus, tmp_path):
    path, model = base
    vectors, ids, docs, queries = live_corpus
    idx = Index.open(path, writable=True, refresh_interval=0, flush_docs=50, background_merges=False)
    ingest(idx, model, live_corpus, np.random.default_rng(2))
    batch = idx.search(queries, k=7, threads=2)
    for r in range(len(queries)):
        scores, numbers = idx.search_one(*queries.row(r), k=7, snapshot=batch.snapshot)
        np.testing.assert_array_equal(scores, batch.scores[r])
        assert [batch.snapshot.doc_id(d) for d in numbers if d >= 0] == batch.ids[r]
    # numbers of a pinned snapshot still resolve after the index has moved on
    snap = idx.snapshot()
    _, numbers = idx.search_one(*queries.row(0), k=3, snapshot=snap)
    first = snap.doc_id(numbers[0])
    idx.delete([first])
    idx.add(["late"], vectors.take(np.arange(1)))
    assert idx.snapshot() is not snap and snap.document(int(numbers[0]))["id"] == first
    model.delete([first])
    model.put(["late"], [0], [None])
    # a k larger than the live documents returns them all, deleted ones never
    everything = idx.search(queries, k=10_000)
    assert all(len(row) == len(set(row)) and set(row) <= set(model.live) for row in everything.ids)
    ref = model.reference(tmp_path / "ref", idx.scale)
    assert_same_topk(idx.search(queries, k=3, method="bmp", alpha=1.0), ref.search(queries, k=40), 3)
    idx.close()


def test_readers_keep_their_generation_until_refreshed(base, live_corpus):
    path, model = base
    vectors, ids, docs, queries = live_corpus
    reader = Index.open(path)
    follower = Index.open(path, refresh_interval=0)
    before = reader.search(queries, k=10)
    writer = Index.open(path, writable=True, refresh_interval=None)
    writer.add(ids[200:260], vectors.take(np.arange(200, 260)), docs[200:260])
    writer.delete(ids[:30])
    # the writer's own snapshot moves only on refresh (refresh_interval=None), and readers in other processes
    # (here: other Index objects) only see committed generations
    assert writer.num_docs == 200
    assert writer.refresh() and writer.num_docs == 230
    assert follower.num_docs == 200 and follower.generation == reader.generation
    generation = writer.flush()
    assert reader.num_docs == 200 and reader.generation == generation - 1
    np.testing.assert_array_equal(reader.search(queries, k=10).scores, before.scores)
    assert follower.num_docs == 230 and follower.generation == generation      # refresh_interval=0: the latest
    with pytest.raises(KeyError):
        follower.document(ids[0])
    assert reader.document(ids[0])["id"] == ids[0]                             # still there for the old reader
    assert reader.refresh() and reader.num_docs == 230 and not reader.refresh()
    writer.close()


def test_the_refresh_thread_moves_twice_per_interval(base, monkeypatch):
    """refresh_interval bounds the time to searchable: a write acknowledged just after one move is searched after
    the next, half an interval later, with the other half left for the move's own work."""
    import lsr.index.index as module

    periods = []
    monkeypatch.setattr(module, "_refresh_loop", lambda index, period, stop: periods.append(period))
    path, _ = base
    for kw in ({"writable": True}, {"follow": True}):
        Index.open(path, refresh_interval=0.8, **kw).close()
    assert periods == [0.4, 0.4]


def test_one_writer_at_a_time(base, live_corpus):
    path, _ = base
    vectors, ids, docs, _ = live_corpus
    writer = Index.open(path, writable=True)
    with pytest.raises(IndexLocked, match="open for writing"):
        Index.open(path, writable=True)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:   # another process is refused too, and reads fine
        assert pool.apply(_try_open_writable, (str(path),)) == "IndexLocked"
    with pytest.raises(IndexLocked):
        Index.build(path, vectors.take(np.arange(5)), ids[:5], overwrite=True)
    assert Index.open(path).num_docs == 200
    writer.close()
    Index.open(path, writable=True).close()


def _try_open_writable(path: str) -> str:
    try:
        Index.open(path, writable=True).close()
        return "opened"
    except IndexLocked:
        assert Index.open(path).num_docs == 200
        return "IndexLocked"


def test_bad_writes_are_refused_and_nothing_is_written(base, live_corpus):
    path, _ = base
    vectors, ids, docs, _ = live_corpus
    with pytest.raises(ReadOnlyIndex, match="writable=True"):
        Index.open(path).add(ids[300:301], vectors.take(np.arange(300, 301)))
    with pytest.raises(ValueError, match="writable=True"):
        Index.open(path, flush_docs=10)
    with pytest.raises(ValueError, match="refresh_interval"):
        Index.open(path, refresh_interval=-1)
    with pytest.raises(ValueError, match="flush_docs"):
        Index.open(path, writable=True, flush_docs=0)
    with pytest.raises(ValueError, match="segments_per_tier"):
        TieredMergePolicy(segments_per_tier=1)
    idx = Index.open(path, writable=True, refresh_interval=0)
    seq = idx._writer._seq
    one = vectors.take(np.arange(300, 301))
    bad = [
        (lambda: idx.add(ids[:1], one), ValueError, "already in the index"),
        (lambda: idx.add(["a", "a"], vectors.take(np.arange(2))), ValueError, "unique"),
        (lambda: idx.add(["a", "b"], one), ValueError, "ids for"),
        (lambda: idx.add([""], one), ValueError, "non-empty"),
        (lambda: idx.add(["a"], SparseBatch(one.indptr, one.indices, one.values, 77)), VocabularyMismatch, "terms"),
        (lambda: idx.add(["a"], SparseBatch(one.indptr, one.indices, np.full(one.nnz, np.nan), one.vocab_size)),
         ValueError, "document vectors"),
        (lambda: idx.add(["a"], one, [Document("b", "x")]), ValueError, "has id"),
        (lambda: idx.add(["a"], "not vectors"), TypeError, "SparseBatch"),
        (lambda: idx.delete("a"), TypeError, "sequence of ids"),
    ]
    for call, error, message in bad:
        with pytest.raises(error, match=message):
            call()
    assert idx._writer._seq == seq and idx.num_docs == 200
    idx.add([], vectors.take(np.arange(0)))            # nothing to add: nothing written
    assert idx.delete(["never-added"]) == 0 and idx._writer._seq == seq
    idx.close()


def test_an_empty_index_takes_its_scale_from_the_first_documents(live_corpus, tmp_path):
    vectors, ids, docs, queries = live_corpus
    idx = Index.create(tmp_path / "new", vectors.vocab_size, model="splade-tiny", methods=["exact", "bmp"],
                       refresh_interval=0)
    assert idx.num_docs == 0 and idx.search(queries, k=5).ids == [[]] * len(queries)
    idx.add(ids[:50], vectors.take(np.arange(50)), docs[:50])
    assert idx.scale == pytest.approx(float(vectors.take(np.arange(50)).values.max()) / 255)
    idx.close(commit=False)          # the log alone holds the documents: the scale must come back the same
    again = Index.open(tmp_path / "new", writable=True, refresh_interval=0)
    model = Model(vectors, docs)
    model.put(ids[:50], list(range(50)), [d.text for d in docs[:50]])
    model.assert_holds(again)
    assert_matches_scratch(again, model, queries, tmp_path / "ref")
    again.close()
    assert Index.open(tmp_path / "new").manifest.scale == again.scale
    with pytest.raises(FileExistsError):
        Index.create(tmp_path / "new", vectors.vocab_size)


def test_old_segments_are_deleted_when_no_snapshot_uses_them(base, live_corpus):
    path, _ = base
    vectors, ids, docs, queries = live_corpus
    idx = Index.open(path, writable=True, refresh_interval=0, background_merges=False)
    idx.add(ids[200:260], vectors.take(np.arange(200, 260)), docs[200:260])
    idx.flush()
    held = idx.search(queries, k=5)                    # a result keeps its snapshot (and segments) alive
    old = {s.name for s in idx.segments}
    idx.compact()
    assert old.isdisjoint(s.name for s in idx.segments)
    assert all((path / name).is_dir() for name in old)
    assert held.ids == [[held.snapshot.doc_id(d) for d in row if d >= 0] for row in held.docs]
    del held
    gc.collect()
    idx.refresh()
    idx.add(ids[260:261], vectors.take(np.arange(260, 261)))
    idx.flush()
    assert not any((path / name).exists() for name in old)
    idx.close()
    listed = {s.name for s in Index.open(path).manifest.segments}
    assert {p.name for p in path.iterdir() if p.is_dir() and p.name.startswith("seg-")} == listed


def test_a_failed_flush_loses_nothing(base, live_corpus, tmp_path, monkeypatch):
    import lsr.index.writer as writer_module

    path, model = base
    vectors, ids, docs, queries = live_corpus
    idx = Index.open(path, writable=True, refresh_interval=0, background_merges=False)
    idx.add(ids[200:260], vectors.take(np.arange(200, 260)), docs[200:260])
    idx.delete(ids[:5])
    generation = idx.generation

    def broken(*a, **kw):
        idx.upsert([ids[201]], vectors.take(np.arange(1)), [Document(ids[201], "during the flush")])
        raise OSError("disk full")

    monkeypatch.setattr(writer_module, "build_segment", broken)
    with pytest.raises(OSError, match="disk full"):
        idx.flush()
    monkeypatch.undo()
    assert idx.generation == generation
    model.put(ids[200:260], list(range(200, 260)), [d.text for d in docs[200:260]])
    model.delete(ids[:5])
    model.put([ids[201]], [0], ["during the flush"])
    model.assert_holds(idx)
    idx.flush()
    model.assert_holds(idx)
    idx.close()
    model.assert_holds(Index.open(path))



def test_a_segment_emptied_by_deletes_during_its_merge(base, live_corpus, monkeypatch):
    """Every document of a segment a merge is reading gets deleted and committed before the merge commits: the
    merge still commits, and the emptied segment's documents stay deleted (it used to fail the merge with a
    KeyError: the flush had dropped the emptied segment from the writer's tables under the merge)."""
    import lsr.index.writer as writer_module

    path, model = base
    vectors, ids, docs, _ = live_corpus
    idx = Index.open(path, writable=True, refresh_interval=0, background_merges=False)
    idx.add(ids[200:260], vectors.take(np.arange(200, 260)), docs[200:260])
    idx.flush()
    assert len(idx.segments) == 2
    build = writer_module.build_segment

    def deleting_first(*a, **kw):   # the merge's build: meanwhile the second segment empties, and that commits
        monkeypatch.setattr(writer_module, "build_segment", build)
        assert idx.delete(ids[200:260]) == 60
        idx.flush()
        return build(*a, **kw)

    monkeypatch.setattr(writer_module, "build_segment", deleting_first)
    idx.compact()
    model.put(ids[200:260], list(range(200, 260)), [d.text for d in docs[200:260]])
    model.delete(ids[200:260])
    idx.refresh()
    assert len(idx.segments) == 1
    model.assert_holds(idx)
    idx.close()
    model.assert_holds(Index.open(path))

# ---- corruption -------------------------------------------------------------------------------------------------
def test_torn_log_tail_is_ignored_up_to_the_last_complete_record(base, live_corpus, caplog):
    path, model = base
    vectors, ids, docs, queries = live_corpus
    idx = Index.open(path, writable=True)
    idx.add(ids[200:210], vectors.take(np.arange(200, 210)), docs[200:210])
    idx.add(ids[210:220], vectors.take(np.arange(210, 220)), docs[210:220])
    idx.close(commit=False)
    (log,) = log_files(path)
    size = log.stat().st_size
    with open(log, "r+b") as f:     # the second record loses its last bytes, as if the writer died mid-append
        f.truncate(size - 7)
    with caplog.at_level(logging.WARNING, logger="lsr.index.wal"):
        idx = Index.open(path, writable=True, refresh_interval=0)
    assert "torn write-ahead-log tail" in caplog.text and idx._writer.torn_bytes > 0
    assert idx._writer.recovered_records == 1
    model.put(ids[200:210], list(range(200, 210)), [d.text for d in docs[200:210]])
    model.assert_holds(idx)
    # writing goes on after the cut; a second reopen sees a clean log
    idx.add(ids[210:215], vectors.take(np.arange(210, 215)), docs[210:215])
    idx.close(commit=False)
    with open(log_files(path)[-1], "ab") as f:   # a header-sized scrap of a record that never got written
        f.write(b"LSRW\x00\x01")
    idx = Index.open(path, writable=True, refresh_interval=0)
    model.put(ids[210:215], list(range(210, 215)), [d.text for d in docs[210:215]])
    model.assert_holds(idx)
    assert idx._writer.torn_bytes == 6
    idx.close()


def test_damaged_log_record_followed_by_good_ones_is_refused(base, live_corpus):
    path, _ = base
    vectors, ids, docs, _ = live_corpus
    idx = Index.open(path, writable=True)
    idx.add(ids[200:210], vectors.take(np.arange(200, 210)))
    idx.add(ids[210:220], vectors.take(np.arange(210, 220)))
    idx.close(commit=False)
    (log,) = log_files(path)
    data = bytearray(log.read_bytes())
    data[40] ^= 0xFF                  # inside the first record: the second one is intact
    log.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt, match="damaged write-ahead-log record at offset 0"):
        Index.open(path, writable=True)


def test_damaged_segment_and_delete_files_are_reported(base, live_corpus):
    path, _ = base
    vectors, ids, docs, _ = live_corpus
    idx = Index.open(path, writable=True, background_merges=False)
    idx.add(ids[200:260], vectors.take(np.arange(200, 260)), docs[200:260])
    idx.delete(ids[:10])
    idx.close()
    manifest = Index.open(path).manifest
    target = path / manifest.segments[-1].name / "post_values.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    for opener in (lambda: Index.open(path), lambda: Index.open(path, writable=True)):
        with pytest.raises(IndexCorrupt, match="post_values.npy: checksum mismatch"):
            opener()
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    bitmap = path / next(s.deletes["file"] for s in manifest.segments if s.deletes)
    bitmap.write_bytes(b"\xff" + bitmap.read_bytes()[1:])
    with pytest.raises(IndexCorrupt, match="deleted-documents bitmap"):
        Index.open(path)


def test_merge_policy_tiers_and_deletes():
    policy = TieredMergePolicy(segments_per_tier=3, floor_docs=100)
    assert policy.select([("a", 50, 0), ("b", 80, 0)]) is None
    assert policy.select([("a", 50, 0), ("b", 80, 0), ("c", 20, 0), ("d", 90, 0)]) == ["c", "a", "b"]
    # tier 1 (300..899 live) fills up independently of tier 0
    assert policy.select([("a", 400, 0), ("b", 500, 0), ("c", 350, 0), ("d", 10, 0)]) == ["c", "a", "b"]
    assert policy.select([("a", 5000, 2000), ("b", 80, 0)]) == ["a"]        # 40 % deleted: rewritten alone
    assert policy.select([("a", 5000, 1000), ("b", 80, 0)]) is None


# ---- CLI --------------------------------------------------------------------------------------------------------
def test_cli_append_and_compact(base, live_corpus, tmp_path):
    import json

    from typer.testing import CliRunner

    from lsr.cli import app
    from lsr.core.vectors import save_vectors

    path, model = base
    vectors, ids, docs, queries = live_corpus
    runner = CliRunner()
    more = tmp_path / "more.npz"
    save_vectors(more, vectors.take(np.arange(200, 300)), ids[200:300])
    for _ in range(2):   # the second time, the same ids are replaced: nothing is duplicated
        r = runner.invoke(app, ["index", str(more), "--output", str(path), "--append"])
        assert r.exit_code == 0, r.output
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        assert summary["documents"] == 300 and summary["added"] == 100
    r = runner.invoke(app, ["index", "--output", str(path), "--compact"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["segments"] == 1
    model.put(ids[200:300], list(range(200, 300)), [None] * 100)
    idx = Index.open(path)
    assert sorted(d for d in idx.doc_ids) == sorted(model.live)
    assert idx.document(ids[250])["text"] == "" and idx.document(ids[5])["text"] == docs[5].text
    assert_same_topk(idx.search(queries, k=10), model.reference(tmp_path / "ref", idx.scale).search(queries, k=40), 10)

    other = tmp_path / "other.npz"
    save_vectors(other, SparseBatch(*[getattr(vectors.take(np.arange(3)), a) for a in ("indptr", "indices", "values")],
                                    vectors.vocab_size + 1), ["x", "y", "z"])
    holder = Index.open(path, writable=True)
    bad = [
        (["index", "--output", str(path), "--append"], "needs a CORPUS"),
        (["index", str(more), "--output", str(path), "--compact"], "takes no CORPUS"),
        (["index", str(more), "--output", str(path), "--append", "--overwrite"], "do not go with"),
        (["index", "--output", str(tmp_path / "none"), "--compact"], "not an index"),
        (["index", str(more), "--output", str(path), "--append"], "open for writing"),
    ]
    for args, message in bad:
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and message in r.output, (args, r.output)
    holder.close()
    r = runner.invoke(app, ["index", str(other), "--output", str(path), "--append"])
    assert r.exit_code == 2 and "another vocabulary" in r.output, r.output
    assert Index.open(path).num_docs == 300


def test_a_follower_sees_acknowledged_writes_before_their_commit(base, live_corpus, tmp_path):
    """Another process's view (``Index.open(path, follow=True)``): each refresh holds exactly the writer's
    acknowledged writes, read from its log before any flush commits them; across a flush that trims the log it moves
    to the new generation; a record still being appended is read once complete."""
    path, model = base
    vectors, ids, docs, queries = live_corpus
    writer = Index.open(path, writable=True, refresh_interval=None, flush_docs=10**6, background_merges=False)
    reader = Index.open(path, follow=True, refresh_interval=None)
    ingest(writer, model, live_corpus, np.random.default_rng(3))
    assert reader.num_docs == 200 and reader.refresh() and writer.refresh()
    assert reader.generation == 1 and reader.snapshot().seq == writer.snapshot().seq > 0
    model.assert_holds(reader)
    assert_matches_scratch(reader, model, queries, tmp_path / "ref", methods=("exact",))
    writer.flush()
    writer.add(["after-flush"], vectors.take(np.arange(1)), [Document("after-flush", docs[0].text)])
    model.put(["after-flush"], [0], [docs[0].text])
    assert reader.refresh() and reader.generation == writer.generation == 2
    model.assert_holds(reader)
    writer.close(commit=False)
    (last,) = log_files(path)
    record = Record(reader.snapshot().seq + 1, PUT, ["late"], vectors.take(np.arange(1, 2)),
                    [Document("late", docs[1].text)]).encode()
    with open(last, "ab") as f:
        f.write(record[:len(record) // 2])
    assert not reader.refresh()   # half a record: an append in progress
    with open(last, "ab") as f:
        f.write(record[len(record) // 2:])
    assert reader.refresh() and reader.document("late")["text"] == docs[1].text


def test_a_follower_hashes_what_it_opens_not_the_segments_committed_while_it_follows(base, live_corpus,
                                                                                        monkeypatch):
    """A follower checks every file's sha256 when it opens, but a segment the writer commits while it follows is
    checked by size and arrays only (its bytes are the page cache the writer just filled); a truncated one is still
    refused."""
    import lsr.index.segment as segment_module

    path, _ = base
    vectors, ids, docs, _ = live_corpus
    hashed = []
    real = segment_module.sha256_file
    monkeypatch.setattr(segment_module, "sha256_file", lambda p: hashed.append(p.parent.name) or real(p))
    follower = Index.open(path, follow=True, refresh_interval=None)
    first = set(hashed)
    assert first and all(name.startswith("seg-") for name in first)
    writer = Index.open(path, writable=True, refresh_interval=None)
    hashed.clear()
    for lo, hi in ((200, 260), (260, 300)):
        writer.add(ids[lo:hi], vectors.take(np.arange(lo, hi)), docs[lo:hi])
        writer.flush()
        if lo == 200:
            assert follower.refresh() and follower.num_docs == 260
    assert [name for name in hashed if not name.endswith(".tmp")] == []   # the writer hashes what it builds
    newest = max((p for p in path.iterdir() if p.name.startswith("seg-")), key=lambda p: p.stat().st_mtime_ns)
    victim = newest / "post_values.npy"
    victim.write_bytes(victim.read_bytes()[:-8])
    with pytest.raises(IndexCorrupt, match="truncated"):
        follower.refresh()
    writer.close()


def test_a_follower_keeps_the_records_a_new_commit_does_not_hold(base, live_corpus, monkeypatch):
    """A flush commits at record 1 while records 2-4 come in, and the follower has applied all four: on the new
    generation it keeps 2-4 as it had them, reading none of them from the log again, and still ends where the
    writer is: record 3 replaces a document the flush committed, record 4 deletes one of the first build."""
    import lsr.index.follower as follower_module
    import lsr.index.writer as writer_module

    path, model = base
    vectors, ids, docs, _ = live_corpus
    writer = Index.open(path, writable=True, refresh_interval=None, flush_docs=10**6, background_merges=False)
    reader = Index.open(path, follow=True, refresh_interval=None)
    rows = np.arange(200, 220)
    writer.add(ids[200:220], vectors.take(rows), docs[200:220])                                  # record 1
    model.put(ids[200:220], list(rows), [d.text for d in docs[200:220]])
    build = writer_module.build_segment

    def writing_meanwhile(*a, **kw):   # the flush's build: records 2-4 arrive, and the follower reads them
        monkeypatch.setattr(writer_module, "build_segment", build)
        writer.add(ids[220:230], vectors.take(np.arange(220, 230)), docs[220:230])                  # record 2
        writer.upsert([ids[205]], vectors.take(np.arange(7, 8)), [Document(ids[205], "replaced")])  # record 3
        writer.delete([ids[3]])                                                                      # record 4
        assert reader.refresh() and reader.snapshot().seq == 4 and reader.generation == 1
        return build(*a, **kw)

    monkeypatch.setattr(writer_module, "build_segment", writing_meanwhile)
    writer.flush()
    assert writer.manifest.wal_seq == 1
    model.put(ids[220:230], list(range(220, 230)), [d.text for d in docs[220:230]])
    model.put([ids[205]], [7], ["replaced"])
    model.delete([ids[3]])
    read = []
    real = follower_module.read_records

    def counted(*a):
        records, end = real(*a)
        read.extend(r.seq for r in records)
        return records, end

    monkeypatch.setattr(follower_module, "read_records", counted)
    assert reader.refresh() and reader.generation == 2 and reader.snapshot().seq == 4
    assert read == []   # 2-4 kept, not read again
    model.assert_holds(reader)
    writer.add(["after"], vectors.take(np.arange(1)), [Document("after", docs[0].text)])           # record 5
    model.put(["after"], [0], [docs[0].text])
    assert reader.refresh() and read == [5]
    model.assert_holds(reader)
    writer.close()
    model.assert_holds(Index.open(path))


def test_concurrent_writes_share_fsyncs_and_all_are_durable(base, live_corpus, monkeypatch):
    """Group commit: on a slow disk (each fsync 20 ms), writes waiting at once share one fsync; every acknowledged
    write is in the log (a writer reopened on it without any commit finds them all)."""
    path, model = base
    vectors, ids, docs, _ = live_corpus
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (time.sleep(0.02), fsync(fd)))
    idx = Index.open(path, writable=True, refresh_interval=None, background_merges=False)
    start = threading.Barrier(8)

    def write(t: int) -> None:
        start.wait()
        for j in range(5):
            rows = np.arange(200 + 25 * t + 5 * j, 200 + 25 * t + 5 * j + 5)
            idx.add([ids[i] for i in rows], vectors.take(rows), texts_of(docs, rows))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert idx.stats()["wal_seq"] == 40 and idx.stats()["fsyncs"] < 30   # one each: 40
    idx.close(commit=False)
    model.put(ids[200:400], list(range(200, 400)), [d.text for d in docs[200:400]])
    with Index.open(path, writable=True, refresh_interval=None) as again:   # closed: no merge left running
        model.assert_holds(again)
