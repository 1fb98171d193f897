"""The index: a manifest plus immutable segments on disk, built once, opened memory-mapped, searched by any method.

``Index.build`` quantizes and (optionally) reorders the documents, derives postings and each method's arrays, writes
one segment and commits the manifest. ``Index.open`` maps a committed generation. ``search`` runs a method in every
segment and merges the per-segment top-k; batches run one query per call on a thread pool over ``nogil`` kernels.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from index import methods as registry
from index.errors import VocabularyMismatch
from index.forward import ForwardIndex
from index.manifest import MANIFEST, Manifest, SegmentInfo
from index.postings import Postings
from index.query import QUERY_BAD_TERM, QUERY_BAD_WEIGHT, QUERY_OK, query_status
from index.quantize import check_quantization, dequantize
from index.segment import Segment, write_segment
from lsr.corpus import Document
from lsr.sparse import SparseBatch

_LEFTOVER = re.compile(r"^(seg-\d+(\.tmp)?|manifest\.json\.tmp)$")


@dataclass
class SearchResult:
    """Top-k of n queries: ``scores`` (n, k) float32 and ``docs`` (n, k) int64 internal numbers, -1 = no hit."""

    scores: np.ndarray
    docs: np.ndarray
    _index: "Index" = field(repr=False)

    @property
    def ids(self) -> list[list[str]]:
        """External ids of the hits of each query (padding left out)."""
        return [[self._index.doc_id(d) for d in row if d >= 0] for row in self.docs]


def _prepare_folder(path: Path, overwrite: bool) -> Manifest | None:
    """Makes ``path`` ready for a build; returns the manifest it replaces, if any."""
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    old = None
    if (path / MANIFEST).exists():
        if not overwrite:
            raise FileExistsError(f"{path} already holds an index; pass overwrite=True (lsr index --overwrite)")
        old = Manifest.read(path)
    foreign = [p.name for p in path.iterdir() if p.name != MANIFEST and not _LEFTOVER.match(p.name)]
    if foreign:
        raise FileExistsError(f"{path} is not empty and not an index (found {sorted(foreign)[:5]}); "
                              "choose an empty or new folder")
    return old


def _remove_unlisted(path: Path, manifest: Manifest) -> None:
    """Deletes segment folders and temporary files that the committed manifest does not list."""
    keep = {s.name for s in manifest.segments}
    for p in path.iterdir():
        if _LEFTOVER.match(p.name) and p.name not in keep:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def _check_documents(vectors: SparseBatch, doc_ids: Sequence[str], texts: Sequence[Document] | None) -> list[str]:
    if not isinstance(vectors, SparseBatch):
        raise TypeError(f"vectors must be an lsr.sparse.SparseBatch, got {type(vectors).__name__}")
    try:
        vectors.validate()
    except ValueError as e:
        raise ValueError(f"document vectors: {e}") from e
    if len(vectors) == 0:
        raise ValueError("cannot build an index of zero documents")
    ids = [str(i) for i in doc_ids]
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} document ids for {len(vectors)} vectors")
    if any(not i for i in ids):
        raise ValueError("document ids must be non-empty strings")
    if len(set(ids)) != len(ids):
        raise ValueError("document ids must be unique")
    if texts is not None:
        if len(texts) != len(ids):
            raise ValueError(f"{len(texts)} texts for {len(ids)} documents")
        mismatch = next((i for i, (t, d) in enumerate(zip(texts, ids)) if t.id != d), None)
        if mismatch is not None:
            raise ValueError(f"texts[{mismatch}] has id {texts[mismatch].id!r}, doc_ids[{mismatch}] is {ids[mismatch]!r}")
    return ids


def _method_configs(names: Sequence[str], params: dict[str, Any]) -> dict[str, dict]:
    chosen = [registry.get(n) for n in dict.fromkeys(["exact", *names])]
    known = {p for m in chosen for p in m.build_params}
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"unknown build parameters {sorted(unknown)} for methods {[m.name for m in chosen]}; "
                         f"accepted: {sorted(known) or 'none'}")
    return {m.name: m.build_config(params) for m in chosen}


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


class Index:
    """A committed index generation, memory-mapped. Thread-safe for searches."""

    def __init__(self, path: Path, manifest: Manifest, segments: list[Segment]):
        self.path = path
        self.manifest = manifest
        self.segments = segments
        self._offsets = np.cumsum([0] + [s.num_docs for s in segments])
        self._num_docs = int(self._offsets[-1])
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._id_map: dict[str, int] | None = None
        self._defaults: dict[str, tuple[registry.Method, dict]] = {}   # method -> (Method, default params)

    # ---- build / open -------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, path: str | os.PathLike, vectors: SparseBatch, doc_ids: Sequence[str], *,
              texts: Sequence[Document] | None = None, model: str | None = None,
              vocab_fingerprint: str | None = None, quantization: str = "uint8", reorder: bool = True,
              methods: Sequence[str] = ("exact", "bmp"), overwrite: bool = False, scale: float | None = None,
              **method_params) -> "Index":
        """Builds a one-segment index at ``path`` (a new or empty folder, or an index to replace with overwrite).

        ``scale`` (uint8 only) is the weight of one impact level, by default this corpus's max / 255: the shards of
        one corpus pass the whole corpus's scale, so that their scores equal those of one index over all of it.

        ``method_params`` go to every chosen method that declares them (e.g. ``block_size`` for bmp). The manifest
        is written last: a build interrupted at any point leaves no index that opens (or the previous one intact).
        """
        path = Path(path)
        check_quantization(quantization)
        if scale is not None and not (np.isfinite(scale) and scale > 0 and (quantization == "uint8" or scale == 1.0)):
            raise ValueError(f"scale must be a finite positive number (1.0 for {quantization}), got {scale!r}")
        ids = _check_documents(vectors, doc_ids, texts)
        configs = _method_configs(methods, method_params)
        old = _prepare_folder(path, overwrite)

        fwd = ForwardIndex.from_vectors(vectors, quantization, scale)
        if reorder:
            from index.reorder import bisection_order

            order = bisection_order(fwd)
            fwd = fwd.take(order)
            ids = [ids[i] for i in order]
            texts = [texts[i] for i in order] if texts is not None else None
        postings = Postings.from_forward(fwd)
        arrays = {**fwd.arrays(), **postings.arrays()}
        for name, params in configs.items():
            method = registry.get(name)
            if method.build is not None:
                for key, array in method.build(fwd, postings, params).items():
                    arrays[f"{name}.{key}"] = array

        generation = old.generation + 1 if old else 1
        seg_name = f"seg-{generation:06d}"
        files = write_segment(path, seg_name, arrays, ids, texts)
        manifest = Manifest(generation=generation, vocab_size=vectors.vocab_size, quantization=quantization,
                            model=model, vocab_fingerprint=vocab_fingerprint,
                            build_params={"reorder": bool(reorder), **configs}, methods=list(configs),
                            segments=[SegmentInfo(seg_name, len(ids), vectors.nnz, fwd.scale, files, list(configs))])
        manifest.write(path)
        _remove_unlisted(path, manifest)
        return cls.open(path, verify=False)

    @classmethod
    def open(cls, path: str | os.PathLike, verify: bool = True) -> "Index":
        """Maps the committed generation at ``path``; ``verify`` checks every file's sha256 (sizes always)."""
        path = Path(path)
        manifest = Manifest.read(path)
        return cls(path, manifest, [Segment.open(path, info, verify) for info in manifest.segments])

    # ---- metadata -----------------------------------------------------------------------------------------------
    @property
    def num_docs(self) -> int:
        return self._num_docs

    @property
    def vocab_size(self) -> int:
        return self.manifest.vocab_size

    @property
    def model(self) -> str | None:
        return self.manifest.model

    @property
    def vocab_fingerprint(self) -> str | None:
        return self.manifest.vocab_fingerprint

    @property
    def methods(self) -> list[str]:
        return list(self.manifest.methods)

    @property
    def doc_ids(self) -> np.ndarray:
        """External ids by internal number (object array of str)."""
        return np.concatenate([s.docs.ids() for s in self.segments])

    def nbytes(self) -> int:
        """Bytes on disk of the committed generation (all segment files)."""
        return sum(m["bytes"] for s in self.manifest.segments for m in s.files.values())

    def check_vocabulary(self, fingerprint: str | None) -> None:
        """Raises VocabularyMismatch when ``fingerprint`` differs from the index's (unknown on either side: passes)."""
        if fingerprint and self.vocab_fingerprint and fingerprint != self.vocab_fingerprint:
            raise VocabularyMismatch(
                f"the queries come from a vocabulary with fingerprint {fingerprint}, but the index at {self.path} was "
                f"built with {self.vocab_fingerprint} (model {self.model!r}); encode queries with that model")

    # ---- documents ----------------------------------------------------------------------------------------------
    def _locate(self, number: int) -> tuple[Segment, int]:
        s = int(np.searchsorted(self._offsets, number, side="right")) - 1
        return self.segments[s], number - int(self._offsets[s])

    def doc_id(self, number: int) -> str:
        seg, local = self._locate(int(number))
        return seg.docs.get(local)["id"]

    def document(self, key: int | str) -> dict:
        """{"id", "title", "text"} of an internal number or an external id; KeyError when there is none."""
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            number = int(key)
            if not 0 <= number < self.num_docs:
                raise KeyError(f"no document number {number}: the index holds {self.num_docs}")
        else:
            if self._id_map is None:
                self._id_map = {d: i for i, d in enumerate(self.doc_ids)}
            if key not in self._id_map:
                raise KeyError(f"no document with id {key!r}")
            number = self._id_map[key]
        seg, local = self._locate(number)
        return seg.docs.get(local)

    def vector(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        """Term ids (int32, ascending) and weights (float32, as stored: dequantized) of document ``number``; the
        service explains a hit's score with them."""
        seg, local = self._locate(int(number))
        lo, hi = seg["fwd_indptr"][local], seg["fwd_indptr"][local + 1]
        return seg["fwd_terms"][lo:hi].astype(np.int32), dequantize(seg["fwd_values"][lo:hi], seg.scale)

    # ---- search -------------------------------------------------------------------------------------------------
    def _scratch(self, s: int, method: registry.Method) -> Any:
        cache = getattr(self._local, "scratch", None)
        if cache is None:
            cache = self._local.scratch = {}
        key = (s, method.name)
        if key not in cache:
            cache[key] = method.scratch(self.segments[s])
        return cache[key]

    def _resolve(self, method: str, params: dict) -> tuple[registry.Method, dict]:
        if not params and method in self._defaults:
            return self._defaults[method]
        if method not in self.manifest.methods:
            raise ValueError(f"this index was built without method {method!r}; it has {self.manifest.methods}")
        m = registry.get(method)
        resolved = m, m.search_config(params)
        if not params:
            self._defaults[method] = resolved
        return resolved

    def _run(self, method: registry.Method, params: dict, q_indptr: np.ndarray, q_terms: np.ndarray,
             q_weights: np.ndarray, out_scores: np.ndarray, out_docs: np.ndarray) -> None:
        """Top-k (k = out width <= num_docs) of validated queries into out_*, merged over segments."""
        k = out_scores.shape[1]
        if len(self.segments) == 1:
            method.search(self.segments[0], q_indptr, q_terms, q_weights, k, self._scratch(0, method), out_scores,
                          out_docs, **params)
            return
        n = len(q_indptr) - 1
        scores, docs = [], []
        for s, seg in enumerate(self.segments):
            width = min(k, seg.num_docs)
            part_s, part_d = np.zeros((n, width), np.float32), np.full((n, width), -1, np.int64)
            method.search(seg, q_indptr, q_terms, q_weights, width, self._scratch(s, method), part_s, part_d, **params)
            scores.append(part_s)
            docs.append(np.where(part_d >= 0, part_d + self._offsets[s], -1))
        scores, docs = np.concatenate(scores, axis=1), np.concatenate(docs, axis=1)
        for r in range(n):
            hit = docs[r] >= 0
            order = np.lexsort((docs[r][hit], -scores[r][hit]))[:k]
            out_scores[r, :len(order)], out_docs[r, :len(order)] = scores[r][hit][order], docs[r][hit][order]

    def search_one(self, q_indices: np.ndarray, q_values: np.ndarray, k: int = 10, method: str = "exact",
                   **params) -> tuple[np.ndarray, np.ndarray]:
        """One query (term ids, weights) on the calling thread: (scores, internal doc numbers), each of length
        min(k, num_docs), best first, padded with (0.0, -1). Zero weights are ignored; duplicates are an error."""
        k = _check_k(k)
        m, params = self._resolve(method, params)
        terms, weights = self._check_query(q_indices, q_values)
        width = min(k, self._num_docs)
        scores, docs = np.zeros((1, width), np.float32), np.full((1, width), -1, np.int64)
        self._run(m, params, np.array([0, len(terms)], dtype=np.int64), terms, weights, scores, docs)
        return scores[0], docs[0]

    def _check_query(self, q_indices, q_values) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(q_indices)
        val = np.asarray(q_values, dtype=np.float32)
        if idx.ndim != 1 or val.ndim != 1 or len(idx) != len(val):
            raise ValueError(f"a query is two 1-d arrays of equal length, got shapes {idx.shape} and {val.shape}")
        if len(idx) and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"query term ids must be integers, got {idx.dtype}")
        status = query_status(idx, val, self.vocab_size)
        if status == QUERY_OK:
            return idx.astype(np.int32, copy=False), val
        if status == QUERY_BAD_TERM:
            raise ValueError(f"query term ids must lie in [0, {self.vocab_size}), got "
                             f"{int(idx.min())}..{int(idx.max())}")
        if status == QUERY_BAD_WEIGHT:
            raise ValueError("query weights must be finite and >= 0")
        keep = val > 0   # QUERY_UNSORTED: zero weights to drop or ids out of order
        idx, val = idx[keep].astype(np.int32), val[keep]
        order = np.argsort(idx, kind="stable")
        idx, val = idx[order], val[order]
        if len(idx) > 1 and np.any(idx[1:] == idx[:-1]):
            raise ValueError("query term ids must be unique")
        return idx, val

    def search(self, queries: SparseBatch, k: int = 10, method: str = "exact", threads: int | None = None,
               **params) -> SearchResult:
        """Top-k of every query; ``threads`` (default: all cores) run queries side by side."""
        k = _check_k(k)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        m, params = self._resolve(method, params)
        if not isinstance(queries, SparseBatch):
            raise TypeError(f"queries must be an lsr.sparse.SparseBatch, got {type(queries).__name__}")
        if queries.vocab_size != self.vocab_size:
            raise VocabularyMismatch(f"the queries are over {queries.vocab_size} terms, the index over "
                                     f"{self.vocab_size}: they come from another vocabulary")
        try:
            queries.validate()
        except ValueError as e:
            raise ValueError(f"queries: {e}") from e
        n, width = len(queries), min(k, self._num_docs)
        scores = np.zeros((n, width), dtype=np.float32)
        docs = np.full((n, width), -1, dtype=np.int64)

        def run(lo: int, hi: int) -> None:
            self._run(m, params, queries.indptr[lo:hi + 1], queries.indices, queries.values, scores[lo:hi],
                      docs[lo:hi])

        threads = min(threads or os.cpu_count() or 1, max(n, 1))
        if threads <= 1:
            run(0, n)
        else:
            step = -(-n // (threads * 4))
            pool = self._thread_pool(threads)
            for f in [pool.submit(run, lo, min(lo + step, n)) for lo in range(0, n, step)]:
                f.result()
        return SearchResult(scores, docs, self)

    def _thread_pool(self, threads: int) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None or self._pool._max_workers != threads:
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                self._pool = ThreadPoolExecutor(threads, thread_name_prefix="lsr-search")
            return self._pool
