"""Shared fixtures: the embedded model (loaded once) and a private copy of the offline BEIR data."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = [Path(p) for p in [os.environ.get("LSR_SHARED_IR_DATASETS", "")] if p]
_CANDIDATES += [REPO.parent / "shared" / "ir_datasets", Path("/work/shared/ir_datasets")]
_HOME: Path | None = None


def pytest_configure(config) -> None:
    """Copies the shared BEIR data to a private IR_DATASETS_HOME before anything imports ir_datasets
    (its dataset paths are fixed at import, and it writes caches beside the data)."""
    global _HOME
    source = next((p for p in _CANDIDATES if (p / "beir").is_dir()), None)
    if source is None:
        return
    _HOME = Path(tempfile.mkdtemp(prefix="lsr-ir-datasets-"))
    shutil.copytree(source, _HOME, dirs_exist_ok=True)
    for p in _HOME.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    os.environ["IR_DATASETS_HOME"] = str(_HOME)


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
    from lsr.encoder import Encoder

    return Encoder.from_pretrained("splade-tiny", device="cpu")
