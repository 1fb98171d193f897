"""What the index benchmark and its suites share: a runner per method setting, the run's context, timing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from lsr.core.sparse import SparseBatch


@dataclass
class Runner:
    name: str                                   # "exact", "bmp", "scipy", "peer-bmp", ...
    params: dict
    build_s: float
    index_bytes: int
    search: Callable[[int], np.ndarray]         # query number -> original doc numbers of the top-k, best first
    extra: dict = field(default_factory=dict)   # reported as is (e.g. the document order a peer was given)


@dataclass
class Context:
    docs: SparseBatch
    queries: SparseBatch
    k: int
    workdir: Path
    order: np.ndarray          # graph-bisection order (new position -> original doc), shared by ours and peers
    reorder_s: float
    block_sizes: list[int]
    alphas: list[float]
    betas: list[float]
    quantizations: list[str]
    batch: list[dict] = field(default_factory=list)    # 2-thread batch speedups, filled by our suite
    seismic_grid: dict = field(default_factory=dict)   # overrides of bench.seismic.DEFAULT_GRID

    @cached_property
    def reordered(self) -> SparseBatch:
        """The documents in ``order``, made once: every suite indexes this copy (at 1M documents it is 1.5 GB)."""
        return self.docs.take(self.order)


def timed(f: Callable) -> tuple[object, float]:
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None
