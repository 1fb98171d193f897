"""Concurrency: searches in threads of the writer's process and in another process while documents are added,
replaced and deleted and segments flushed and merged in the background. No search fails, and every result is the
exact top-k of one state the writes went through: in the writer's process the state after the snapshot's last
applied record (only acknowledged, fsynced writes), in the other process the state of a committed generation.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lsr.index import Index
from lsr.core.documents import Document
from lsr.index.merge import TieredMergePolicy
from lsr.index.quantize import dequantize, quantize
from tests.live_check import Model

FIRST = 100
K = 10


def make_ops(ids: list[str], rng) -> list[dict]:
    """Each op changes something, so op i is write-ahead-log record i + 1 (the build's log position is 0)."""
    ops, live, row = [], list(ids[:FIRST]), FIRST
    while row < len(ids):
        r = rng.random()
        if r < 0.2:
            gone = [str(i) for i in rng.choice(live, 3, replace=False)]
            ops.append({"op": "delete", "ids": gone})
            live = [i for i in live if i not in gone]
        elif r < 0.35:
            chosen = [str(i) for i in rng.choice(live, 3, replace=False)]
            ops.append({"op": "put", "ids": chosen, "rows": [int(x) for x in rng.integers(0, len(ids), 3)]})
        else:
            ops.append({"op": "put", "ids": ids[row:row + 12], "rows": list(range(row, min(row + 12, len(ids))))})
            live += ids[row:row + 12]
            row += 12
    return ops


def reader(path: str, queries: dict, out: str, stop: str) -> None:
    """In another process: searches the latest committed generation until ``stop`` exists."""
    from lsr.core.sparse import SparseBatch

    q = SparseBatch(np.array(queries["indptr"]), np.array(queries["indices"]), np.array(queries["values"]),
                    queries["vocab_size"])
    seen, error = [], None
    try:
        idx = Index.open(path, refresh_interval=0)
        Path(out + ".ready").touch()
        while not Path(stop).exists():
            res = idx.search(q, k=K, method=("exact", "bmp")[len(seen) % 2])
            seen.append({"seq": res.snapshot.manifest.wal_seq, "generation": res.snapshot.generation,
                         "scores": res.scores.tolist(), "ids": res.ids})
    except Exception as e:   # reported to the test, which fails on it
        error = repr(e)
    Path(out).write_text(json.dumps({"seen": seen, "error": error}))


class Truth:
    """Exact top-k of the model after each op, from float64 dot products of the quantized vectors."""

    def __init__(self, models: list[Model], queries, scale: float):
        self.models, self.scale, self.cache = models, scale, {}
        self.q = queries.to_scipy().astype(np.float64)
        vectors = models[0].vectors
        self.dense = vectors.to_scipy().astype(np.float64)
        self.dense.data = dequantize(quantize(vectors.values, "uint8", scale), scale).astype(np.float64)

    def state(self, seq: int) -> tuple[dict[str, int], np.ndarray, list[np.ndarray]]:
        """(id -> column, query x document scores, each query's top-k scores) of the state after op ``seq``."""
        if seq not in self.cache:
            model = self.models[seq]
            ids = list(model.live)
            s = np.asarray((self.q @ self.dense[[model.live[i][0] for i in ids]].T).todense())
            self.cache[seq] = ({d: i for i, d in enumerate(ids)}, s, [np.sort(row[row > 0])[::-1][:K] for row in s])
        return self.cache[seq]

    def check(self, seq: int, scores: np.ndarray, hits: list[list[str]]) -> None:
        where, s, best = self.state(seq)
        for r, row in enumerate(hits):
            assert len(row) == len(best[r]), f"state {seq}: {len(row)} hits, {len(best[r])} expected"
            assert all(d in where for d in row), f"state {seq}: {row} holds a document that is not live in it"
            got = scores[r][:len(row)]
            assert np.allclose(got, s[r][[where[d] for d in row]], rtol=1e-5, atol=1e-5), (seq, r, "wrong scores")
            assert np.allclose(got, best[r], rtol=1e-5, atol=1e-5), (seq, r, got, best[r], "not the top-k")


@pytest.mark.slow
def test_searches_during_ingestion_and_merges(live_corpus, tmp_path):
    vectors, ids, docs, queries = live_corpus
    path = tmp_path / "idx"
    Index.build(path, vectors.take(np.arange(FIRST)), ids[:FIRST], methods=["exact", "bmp"])
    ops = make_ops(ids, np.random.default_rng(3))
    model = Model(vectors, docs)
    model.put(ids[:FIRST], list(range(FIRST)), [""] * FIRST)
    models = [model.copy()]
    for op in ops:
        model.put(op["ids"], op["rows"], [""] * len(op["ids"])) if op["op"] == "put" else model.delete(op["ids"])
        models.append(model.copy())

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.live_warmup", reader.__module__])
    out, stop = str(tmp_path / "reader.json"), str(tmp_path / "stop")
    q = {"indptr": queries.indptr.tolist(), "indices": queries.indices.tolist(), "values": queries.values.tolist(),
         "vocab_size": queries.vocab_size}
    proc = ctx.Process(target=reader, args=(str(path), q, out, stop))
    proc.start()
    deadline = time.monotonic() + 60
    while not Path(out + ".ready").exists() and proc.is_alive():
        assert time.monotonic() < deadline, "the reader process did not start"
        time.sleep(0.01)

    idx = Index.open(path, writable=True, refresh_interval=0, flush_docs=30, background_flushes=False,
                     merge_policy=TieredMergePolicy(segments_per_tier=3, floor_docs=20))   # a flush every 30 writes
    acked, results, errors = [0], [], []
    done = threading.Event()

    def search_loop(method: str) -> None:
        try:
            while not done.is_set():
                before = acked[0]
                res = idx.search(queries, k=K, method=method, threads=1)
                # a snapshot holds acknowledged writes, or at most the one being acknowledged
                assert res.snapshot.seq <= acked[0] + 1 and res.snapshot.seq >= before
                results.append((res.snapshot.seq, res.scores.copy(), res.ids))
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=search_loop, args=(m,)) for m in ("exact", "bmp")]
    for t in threads:
        t.start()
    try:
        for i, op in enumerate(ops):
            if op["op"] == "put":
                idx.upsert(op["ids"], vectors.take(np.array(op["rows"])))
            else:
                idx.delete(op["ids"])
            acked[0] = i + 1
    finally:
        done.set()
        for t in threads:
            t.join()
        Path(stop).touch()
        proc.join(60)
    assert not errors, errors
    writer = idx._writer
    assert writer.flushes >= 5 and writer.merges >= 2, (writer.flushes, writer.merges)
    truth = Truth(models, queries, idx.scale)
    for seq, scores, hits in results:
        truth.check(seq, scores, hits)
    assert len({seq for seq, _, _ in results}) >= 10
    seen = json.loads(Path(out).read_text())
    assert seen["error"] is None, seen["error"]
    for entry in seen["seen"]:
        truth.check(entry["seq"], np.array(entry["scores"]), entry["ids"])
    assert len({e["generation"] for e in seen["seen"]}) >= 3
    idx.close()


def test_upkeep_keeps_up_with_churn(live_corpus, tmp_path):
    """Background flushes (by size and by age) and merges while batches are added, replaced and deleted whole, so
    segments empty while merges read them: no background step fails, and the index then holds exactly the model's
    documents, before and after a reopen."""
    vectors, ids, docs, _ = live_corpus
    path = tmp_path / "idx"
    Index.build(path, vectors.take(np.arange(FIRST)), ids[:FIRST], texts=docs[:FIRST], methods=["exact", "bmp"])
    model = Model(vectors, docs)
    model.put(ids[:FIRST], list(range(FIRST)), [d.text for d in docs[:FIRST]])
    idx = Index.open(path, writable=True, refresh_interval=0, flush_docs=25, flush_age=0.05,
                     merge_policy=TieredMergePolicy(segments_per_tier=2, floor_docs=10))
    rng = np.random.default_rng(11)
    batches, row = [ids[:FIRST]], FIRST

    def churned(stats: dict) -> bool:   # a loaded machine flushes less often: churn on until upkeep has run enough
        return stats["flushes"] >= 5 and stats["merges"] >= 2

    deadline = time.monotonic() + 120
    while row < len(ids) or not churned(idx.stats()):
        assert time.monotonic() < deadline, idx.stats()
        r = rng.random()
        if r < 0.5 and row < len(ids):
            batch = ids[row:row + 20]
            idx.upsert(batch, vectors.take(np.arange(row, row + len(batch))), docs[row:row + len(batch)])
            model.put(batch, list(range(row, row + len(batch))), [d.text for d in docs[row:row + len(batch)]])
            batches.append(batch)
            row += len(batch)
        elif r < 0.75:   # a whole earlier batch: often a whole segment
            batch = batches[rng.integers(len(batches))]
            idx.delete(batch)
            model.delete(batch)
        else:            # an earlier batch again, with other vectors and texts
            batch = batches[rng.integers(len(batches))]
            rows = [int(x) for x in rng.integers(0, len(ids), len(batch))]
            idx.upsert(batch, vectors.take(np.array(rows)), [Document(d, f"again {d}") for d in batch])
            model.put(batch, rows, [f"again {d}" for d in batch])
        time.sleep(float(rng.uniform(0, 0.03)))   # room for the flusher and the merger to run between writes
    stats = idx.stats()
    assert stats["flush_failures"] == 0 and stats["merge_failures"] == 0, stats
    idx.refresh()
    model.assert_holds(idx)
    idx.close()
    model.assert_holds(Index.open(path))
