"""Seismic (Bruch, Nardini, Rulli, Venturini, SIGIR 2024): approximate top-k over learned sparse vectors.

Build, over a forward index (doc -> terms CSR, values of any numeric dtype times one ``scale``):
  1. static pruning: each term's posting list keeps its ``n_postings`` heaviest entries;
  2. each pruned list is cut into blocks of similar documents (``index.clustering``: ``centroid_fraction`` of the
     list length random centroids, one assignment pass on the documents' ``doc_cut`` heaviest terms);
  3. each block gets a summary vector (``index.summaries``: per-term maxima, pruned to ``summary_energy`` of the
     mass, 8-bit codes), stored inverted per list.
Both build passes run in parallel over terms (Numba ``prange``).

Search, per query: only the ``query_cut`` heaviest query terms pick lists; each list's blocks are scored by their
summaries against the whole query; a block's documents are scored exactly through the forward index only when the
summary score reaches ``heap_factor`` x the current k-th best score (pyseismic-lsr's convention: heap_factor <= 1,
lower is more accurate; the issue's "heap minimum / heap_factor" is the same rule with the inverse factor).
The first list's blocks go best first so the heap fills with good documents early; a visited bitset scores each
document once. Single queries run on the calling thread with reusable scratch; batches spread over threads.

The index is a dict of plain arrays (names in ``ARRAYS``), so it is saved and memory-mapped like any other method's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import numba
import numpy as np
from numba import njit, prange

from index.clustering import cluster_list, top_terms
from index.summaries import block_summary, invert_list_summaries

ARRAYS = ("list_blocks", "block_docs_ptr", "docs", "block_scale", "list_terms", "summary_terms",
          "summary_term_ptr", "summary_blocks", "summary_codes")
MAX_BLOCKS_PER_LIST = 1 << 16  # block ids inside a list are uint16


@dataclass(frozen=True)
class SeismicBuildParams:
    """Build parameters; defaults chosen by measurement on splade-tiny vectors (BENCHMARKS.md, "Seismic")."""

    n_postings: int = 4000          # lambda: postings kept per term
    centroid_fraction: float = 0.1  # beta: blocks per list = beta x list length
    summary_energy: float = 0.4     # alpha: fraction of a summary's mass kept
    min_cluster_size: int = 2       # smaller clusters are dissolved into the others
    doc_cut: int = 15               # heaviest document terms compared during clustering
    seed: int = 42

    def __post_init__(self) -> None:
        _check_int("n_postings", self.n_postings, 1)
        _check_int("min_cluster_size", self.min_cluster_size, 1)
        _check_int("doc_cut", self.doc_cut, 1)
        _check_int("seed", self.seed, 0)
        if not (isinstance(self.centroid_fraction, (int, float)) and 0 < self.centroid_fraction <= 1):
            raise ValueError(f"centroid_fraction must lie in (0, 1], got {self.centroid_fraction!r}")
        if not (isinstance(self.summary_energy, (int, float)) and 0 < self.summary_energy <= 1):
            raise ValueError(f"summary_energy must lie in (0, 1], got {self.summary_energy!r}")
        if self.centroid_fraction * self.n_postings >= MAX_BLOCKS_PER_LIST:
            raise ValueError(f"centroid_fraction x n_postings must stay below {MAX_BLOCKS_PER_LIST} blocks per list, "
                             f"got {self.centroid_fraction} x {self.n_postings}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SeismicSearchParams:
    """Query-time parameters; defaults reach recall@10 >= 0.95 on the benchmark corpora (BENCHMARKS.md)."""

    query_cut: int = 10       # heaviest query terms whose lists are visited
    heap_factor: float = 0.9  # a block is scored when summary >= heap_factor x k-th best score

    def __post_init__(self) -> None:
        _check_int("query_cut", self.query_cut, 1)
        if not (isinstance(self.heap_factor, (int, float)) and 0 < self.heap_factor <= 1):
            raise ValueError(f"heap_factor must lie in (0, 1], got {self.heap_factor!r}")


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


# ----------------------------------------------------------------------------------------------------------- build

@njit(cache=True, nogil=True)
def _invert(fwd_indptr, fwd_indices, fwd_values, vocab_size):
    """Term-major copy of the forward index: (term offsets, doc ids, float weights), docs ascending per term."""
    nnz = len(fwd_indices)
    ptr = np.zeros(vocab_size + 1, dtype=np.int64)
    for j in range(nnz):
        ptr[fwd_indices[j] + 1] += 1
    for t in range(vocab_size):
        ptr[t + 1] += ptr[t]
    fill = ptr[:-1].copy()
    docs = np.empty(nnz, dtype=np.int32)
    vals = np.empty(nnz, dtype=np.float32)
    for d in range(len(fwd_indptr) - 1):
        for j in range(fwd_indptr[d], fwd_indptr[d + 1]):
            t = fwd_indices[j]
            docs[fill[t]] = d
            vals[fill[t]] = fwd_values[j]
            fill[t] += 1
    return ptr, docs, vals


@njit(cache=True, nogil=True)
def _heaviest(docs, vals, m, out):
    """Writes the doc ids of the ``m`` largest ``vals`` into ``out`` (ties: lower position first)."""
    n = len(docs)
    if m >= n:
        out[:] = docs
        return
    threshold = np.partition(vals, n - m)[n - m]
    o = 0
    for i in range(n):
        if vals[i] > threshold:
            out[o] = docs[i]
            o += 1
    for i in range(n):
        if o == m:
            break
        if vals[i] == threshold:
            out[o] = docs[i]
            o += 1


@njit(cache=True, parallel=True)
def _prune_and_cluster(schedule, n_chunks, inv_ptr, inv_docs, inv_vals, kept_ptr, cap_ptr, centroid_fraction,
                       min_cluster_size, seed, energy, fwd_indptr, fwd_indices, fwd_values, cut_indptr, cut_terms,
                       cut_weights, vocab_size, docs_out, sizes_out, n_blocks, n_entries, n_unique):
    """Pass 1, per term: prune, cluster (docs_out and block sizes final), count the summary entries to come."""
    for c in prange(n_chunks):
        head = np.empty(vocab_size, dtype=np.int32)
        head_stamp = np.zeros(vocab_size, dtype=np.int64)
        maxv = np.empty(vocab_size, dtype=np.float32)
        stamp_of = np.zeros(vocab_size, dtype=np.int64)
        touched = np.empty(vocab_size, dtype=np.int32)
        seen = np.zeros(vocab_size, dtype=np.int64)
        block_stamp = 0
        for i in range(c, len(schedule), n_chunks):
            t = schedule[i]
            lo, hi = inv_ptr[t], inv_ptr[t + 1]
            docs = docs_out[kept_ptr[t]:kept_ptr[t + 1]]
            m = len(docs)
            _heaviest(inv_docs[lo:hi], inv_vals[lo:hi], m, docs)
            sizes = cluster_list(docs, int(centroid_fraction * m), min_cluster_size,
                                 np.uint64(seed) * np.uint64(1000003) + np.uint64(t), fwd_indptr, fwd_indices,
                                 fwd_values, cut_indptr, cut_terms, cut_weights, head, head_stamp, t + 1)
            nb = len(sizes)
            n_blocks[t] = nb
            sizes_out[cap_ptr[t]:cap_ptr[t] + nb] = sizes
            start, ne, nu = 0, 0, 0
            for b in range(nb):
                block_stamp += 1
                terms, _, _ = block_summary(docs[start:start + sizes[b]], fwd_indptr, fwd_indices, fwd_values,
                                            energy, maxv, stamp_of, block_stamp, touched)
                ne += len(terms)
                for u in terms:
                    if seen[u] != t + 1:
                        seen[u] = t + 1
                        nu += 1
                start += sizes[b]
            n_entries[t] = ne
            n_unique[t] = nu


@njit(cache=True, parallel=True)
def _write_summaries(schedule, n_chunks, list_blocks, block_docs_ptr, docs, energy, fwd_indptr, fwd_indices,
                     fwd_values, vocab_size, list_terms, list_entries, block_scale, summary_terms, summary_term_ptr,
                     summary_blocks, summary_codes):
    """Pass 2, per term: recompute each block's summary and store the list's summaries inverted."""
    for c in prange(n_chunks):
        maxv = np.empty(vocab_size, dtype=np.float32)
        stamp_of = np.zeros(vocab_size, dtype=np.int64)
        touched = np.empty(vocab_size, dtype=np.int32)
        block_stamp = 0
        for i in range(c, len(schedule), n_chunks):
            t = schedule[i]
            b0, b1 = list_blocks[t], list_blocks[t + 1]
            e0, e1 = list_entries[t], list_entries[t + 1]
            terms_buf = np.empty(e1 - e0, dtype=np.int32)
            blocks_buf = np.empty(e1 - e0, dtype=np.int64)
            codes_buf = np.empty(e1 - e0, dtype=np.uint8)
            e = 0
            for b in range(b0, b1):
                block_stamp += 1
                terms, codes, scale = block_summary(docs[block_docs_ptr[b]:block_docs_ptr[b + 1]], fwd_indptr,
                                                    fwd_indices, fwd_values, energy, maxv, stamp_of, block_stamp,
                                                    touched)
                block_scale[b] = scale
                for j in range(len(terms)):
                    terms_buf[e] = terms[j]
                    blocks_buf[e] = b - b0
                    codes_buf[e] = codes[j]
                    e += 1
            unique, offsets, blocks, codes = invert_list_summaries(terms_buf, blocks_buf, codes_buf)
            s0 = list_terms[t]
            summary_terms[s0:s0 + len(unique)] = unique
            summary_term_ptr[s0:s0 + len(unique)] = e0 + offsets[:-1]
            summary_blocks[e0:e1] = blocks
            summary_codes[e0:e1] = codes


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def build(fwd_indptr: np.ndarray, fwd_indices: np.ndarray, fwd_values: np.ndarray, vocab_size: int,
          params: SeismicBuildParams = SeismicBuildParams(), threads: int | None = None) -> dict[str, np.ndarray]:
    """Builds the Seismic arrays over a forward index (CSR; values of any numeric dtype, one common scale).

    The scale of quantized values does not matter here: pruning, clustering and summaries are scale-free, and
    block scales are stored in the forward index's units (multiply by its scale at search time).
    """
    if not isinstance(params, SeismicBuildParams):
        raise TypeError(f"params must be SeismicBuildParams, got {type(params).__name__}")
    n_docs = len(fwd_indptr) - 1
    if n_docs >= 2**31:
        raise ValueError(f"seismic stores doc numbers as int32: {n_docs} documents is too many for one segment")
    if len(fwd_indices) and (fwd_indices.min() < 0 or fwd_indices.max() >= vocab_size):
        raise ValueError(f"term ids must lie in [0, {vocab_size})")
    with _threads(threads):
        inv_ptr, inv_docs, inv_vals = _invert(fwd_indptr, fwd_indices, fwd_values, vocab_size)
        lengths = np.diff(inv_ptr)
        kept = np.minimum(lengths, params.n_postings)
        kept_ptr = _offsets(kept)
        cap_ptr = _offsets(np.maximum(1, (params.centroid_fraction * kept).astype(np.int64)) * (kept > 0))
        # longest lists first, dealt round-robin to many chunks: threads finish together
        schedule = np.argsort(-kept, kind="stable")[:np.count_nonzero(kept)].astype(np.int64)
        n_chunks = max(1, min(len(schedule), numba.get_num_threads() * 16))
        cut_indptr, cut_terms, cut_weights = top_terms(fwd_indptr, fwd_indices, fwd_values, params.doc_cut)
        docs = np.empty(kept_ptr[-1], dtype=np.int32)
        sizes = np.zeros(cap_ptr[-1], dtype=np.int64)
        n_blocks = np.zeros(vocab_size, dtype=np.int64)
        n_entries = np.zeros(vocab_size, dtype=np.int64)
        n_unique = np.zeros(vocab_size, dtype=np.int64)
        _prune_and_cluster(schedule, n_chunks, inv_ptr, inv_docs, inv_vals, kept_ptr, cap_ptr,
                           float(params.centroid_fraction), params.min_cluster_size, params.seed,
                           float(params.summary_energy), fwd_indptr, fwd_indices, fwd_values, cut_indptr, cut_terms,
                           cut_weights, vocab_size, docs, sizes, n_blocks, n_entries, n_unique)
        del inv_docs, inv_vals, cut_indptr, cut_terms, cut_weights
        list_blocks = _offsets(n_blocks)
        slot_term = np.repeat(np.arange(vocab_size), np.diff(cap_ptr))
        block_sizes = sizes[np.arange(len(sizes)) - cap_ptr[slot_term] < n_blocks[slot_term]]
        block_docs_ptr = _offsets(block_sizes)
        list_terms = _offsets(n_unique)
        list_entries = _offsets(n_entries)
        block_scale = np.empty(list_blocks[-1], dtype=np.float32)
        summary_terms = np.empty(list_terms[-1], dtype=np.int32)
        summary_term_ptr = np.empty(list_terms[-1] + 1, dtype=np.int64)
        summary_term_ptr[-1] = list_entries[-1]
        summary_blocks = np.empty(list_entries[-1], dtype=np.uint16)
        summary_codes = np.empty(list_entries[-1], dtype=np.uint8)
        _write_summaries(schedule, n_chunks, list_blocks, block_docs_ptr, docs, float(params.summary_energy),
                         fwd_indptr, fwd_indices, fwd_values, vocab_size, list_terms, list_entries, block_scale,
                         summary_terms, summary_term_ptr, summary_blocks, summary_codes)
    return {"list_blocks": list_blocks, "block_docs_ptr": block_docs_ptr, "docs": docs, "block_scale": block_scale,
            "list_terms": list_terms, "summary_terms": summary_terms, "summary_term_ptr": summary_term_ptr,
            "summary_blocks": summary_blocks, "summary_codes": summary_codes}


# ---------------------------------------------------------------------------------------------------------- search

@njit(cache=True, nogil=True)
def _heap_push(scores, docs, size, score, doc):
    """Offers (score, doc) to a min-heap of capacity len(scores); returns the new size."""
    k = len(scores)
    if size < k:
        i = size
        while i > 0:
            parent = (i - 1) >> 1
            if scores[parent] <= score:
                break
            scores[i], docs[i] = scores[parent], docs[parent]
            i = parent
        scores[i], docs[i] = score, doc
        return size + 1
    if score <= scores[0]:
        return size
    i = 0
    while True:
        child = 2 * i + 1
        if child >= k:
            break
        if child + 1 < k and scores[child + 1] < scores[child]:
            child += 1
        if scores[child] >= score:
            break
        scores[i], docs[i] = scores[child], docs[child]
        i = child
    scores[i], docs[i] = score, doc
    return size


@njit(cache=True, nogil=True)
def _search_one(q_terms, q_vals, query_cut, heap_factor, list_blocks, block_docs_ptr, docs, block_scale, list_terms,
                summary_terms, summary_term_ptr, summary_blocks, summary_codes, fwd_indptr, fwd_indices, fwd_values,
                fwd_scale, q_dense, visited, acc, out_scores, out_docs):
    """Top-k of one query into out_scores/out_docs (k = their length; missing hits: -inf and -1).

    Scratch: q_dense (vocabulary, zeros), visited (bitset over documents, zeros), acc (max blocks per list); all
    three are left as they were found.
    """
    k = len(out_scores)
    heap_s = np.empty(k, dtype=np.float32)
    heap_d = np.empty(k, dtype=np.int32)
    size = 0
    nq = len(q_terms)
    for i in range(nq):
        q_dense[q_terms[i]] = q_vals[i]
    cut = np.argsort(-q_vals, kind="mergesort")[:min(query_cut, nq)]
    for r in range(len(cut)):
        t = q_terms[cut[r]]
        b0 = list_blocks[t]
        nb = list_blocks[t + 1] - b0
        if nb == 0:
            continue
        for b in range(nb):
            acc[b] = 0.0
        s0, s1 = list_terms[t], list_terms[t + 1]
        for i in range(nq):
            u = q_terms[i]
            lo, hi = s0, s1
            while lo < hi:
                mid = (lo + hi) >> 1
                if summary_terms[mid] < u:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < s1 and summary_terms[lo] == u:
                w = q_vals[i]
                for e in range(summary_term_ptr[lo], summary_term_ptr[lo + 1]):
                    acc[summary_blocks[e]] += w * np.float32(summary_codes[e])
        for b in range(nb):
            acc[b] *= block_scale[b0 + b]
        # the first list best block first: the heap fills with good documents before the others are filtered
        order = np.argsort(-acc[:nb]) if r == 0 else np.arange(nb)
        for b in order:
            if size == k and acc[b] < heap_factor * heap_s[0]:
                continue
            for p in range(block_docs_ptr[b0 + b], block_docs_ptr[b0 + b + 1]):
                d = docs[p]
                word, bit = d >> 6, np.uint64(1) << np.uint64(d & 63)
                if visited[word] & bit:
                    continue
                visited[word] |= bit
                score = np.float32(0.0)
                for j in range(fwd_indptr[d], fwd_indptr[d + 1]):
                    score += q_dense[fwd_indices[j]] * np.float32(fwd_values[j])
                size = _heap_push(heap_s, heap_d, size, score, d)
    for i in range(nq):
        q_dense[q_terms[i]] = 0.0
    visited[:] = 0
    order = np.argsort(-heap_s[:size], kind="mergesort")
    for i in range(k):
        if i < size:
            out_scores[i] = heap_s[order[i]] * fwd_scale
            out_docs[i] = heap_d[order[i]]
        else:
            out_scores[i] = -np.inf
            out_docs[i] = -1


@njit(cache=True, parallel=True)
def _search_batch(q_indptr, q_indices, q_values, query_cut, heap_factor, list_blocks, block_docs_ptr, docs,
                  block_scale, list_terms, summary_terms, summary_term_ptr, summary_blocks, summary_codes, fwd_indptr,
                  fwd_indices, fwd_values, fwd_scale, max_blocks, n_chunks, out_scores, out_docs):
    n_queries = len(q_indptr) - 1
    vocab_size = len(list_blocks) - 1
    n_words = (len(fwd_indptr) - 1 + 63) >> 6
    for c in prange(n_chunks):
        q_dense = np.zeros(vocab_size, dtype=np.float32)
        visited = np.zeros(n_words, dtype=np.uint64)
        acc = np.zeros(max_blocks, dtype=np.float32)
        for q in range(c, n_queries, n_chunks):
            lo, hi = q_indptr[q], q_indptr[q + 1]
            _search_one(q_indices[lo:hi], q_values[lo:hi], query_cut, heap_factor, list_blocks, block_docs_ptr, docs,
                        block_scale, list_terms, summary_terms, summary_term_ptr, summary_blocks, summary_codes,
                        fwd_indptr, fwd_indices, fwd_values, fwd_scale, q_dense, visited, acc, out_scores[q],
                        out_docs[q])


class SeismicSearcher:
    """Searches built Seismic arrays (in memory or memory-mapped) over the forward index they were built on."""

    def __init__(self, arrays: Mapping[str, np.ndarray], fwd_indptr: np.ndarray, fwd_indices: np.ndarray,
                 fwd_values: np.ndarray, fwd_scale: float = 1.0):
        missing = [name for name in ARRAYS if name not in arrays]
        if missing:
            raise ValueError(f"seismic index is missing arrays {missing}")
        self.arrays = tuple(arrays[name] for name in ARRAYS)
        self.forward = (fwd_indptr, fwd_indices, fwd_values, np.float32(fwd_scale))
        self.vocab_size = len(arrays["list_blocks"]) - 1
        self.n_docs = len(fwd_indptr) - 1
        self.max_blocks = max(1, int(np.diff(arrays["list_blocks"]).max(initial=0)))
        # scratch for single queries, reused across calls (each call leaves it zeroed)
        self._scratch = (np.zeros(self.vocab_size, np.float32), np.zeros((self.n_docs + 63) >> 6, np.uint64),
                         np.zeros(self.max_blocks, np.float32))

    def search_one(self, q_indices: np.ndarray, q_values: np.ndarray, k: int,
                   params: SeismicSearchParams = SeismicSearchParams()) -> tuple[np.ndarray, np.ndarray]:
        """(scores, doc numbers) of one query, best first, on the calling thread; not for concurrent calls."""
        q_indices, q_values = self._check_query(q_indices, q_values, k)
        scores, docs = np.empty(k, np.float32), np.empty(k, np.int32)
        _search_one(q_indices, q_values, params.query_cut, np.float32(params.heap_factor), *self.arrays,
                    *self.forward, *self._scratch, scores, docs)
        return scores, docs

    def search(self, q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, k: int,
               params: SeismicSearchParams = SeismicSearchParams(), threads: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, doc numbers), each (queries, k), for a CSR batch of queries, spread over ``threads``."""
        q_indptr = np.ascontiguousarray(q_indptr, dtype=np.int64)
        q_indices, q_values = self._check_query(q_indices, q_values, k)
        n = len(q_indptr) - 1
        scores, docs = np.empty((n, k), np.float32), np.empty((n, k), np.int32)
        with _threads(threads):
            n_chunks = max(1, min(n, numba.get_num_threads() * 8))
            _search_batch(q_indptr, q_indices, q_values, params.query_cut, np.float32(params.heap_factor),
                          *self.arrays, *self.forward, self.max_blocks, n_chunks, scores, docs)
        return scores, docs

    def _check_query(self, q_indices, q_values, k) -> tuple[np.ndarray, np.ndarray]:
        _check_int("k", k, 1)
        q_indices = np.ascontiguousarray(q_indices, dtype=np.int32)
        q_values = np.ascontiguousarray(q_values, dtype=np.float32)
        if q_indices.shape != q_values.shape or q_indices.ndim != 1:
            raise ValueError("query term ids and weights must be 1-d arrays of the same length")
        if len(q_indices) and (q_indices.min() < 0 or q_indices.max() >= self.vocab_size):
            raise ValueError(f"query term ids must lie in [0, {self.vocab_size})")
        if not np.all(np.isfinite(q_values)) or np.any(q_values < 0):
            raise ValueError("query weights must be finite and >= 0")
        return q_indices, q_values


class _threads:
    """Runs a block with ``threads`` Numba threads (None: all), restoring the previous setting."""

    def __init__(self, threads: int | None):
        self.threads = threads

    def __enter__(self):
        self.previous = numba.get_num_threads()
        if self.threads is not None:
            if not isinstance(self.threads, int) or self.threads < 1:
                raise ValueError(f"threads must be a positive integer, got {self.threads!r}")
            numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))

    def __exit__(self, *exc):
        numba.set_num_threads(self.previous)
