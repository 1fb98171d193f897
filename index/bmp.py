"""Block-Max Pruning (Mallia, Suel, Tonellotto, SIGIR 2024): exact (alpha = 1) or approximate top-k over blocks.

Documents (reordered so that neighbours are similar) form blocks of ``block_size`` consecutive numbers. For every
term the build stores the largest impact in each block (uint8 levels, rounded up so bounds stay safe). A query sums
``weight * block max`` into one upper bound per block, visits blocks from the highest bound down (a counting sort
into buckets, no full sort), scores a block exactly, and stops when ``alpha * bound`` falls below the k-th score.
``alpha = 1`` is safe; smaller values stop sooner. ``beta`` keeps only the ceil(beta * m) heaviest query terms.
When the best blocks have filled the top-k (or ``PROBE`` blocks are scored) and more than ``exhaustive`` of all
blocks could still hold a better document, the bounds are too loose for block-at-a-time scoring to pay (a block costs about 1/7 of a whole
term-at-a-time pass): the kept terms are then scored over all documents by exact search, which gives the alpha = 1
result. ``exhaustive = 1`` never does this.
The starting threshold comes from each term's 10th, 100th and 1000th largest impact (k documents score at least
``weight * kth impact``), as in the paper; with D documents disallowed (a filter, deletes) the rank taken is one of at
least k + D, and none when D is larger.

Filters (index/allowed.py): blocks holding no allowed document get no place in the visiting order, a disallowed
document never enters the heap, and the exhaustive pass skips them too, so alpha = 1 stays safe against a filtered
exact search.

A block is scored from the segment's postings (index/postings.py): a common term's dense row gives the block's
impacts as one vectorized slice; a listed term's postings in the block start at the offset its block list records
(``term_ptr`` (V + 1) int64 into ``blocks`` int32 ascending / ``offsets`` int32 into the term's list / ``maxes``
uint8), found by binary search in the first blocks, then through a per-query table filled by one walk of each
list. Terms in at least half the blocks (all dense-row terms among them) also get a row of maxima over
every block (``max_row`` (V) int32 into ``max_dense`` (rows x n_blocks) uint8; -1 otherwise), so their bounds add up
in one vectorized pass and absent blocks are skipped without a search. ``kth`` (V, 3) impacts; ``unit`` (1,)
float32: one maxima level in stored-impact units; ``block_size`` (1,) int64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from lsr.core import validate
from lsr.index import topk
from lsr.index.errors import IndexCorrupt
from lsr.index.bundles import Bundle, register
from lsr.index.exact import ExactArrays, ExactWork, exact_one
from lsr.index.methods import Method, register as register_method
from lsr.index.quantize import dequantize, impact
from lsr.index.segment import array, offsets, within

KTH = np.array([10, 100, 1000], dtype=np.int64)
BUCKETS = 1024   # bound buckets for the best-first block order
PROBE = 4        # blocks scored at most before deciding whether block-at-a-time pays (see ``exhaustive``)
EXHAUSTIVE = 0.15


@dataclass(frozen=True)
class BmpBuildParams:
    block_size: int = 64            # documents per block (measured best on the windows corpus, BENCHMARKS.md)

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_size", validate.integer("bmp: block_size", self.block_size, 8, 128))


@dataclass(frozen=True)
class BmpSearchParams:
    alpha: float = 1.0              # stop when alpha x the next block's bound < the k-th score; 1 = safe
    beta: float = 1.0               # share of the query's terms kept, heaviest first; 1 = all (see ``filtered``)
    exhaustive: float = EXHAUSTIVE  # share of blocks still alive above which all documents are scored; 1 = never

    def __post_init__(self) -> None:
        # the kernel takes them as float32, and alpha divides: each must stay a normal float32
        object.__setattr__(self, "alpha", validate.fraction("bmp: alpha", self.alpha, float32=True))
        object.__setattr__(self, "beta", validate.fraction("bmp: beta", self.beta, float32=True))
        object.__setattr__(self, "exhaustive", validate.number("bmp: exhaustive", self.exhaustive, 0, 1,
                                                               float32=True))

    def filtered(self, share: float) -> float:
        """The beta of a search whose filter keeps ``share`` of the documents: 1 - (1 - beta) x share.

        A filter correlated with the query's subject leaves documents that match on its lighter terms, the ones
        beta drops. Measured on 63k passages at 10% (``lsr bench filter``, BENCHMARKS.md): beta 0.7 held recall@10
        0.938 where unfiltered it gives 0.950; fewer documents pass, more terms are kept."""
        return 1.0 - (1.0 - self.beta) * share


@nb.njit(cache=True, nogil=True)
def _count_blocks(post_indptr, post_docs, block_size):
    vocab = len(post_indptr) - 1
    counts = np.zeros(vocab, dtype=np.int64)
    for t in range(vocab):
        last = -1
        for j in range(post_indptr[t], post_indptr[t + 1]):
            b = post_docs[j] // block_size
            if b != last:
                counts[t] += 1
                last = b
    return counts


@nb.njit(cache=True, nogil=True)
def _level(v, unit):
    """The maxima level of an impact: rounded up, so a bound never falls below the impact."""
    return 0 if v <= 0.0 else max(1, min(255, int(math.ceil(v / unit))))


@nb.njit(cache=True, nogil=True)
def _fill_lists(post_indptr, post_docs, post_values, block_size, unit, term_ptr, blocks, offsets, maxes):
    for t in range(len(post_indptr) - 1):
        e = term_ptr[t] - 1
        last = -1
        start = post_indptr[t]
        for j in range(start, post_indptr[t + 1]):
            b = post_docs[j] // block_size
            if b != last:
                e += 1
                blocks[e] = b
                offsets[e] = j - start
                maxes[e] = 0
                last = b
            maxes[e] = max(maxes[e], _level(impact(post_values[j]), unit))


@nb.njit(cache=True, nogil=True)
def _fill_max_dense(dense, dense_row, term_ptr, blocks, maxes, max_row, block_size, unit, max_dense):
    for t in range(len(max_row)):
        mr = max_row[t]
        if mr < 0:
            continue
        r = dense_row[t]
        if r >= 0:
            for d in range(dense.shape[1]):
                lv = _level(impact(dense[r, d]), unit)
                if lv > max_dense[mr, d // block_size]:
                    max_dense[mr, d // block_size] = lv
        else:
            for e in range(term_ptr[t], term_ptr[t + 1]):
                max_dense[mr, blocks[e]] = maxes[e]


@nb.njit(cache=True, nogil=True)
def _kth_impacts(post_indptr, post_values, dense, dense_row, kth_ranks, out):
    """The 10th/100th/1000th largest impact of every term (0 when it has fewer postings)."""
    for t in range(len(post_indptr) - 1):
        r = dense_row[t]
        if r >= 0:
            values = dense[r][dense[r] > 0]
        else:
            values = post_values[post_indptr[t]:post_indptr[t + 1]]
        n = len(values)
        if n < kth_ranks[0]:
            continue
        values = values.copy()
        for x in range(len(kth_ranks)):
            if n >= kth_ranks[x]:
                out[t, x] = np.partition(values, n - kth_ranks[x])[n - kth_ranks[x]]


def build(fwd, postings, params: BmpBuildParams) -> dict[str, np.ndarray]:
    bs = params.block_size
    n_blocks = -(-fwd.num_docs // bs)
    if postings.values.dtype == np.uint8:
        unit = 1.0                            # maxima are the stored levels themselves
    else:                                     # a hair above max / 255, so that no rounded-up level exceeds 255
        unit = float(dequantize(postings.term_max, 1.0).max()) / 255 * (1 + 1e-6) or 1.0
    unit32 = np.float32(unit)
    counts = _count_blocks(postings.indptr, postings.docs, bs)
    term_ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=term_ptr[1:])
    blocks = np.empty(term_ptr[-1], dtype=np.int32)
    offsets = np.empty(term_ptr[-1], dtype=np.int32)
    maxes = np.empty(term_ptr[-1], dtype=np.uint8)
    _fill_lists(postings.indptr, postings.docs, postings.values, bs, unit32, term_ptr, blocks, offsets, maxes)
    wide = np.nonzero((postings.dense_row >= 0) | (counts * 2 >= n_blocks))[0]
    max_row = np.full(len(counts), -1, dtype=np.int32)
    max_row[wide] = np.arange(len(wide), dtype=np.int32)
    max_dense = np.zeros((len(wide), n_blocks), dtype=np.uint8)
    _fill_max_dense(postings.dense, postings.dense_row, term_ptr, blocks, maxes, max_row, bs, unit32, max_dense)
    kth = np.zeros((len(counts), len(KTH)), dtype=postings.values.dtype)
    _kth_impacts(postings.indptr, postings.values, postings.dense, postings.dense_row, KTH, kth)
    return {"term_ptr": term_ptr, "blocks": blocks, "offsets": offsets, "maxes": maxes, "max_row": max_row,
            "max_dense": max_dense, "kth": kth, "unit": np.array([unit], dtype=np.float32),
            "block_size": np.array([bs], dtype=np.int64)}


class BmpArrays(Bundle):
    """A segment's bmp arrays (see the module's docstring), with its postings (``exact``: ExactArrays); ``unit``
    float32, ``block_size`` and ``n_docs`` int64."""

    FIELDS = ("exact", "term_ptr", "blocks", "offsets", "maxes", "max_row", "max_dense", "kth", "unit", "block_size",
              "n_docs")


class BmpWork(Bundle):
    """One thread's scratch: ``exact`` (ExactWork: score array and heap), block bounds ``ub``, one block's scores
    ``local``, the bucket order (``bucket_count``, ``bucket_start``, ``order``) and the query's block lookup table
    ``entry`` (terms x blocks)."""

    FIELDS = ("exact", "ub", "local", "bucket_count", "bucket_start", "order", "entry")


@nb.njit(cache=True)
def _new_bmp_arrays(*args):
    return BmpArrays(*args)


@nb.njit(cache=True)
def _new_bmp_work(*args):
    return BmpWork(*args)


register(BmpArrays, _new_bmp_arrays)
register(BmpWork, _new_bmp_work)


@nb.njit(cache=True, nogil=True)
def _bounds(a, terms, wq, ub):
    """ub[b] = sum over query terms of weight * block max (then a hair more, for float rounding)."""
    term_ptr, blocks, maxes, max_row, max_dense, unit = a.term_ptr, a.blocks, a.maxes, a.max_row, a.max_dense, a.unit
    ub[:] = 0.0
    for i in range(len(terms)):
        t = terms[i]
        wb = wq[i] * unit
        mr = max_row[t]
        if mr >= 0:
            row = max_dense[mr]
            for b in range(len(ub)):
                ub[b] += wb * np.float32(row[b])
        else:
            for e in range(term_ptr[t], term_ptr[t + 1]):
                ub[blocks[e]] += wb * np.float32(maxes[e])
    safety = np.float32(1.0 + 1e-5)   # float sums in another order may exceed a bound by an ulp or two
    for b in range(len(ub)):
        ub[b] *= safety


@nb.njit(cache=True, nogil=True)
def _order_blocks(w, floor, block_ok):
    """Into ``w.order``: the blocks with a bound >= floor (and, unless ``block_ok`` is empty, an allowed document),
    bucket by bucket from the highest; returns (count, bucket width)."""
    ub, bucket_count, bucket_start, order = w.ub, w.bucket_count, w.bucket_start, w.order
    filtered = len(block_ok) > 0
    hi_ub = np.float32(0.0)
    for b in range(len(ub)):
        if filtered and not block_ok[b]:
            ub[b] = 0.0
        hi_ub = max(hi_ub, ub[b])
    floor = min(floor, hi_ub)
    width = (hi_ub - floor) / (BUCKETS - 1) if hi_ub > floor else np.float32(1.0)
    bucket_count[:] = 0
    for b in range(len(ub)):
        if ub[b] > 0.0 and ub[b] >= floor:
            bucket_count[min(BUCKETS - 1, int((ub[b] - floor) / width))] += 1
    total = 0
    for x in range(BUCKETS - 1, -1, -1):
        bucket_start[x] = total
        total += bucket_count[x]
    for b in range(len(ub)):
        if ub[b] > 0.0 and ub[b] >= floor:
            x = min(BUCKETS - 1, int((ub[b] - floor) / width))
            order[bucket_start[x]] = b
            bucket_start[x] += 1
    return total, width


@nb.njit(cache=True, nogil=True)
def _find(blocks, lo, hi, b):
    """Index of block b in the ascending blocks[lo:hi], or -1 (branch-free halving: no mispredicted jumps)."""
    n = hi - lo
    if n <= 0:
        return -1
    base = lo
    while n > 1:
        half = n >> 1
        base = base + half if blocks[base + half] <= b else base
        n -= half
    return base if blocks[base] == b else -1


@nb.njit(cache=True, nogil=True)
def _locate(a, terms, entry):
    """entry[i, b]: index of block b in listed query term i's block list, or -1 (one walk per list per query
    instead of a binary search per scored block)."""
    dense_row, term_ptr, blocks = a.exact.dense_row, a.term_ptr, a.blocks
    for i in range(len(terms)):
        t = terms[i]
        if dense_row[t] >= 0:
            continue
        row = entry[i]
        row[:] = -1
        for e in range(term_ptr[t], term_ptr[t + 1]):
            row[blocks[e]] = e


@nb.njit(cache=True, nogil=True)
def _score_block(a, b, terms, wq, entry, located, local) -> int:
    """Exact scores of block b's documents into local[:count]; returns count. Listed terms are found in ``entry``
    once ``located``, by binary search before. Indices are unsigned so that Numba emits no negative-index fix-up
    (and vectorizes the dense rows)."""
    ex = a.exact
    post_indptr, post_docs, post_values, dense_row, dense = (ex.post_indptr, ex.post_docs, ex.post_values,
                                                             ex.dense_row, ex.dense)
    term_ptr, blocks, offsets, max_row, max_dense, block_size = (a.term_ptr, a.blocks, a.offsets, a.max_row,
                                                                 a.max_dense, a.block_size)
    base = np.uint64(b * block_size)
    count = min(block_size, a.n_docs - b * block_size)
    for i in range(len(terms)):
        t = terms[i]
        w = wq[i]
        r = dense_row[t]
        if r >= 0:
            if max_dense[max_row[t], b] == 0:
                continue
            ur = np.uint64(r)
            for x in range(np.uint64(count)):
                local[x] += w * impact(dense[ur, base + x])
            continue
        e = entry[i, b] if located else _find(blocks, term_ptr[t], term_ptr[t + 1], b)
        if e < 0:
            continue
        start = np.uint64(post_indptr[t] + offsets[e])
        end = np.uint64(post_indptr[t] + offsets[e + 1] if e + 1 < term_ptr[t + 1] else post_indptr[t + 1])
        for j in range(start, end):
            local[np.uint64(post_docs[j]) - base] += w * impact(post_values[j])
    return count


@nb.njit(cache=True, nogil=True)
def bmp_one(a, w, q_terms, q_weights, alpha, beta, exhaustive, allowed, block_ok, n_disallowed, out_scores,
            out_docs):
    """Top-k of one query (``a`` BmpArrays, ``w`` BmpWork) among the documents ``allowed`` (bool per document;
    empty: all; ``block_ok``: bool per block, an allowed document in it; ``n_disallowed``: how many are not)."""
    k = len(out_scores)
    m = len(q_terms)
    scale, block_size, local, ub, order = a.exact.scale, a.block_size, w.local, w.ub, w.order
    hs, hd = w.exact.hs, w.exact.hd
    filtered = len(allowed) > 0
    keep = m if beta >= 1.0 else min(m, int(math.ceil(beta * m)))
    if keep < m:   # the heaviest terms, kept in id order
        chosen = np.sort(np.argsort(-q_weights)[:keep])
        terms, weights = q_terms[chosen], q_weights[chosen]
    else:
        terms, weights = q_terms, q_weights
    wq = np.empty(keep, dtype=np.float32)
    rank = -1
    for x in range(len(KTH)):
        if KTH[x] - n_disallowed >= k:   # at least k allowed documents reach this rank's impact
            rank = x
            break
    theta0 = np.float32(0.0)   # k allowed documents score at least this: a safe starting threshold
    for i in range(keep):
        wq[i] = weights[i] * scale
        if rank >= 0:
            theta0 = max(theta0, wq[i] * impact(a.kth[terms[i], rank]))
    _bounds(a, terms, wq, ub)
    total, width = _order_blocks(w, theta0 / alpha, block_ok)
    size = 0
    thr = theta0
    located = False
    for c in range(total):
        b = order[c]
        if c > 0 and alpha * ub[b] < thr:   # the best block is always scored, as in the paper's code
            # blocks come bucket by bucket; within a bucket bounds differ by less than one bucket width
            if alpha * (ub[b] + width) < thr:
                break
            continue
        if not located and (size == k or c == PROBE):   # the threshold now tells whether the bounds can prune
            alive = 0
            for c2 in range(c, total):
                alive += alpha * ub[order[c2]] >= thr
            if alive > exhaustive * len(ub):   # too loose: one term-at-a-time pass costs less
                exact_one(a.exact, w.exact, terms, weights, allowed, out_scores, out_docs)
                return
            _locate(a, terms, w.entry)
            located = True
        count = _score_block(a, b, terms, wq, w.entry, located, local)
        base = b * block_size
        for x in range(count):
            s = local[x]
            if s > 0.0:
                local[x] = 0.0
                if s >= thr and (not filtered or allowed[base + x]):
                    size = topk.push(hs, hd, size, k, s, base + x)
                    if size == k:
                        thr = max(thr, hs[0])
    topk.drain(hs, hd, size, out_scores, out_docs, 0)


@nb.njit(cache=True, nogil=True)
def bmp_batch(a, w, q_indptr, q_terms, q_weights, alpha, beta, exhaustive, allowed, block_ok, n_disallowed,
              out_scores, out_docs):
    for r in range(len(q_indptr) - 1):
        lo, hi = q_indptr[r], q_indptr[r + 1]
        bmp_one(a, w, q_terms[lo:hi], q_weights[lo:hi], alpha, beta, exhaustive, allowed, block_ok, n_disallowed,
                out_scores[r], out_docs[r])


def _blocks_holding(block_size: int):
    """bool per block: whether it holds an allowed document (from the bool per document)."""
    def make(mask: np.ndarray) -> np.ndarray:
        padded = np.zeros(-(-len(mask) // block_size) * block_size, dtype=bool)
        padded[:len(mask)] = mask
        return padded.reshape(-1, block_size).any(axis=1)
    return make


class Scratch:
    def __init__(self, seg):
        block_size = int(seg["bmp.block_size"][0])
        n_blocks = -(-seg.num_docs // block_size)
        self.block_size = block_size
        self.arrays = BmpArrays.of(
            exact=ExactArrays.of_segment(seg), term_ptr=seg["bmp.term_ptr"], blocks=seg["bmp.blocks"],
            offsets=seg["bmp.offsets"], maxes=seg["bmp.maxes"], max_row=seg["bmp.max_row"],
            max_dense=seg["bmp.max_dense"], kth=seg["bmp.kth"], unit=np.float32(seg["bmp.unit"][0]),
            block_size=np.int64(block_size), n_docs=np.int64(seg.num_docs))
        self.ub = np.zeros(n_blocks, dtype=np.float32)
        self.local = np.zeros(block_size, dtype=np.float32)
        self.bucket_count = np.zeros(BUCKETS, dtype=np.int64)
        self.bucket_start = np.zeros(BUCKETS, dtype=np.int64)
        self.order = np.zeros(n_blocks, dtype=np.int32)
        self.entry = np.zeros((0, n_blocks), dtype=np.int32)
        self.acc = np.zeros(seg.num_docs, dtype=np.float32)
        self.heap = topk.Heap()
        self._work: tuple[int, int, BmpWork] | None = None

    def work(self, k: int, q_indptr: np.ndarray) -> BmpWork:
        """The scratch bundle, with a heap of k entries and a (terms x blocks) table with a row for every term of the
        longest query (made again only when either grows or k changes)."""
        longest = int(np.max(np.diff(q_indptr))) if len(q_indptr) > 1 else 0
        if len(self.entry) < longest:
            self.entry = np.zeros((longest, self.entry.shape[1]), dtype=np.int32)
        if self._work is None or self._work[:2] != (k, len(self.entry)):
            hs, hd = self.heap.arrays(k)
            self._work = k, len(self.entry), BmpWork.of(
                exact=ExactWork.of(acc=self.acc, hs=hs, hd=hd), ub=self.ub, local=self.local,
                bucket_count=self.bucket_count, bucket_start=self.bucket_start, order=self.order, entry=self.entry)
        return self._work[2]


def search(seg, q_indptr, q_terms, q_weights, k, scratch: Scratch, out_scores, out_docs, params: BmpSearchParams,
           allowed) -> None:
    block_ok = allowed.mask if allowed.every else allowed.derived("bmp.blocks", _blocks_holding(scratch.block_size))
    bmp_batch(scratch.arrays, scratch.work(k, q_indptr), q_indptr, q_terms, q_weights, np.float32(params.alpha),
              np.float32(params.filtered(allowed.share)), np.float32(params.exhaustive), allowed.mask, block_ok,
              np.int64(allowed.disallowed), out_scores, out_docs)


@nb.njit(cache=True, nogil=True)
def _lists_problem(post_indptr, post_docs, dense_row, term_ptr, blocks, offsets, max_row, block_size, n_blocks):
    """0 when every term's block list is what search relies on, else the first rule broken: 1 a dense term without
    a row of maxima; 2 blocks not ascending or out of range; 3 offsets not ascending from 0 within the term's list;
    4 a posting outside the block its offset range says."""
    for t in range(len(term_ptr) - 1):
        if dense_row[t] >= 0 and max_row[t] < 0:
            return 1
        lo, hi = term_ptr[t], term_ptr[t + 1]
        p0, p1 = post_indptr[t], post_indptr[t + 1]
        prev_block, prev_offset = -1, 0
        for e in range(lo, hi):
            if blocks[e] <= prev_block or blocks[e] >= n_blocks:
                return 2
            if offsets[e] < prev_offset or offsets[e] > p1 - p0 or (e == lo and offsets[e] != 0):
                return 3
            prev_block, prev_offset = blocks[e], offsets[e]
        if dense_row[t] >= 0:
            continue
        for e in range(lo, hi):
            end = p0 + offsets[e + 1] if e + 1 < hi else p1
            for j in range(p0 + offsets[e], end):
                if post_docs[j] // block_size != blocks[e]:
                    return 4
    return 0


_LIST_RULES = {1: "a dense term has no row of block maxima", 2: "block numbers not ascending or out of range",
               3: "posting offsets not ascending from 0 within their list", 4: "a posting lies outside its block"}


def check_arrays(seg) -> None:
    """The bmp arrays of ``seg`` agree with its postings: what ``bmp_one`` indexes without bounds checks."""
    n, vocab = seg.num_docs, len(seg["post_indptr"]) - 1
    bs = array(seg, "bmp.block_size", np.int64, (1,))
    if not 1 <= int(bs[0]) <= 1 << 16:
        raise IndexCorrupt(f"segment {seg.name}: bmp block size {int(bs[0])} out of range")
    bs = int(bs[0])
    n_blocks = -(-n // bs)
    term_ptr = offsets(seg, "bmp.term_ptr", vocab + 1)
    entries = int(term_ptr[-1])
    blocks = array(seg, "bmp.blocks", np.int32, (entries,))
    offs = array(seg, "bmp.offsets", np.int32, (entries,))
    array(seg, "bmp.maxes", np.uint8, (entries,))
    max_dense = array(seg, "bmp.max_dense", np.uint8, (None, n_blocks))
    max_row = array(seg, "bmp.max_row", np.int32, (vocab,))
    within(seg, "bmp.max_row", max_row, -1, max_dense.shape[0])
    array(seg, "bmp.kth", seg["post_values"].dtype, (vocab, len(KTH)))
    unit = array(seg, "bmp.unit", np.float32, (1,))
    if not (np.isfinite(unit[0]) and unit[0] > 0):
        raise IndexCorrupt(f"segment {seg.name}: bmp unit {unit[0]} is not a positive number")
    rule = _lists_problem(seg["post_indptr"], seg["post_docs"], seg["dense_row"], term_ptr, blocks, offs, max_row,
                          np.uint32(bs), n_blocks)
    if rule:
        raise IndexCorrupt(f"segment {seg.name}: bmp block lists do not match the postings ({_LIST_RULES[rule]})")


register_method(Method("bmp", search=search, scratch=Scratch, build=build, build_params=BmpBuildParams,
                       search_params=BmpSearchParams, check_arrays=check_arrays))
