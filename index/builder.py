"""From quantized documents to a written segment: reorder, invert, add each method's arrays, write atomically.

One path for every segment an index ever gets: the first build, a flush of the writer's recent documents and a
merge of older segments all call ``build_segment``, so a segment's structures (and document order) never depend on
how its documents arrived.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Mapping

import numba
import numpy as np
import pyarrow as pa

from lsr.index import methods as registry
from lsr.index.docstore import metadata_of
from lsr.index.fields import build_fields
from lsr.index.forward import ForwardIndex
from lsr.index.manifest import SegmentInfo
from lsr.index.postings import Postings
from lsr.index.segment import write_segment

Progress = Callable[[str, int, int], None]   # (stage, stages done, stages in all)

# Numba parallel regions are entered by one thread at a time: a flush and a background merge may build together, and
# some threading layers (workqueue) abort on concurrent entry, while two regions on the same cores gain nothing.
_PARALLEL = threading.Lock()


def build_segment(folder: Path, name: str, fwd: ForwardIndex, docs: pa.Table, *, reorder: bool,
                  configs: Mapping[str, Any], threads: int | None = None,
                  progress: Progress | None = None) -> tuple[SegmentInfo, np.ndarray]:
    """Writes ``folder/name`` from ``fwd`` and its stored rows ``docs`` (an ``lsr.index.docstore.doc_table``; their
    metadata becomes the segment's field index, index/fields.py).

    Returns the segment's manifest entry and the document order: segment document i is input row order[i].
    ``configs`` maps each method to its build parameters: its build-params dataclass, or their fields as the
    manifest's ``build_params`` stores them. ``threads`` caps the Numba threads of this build (a writer leaves a
    core to searches); None: all. ``progress(stage, done, total)`` is called as each stage starts (reorder,
    postings, each method, write)."""
    previous = numba.get_num_threads()
    if threads:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))   # for this thread only
    try:
        return _build(folder, name, fwd, docs, reorder, configs, progress or (lambda stage, done, total: None))
    finally:
        numba.set_num_threads(previous)


def _build(folder: Path, name: str, fwd: ForwardIndex, docs: pa.Table, reorder: bool,
           configs: Mapping[str, Any], progress: Progress) -> tuple[SegmentInfo, np.ndarray]:
    built = [m for m in configs if registry.get(m).build is not None]
    total, done = int(reorder) + 2 + len(built), 0
    order = np.arange(fwd.num_docs, dtype=np.int64)
    if reorder:
        from lsr.index.reorder import bisection_order

        progress("reorder", done, total)
        with _PARALLEL:
            order = bisection_order(fwd)
        fwd = fwd.take(order)
        docs = docs.take(pa.array(order))
        done += 1
    progress("postings", done, total)
    postings = Postings.from_forward(fwd)
    done += 1
    arrays = {**fwd.arrays(), **postings.arrays()}
    for method_name in built:
        progress(method_name, done, total)
        method = registry.get(method_name)
        for key, array in method.build(fwd, postings, method.build_config(configs[method_name])).items():
            arrays[f"{method_name}.{key}"] = array
        done += 1
    progress("write", done, total)
    files = write_segment(folder, name, arrays, docs, build_fields(metadata_of(docs)))
    progress("done", total, total)
    return SegmentInfo(name, fwd.num_docs, int(fwd.indptr[-1]), fwd.scale, files, list(configs)), order
