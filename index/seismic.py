"""Seismic (Bruch, Nardini, Rulli, Venturini, SIGIR 2024): approximate top-k over learned sparse vectors.

Build, from a segment's forward index and postings:
  1. static pruning keeps each term's heaviest postings; how many is ``pruning``:
     - "fixed" (the default, the paper's description): every list keeps at most its ``n_postings`` heaviest;
     - "global" (pyseismic-lsr's default, the Rust crate's ``GlobalThreshold``): one weight threshold over the whole
       segment keeps the ``n_postings`` x vocabulary-size heaviest postings, so ``n_postings`` is the kept length
       *on average*; each list is then capped at ``max_fraction`` x ``n_postings`` (its heaviest). Long lists of
       heavy terms keep more than n_postings, lists of light terms fewer. Postings tied at the threshold are shared
       out in proportion to each list's ties. It keeps more of the long lists: at 1M documents it is what matches
       pyseismic-lsr at equal n_postings, but on the 63k-passage corpus it is 15% slower at recall 0.95 than
       "fixed" (BENCHMARKS.md, "Seismic"), hence not the default;
  2. each pruned list is cut into blocks of similar documents (``index.clustering``: ``centroid_fraction`` x list
     length random centroids, one assignment pass on the documents' ``doc_cut`` heaviest terms);
  3. each block gets a summary vector (``index.summaries``: per-term maxima pruned to ``summary_energy`` of the
     mass, 8-bit codes), stored inverted per list.
Lists are built in parallel: chunks of terms run as ``nogil`` calls on a thread pool, and their arrays are then
copied into place by term.

Search, per query: the ``query_cut`` heaviest query terms pick the lists; each list's blocks are scored by their
summaries against the whole query; a block's documents are scored exactly through the forward index only when the
summary score reaches ``heap_factor`` x the current k-th best score. That is pyseismic-lsr's convention (heap_factor
<= 1, lower is more accurate); the issue's "heap minimum / heap_factor" is the same rule with the inverse factor.
The first list's blocks go best first so the heap fills with good documents early; a visited bitset scores each
document once. With a filter (index/allowed.py), a disallowed document is skipped before it is scored, so it never
enters the heap nor raises the bar; and as the allowed top-k sits deeper in each list, a filter keeping a share s
of the segment visits query_cut / s^(1/4) lists (``SeismicSearchParams.filtered``). Kernels are ``nogil``: the Index runs batches one query per call on its thread
pool.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit

from lsr.core import validate
from lsr.index import topk
from lsr.index.bundles import Bundle, register
from lsr.index.errors import IndexCorrupt
from lsr.index.clustering import cluster_list, top_terms
from lsr.index.forward import ForwardArrays, dot
from lsr.index.methods import Method, register as register_method
from lsr.index.postings import Postings
from lsr.index.prefetch import prefetch
from lsr.index.quantize import impact
from lsr.index.segment import array, check_impacts, offsets, within
from lsr.index.summaries import (LAYOUT_RULES, LEVELS, block_summary, layout_bound, layout_problem, score_list,
                                 write_list)

MAX_BLOCKS_PER_LIST = 1 << 16  # block numbers inside a list are 16-bit
_SEED = 42                     # clustering samples centroids with splitmix64(seed, term): builds are deterministic
PRUNINGS = ("global", "fixed")


@dataclass(frozen=True)
class SeismicBuildParams:
    """Build parameters; defaults chosen by measurement on splade-tiny vectors (BENCHMARKS.md, "Seismic")."""

    n_postings: int = 4000          # lambda: postings kept per term (on average with "global")
    pruning: str = "fixed"          # a "fixed" cap per list, or pyseismic-lsr's "global" threshold
    max_fraction: float = 1.5       # "global" only: no list keeps more than max_fraction x n_postings
    centroid_fraction: float = 0.2  # beta: blocks per list = beta x kept list length
    summary_energy: float = 0.4     # alpha: fraction of a summary's mass kept
    min_cluster_size: int = 3       # smaller clusters are dissolved into the others (pyseismic-lsr's 2: "<= 2")
    doc_cut: int = 15               # heaviest document terms compared with the centroids

    def __post_init__(self) -> None:
        for name, low in (("n_postings", 1), ("min_cluster_size", 1), ("doc_cut", 1)):
            object.__setattr__(self, name, validate.integer(f"seismic: {name}", getattr(self, name), low))
        for name in ("centroid_fraction", "summary_energy"):
            object.__setattr__(self, name, validate.fraction(f"seismic: {name}", getattr(self, name)))
        validate.choice("seismic: pruning", self.pruning, PRUNINGS)
        object.__setattr__(self, "max_fraction", validate.number("seismic: max_fraction", self.max_fraction, 1))
        if self.centroid_fraction * self.list_cap >= MAX_BLOCKS_PER_LIST:
            raise ValueError(f"seismic: centroid_fraction x the longest kept list must stay below "
                             f"{MAX_BLOCKS_PER_LIST} blocks per list, got {self.centroid_fraction} x {self.list_cap}")

    @property
    def list_cap(self) -> int:
        """The most postings one list keeps."""
        return self.n_postings if self.pruning == "fixed" else int(self.n_postings * self.max_fraction)


@dataclass(frozen=True)
class SeismicSearchParams:
    """Search parameters; the defaults reach recall@10 >= 0.95 on the benchmark corpora (BENCHMARKS.md, "Seismic")."""

    query_cut: int = 10             # heaviest query terms whose lists are visited
    heap_factor: float = 0.9        # a block is scored when its summary score >= heap_factor x the k-th best

    def __post_init__(self) -> None:
        object.__setattr__(self, "query_cut", validate.integer("seismic: query_cut", self.query_cut, 1))
        object.__setattr__(self, "heap_factor", validate.fraction("seismic: heap_factor", self.heap_factor,
                                                                  float32=True))

    def filtered(self, share: float) -> int:
        """The query cut of a search whose filter keeps ``share`` of the documents: query_cut / share^(1/4).

        The allowed top-k ranks about k / share in the unfiltered order, where more of a query's lighter terms
        decide. Measured on 63k passages at 10% (``lsr bench filter``, BENCHMARKS.md), query_cut 8, heap_factor 0.8
        (unfiltered recall@10 0.961): recall 0.919-0.928 unscaled, 0.957-0.965 at 1.22-1.26x the unfiltered latency
        with the fourth root, 0.978-0.979 at 2.0x with the square root."""
        return max(self.query_cut, round(self.query_cut / share ** 0.25))


# ----------------------------------------------------------------------------------------------------------- build

@njit(cache=True, nogil=True)
def _count_at_least(post_indptr, post_values, threshold):
    """Per list: postings heavier than ``threshold``, and postings equal to it (stored values order as weights)."""
    n = len(post_indptr) - 1
    above = np.zeros(n, dtype=np.int64)
    ties = np.zeros(n, dtype=np.int64)
    for t in range(n):
        for j in range(post_indptr[t], post_indptr[t + 1]):
            v = post_values[j]
            if v > threshold:
                above[t] += 1
            elif v == threshold:
                ties[t] += 1
    return above, ties


def kept_lengths(post_indptr: np.ndarray, post_values: np.ndarray, params: SeismicBuildParams) -> np.ndarray:
    """How many postings (its heaviest) each term's list keeps under ``params.pruning``."""
    lengths = np.diff(post_indptr)
    total = params.n_postings * len(lengths)
    if params.pruning == "fixed" or total >= len(post_values):
        return np.minimum(lengths, params.list_cap)
    threshold = np.partition(post_values, len(post_values) - total)[len(post_values) - total]
    above, ties = _count_at_least(post_indptr, post_values, threshold)
    share = ties * (total - int(above.sum())) // int(ties.sum())   # the tied postings still needed, pro rata
    return np.minimum(above + share, params.list_cap)


@njit(cache=True, nogil=True)
def _heaviest(docs, values, m, out):
    """Writes the doc numbers of the ``m`` largest impacts into ``out`` (ties: earlier postings first)."""
    n = len(docs)
    if m >= n:
        out[:] = docs
        return
    w = np.empty(n, dtype=np.float32)
    for i in range(n):
        w[i] = impact(values[i])
    threshold = np.partition(w, n - m)[n - m]
    o = 0
    for i in range(n):
        if w[i] > threshold:
            out[o] = docs[i]
            o += 1
    for i in range(n):
        if o == m:
            break
        if w[i] == threshold:
            out[o] = docs[i]
            o += 1


@njit(cache=True, nogil=True)
def _grow(a, need):
    """``a`` itself when it has ``need`` slots, else a copy at least twice as long."""
    if len(a) >= need:
        return a
    out = np.empty(max(need, 2 * len(a)), dtype=a.dtype)
    out[:len(a)] = a
    return out


@njit(cache=True, nogil=True)
def _build_lists(terms, post_indptr, post_docs, post_values, kept, centroid_fraction, min_cluster_size,
                 energy, fwd_indptr, fwd_terms, fwd_values, cut_indptr, cut_terms, cut_weights, record_dtype):
    """Prunes (to ``kept[t]`` postings), clusters and summarizes the lists of ``terms``; their arrays come back
    concatenated in that order.

    Returns per-term counts (kept postings, blocks, records, entry bytes, samples) and the concatenated docs,
    block sizes, block scales, record terms, record counts, entries, samples and fence terms.
    """
    vocab_size = len(post_indptr) - 1
    n_terms = len(terms)
    counts = np.zeros((5, n_terms), dtype=np.int64)
    total_kept = 0
    for i in range(n_terms):
        counts[0, i] = kept[terms[i]]
        total_kept += counts[0, i]
    docs_out = np.empty(total_kept, dtype=np.int32)
    block_sizes = np.empty(total_kept, dtype=np.int64)
    block_scale = np.empty(total_kept, dtype=np.float32)
    record_terms = np.empty(1024, dtype=record_dtype)
    record_sizes = np.empty(1024, dtype=np.uint8)
    entries = np.empty(4096, dtype=np.uint8)
    samples = np.empty(64, dtype=np.uint32)
    fence = np.empty(64, dtype=record_dtype)
    # one list's summary entries in block order, before they are inverted
    e_terms = np.empty(4096, dtype=np.int32)
    e_blocks = np.empty(4096, dtype=np.int64)
    e_codes = np.empty(4096, dtype=np.uint8)
    term_start = np.empty(vocab_size, dtype=np.int64)
    term_end = np.empty(vocab_size, dtype=np.int64)
    term_stamp = np.zeros(vocab_size, dtype=np.int64)
    maxv = np.zeros(vocab_size, dtype=np.float32)
    touched = np.empty(vocab_size + 1, dtype=np.int32)
    mass = np.zeros(LEVELS + 1, dtype=np.float64)
    count = np.zeros(vocab_size, dtype=np.int64)
    cursor = np.empty(vocab_size, dtype=np.int64)
    distinct = np.empty(vocab_size, dtype=np.int32)
    n_docs = n_blocks = n_records = n_bytes = n_samples = 0
    for i in range(n_terms):
        t = terms[i]
        lo, hi = post_indptr[t], post_indptr[t + 1]
        m = counts[0, i]
        docs = docs_out[n_docs:n_docs + m]
        _heaviest(post_docs[lo:hi], post_values[lo:hi], m, docs)
        sizes = cluster_list(docs, t, int(centroid_fraction * m), min_cluster_size,
                             np.uint64(_SEED) * np.uint64(1000003) + np.uint64(t), fwd_indptr, fwd_terms, fwd_values,
                             cut_indptr, cut_terms, cut_weights, term_start, term_end, term_stamp, t + 1)
        nb = len(sizes)
        start, n_entries, n_distinct = 0, 0, 0
        for b in range(nb):
            block = docs[start:start + sizes[b]]
            room = 0
            for d in block:
                room += fwd_indptr[d + 1] - fwd_indptr[d]
            room = n_entries + min(room, vocab_size)
            e_terms, e_blocks, e_codes = _grow(e_terms, room), _grow(e_blocks, room), _grow(e_codes, room)
            size, scale = block_summary(block, fwd_indptr, fwd_terms, fwd_values, energy, maxv, touched, mass,
                                        e_terms[n_entries:], e_codes[n_entries:])
            for e in range(n_entries, n_entries + size):
                u = e_terms[e]
                e_blocks[e] = b
                if count[u] == 0:
                    distinct[n_distinct] = u
                    n_distinct += 1
                count[u] += 1
            n_entries += size
            block_sizes[n_blocks + b] = sizes[b]
            block_scale[n_blocks + b] = scale
            start += sizes[b]
        list_terms = np.sort(distinct[:n_distinct])
        nr, nbytes, ns = layout_bound(n_entries, n_distinct)
        record_terms = _grow(record_terms, n_records + nr)
        record_sizes = _grow(record_sizes, n_records + nr)
        entries = _grow(entries, n_bytes + nbytes)
        samples = _grow(samples, n_samples + ns)
        fence = _grow(fence, n_samples + ns)
        nr, nbytes, ns = write_list(e_terms[:n_entries], e_blocks[:n_entries], e_codes[:n_entries], list_terms,
                                    count, cursor, record_terms[n_records:], record_sizes[n_records:],
                                    entries[n_bytes:], samples[n_samples:], fence[n_samples:])
        for u in list_terms:
            count[u] = 0
        counts[1, i], counts[2, i], counts[3, i], counts[4, i] = nb, nr, nbytes, ns
        n_docs += m
        n_blocks += nb
        n_records += nr
        n_bytes += nbytes
        n_samples += ns
    # copies: the buffers are sized for every kept posting or grown by doubling, and would stay held until placed
    return (counts, docs_out, block_sizes[:n_blocks].copy(), block_scale[:n_blocks].copy(),
            record_terms[:n_records].copy(), record_sizes[:n_records].copy(), entries[:n_bytes].copy(),
            samples[:n_samples].copy(), fence[:n_samples].copy())


@njit(cache=True, nogil=True)
def _place(terms, run_lengths, src, offsets, dst):
    """Copies a chunk's per-term runs (concatenated in ``terms`` order) to ``dst[offsets[t]:]`` for each term t."""
    pos = 0
    for i in range(len(terms)):
        n = run_lengths[i]
        start = offsets[terms[i]]
        dst[start:start + n] = src[pos:pos + n]
        pos += n


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def build_arrays(fwd_indptr: np.ndarray, fwd_terms: np.ndarray, fwd_values: np.ndarray, post_indptr: np.ndarray,
                 post_docs: np.ndarray, post_values: np.ndarray, params: SeismicBuildParams) -> dict[str, np.ndarray]:
    """The Seismic arrays of one segment, from its forward index and postings (impacts in any stored dtype).

    Lists are dealt, longest first and round-robin, to a few chunks per thread; each chunk is one ``nogil`` call on
    a thread pool that returns its lists' arrays, which are then copied to their places by term.
    """
    vocab_size = len(post_indptr) - 1
    lengths = kept_lengths(post_indptr, post_values, params)
    order = np.argsort(-lengths, kind="stable")[:np.count_nonzero(lengths)].astype(np.int64)
    threads = numba.get_num_threads()
    n_chunks = max(1, min(len(order), threads * 4))
    chunks = [np.sort(order[c::n_chunks]) for c in range(n_chunks)]
    cut = top_terms(fwd_indptr, fwd_terms, fwd_values, params.doc_cut)
    record_dtype = np.uint16 if vocab_size <= 1 << 16 else np.int32

    def run(terms: np.ndarray):
        return _build_lists(terms, post_indptr, post_docs, post_values, lengths,
                            float(params.centroid_fraction), params.min_cluster_size, float(params.summary_energy),
                            fwd_indptr, fwd_terms, fwd_values, *cut, record_dtype)

    with ThreadPoolExecutor(threads) as pool:
        results = [list(r) for r in pool.map(run, chunks)]
    per_term = np.zeros((5, vocab_size), dtype=np.int64)
    for terms, (counts, *_) in zip(chunks, results):
        per_term[:, terms] = counts
    offsets = [_offsets(row) for row in per_term]   # docs, blocks, records, entry bytes, samples
    kinds = (0, 1, 1, 2, 2, 3, 4, 4)                  # which offsets each concatenated array follows
    outs = []
    for a, kind in enumerate(kinds):
        out = np.empty(offsets[kind][-1], dtype=results[0][1 + a].dtype)
        for terms, result in zip(chunks, results):
            _place(terms, result[0][kind], result[1 + a], offsets[kind], out)
            result[1 + a] = None   # placed: freed now, so the build peaks near one copy of the arrays, not two
        outs.append(out)
    docs, block_sizes, block_scale, record_terms, record_sizes, entries, samples, fence = outs
    list_blocks, list_records, list_entries, list_samples = offsets[1:]
    return {"list_blocks": list_blocks, "block_docs_ptr": _offsets(block_sizes), "docs": docs,
            "block_scale": block_scale, "list_records": list_records, "list_entries": list_entries,
            "list_samples": list_samples, "record_terms": record_terms, "record_sizes": record_sizes,
            "entries": entries, "samples": samples, "fence": fence}


# ---------------------------------------------------------------------------------------------------------- search

class SeismicArrays(Bundle):
    """A segment's Seismic arrays (the ``seismic.*`` files, by their names) and its forward index (``forward``:
    ForwardArrays)."""

    FIELDS = ("list_blocks", "block_docs_ptr", "docs", "block_scale", "list_records", "list_entries", "list_samples",
              "record_terms", "record_sizes", "entries", "samples", "fence", "forward")


class SeismicWork(Bundle):
    """One thread's scratch, left as found: ``q_dense`` (vocabulary, zeros), ``visited`` (bitset over documents,
    zeros), ``acc`` (most blocks in a list), ``hs``/``hd`` (the heap, k entries)."""

    FIELDS = ("q_dense", "visited", "acc", "hs", "hd")


@njit(cache=True)
def _new_seismic_arrays(*args):
    return SeismicArrays(*args)


@njit(cache=True)
def _new_seismic_work(*args):
    return SeismicWork(*args)


register(SeismicArrays, _new_seismic_arrays)
register(SeismicWork, _new_seismic_work)


@njit(cache=True, nogil=True)
def seismic_topk(a, w, q_terms, q_weights, query_cut, heap_factor, allowed, out_scores, out_docs):
    """Top-k of one query (``q_terms`` ascending; ``a`` SeismicArrays, ``w`` SeismicWork) among the documents
    ``allowed`` (bool per document; empty: all) into out_scores/out_docs, best first, padded with (0, -1). A
    disallowed document is never scored nor let into the heap, so a block without an allowed document costs only
    the reading of its document numbers."""
    list_blocks, block_docs_ptr, docs, block_scale = a.list_blocks, a.block_docs_ptr, a.docs, a.block_scale
    fwd_indptr, fwd_terms, fwd_values = a.forward.indptr, a.forward.terms, a.forward.values
    q_dense, visited, acc, hs, hd = w.q_dense, w.visited, w.acc, w.hs, w.hd
    filtered = len(allowed) > 0
    k = len(out_scores)
    size = 0
    nq = len(q_terms)
    for i in range(nq):
        q_dense[q_terms[i]] = q_weights[i]
    cut = np.argsort(-q_weights, kind="mergesort")[:min(query_cut, nq)]
    for r in range(len(cut)):
        t = q_terms[cut[r]]
        b0 = list_blocks[t]
        nb = list_blocks[t + 1] - b0
        if nb == 0:
            continue
        acc[:nb] = 0.0
        score_list(q_terms, q_weights, a.list_records[t], a.list_records[t + 1], a.list_entries[t],
                   a.list_samples[t], a.record_terms, a.record_sizes, a.entries, a.samples, a.fence, acc)
        for b in range(nb):
            acc[b] *= block_scale[b0 + b]
        # the first list best block first: the heap fills with good documents before the others are filtered
        # (and once a block falls below the bar, every later one does)
        order = np.argsort(acc[:nb])[::-1] if r == 0 else np.empty(0, dtype=np.int64)
        for x in range(nb):
            b = order[x] if r == 0 else x
            if size == k and acc[b] < heap_factor * hs[0]:
                if r == 0:
                    break
                continue
            lo, hi = block_docs_ptr[b0 + b], block_docs_ptr[b0 + b + 1]
            for p in range(lo, hi):
                # two-stage prefetch: the row offsets of the document after next, the row of the next one
                if p + 2 < hi:
                    prefetch(fwd_indptr, docs[p + 2])
                if p + 1 < hi:
                    nxt = fwd_indptr[docs[p + 1]]
                    prefetch(fwd_terms, nxt)
                    prefetch(fwd_values, nxt)
                d = docs[p]
                if filtered and not allowed[d]:
                    continue
                word, bit = d >> 6, np.uint64(1) << np.uint64(d & 63)
                if visited[word] & bit:
                    continue
                visited[word] |= bit
                s = dot(fwd_indptr[d], fwd_indptr[d + 1], fwd_terms, fwd_values, q_dense)
                size = topk.push(hs, hd, size, k, s, d)
    for i in range(nq):
        q_dense[q_terms[i]] = 0.0
    visited[:] = 0
    for i in range(size):
        hs[i] *= a.forward.scale
    topk.drain(hs, hd, size, out_scores, out_docs, 0)


@njit(cache=True, nogil=True)
def seismic_batch(a, w, q_indptr, q_terms, q_weights, query_cut, heap_factor, allowed, out_scores, out_docs):
    for r in range(len(q_indptr) - 1):
        lo, hi = q_indptr[r], q_indptr[r + 1]
        seismic_topk(a, w, q_terms[lo:hi], q_weights[lo:hi], query_cut, heap_factor, allowed, out_scores[r],
                     out_docs[r])


_INDEX_ARRAYS = SeismicArrays.FIELDS[:-1]


class Scratch:
    """One thread's working memory for one segment: dense query, visited bitset, block scores, heap; and the
    arrays the kernel reads, gathered once."""

    def __init__(self, seg):   # its arrays passed check_arrays when the segment opened
        self.arrays = SeismicArrays.of(**{name: seg[f"seismic.{name}"] for name in _INDEX_ARRAYS},
                                       forward=ForwardArrays.of_segment(seg))
        list_blocks = seg["seismic.list_blocks"]
        self.q_dense = np.zeros(len(list_blocks) - 1, dtype=np.float32)
        self.visited = np.zeros((seg.num_docs + 63) >> 6, dtype=np.uint64)
        self.acc = np.zeros(max(1, int(np.diff(list_blocks).max(initial=0))), dtype=np.float32)
        self.heap = topk.Heap()
        self._work: tuple[int, SeismicWork] | None = None

    def work(self, k: int) -> SeismicWork:
        """The scratch bundle with a heap of k entries (made again only when k changes)."""
        if self._work is None or self._work[0] != k:
            hs, hd = self.heap.arrays(k)
            self._work = k, SeismicWork.of(q_dense=self.q_dense, visited=self.visited, acc=self.acc, hs=hs, hd=hd)
        return self._work[1]


def search(seg, q_indptr, q_terms, q_weights, k, scratch: Scratch, out_scores, out_docs,
           params: SeismicSearchParams, allowed) -> None:
    seismic_batch(scratch.arrays, scratch.work(k), q_indptr, q_terms, q_weights, params.filtered(allowed.share),
                  np.float32(params.heap_factor), allowed.mask, out_scores, out_docs)


def check_arrays(seg) -> None:
    """The seismic arrays of ``seg``: offsets that end where their arrays end, documents below the segment's count,
    and summaries that decode within their lists (what ``seismic_topk`` and ``score_list`` index unchecked)."""
    missing = [name for name in _INDEX_ARRAYS if f"seismic.{name}" not in seg.arrays]
    if missing:
        raise IndexCorrupt(f"segment {seg.info.name} lacks the seismic arrays {missing}: it was built by another "
                           "version of the seismic layout; rebuild the index")
    vocab = len(seg["post_indptr"]) - 1
    record_dtype = np.uint16 if vocab <= 1 << 16 else np.int32
    list_blocks = offsets(seg, "seismic.list_blocks", vocab + 1)
    n_blocks = int(list_blocks[-1])
    block_docs = offsets(seg, "seismic.block_docs_ptr", n_blocks + 1)
    within(seg, "seismic.docs", array(seg, "seismic.docs", np.int32, (int(block_docs[-1]),)), 0, seg.num_docs)
    check_impacts(seg, "seismic.block_scale", array(seg, "seismic.block_scale", np.float32, (n_blocks,)))
    records = offsets(seg, "seismic.list_records", vocab + 1)
    entries = offsets(seg, "seismic.list_entries", vocab + 1)
    samples = offsets(seg, "seismic.list_samples", vocab + 1)
    arrays = (list_blocks, records, entries, samples,
              array(seg, "seismic.record_terms", record_dtype, (int(records[-1]),)),
              array(seg, "seismic.record_sizes", np.uint8, (int(records[-1]),)),
              array(seg, "seismic.entries", np.uint8, (int(entries[-1]),)),
              array(seg, "seismic.samples", np.uint32, (int(samples[-1]),)),
              array(seg, "seismic.fence", record_dtype, (int(samples[-1]),)))
    rule = layout_problem(*arrays)
    if rule:
        raise IndexCorrupt(f"segment {seg.name}: seismic summaries do not decode ({LAYOUT_RULES[rule]})")


def build(fwd, postings, params: SeismicBuildParams) -> dict[str, np.ndarray]:
    if len(postings.dense):   # common terms are dense rows there: Seismic needs every term's list
        postings = Postings.from_forward(fwd, dense_rows=False)
    return build_arrays(fwd.indptr, fwd.terms, fwd.values, postings.indptr, postings.docs, postings.values, params)


register_method(Method("seismic", search=search, scratch=Scratch, build=build, build_params=SeismicBuildParams,
                       search_params=SeismicSearchParams, check_arrays=check_arrays))
