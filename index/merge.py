"""Merging segments: which ones (a tiered policy) and how (rebuild from their live documents); when: on the writer's
background thread (index/background.py).

Every flush adds a small segment, and a search pays per segment, so segments are merged as they accumulate, like
Lucene's tiered policy, simplified: a segment's tier is how many times ``segments_per_tier`` its live size is above
``floor_docs``; when a tier holds ``segments_per_tier`` segments, its smallest ones are merged into one of the next
tier. The segment count therefore stays about ``segments_per_tier - 1`` per tier, a logarithmic number of tiers,
and each document is rewritten about once per tier. A segment whose deleted share passes ``max_deleted`` is
rewritten alone, which drops its deleted documents and keeps the over-fetch of searches (index/snapshot.py) small.

A merge reads the (immutable) forward indexes of its segments without any lock, keeps the documents live when it
starts, and builds the merged segment like any other (reordered, every method's arrays). Searches never wait for
it; the writer only locks to commit it (index/writer.py carries over the deletes made meanwhile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lsr.core import validate
from lsr.index.forward import ForwardIndex
from lsr.index.segment import Segment


@dataclass(frozen=True)
class TieredMergePolicy:
    segments_per_tier: int = 8
    floor_docs: int = 2_000          # segments smaller than this count as this size (they share the first tier)
    max_deleted: float = 0.3         # rewrite a segment once this share of its documents is deleted
    max_merged_docs: int = 5_000_000  # no merge produces a segment larger than this

    def __post_init__(self) -> None:
        validate.integer("segments_per_tier", self.segments_per_tier, 2)
        validate.integer("floor_docs", self.floor_docs, 1)
        validate.fraction("max_deleted", self.max_deleted)
        validate.integer("max_merged_docs", self.max_merged_docs, 1)

    def tier(self, live: int) -> int:
        return int(math.log(max(live, self.floor_docs) / self.floor_docs, self.segments_per_tier) + 1e-9)

    def select(self, segments: list[tuple[str, int, int]]) -> list[str] | None:
        """Names of the segments to merge next, from (name, documents, deleted) of those not merging; or None."""
        tiers: dict[int, list[tuple[int, str]]] = {}
        for name, total, dead in segments:
            tiers.setdefault(self.tier(total - dead), []).append((total - dead, name))
        for t in sorted(tiers):
            members = sorted(tiers[t])
            if len(members) >= self.segments_per_tier:
                chosen = members[:self.segments_per_tier]
                if sum(live for live, _ in chosen) <= self.max_merged_docs:
                    return [name for _, name in chosen]
        worst = max(segments, key=lambda s: s[2] / s[1], default=None)
        if worst is not None and worst[2] / worst[1] > self.max_deleted:
            return [worst[0]]
        return None


def live_documents(sources: list[Segment], dead: list[np.ndarray], vocab_size: int) -> tuple[ForwardIndex, pa.Table]:
    """The live documents of ``sources`` (source after source, in segment order): forward index and stored rows.
    Impacts are copied as stored: every segment of an index shares its scale, so merging never re-quantizes."""
    keeps = [np.flatnonzero(~d) for d in dead]
    parts = [ForwardIndex(s["fwd_indptr"], s["fwd_terms"], s["fwd_values"], s.scale, vocab_size).take(keep)
             for s, keep in zip(sources, keeps)]
    lengths = np.concatenate([np.diff(p.indptr) for p in parts])
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    fwd = ForwardIndex(indptr, np.concatenate([p.terms for p in parts]), np.concatenate([p.values for p in parts]),
                       sources[0].scale, vocab_size)
    docs = pa.concat_tables([s.docs.table.take(pa.array(keep)) for s, keep in zip(sources, keeps)])
    return fwd, docs
