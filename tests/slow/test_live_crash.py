"""Crash test: a child process ingests documents and reports each acknowledgement; it is killed with SIGKILL at
random moments, during flushes and during merges included. After every kill the index must open, hold every
acknowledged write exactly once (the write in flight at the kill: wholly or not at all), and search like an index
built from scratch of the surviving documents.

Children are forked by a fork server that has the index modules imported and warmed up (tests/live_warmup.py), so
a round costs milliseconds, not an interpreter start and Numba's loading. Small flush thresholds, a merge policy of 3 segments per tier and a short sleep inside every
segment write make flushes and merges frequent and slow enough for kills to land in them; the child marks their
start and end in its acknowledgement file, so the test knows where each kill landed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from lsr.index import Index
from lsr.core.sparse import SparseBatch
from tests.live_check import Model, assert_matches_scratch, contents

KILLS = 50
FIRST = 60            # documents of the initial build
FLUSH_DOCS = 24
METHODS = ["exact", "bmp", "seismic"]


def make_ops(ids: list[str], texts: list[str], seed: int) -> list[dict]:
    """Adds of new documents (3..11 per batch), replacements (new text and another document's vector) and deletes
    of live ones, until every document has been added once."""
    rng = np.random.default_rng(seed)
    ops, live, row = [], list(ids[:FIRST]), FIRST
    while row < len(ids):
        r = rng.random()
        if r < 0.15 and len(live) > 20:
            gone = [str(i) for i in rng.choice(live, size=int(rng.integers(1, 5)), replace=False)]
            ops.append({"op": "delete", "ids": gone})
            live = [i for i in live if i not in gone]
        elif r < 0.3 and len(live) > 20:
            chosen = [str(i) for i in rng.choice(live, size=int(rng.integers(1, 4)), replace=False)]
            rows = [int(x) for x in rng.integers(0, len(ids), len(chosen))]
            ops.append({"op": "put", "ids": chosen, "rows": rows, "texts": [f"version {len(ops)} of {i}" for i in chosen]})
        else:
            m = min(int(rng.integers(3, 12)), len(ids) - row)
            ops.append({"op": "put", "ids": ids[row:row + m], "rows": list(range(row, row + m)),
                        "texts": texts[row:row + m]})
            live += ids[row:row + m]
            row += m
    return ops


def models_of(ops: list[dict], vectors: SparseBatch, docs) -> list[Model]:
    """models[i]: the documents after ops[:i]."""
    model = Model(vectors, docs)
    model.put([d.id for d in docs[:FIRST]], list(range(FIRST)), [d.text for d in docs[:FIRST]])
    out = [model.copy()]
    for op in ops:
        if op["op"] == "put":
            model.put(op["ids"], op["rows"], op["texts"])
        else:
            model.delete(op["ids"])
        out.append(model.copy())
    return out


def child(path: str, data: str, start: int, ack: str) -> None:
    """In a forked child: opens the index for writing (replaying its log), appends "O" to ``ack``, then runs
    ops[start:], appending "A i" once op i returns, and F/f, M/m around flushes and merges."""
    import sys

    import lsr.index.builder
    from lsr.index.merge import TieredMergePolicy
    from lsr.index.writer import Writer

    fd = os.open(ack, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    if "tests.live_warmup" in sys.modules:
        os.write(fd, b"W\n")

    def marked(fn, begin: str, end: str, when=lambda self: True):
        def wrapper(self, *a, **kw):
            mark = when(self)
            if mark:
                os.write(fd, begin.encode())
            try:
                return fn(self, *a, **kw)
            finally:
                if mark:
                    os.write(fd, end.encode())
        return wrapper

    write_segment = lsr.index.builder.write_segment

    def slow_write_segment(*a, **kw):
        time.sleep(0.02)
        return write_segment(*a, **kw)

    lsr.index.builder.write_segment = slow_write_segment
    Writer._flush = marked(Writer._flush, "F\n", "f\n", lambda self: len(self._buffer) > 0)
    Writer._merge = marked(Writer._merge, "M\n", "m\n")
    with np.load(data) as z:
        vectors = SparseBatch(z["indptr"], z["indices"], z["values"], int(z["vocab_size"]))
    ops = json.loads(Path(data).with_suffix(".json").read_text())
    idx = Index.open(path, writable=True, verify=False, lock_timeout=10, flush_docs=FLUSH_DOCS,
                     merge_policy=TieredMergePolicy(segments_per_tier=3, floor_docs=10))
    os.write(fd, b"O\n")
    for i in range(start, len(ops)):
        op = ops[i]
        if op["op"] == "put":
            from lsr.core.documents import Document

            idx.upsert(op["ids"], vectors.take(np.array(op["rows"])),
                       [Document(d, t) for d, t in zip(op["ids"], op["texts"])])
        else:
            idx.delete(op["ids"])
        os.write(fd, f"A {i}\n".encode())
    idx.close()
    os.write(fd, b"D\n")


def read_acks(ack: Path) -> tuple[list[int], str]:
    lines = ack.read_text().split("\n") if ack.exists() else []
    acked = [int(x[2:]) for x in lines if x.startswith("A ")]
    return acked, "".join(x for x in lines if x in ("W", "O", "F", "f", "M", "m", "D"))


def in_progress(markers: str, begin: str, end: str) -> bool:
    return markers.count(begin) > markers.count(end)


@pytest.mark.slow
def test_sigkill_loses_nothing_acknowledged(live_corpus, tmp_path):
    vectors, ids, docs, queries = live_corpus
    data = tmp_path / "data.npz"
    np.savez(data, indptr=vectors.indptr, indices=vectors.indices, values=vectors.values,
             vocab_size=vectors.vocab_size)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.live_warmup", child.__module__])
    rng = np.random.default_rng(0)
    kills, landed, runs, seed, warm = 0, {"flush": 0, "merge": 0}, 0, 0, 0
    deadline = time.monotonic() + 240

    def more() -> bool:
        """The kills asked for, and at least 5 landed in flushes and 5 in merges: a loaded host makes merges rarer
        (3 of 50 once, in CI beside the other xdist worker), so kills go on until they did, within the deadline."""
        return kills < KILLS or min(landed.values()) < 5

    while more():
        # a fresh index and script of operations; rounds resume the script where the last one stopped
        ops = make_ops(ids, [d.text for d in docs], seed)
        data.with_suffix(".json").write_text(json.dumps(ops))
        models = models_of(ops, vectors, docs)
        path = tmp_path / f"index-{seed}"
        Index.build(path, vectors.take(np.arange(FIRST)), ids[:FIRST], texts=docs[:FIRST], methods=METHODS)
        done, ref = 0, None
        while more() and done < len(ops):
            assert time.monotonic() < deadline, f"only {kills} kills ({landed}) in the time allowed"
            ack = tmp_path / f"ack-{runs}"
            runs += 1
            proc = ctx.Process(target=child, args=(str(path), str(data), done, str(ack)))
            proc.start()
            # kill at a random moment after the open, or just after a flush or a merge starts
            target = ("random", "flush", "merge")[runs % 3]
            wait_until = time.monotonic() + 10.0
            while time.monotonic() < wait_until and proc.is_alive():
                acked, markers = read_acks(ack)
                if target == "random" and "O" in markers:
                    time.sleep(rng.uniform(0, 0.6))
                    break
                # after the first acknowledgement, so that rounds move on through the script
                if target != "random" and acked and in_progress(markers, *{"flush": "Ff", "merge": "Mm"}[target]):
                    time.sleep(rng.uniform(0, 0.03))
                    break
                time.sleep(0.002)
            proc.kill()
            proc.join()
            acked, markers = read_acks(ack)
            assert acked == list(range(done, done + len(acked))), "acknowledgements out of order"
            finished = markers.endswith("D")
            # a child that finished its script may still be killed before it exits
            allowed = (0, -signal.SIGKILL) if finished else (-signal.SIGKILL,)
            assert proc.exitcode in allowed, f"the child failed ({proc.exitcode})"
            warm += "W" in markers
            if not finished:
                kills += 1
                landed["flush"] += in_progress(markers, "F", "f")
                landed["merge"] += in_progress(markers, "M", "m")
            a = done + len(acked)
            # the writer's open replays the log; every 5th round, file checksums too, and a reader opens the
            # committed generation
            if runs % 5 == 0:
                Index.open(path)
            idx = Index.open(path, writable=True, verify=runs % 5 == 0, background_merges=False, refresh_interval=None)
            present = {d: text for d, (text, _, _) in contents(idx).items()}
            candidates = [a] + ([a + 1] if a < len(ops) else [])   # the write in flight: all or nothing
            match = [i for i in candidates if present == {d: doc.text for d, (_, doc) in models[i].live.items()}]
            assert match, f"after op {a}: the index holds neither the acknowledged state nor the next one"
            if ref is None or match[-1] != done:
                ref = None   # a new state: build a new reference
            done = match[-1]
            models[done].assert_holds(idx)
            ref = assert_matches_scratch(idx, models[done], queries, tmp_path / "ref", ref=ref)
            hits = idx.search(queries, k=10, method="seismic").ids
            assert all(h in models[done].live for row in hits for h in row)
            idx.close(commit=False)
        seed += 1
    assert landed["flush"] >= 5 and landed["merge"] >= 5, landed
    assert warm == runs, "children started without the warmed-up fork server"
