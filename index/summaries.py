"""Block summaries: one small sparse vector per block that stands in for all the block's documents at query time.

A summary is the per-term maximum over the block's documents (its dot product with a non-negative query bounds
every member's score), pruned to its heaviest terms holding ``summary_energy`` of the total mass (it stays small;
the bound becomes an estimate), and quantized to 8 bits with one scale per block: code = ceil(v / scale), rounded
up so a kept term never under-estimates. The energy cut is taken on those 255 levels (a histogram instead of a
sort): every term at the cut level is kept.

A query touches few of the terms a list's summaries hold, so each list's summaries are stored inverted, by term:
  records   sorted (term, count) pairs, term -> ``count`` entries; a term with more than 255 entries spans several
            consecutive records, so counts fit in uint8;
  entries   a byte stream per list, blocks ascending within a record; an entry is (block, code): 2 bytes when the
            list has at most 256 blocks, 3 bytes (block as little-endian uint16) otherwise;
  samples   the byte offset (uint32, from the list's start) of every 16th record; a record's offset is its
            sample plus the sizes of at most 15 records before it.
Scoring every block of a list then costs one binary search per query term plus the entries of the terms the query
has, and the layout takes about 2 bytes per entry and 3.3 bytes per distinct (list, term) pair.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from index.quantize import impact

LEVELS = 255
RUN = 255    # most entries in one record (its count is a uint8)
SAMPLE = 16  # records per stored offset


@njit(cache=True, nogil=True, inline="always")
def entry_width(n_blocks):
    return 2 if n_blocks <= 256 else 3


@njit(cache=True, nogil=True)
def block_summary(block_docs, fwd_indptr, fwd_terms, fwd_values, energy, maxv, touched, mass, out_terms, out_codes):
    """Writes one block's summary into out_terms/out_codes (terms in no particular order); returns (size, scale).

    ``maxv`` (vocabulary, zeros: left zeroed) and ``touched`` (vocabulary) are scratch, ``mass`` has LEVELS + 1
    slots; the outputs need room for the block's distinct terms.
    """
    n = 0
    top = np.float32(0.0)
    for d in block_docs:
        for j in range(fwd_indptr[d], fwd_indptr[d + 1]):
            t = fwd_terms[j]
            v = impact(fwd_values[j])
            was = maxv[t]
            touched[n] = t       # kept only when the term is new: no branch to mispredict
            n += was == 0.0
            maxv[t] = max(was, v)
            top = max(top, v)
    scale = np.float32(top / LEVELS) if top > 0 else np.float32(1.0)
    inv = np.float32(1.0) / scale
    mass[:] = 0.0
    total = 0.0
    for i in range(n):
        t = touched[i]
        v = maxv[t]
        level = min(LEVELS, max(1, int(np.ceil(v * inv))))
        out_codes[i] = level    # parked here until the cut is known
        mass[level] += v
        total += v
    cut, kept_mass = LEVELS, 0.0
    while cut > 1:
        kept_mass += mass[cut]
        if kept_mass >= energy * total:
            break
        cut -= 1
    keep = 0
    for i in range(n):
        t = touched[i]
        maxv[t] = 0.0
        level = out_codes[i]
        if level >= cut:
            out_terms[keep] = t
            out_codes[keep] = level
            keep += 1
    return keep, scale


@njit(cache=True, nogil=True)
def layout_size(term_counts, n_blocks):
    """(records, entry bytes, samples) that a list needs, from the entry count of each of its distinct terms."""
    records, entries = 0, 0
    for c in term_counts:
        records += (c + RUN - 1) // RUN
        entries += c
    return records, entries * entry_width(n_blocks), (records + SAMPLE - 1) // SAMPLE


@njit(cache=True, nogil=True)
def write_list(terms, blocks, codes, distinct, count, cursor, n_blocks, record_terms, record_counts, entries,
               samples):
    """Stores one list's summary entries, given in block order, into its slices of the layout arrays.

    ``distinct`` holds the list's distinct terms ascending and ``count[t]`` their entry counts; ``cursor`` is
    vocabulary-sized scratch. A counting sort by term keeps the blocks ascending within each term.
    """
    width = entry_width(n_blocks)
    pos = 0
    for u in distinct:
        cursor[u] = pos
        pos += count[u]
    order = np.empty(len(terms), dtype=np.int64)
    for e in range(len(terms)):
        u = terms[e]
        order[cursor[u]] = e
        cursor[u] += 1
    r, pos, run, i = -1, 0, 0, 0
    for i in range(len(order)):
        e = order[i]
        if r < 0 or terms[e] != record_terms[r] or run == RUN:
            r += 1
            record_terms[r] = terms[e]
            record_counts[r] = 0
            run = 0
            if r % SAMPLE == 0:
                samples[r // SAMPLE] = pos
        record_counts[r] += 1
        run += 1
        b = blocks[e]
        entries[pos] = b & 0xFF
        if width == 3:
            entries[pos + 1] = b >> 8
        entries[pos + width - 1] = codes[e]
        pos += width


@njit(cache=True, nogil=True)
def score_list(q_terms, q_weights, r0, r1, base, s0, n_blocks, record_terms, record_counts, entries, samples, acc):
    """Adds sum_u q[u] * code[block, u] into acc[block] for every block of one list (acc zeroed by the caller).

    ``q_terms`` ascending; r0:r1 the list's records, ``base`` its first entry byte, s0 its first sample.
    """
    width = entry_width(n_blocks)
    lo = r0
    for i in range(len(q_terms)):
        u = q_terms[i]
        hi = r1
        while lo < hi:
            mid = (lo + hi) >> 1
            if record_terms[mid] < u:
                lo = mid + 1
            else:
                hi = mid
        if lo == r1:
            break
        r = lo
        if record_terms[r] != u:
            continue
        local = r - r0
        pos = base + np.int64(samples[s0 + local // SAMPLE])
        for x in range(r - local % SAMPLE, r):
            pos += np.int64(record_counts[x]) * width
        w = q_weights[i]
        while r < r1 and record_terms[r] == u:
            for _ in range(record_counts[r]):
                b = np.int64(entries[pos])
                if width == 3:
                    b |= np.int64(entries[pos + 1]) << 8
                acc[b] += w * np.float32(entries[pos + width - 1])
                pos += width
            r += 1
