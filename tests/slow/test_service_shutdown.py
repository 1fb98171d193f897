"""SIGTERM under load on a real `lsr serve` (1 and 2 workers): clients send batch searches (half of them on a new
connection per request) and writes; the server gets SIGTERM mid-load. Every request a client had finished sending
before the signal must be answered, nothing may be answered 500, and every acknowledged write must be in the index
afterwards (bench/hardening.py's trial, which the red-team re-run repeats ten times per setting)."""

from __future__ import annotations

import pytest

from bench.hardening import sigterm_trial
from lsr.core.sample import stdlib_passages
from lsr.index import Index


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, encoder):
    docs = list(stdlib_passages(limit=48))
    path = tmp_path_factory.mktemp("shutdown") / "index"
    Index.build(path, encoder.encode_documents([d.full_text for d in docs]), [d.id for d in docs], texts=docs,
                model="splade-tiny", vocab_fingerprint=encoder.vocab_fingerprint, methods=["exact", "bmp"])
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_drops_nothing_sent_before_it(index_dir, workers):
    trial = sigterm_trial(index_dir, workers, searchers=8, writers=2, load_s=0.5)
    assert trial["sent_before_signal"] >= 10, trial
    assert trial["dropped_before_signal"] == 0, trial
    assert "500" not in trial["statuses"], trial
    assert trial["writes_acknowledged"] > 0 and trial["acknowledged_lost"] == 0, trial
    assert trial["exit_code"] in (0, -15), trial   # one worker: uvicorn re-raises the signal once shut down
