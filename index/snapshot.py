"""A generation as searches see it: segments in a fixed order, the deleted documents of each, and (in the writer's
process) an in-memory segment of acknowledged writes not yet flushed.

A snapshot never changes once made. An ``Index`` swaps in a new one when it refreshes; each search takes the current
snapshot once, at its start, and uses only it, so it sees one consistent generation however many commits happen
meanwhile, and never blocks on the writer.

Internal document numbers are positions in the concatenation of the snapshot's segments. Deleted documents keep
their numbers and are never returned; a number is only meaningful with the snapshot that produced it, which is why a
``SearchResult`` keeps its snapshot.

Search over several segments: each segment returns its own top-k, and the lists are merged (ties: lower number
first). A segment with D deleted documents is asked for k + min(D, k) hits and the deleted ones dropped; a query that
still has fewer than k live hits from it while the segment has more is asked again for k + D, which is always enough.
So deletes need nothing from the methods' kernels, and exact (and safe BMP) results equal those of an index built
from the live documents alone: the same documents with the same scores, up to the order in which float32 sums add a
document's terms (exact search adds the terms it stores as dense rows first, and which terms are dense depends on
the segment), a few ulps at most; every segment shares the index's quantization scale, so the impacts are equal. The in-memory segment has no method arrays and is searched exactly whatever the
method: it is small, and exact is the best any method can do.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np

from lsr.index import methods as registry
from lsr.index import topk
from lsr.index.deletes import read_deletes
from lsr.index.errors import IndexCorrupt
from lsr.index.manifest import Manifest, SegmentInfo
from lsr.index.quantize import dequantize
from lsr.index.segment import Segment

_OPEN_ATTEMPTS = 10


class Snapshot:
    def __init__(self, manifest: Manifest, segments: list[Segment], dead: list[np.ndarray | None] | None = None,
                 seq: int | None = None):
        self.manifest = manifest
        self.segments = list(segments)
        self.dead = list(dead) if dead is not None else [None] * len(self.segments)
        self.dead_counts = [0 if d is None else int(d.sum()) for d in self.dead]
        self.offsets = np.cumsum([0] + [s.num_docs for s in self.segments])
        self.num_docs = int(self.offsets[-1]) - sum(self.dead_counts)   # live documents
        self.seq = manifest.wal_seq if seq is None else seq             # last write-ahead-log record it reflects

    @property
    def generation(self) -> int:
        return self.manifest.generation

    @classmethod
    def open(cls, path: Path, verify: bool = True, reuse: dict[str, Segment] | None = None) -> "Snapshot":
        """Maps the committed generation at ``path``. Segments in ``reuse`` (by name, when the manifest lists them
        unchanged) are kept rather than reopened and checked again. When the writer commits a newer generation
        meanwhile and removes files of this one, the open starts over on the newer one."""
        reuse = reuse or {}
        for attempt in range(_OPEN_ATTEMPTS):
            manifest = Manifest.read(path)
            try:
                segments = [_reused(reuse.get(i.name), i, manifest)
                            or Segment.open(path, i, manifest.vocab_size, manifest.quantization, verify)
                            for i in manifest.segments]
                dead = [read_deletes(path, i) if i.deletes else None for i in manifest.segments]
                return cls(manifest, segments, dead)
            except (IndexCorrupt, FileNotFoundError):
                if attempt + 1 < _OPEN_ATTEMPTS and Manifest.read(path).generation != manifest.generation:
                    continue
                raise
        raise AssertionError("unreachable")

    # ---- documents ----------------------------------------------------------------------------------------------
    def locate(self, number: int) -> tuple[int, int]:
        """(segment position, local number) of a live internal number; KeyError otherwise."""
        if not 0 <= number < int(self.offsets[-1]):
            raise KeyError(f"no document number {number}: the index holds {self.num_docs}")
        s = int(np.searchsorted(self.offsets, number, side="right")) - 1
        local = number - int(self.offsets[s])
        if self.dead[s] is not None and self.dead[s][local]:
            raise KeyError(f"document number {number} is deleted")
        return s, local

    def find(self, doc_id: str) -> tuple[int, int] | None:
        """(segment position, local number) of the live document with this external id, None when there is none."""
        for s, seg in enumerate(self.segments):
            local = seg.number_of(doc_id)
            if local is not None and (self.dead[s] is None or not self.dead[s][local]):
                return s, local
        return None

    def doc_id(self, number: int) -> str:
        s, local = self.locate(int(number))
        return self.segments[s].docs.id(local)

    def _key(self, key: int | str) -> tuple[int, int]:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return self.locate(int(key))
        found = self.find(key)
        if found is None:
            raise KeyError(f"no document with id {key!r}")
        return found

    def document(self, key: int | str) -> dict:
        """{"id", "title", "text"} of an internal number or an external id; KeyError when there is none."""
        s, local = self._key(key)
        return self.segments[s].docs.get(local)

    def vector(self, key: int | str) -> tuple[np.ndarray, np.ndarray]:
        """(term ids int32, weights float32) of a document as stored: quantized, then dequantized."""
        s, local = self._key(key)
        seg = self.segments[s]
        lo, hi = seg["fwd_indptr"][local], seg["fwd_indptr"][local + 1]
        return seg["fwd_terms"][lo:hi].astype(np.int32), dequantize(seg["fwd_values"][lo:hi], seg.scale)

    def doc_ids(self) -> np.ndarray:
        """External ids by internal number (object array; None where a document is deleted)."""
        if not self.segments:
            return np.zeros(0, dtype=object)
        ids = np.concatenate([s.docs.ids() for s in self.segments])
        dead = [d if d is not None else np.zeros(s.num_docs, bool) for s, d in zip(self.segments, self.dead)]
        ids[np.concatenate(dead)] = None
        return ids

    # ---- search -------------------------------------------------------------------------------------------------
    def run(self, method: registry.Method, params: Any, q_indptr: np.ndarray, q_terms: np.ndarray,
            q_weights: np.ndarray, out_scores: np.ndarray, out_docs: np.ndarray) -> None:
        """Top-k (k = out width <= live documents) of validated queries into out_*, merged over segments."""
        k = out_scores.shape[1]
        live = [s for s, seg in enumerate(self.segments) if seg.num_docs > self.dead_counts[s]]
        if not live:
            return
        if len(live) == 1 and not self.dead_counts[live[0]]:
            s = live[0]
            m, p = self._method_for(self.segments[s], method, params)
            m.search(self.segments[s], q_indptr, q_terms, q_weights, k, self.segments[s].scratch(m), out_scores,
                     out_docs, p)
            if s:
                out_docs[out_docs >= 0] += self.offsets[s]
            return
        parts = [self._segment_topk(s, method, params, q_indptr, q_terms, q_weights, k) for s in live]
        offsets = np.concatenate([np.full(p[1].shape[1], self.offsets[s], np.int64) for s, p in zip(live, parts)])
        heap = np.zeros(k, np.float32), np.zeros(k, np.int64)
        _merge(np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1), offsets,
               *heap, out_scores, out_docs)

    @staticmethod
    def _method_for(seg: Segment, method: registry.Method, params: Any) -> tuple[registry.Method, Any]:
        if method.name in seg.info.methods:
            return method, params
        exact = registry.get("exact")
        return exact, exact.search_config()

    def _segment_topk(self, s: int, method: registry.Method, params: Any, q_indptr: np.ndarray,
                      q_terms: np.ndarray, q_weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k live hits of segment s: (scores, local numbers), -1 padded, k columns at most."""
        seg, dead, n_dead = self.segments[s], self.dead[s], self.dead_counts[s]
        m, p = self._method_for(seg, method, params)
        width = min(seg.num_docs, k + min(n_dead, k))
        scores, docs = _call(m, p, seg, q_indptr, q_terms, q_weights, width)
        if not n_dead:
            return scores, docs
        full = docs[:, -1] >= 0
        scores, docs = _drop_dead(scores, docs, dead, k)
        wider = min(seg.num_docs, k + n_dead)
        retry = np.nonzero(full & (docs[:, -1] < 0))[0] if wider > width else []
        for r in retry:
            one_s, one_d = _call(m, p, seg, q_indptr[r:r + 2], q_terms, q_weights, wider)
            one_s, one_d = _drop_dead(one_s, one_d, dead, k)
            scores[r], docs[r] = one_s[0], one_d[0]
        return scores, docs


def _reused(seg: Segment | None, info: SegmentInfo, manifest: Manifest) -> Segment | None:
    """``seg`` when the manifest lists it as it was opened (its deletes aside) over the same vocabulary."""
    if seg is None or replace(seg.info, deletes=None) != replace(info, deletes=None):
        return None
    return seg if len(seg["post_indptr"]) == manifest.vocab_size + 1 else None


@nb.njit(cache=True, nogil=True)
def _merge(scores, docs, offsets, hs, hd, out_scores, out_docs):
    """Per row, the top-k of the segments' hits (local number + the column's segment offset; -1 = none)."""
    k = out_scores.shape[1]
    for r in range(scores.shape[0]):
        size = 0
        for j in range(scores.shape[1]):
            if docs[r, j] >= 0:
                size = topk.push(hs, hd, size, k, scores[r, j], docs[r, j] + offsets[j])
        topk.drain(hs, hd, size, out_scores[r], out_docs[r], 0)


def _call(m: registry.Method, params: Any, seg: Segment, q_indptr: np.ndarray, q_terms: np.ndarray,
          q_weights: np.ndarray, width: int) -> tuple[Any, Any]:
    n = len(q_indptr) - 1
    scores, docs = np.zeros((n, width), np.float32), np.full((n, width), -1, np.int64)
    m.search(seg, q_indptr, q_terms, q_weights, width, seg.scratch(m), scores, docs, params)
    return scores, docs


def _drop_dead(scores: np.ndarray, docs: np.ndarray, dead: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Removes deleted hits, keeping the order of the others; at most k columns, -1 padded."""
    gone = (docs < 0) | dead[np.maximum(docs, 0)]
    order = np.argsort(gone, axis=1, kind="stable")[:, :k]
    scores, docs = np.take_along_axis(scores, order, 1), np.take_along_axis(docs, order, 1)
    gone = np.take_along_axis(gone, order, 1)
    scores[gone], docs[gone] = 0.0, -1
    return scores, docs
