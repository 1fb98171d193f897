"""`lsr encode --chunks` killed with SIGKILL mid-run, then run again: only the missing chunks are encoded and the
vectors equal an uninterrupted run's bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from lsr.core.vectors import load_vectors
from lsr.encoding.pipeline import encode_corpus


def test_a_killed_encoding_resumes_with_the_missing_chunks_only(tmp_path, encoder):
    corpus = tmp_path / "c.jsonl"
    words = ["heart", "river", "protein", "music", "winter", "cell", "tower", "letter", "glacier", "harbour"]
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": " ".join(words[(i * 7 + j) % 10] for j in range(
        10 + i % 20))}) + "\n" for i in range(240)))
    chunks, out = tmp_path / "chunks", tmp_path / "v.npz"
    cmd = [sys.executable, "-m", "lsr", "encode", str(corpus), "-o", str(out), "--chunks", str(chunks),
           "--chunk-docs", "16", "--max-length", "32", "--device", "cpu"]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        log = chunks / "chunks.json"
        if log.exists() and json.loads(log.read_text() or '{"done": {}}')["done"]:
            break
        time.sleep(0.02)
    assert child.poll() is None, "the encoding ended before a kill could land"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    done_at_kill = len(json.loads((chunks / "chunks.json").read_text())["done"])
    assert 1 <= done_at_kill < 15 and not out.exists()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout.strip().splitlines()[-1])
    assert report["resumed_chunks"] == done_at_kill and report["encoded_chunks"] == 15 - done_at_kill
    want = encode_corpus(str(corpus), encoder, max_length=32, batch_size=32, chunk=16).vectors
    got = load_vectors(out).vectors
    assert all(np.array_equal(getattr(want, k), getattr(got, k)) for k in ("indptr", "indices", "values"))
