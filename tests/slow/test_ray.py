"""On a local Ray cluster (2 CPUs, loopback, no dashboard), shared by the module: a job killed mid-encoding resumes
and ends with the one-process vectors and index; a sharded build served on Ray Serve returns one index's hits,
over a handle and over HTTP, and keeps answering when a replica of a shard is killed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

# a one-node cluster on loopback (cluster.connect sets this too, but ray reads it when first imported: here)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'lsr[ray]')")

from lsr.cluster.shards import disagreements  # noqa: E402
from lsr.cli import app  # noqa: E402
from lsr.core.corpus import read_corpus  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DOCS, CHUNK = 96, 12
runner = CliRunner()


@pytest.fixture(scope="module")
def cluster():
    from lsr.cluster.connect import connect

    connect(num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def subset(ir_datasets_home, tmp_path_factory):
    """The first 96 scifact documents as JSONL, and their index built in one process (`lsr index`, no Ray)."""
    folder = tmp_path_factory.mktemp("subset")
    path = folder / "scifact-96.jsonl"
    docs = list(itertools.islice(read_corpus("beir/scifact"), DOCS))
    path.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs))
    r = runner.invoke(app, ["index", str(path), "-o", str(folder / "one"), "--chunk-docs", str(CHUNK)])
    assert r.exit_code == 0, r.output
    return path, folder / "one", docs


def file_table(index_dir: Path) -> dict:
    manifest = json.loads((index_dir / "manifest.json").read_text())
    return {s["name"]: s["files"] for s in manifest["segments"]}


@pytest.fixture(scope="module")
def resumed(cluster, subset, tmp_path_factory):
    """`lsr index --ray` in a child process, SIGKILLed once some chunks are written, then run again to the end."""
    path = subset[0]
    out = tmp_path_factory.mktemp("resumed") / "idx"
    args = ["index", str(path), "-o", str(out), "--ray", "--ray-address", cluster, "--chunk-docs", str(CHUNK),
            "--keep-chunks"]
    proc = subprocess.Popen([sys.executable, "-m", "lsr", *args], cwd=REPO, start_new_session=True,
                            env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    log = out.with_name("idx.chunks") / "chunks.json"
    deadline = time.monotonic() + 300
    while True:
        done = json.loads(log.read_text())["done"] if log.exists() else {}
        if len(done) >= 2:
            os.killpg(proc.pid, signal.SIGKILL)   # mid-encoding: some chunks written, others not
            break
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "no chunk was encoded in time"
        time.sleep(0.02)
    proc.wait()
    done = len(json.loads(log.read_text())["done"])
    finished = (out / "manifest.json").exists()
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return out, done, finished, json.loads(r.stdout.strip().splitlines()[-1])


def test_killed_job_resumes_with_the_chunks_it_lacks_and_equals_one_process(resumed, subset, encoder):
    out, done, finished, summary = resumed
    _, one, docs = subset
    assert 2 <= done < DOCS // CHUNK and not finished
    assert summary["documents"] == DOCS and summary["resumed_chunks"] == done
    assert summary["encoded_chunks"] == DOCS // CHUNK - done

    from lsr.cluster.chunklog import ChunkLog

    work = out.with_name("idx.chunks")
    chunks = ChunkLog.open(work, json.loads((work / "chunks.json").read_text())["job"])
    for n in range(DOCS // CHUNK):   # bit for bit the vectors of a one-process encoding of the same chunk
        part = docs[n * CHUNK:(n + 1) * CHUNK]
        got, ref = chunks.load(n), encoder.encode_documents([d.full_text for d in part])
        assert list(got.ids) == [d.id for d in part]
        for a in ("indptr", "indices", "values"):
            assert np.array_equal(getattr(got.vectors, a), getattr(ref, a))
    assert file_table(out) == file_table(one)   # the same index as `lsr index` in one process, file for file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sharded_build_and_search_equal_one_index_and_survive_a_dead_replica(resumed, subset, tmp_path, encoder):
    import httpx
    import ir_datasets

    from lsr.cluster.indexer import index_on_ray
    from lsr.cluster.serve import deploy
    from lsr.cluster.shards import Layout
    from lsr.index import Index

    path, one_dir, docs = subset
    work = resumed[0].with_name("idx.chunks")   # the chunks encoded above: nothing is encoded again
    report = index_on_ray(str(path), tmp_path / "sh", shards=3, chunk_docs=CHUNK, work_dir=work)
    assert report.documents == DOCS and (report.encode.encoded, report.encode.skipped) == (0, DOCS // CHUNK)
    assert not work.exists()   # chunk files go once the index is built
    layout = Layout.read(tmp_path / "sh")
    one = Index.open(one_dir)
    assert [s.docs for s in layout.shards] == [36, 36, 24] and layout.scale == one.segments[0].scale

    port = free_port()
    front = deploy(tmp_path / "sh", replicas=2, cpus_per_replica=0.1, port=port)
    texts = [q.text for q in itertools.islice(ir_datasets.load("beir/scifact/test").queries_iter(), 20)]
    queries = encoder.encode_queries(texts)
    for r in range(len(queries)):
        assert not disagreements(front.search.remote(*queries.row(r), 10).result(), one, *queries.row(r), 10)

    url = f"http://127.0.0.1:{port}/search"
    qi, qv = queries.row(0)
    body = httpx.post(url, json={"indices": qi.tolist(), "values": qv.tolist(), "k": 5}, timeout=60).json()
    assert [(h["id"], h["score"]) for h in body["hits"]] == front.search.remote(qi, qv, 5).result()
    assert body["shards"] == 3 and [h["rank"] for h in body["hits"]] == [1, 2, 3, 4, 5]
    body = httpx.post(url, json={"query": texts[0], "k": 5}, timeout=60).json()
    alone = encoder.encode_queries([texts[0]]).row(0)   # encoded alone, as the front does (not in a batch of 20)
    assert [(h["id"], h["score"]) for h in body["hits"]] == front.search.remote(*alone, 5).result()
    for bad, status in [({"indices": [1], "values": [1.0, 2.0]}, 400), ({"indices": [1], "values": [1.0], "k": 0}, 422),
                        ({}, 422), ({"indices": [1], "values": [1.0], "method": "nope"}, 400),
                        ({"indices": [10 ** 9], "values": [1.0]}, 400), ({"query": "x", "extra": 1}, 422)]:
        assert httpx.post(url, json=bad, timeout=60).status_code == status, bad

    replicas = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("SERVE_REPLICA::lsr#shard-000#")]
    assert len(replicas) == 2
    ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)
    for r in range(len(queries)):   # the dead replica is routed around: every answer still right
        assert not disagreements(front.search.remote(*queries.row(r), 10).result(), one, *queries.row(r), 10)

    r = runner.invoke(app, ["serve-shards", "--index", str(one_dir)])
    assert r.exit_code == 2 and "not a sharded index" in r.output
