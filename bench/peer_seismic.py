"""pyseismic-lsr (PyPI, the Seismic authors' Rust implementation) driven through its Python API, for side-by-side runs.

Documents go in by integer component id (``SeismicDataset.add_documents_by_id``), so queries address term 42 as the
string "42" (its query API takes token strings). Query strings are made once, outside the timed calls. Its index
size is the total that ``print_space_usage_byte`` prints (forward index, postings, summaries).
"""

from __future__ import annotations

import os
import re
import tempfile
import time

import numpy as np

from lsr.core.sparse import SparseBatch


def _captured_stdout(fn):
    """(fn(), what it wrote to file descriptor 1): Rust prints bypass sys.stdout."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(1)
        try:
            os.dup2(tmp.fileno(), 1)
            result = fn()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return result, tmp.read().decode("utf-8", "replace")


class PeerSeismic:
    """One built pyseismic-lsr index over a batch; its doc ids are the positions in that batch."""

    def __init__(self, docs: SparseBatch, threads: int | None = None, **params):
        """``params``: build_from_dataset's keyword arguments (n_postings, centroid_fraction, summary_energy,
        min_cluster_size, doc_cut, max_fraction)."""
        import seismic

        self.params = params
        self._string = seismic.get_seismic_string()
        start = time.perf_counter()
        dataset = seismic.SeismicDataset(dim=docs.vocab_size)
        dataset.add_documents_by_id([str(i) for i in range(len(docs))], docs.indices.astype(np.int64), docs.values,
                                    docs.indptr)
        self.index, log = _captured_stdout(lambda: seismic.SeismicIndex.build_from_dataset(
            dataset, num_threads=threads or os.cpu_count() or 1, **params))
        self.build_s = time.perf_counter() - start
        _, usage = _captured_stdout(self.index.print_space_usage_byte)
        found = re.search(r"Total:\s*(\d+)\s*Bytes", usage)
        if not found:
            raise RuntimeError(f"pyseismic-lsr printed no total size: {usage!r}")
        self.index_bytes = int(found.group(1))

    def query(self, terms: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The query in the form ``search_one`` takes (token strings), made before timing."""
        return np.array([str(t) for t in terms], dtype=self._string), np.asarray(weights, dtype=np.float32)

    def search_one(self, query: tuple[np.ndarray, np.ndarray], k: int, query_cut: int, heap_factor: float) -> list:
        """Raw hits, (query id, score, doc id) tuples: the call that is timed."""
        return self.index.search("q", query[0], query[1], k, query_cut, heap_factor)

    @staticmethod
    def doc_numbers(hits: list) -> np.ndarray:
        return np.array([int(h[2]) for h in hits], dtype=np.int64)
