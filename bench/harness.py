"""What the index benchmark and its suites share: a runner per method setting, the run's context, timing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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
    reordered: SparseBatch     # the documents in ``order``: the only copy held, which every suite indexes
    queries: SparseBatch
    k: int
    workdir: Path
    order: np.ndarray          # graph-bisection order (new position -> original doc): suites answer original numbers
    reorder_s: float
    block_sizes: list[int]
    alphas: list[float]
    betas: list[float]
    quantizations: list[str]
    batch: list[dict] = field(default_factory=list)    # 2-thread batch speedups, filled by our suite
    seismic_grid: dict = field(default_factory=dict)   # overrides of bench.seismic.DEFAULT_GRID


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
