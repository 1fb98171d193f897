"""Block summaries: one small sparse vector per block that stands in for all the block's documents at query time.

A summary is the per-term maximum over the block's documents (its dot product with a non-negative query bounds
every member's score), pruned to its heaviest terms holding ``summary_energy`` of the total mass (it stays small;
the bound becomes an estimate), and quantized to 8 bits with one scale per block: code = ceil(v / scale), rounded
up so a kept term never under-estimates. The energy cut is taken on those 255 levels (a histogram instead of a
sort): every term at the cut level is kept.

A query touches few of the terms a list's summaries hold, so each list's summaries are stored inverted, by term:
  records   sorted (term, bytes) pairs: a term's entries take ``bytes`` bytes of the entry stream; a term whose
            entries need more than 255 bytes spans several consecutive records, so sizes fit in uint8;
  entries   a byte stream per list, blocks ascending within a record; an entry is (gap, code) where the block is
            the previous block of the record + 1 + gap, in 2 bytes; a gap of 255 or more is written as 255 and the
            block as little-endian uint16 (4 bytes), which lists of many blocks need only rarely;
  samples   the byte offset (uint32, from the list's start) of every 16th record, and its term (the fence); a
            record's offset is its sample plus the sizes of at most 15 records before it.
Scoring every block of a list then costs one forward pass over the fence plus at most 16 records per query term,
and the entries of the terms the query has; the layout takes about 2 bytes per entry and 3.4 bytes per distinct
(list, term) pair.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lsr.index.quantize import impact

LEVELS = 255
RECORD = 255  # most entry bytes in one record (its size is a uint8)
ESCAPE = 255  # gap byte announcing an absolute block number
SAMPLE = 16   # records per stored offset


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
def layout_bound(n_entries, n_distinct):
    """Upper bounds on (records, entry bytes, samples) of a list: an entry takes at most 4 bytes, so a full record
    holds at least 63 entries."""
    records = n_distinct + n_entries // (RECORD // 4)
    return records, 4 * n_entries, records // SAMPLE + 1


@njit(cache=True, nogil=True)
def write_list(terms, blocks, codes, distinct, count, cursor, record_terms, record_sizes, entries, samples, fence):
    """Stores one list's summary entries, given in block order, into its slices of the layout arrays (with room
    for ``layout_bound``); returns the (records, entry bytes, samples) used.

    ``distinct`` holds the list's distinct terms ascending and ``count[t]`` their entry counts; ``cursor`` is
    vocabulary-sized scratch. A counting sort by term keeps the blocks ascending within each term.
    """
    pos = 0
    for u in distinct:
        cursor[u] = pos
        pos += count[u]
    order = np.empty(len(terms), dtype=np.int64)
    for e in range(len(terms)):
        u = terms[e]
        order[cursor[u]] = e
        cursor[u] += 1
    r, pos, prev = -1, 0, -1
    for i in range(len(order)):
        e = order[i]
        b = blocks[e]
        gap = b - prev - 1
        size = 2 if gap < ESCAPE else 4
        if r < 0 or terms[e] != record_terms[r] or record_sizes[r] + size > RECORD:
            r += 1
            record_terms[r] = terms[e]
            record_sizes[r] = 0
            if r % SAMPLE == 0:
                samples[r // SAMPLE] = pos
                fence[r // SAMPLE] = terms[e]
            gap = b                                   # gaps restart with each record
            size = 2 if gap < ESCAPE else 4
        if size == 2:
            entries[pos] = gap
        else:
            entries[pos] = ESCAPE
            entries[pos + 1] = b & 0xFF
            entries[pos + 2] = b >> 8
        entries[pos + size - 1] = codes[e]
        record_sizes[r] += size
        pos += size
        prev = b
    return r + 1, pos, r // SAMPLE + 1 if r >= 0 else 0


@njit(cache=True, nogil=True)
def score_list(q_terms, q_weights, r0, r1, base, s0, record_terms, record_sizes, entries, samples, fence, acc):
    """Adds sum_u q[u] * code[block, u] into acc[block] for every block of one list (acc zeroed by the caller).

    ``q_terms`` ascending; r0:r1 the list's records, ``base`` its first entry byte, s0 its first sample. Query terms
    and the fence (first term of every 16 records) are merged in one forward pass, then at most 16 records are
    stepped through per query term, adding up their sizes to find the term's entries: all reads move forward.
    """
    n_groups = (r1 - r0 + SAMPLE - 1) // SAMPLE
    f = 0
    for i in range(len(q_terms)):
        u = q_terms[i]
        while f + 1 < n_groups and fence[s0 + f + 1] < u:
            f += 1
        r = r0 + f * SAMPLE
        pos = base + np.int64(samples[s0 + f])
        while r < r1 and record_terms[r] < u:
            pos += np.int64(record_sizes[r])
            r += 1
        if r == r1:
            break
        w = q_weights[i]
        while r < r1 and record_terms[r] == u:
            end = pos + np.int64(record_sizes[r])
            b = np.int64(-1)
            while pos < end:
                gap = np.int64(entries[pos])
                if gap == ESCAPE:
                    b = np.int64(entries[pos + 1]) | (np.int64(entries[pos + 2]) << 8)
                    pos += 3
                else:
                    b += gap + 1
                    pos += 1
                acc[b] += w * np.float32(entries[pos])
                pos += 1
            r += 1


@njit(cache=True, nogil=True)
def layout_problem(list_blocks, list_records, list_entries, list_samples, record_terms, record_sizes, entries,
                   samples, fence):
    """0 when every list's stored summaries decode as ``score_list`` reads them, else the first rule broken: 1 a
    list's samples do not number one per SAMPLE records; 2 a sample's offset or fence term is not its record's;
    3 record terms not ascending; 4 records overrun the list's entry bytes, or do not fill them; 5 an entry
    overruns its record; 6 an entry names a block outside the list. The offset arrays themselves are checked by
    the caller (monotone, ending at their arrays' lengths)."""
    for t in range(len(list_blocks) - 1):
        n_blocks = list_blocks[t + 1] - list_blocks[t]
        r0, r1 = list_records[t], list_records[t + 1]
        s0 = list_samples[t]
        base, size = list_entries[t], list_entries[t + 1] - list_entries[t]
        if list_samples[t + 1] - s0 != (r1 - r0 + SAMPLE - 1) // SAMPLE:
            return 1
        pos = 0
        for r in range(r0, r1):
            if (r - r0) % SAMPLE == 0:
                g = s0 + (r - r0) // SAMPLE
                if samples[g] != pos or fence[g] != record_terms[r]:
                    return 2
            if r > r0 and record_terms[r] < record_terms[r - 1]:
                return 3
            end = pos + np.int64(record_sizes[r])
            if end > size:
                return 4
            b = np.int64(-1)
            while pos < end:
                gap = np.int64(entries[base + pos])
                if gap == ESCAPE:
                    if pos + 4 > end:
                        return 5
                    b = np.int64(entries[base + pos + 1]) | (np.int64(entries[base + pos + 2]) << 8)
                    pos += 4
                else:
                    if pos + 2 > end:
                        return 5
                    b += gap + 1
                    pos += 2
                if b >= n_blocks:
                    return 6
        if pos != size:
            return 4
    return 0


LAYOUT_RULES = {1: "samples do not number one per 16 records", 2: "a sample does not point at its record",
                3: "record terms not ascending", 4: "records do not fill the list's entry bytes",
                5: "an entry overruns its record", 6: "an entry names a block outside its list"}
