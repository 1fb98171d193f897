"""Shared fixtures: the embedded model (loaded once) and a private copy of the offline BEIR data."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.eval_data import shared_ir_datasets_path

_HOME: Path | None = None


def pytest_configure(config) -> None:
    """Copies the shared BEIR data to a private IR_DATASETS_HOME before anything imports ir_datasets
    (its dataset paths are fixed at import, and it writes caches beside the data)."""
    global _HOME
    source = shared_ir_datasets_path()
    if source is None:
        return
    _HOME = Path(tempfile.mkdtemp(prefix="lsr-ir-datasets-"))
    shutil.copytree(source, _HOME, dirs_exist_ok=True)
    for p in _HOME.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    os.environ["IR_DATASETS_HOME"] = str(_HOME)


def pytest_collection_modifyitems(config, items) -> None:
    """The folder a test lives in is its kind: tests/unit, tests/integration, tests/slow."""
    for item in items:
        kind = Path(str(item.fspath)).parent.name
        if kind in ("unit", "integration", "slow"):
            item.add_marker(kind)


def pytest_unconfigure(config) -> None:
    if _HOME is not None:
        shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def ir_datasets_home() -> Path:
    if _HOME is None:
        pytest.skip("the offline BEIR data (../shared/ir_datasets) is not on this machine")
    return _HOME


@pytest.fixture(scope="session")
def encoder():
    from lsr.encoding.encoder import Encoder

    return Encoder.from_pretrained("splade-tiny", device="cpu")


SCIFACT_DOCS, SCIFACT_QUERIES, SCIFACT_MAX_LENGTH = 300, 60, 96


@pytest.fixture(scope="session")
def scifact_sample(encoder):
    """Real splade-tiny vectors of shipped data, made once per session: the first 300 scifact documents ("title
    text", 96 tokens) and its first 60 judged test queries, encoded on one torch thread (on 2 shared cores two
    threads wait on each other: 10-13 s against 30-40 s at load 9). Returns (document vectors, ids, query vectors)."""
    import torch

    from tests.eval_data import read_beir

    corpus, queries, qrels = read_beir("scifact")
    corpus = corpus[:SCIFACT_DOCS]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        docs = encoder.encode_documents([f"{d.get('title', '')} {d['text']}".strip() for d in corpus],
                                        max_length=SCIFACT_MAX_LENGTH)
        vectors = encoder.encode_queries([queries[q] for q in qrels][:SCIFACT_QUERIES])
    finally:
        torch.set_num_threads(threads)
    return docs, [str(d["_id"]) for d in corpus], vectors
