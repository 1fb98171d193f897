"""Corpus chunks (read alone, equal to the same slice of the whole stream), the chunk log, sharded layouts and the
shared-scale sharded build, without Ray."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lsr.cluster.chunklog import ChunkLog, ChunkLogError
from lsr.cluster.indexer import BuildSettings, shard_vectors
from lsr.cluster.shards import Layout, split_contiguous
from lsr.index import Index, IndexCorrupt
from lsr.core.chunks import plan_chunks
from lsr.core.corpus import read_corpus
from lsr.core.documents import Document
from lsr.core.errors import CorpusError
from lsr.core.vectors import write_vectors
from tests.vectors import random_batch


def all_chunks(plan):
    return [d for c in plan.chunks for d in plan.read(c)]


def test_jsonl_chunks_read_alone_equal_the_stream(tmp_path):
    path = tmp_path / "c.jsonl"
    lines = [json.dumps({"id": i, "title": f"t{i}" if i % 3 else "", "text": f"text é {i}"}) for i in range(23)]
    lines[4:4] = ["", "   ", "\u3000"]            # blank lines (one of Unicode whitespace) are skipped, not counted
    path.write_bytes("\r\n".join(lines).encode("utf-8"))
    plan = plan_chunks(path, 5)
    assert plan.num_docs == 23 and [c.docs for c in plan.chunks] == [5, 5, 5, 5, 3]
    whole = list(read_corpus(path))
    assert all_chunks(plan) == whole and plan.read(plan.chunks[3]) == whole[15:20]
    assert plan.chunks[1].line == 9   # the 6th record: 4 records and 3 blank lines before it
    os.utime(path, ns=(1, 1))
    with pytest.raises(CorpusError, match="changed since"):
        plan.read(plan.chunks[0])


def test_bad_records_are_reported_with_their_line_from_any_chunk(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "c", "text": \n'
                     b'{"id": "d", "text": "\xff"}\n')
    plan = plan_chunks(path, 2)
    with pytest.raises(CorpusError, match=r"c.jsonl:3: malformed JSON"):
        plan.read(plan.chunks[1])
    path.write_bytes(b'{"id": "a", "text": "x"}\n{"id": "d", "text": "\xff"}\n')
    with pytest.raises(CorpusError, match=r"c.jsonl:2: not UTF-8"):
        list(read_corpus(path))
    with pytest.raises(ValueError, match="chunk_docs"):
        plan_chunks(path, 0)


def test_parquet_chunks_cross_row_groups(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"_id": [f"p{i}" for i in range(17)], "text": [f"x{i}" for i in range(17)]}), path,
                   row_group_size=3)
    plan = plan_chunks(path, 4)
    assert [c.docs for c in plan.chunks] == [4, 4, 4, 4, 1]
    assert all_chunks(plan) == list(read_corpus(path))
    assert [d.id for d in plan.read(plan.chunks[2])] == ["p8", "p9", "p10", "p11"]


def test_ir_datasets_chunks_seek(ir_datasets_home):
    plan = plan_chunks("beir/scifact", 1000)
    assert plan.num_docs == 5183 and len(plan.chunks) == 6
    whole = list(read_corpus("beir/scifact"))
    assert plan.read(plan.chunks[2]) == whole[2000:3000] and plan.read(plan.chunks[5]) == whole[5000:]
    with pytest.raises(CorpusError, match="neither a file"):
        plan_chunks("beir/no-such-set", 10)


def payload(n: int, seed: int) -> tuple[bytes, int, float]:
    import io

    v = random_batch(n, 10, seed)
    buf = io.BytesIO()
    write_vectors(buf, v, [f"{seed}-{i}" for i in range(n)], {"model": "toy"})
    return buf.getvalue(), v.nnz, float(v.values.max())


def test_chunk_log_resumes_the_same_job_only(tmp_path):
    job = {"corpus": {"source": "c.jsonl", "chunk_docs": 4}, "model": "m"}
    log = ChunkLog.open(tmp_path / "w", job)
    data, nnz, top = payload(4, 1)
    log.add(0, data, 4, nnz, top)
    (tmp_path / "w" / "chunk-000001.npz").write_bytes(b"half a file")   # a leftover the log does not list
    again = ChunkLog.open(tmp_path / "w", json.loads(json.dumps(job)))
    assert list(again.done) == [0] and again.missing([0, 1, 2]) == [1, 2]
    assert list(again.load(0).ids) == [f"1-{i}" for i in range(4)]
    with pytest.raises(ChunkLogError, match=r"another job \(differs in \['model'\]"):
        ChunkLog.open(tmp_path / "w", {**job, "model": "other"})
    (tmp_path / "w" / "chunk-000000.npz").write_bytes(data[:-1] + b"x")
    with pytest.raises(ChunkLogError, match="changed since it was written"):
        again.load(0)
    (tmp_path / "w" / "chunks.json").write_text("{")
    with pytest.raises(ChunkLogError, match="malformed"):
        ChunkLog.open(tmp_path / "w", job)


def test_split_contiguous():
    assert split_contiguous([5] * 10, 4) == [[0, 1, 2], [3, 4], [5, 6, 7], [8, 9]]
    assert split_contiguous([100, 1, 1, 1], 3) == [[0], [1], [2, 3]]
    assert split_contiguous([3, 3, 3], 3) == [[0], [1], [2]]
    with pytest.raises(ValueError, match="cannot split"):
        split_contiguous([1, 2], 3)


def test_shards_share_the_scale_and_score_like_one_index(tmp_path):
    docs = random_batch(300, 30, seed=3)
    ids = [f"d{i}" for i in range(300)]
    queries = random_batch(30, 8, seed=4)
    texts = [Document(i, f"text {i}") for i in ids]
    build = BuildSettings(reorder=False, methods=("exact",))
    one = Index.build(tmp_path / "one", docs, ids, texts=texts, reorder=False, methods=("exact",))
    layout = shard_vectors(tmp_path / "sh", docs, ids, 3, texts=texts, model="toy", build=build)
    assert [(s.docs, s.first) for s in layout.shards] == [(100, 0), (100, 100), (100, 200)]
    assert Layout.read(tmp_path / "sh") == layout and layout.scale == one.segments[0].scale
    shards = [Index.open(tmp_path / "sh" / s.name) for s in layout.shards]
    assert all(s.segments[0].scale == layout.scale for s in shards)
    assert shards[2].document("d250")["text"] == "text d250"
    for r in range(len(queries)):
        q = queries.row(r)
        ranked = sorted((-float(sc), s, rank, sh.doc_id(d)) for s, sh in enumerate(shards)
                        for rank, (sc, d) in enumerate(zip(*sh.search_one(*q, k=10))) if d >= 0)[:10]
        scores, numbers = one.search_one(*q, k=10)
        assert [(i, -s) for s, _, _, i in ranked] == [(one.doc_id(d), float(s)) for s, d in zip(scores, numbers)]
    with pytest.raises(FileExistsError, match="not empty"):
        shard_vectors(tmp_path / "sh", docs, ids, 3, build=build)
    shard_vectors(tmp_path / "sh", docs, ids, 2, build=build, overwrite=True)
    assert len(Layout.read(tmp_path / "sh").shards) == 2 and not (tmp_path / "sh" / "shard-002").exists()
    with pytest.raises(ValueError, match="not unique across the shards"):
        shard_vectors(tmp_path / "dup", docs, ids[:150] * 2, 2, build=build)
    with pytest.raises(ValueError, match="cannot split"):
        shard_vectors(tmp_path / "x", docs.take(np.arange(2)), ids[:2], 3, build=build)


def test_bad_layouts_and_scales(tmp_path):
    with pytest.raises(IndexCorrupt, match="not a sharded index"):
        Layout.read(tmp_path)
    (tmp_path / "shards.json").write_text('{"format": "lsr-sharded-index", "version": 1}')
    with pytest.raises(IndexCorrupt, match="malformed"):
        Layout.read(tmp_path)
    docs = random_batch(20, 10, seed=5)
    for scale, quantization in [(0.0, "uint8"), (float("nan"), "uint8"), (0.5, "float16")]:
        with pytest.raises(ValueError, match="scale must be"):
            Index.build(tmp_path / "i", docs, [str(i) for i in range(20)], scale=scale, quantization=quantization)


def test_cli_builds_shards_from_a_vectors_file(tmp_path):
    from typer.testing import CliRunner

    from lsr.cli import app
    from lsr.core.vectors import save_vectors

    docs = random_batch(40, 10, seed=6)
    save_vectors(tmp_path / "v.npz", docs, [f"d{i}" for i in range(40)], {"model": "toy"})
    runner = CliRunner()
    r = runner.invoke(app, ["index", str(tmp_path / "v.npz"), "-o", str(tmp_path / "sh"), "--shards", "2",
                            "--method", "exact"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"output": str(tmp_path / "sh"), "documents": 40,
                                                             "shards": 2}
    assert [s.docs for s in Layout.read(tmp_path / "sh").shards] == [20, 20]
    r = runner.invoke(app, ["index", str(tmp_path / "v.npz"), "-o", str(tmp_path / "x"), "--ray"])
    assert r.exit_code == 2 and "needs no encoding" in r.output
    r = runner.invoke(app, ["index", str(tmp_path / "v.npz"), "-o", str(tmp_path / "y"), "--shards", "41"])
    assert r.exit_code == 2 and "cannot split" in r.output
