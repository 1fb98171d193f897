"""From quantized documents to a written segment: reorder, invert, add each method's arrays, write atomically.

One path for every segment an index ever gets: the first build, a flush of the writer's recent documents and a
merge of older segments all call ``build_segment``, so a segment's structures (and document order) never depend on
how its documents arrived.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa

from index import methods as registry
from index.forward import ForwardIndex
from index.manifest import SegmentInfo
from index.postings import Postings
from index.segment import write_segment

# Numba parallel regions are entered by one thread at a time: a flush and a background merge may build together, and
# some threading layers (workqueue) abort on concurrent entry, while two regions on the same cores gain nothing.
_PARALLEL = threading.Lock()


def build_segment(folder: Path, name: str, fwd: ForwardIndex, docs: pa.Table, *, reorder: bool,
                  configs: dict[str, dict], threads: int | None = None) -> tuple[SegmentInfo, np.ndarray]:
    """Writes ``folder/name`` from ``fwd`` and its stored rows ``docs`` (an ``index.docstore.doc_table``).

    Returns the segment's manifest entry and the document order: segment document i is input row order[i].
    ``configs`` maps each method to its build parameters (the manifest's ``build_params``). ``threads`` caps the
    Numba threads of this build (a writer leaves a core to searches); None: all."""
    previous = numba.get_num_threads()
    if threads:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))   # for this thread only
    try:
        return _build(folder, name, fwd, docs, reorder, configs)
    finally:
        numba.set_num_threads(previous)


def _build(folder: Path, name: str, fwd: ForwardIndex, docs: pa.Table, reorder: bool,
           configs: dict[str, dict]) -> tuple[SegmentInfo, np.ndarray]:
    order = np.arange(fwd.num_docs, dtype=np.int64)
    if reorder:
        from index.reorder import bisection_order

        with _PARALLEL:
            order = bisection_order(fwd)
        fwd = fwd.take(order)
        docs = docs.take(pa.array(order))
    postings = Postings.from_forward(fwd)
    arrays = {**fwd.arrays(), **postings.arrays()}
    for method_name, params in configs.items():
        method = registry.get(method_name)
        if method.build is not None:
            for key, array in method.build(fwd, postings, params).items():
                arrays[f"{method_name}.{key}"] = array
    files = write_segment(folder, name, arrays, docs)
    return SegmentInfo(name, fwd.num_docs, int(fwd.indptr[-1]), fwd.scale, files, list(configs)), order
