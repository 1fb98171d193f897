"""Imported by the crash test's fork server: runs every code path of a writer once, so that the children it forks
start with Numba's compiled functions loaded (a round then costs milliseconds, not seconds).

Numba's default threading layer here (GNU OpenMP) is not fork-safe; the fork server switches to ``workqueue``,
which is, before anything runs in parallel.
"""

import shutil
import tempfile
from pathlib import Path

import numba
import numpy as np

from lsr.index import Index
from lsr.index.merge import TieredMergePolicy
from lsr.core.sparse import SparseBatch

numba.config.THREADING_LAYER = "workqueue"


def _warm_up() -> None:
    rng = np.random.default_rng(0)
    rows = [(np.unique(rng.choice(30522, 30, replace=False)), rng.random(30, dtype=np.float32) + 0.1)
            for _ in range(80)]
    vectors = SparseBatch.from_rows(rows, 30522)
    ids = [f"w{i}" for i in range(80)]
    folder = Path(tempfile.mkdtemp(prefix="lsr-warmup-"))
    try:
        Index.build(folder / "i", vectors.take(np.arange(40)), ids[:40], methods=["exact", "bmp", "seismic"])
        idx = Index.open(folder / "i", writable=True, flush_docs=20, background_merges=False,
                         background_flushes=False, merge_policy=TieredMergePolicy(segments_per_tier=2, floor_docs=10),
                         refresh_interval=0)
        idx.upsert(ids[40:], vectors.take(np.arange(40, 80)))
        idx.delete(ids[:5])
        for method in ("exact", "bmp", "seismic"):
            idx.search(vectors.take(np.arange(3)), k=5, method=method)
        idx.compact()
        idx.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_warm_up()
