"""A generation as searches see it: segments in a fixed order, the deleted documents of each, and (in the writer's
process, or a follower's) in-memory segments of acknowledged writes not yet flushed.

A snapshot never changes once made. An ``Index`` swaps in a new one when it refreshes; each search takes the current
snapshot once, at its start, and uses only it, so it sees one consistent generation however many commits happen
meanwhile, and never blocks on the writer.

Internal document numbers are positions in the concatenation of the snapshot's segments. Deleted documents keep
their numbers and are never returned; a number is only meaningful with the snapshot that produced it, which is why a
``SearchResult`` keeps its snapshot.

Search over several segments: each segment returns its own top-k among its allowed documents (index/allowed.py: a
filter's, less the deleted ones; every method takes the set), and the lists are merged by (score, number): ties go
to the lower number, so the order is total and stable, and page 2 of an exact search is exactly ranks k + 1 to 2k.
Exact (and safe BMP) results equal those of an index built from the live documents alone: the same documents with
the same scores, up to the order in which float32 sums add a document's terms (exact search adds the terms it stores
as dense rows first, and which terms are dense depends on the segment; the direct path of selective filters adds
them in term order), a few ulps at most; every segment shares the index's quantization scale, so the impacts are
equal. In-memory segments have no method arrays and are searched exactly whatever the method: they are small, and
exact is the best any method can do.

A filter is checked against the kinds of the snapshot's keys (every segment's), then evaluated once per segment;
the sets of the last few filters are kept, so repeated filters (a tenant's, a language's) cost a dictionary lookup.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numba as nb
import numpy as np

from lsr.index import filters
from lsr.index import methods as registry
from lsr.index import topk
from lsr.index.allowed import Allowed, search_direct
from lsr.index.deletes import read_deletes
from lsr.index.errors import IndexCorrupt
from lsr.index.manifest import Manifest, SegmentInfo
from lsr.index.quantize import dequantize
from lsr.index.segment import Segment

_OPEN_ATTEMPTS = 10
_FILTER_CACHE = 32   # allowed sets of this many filters kept per snapshot


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
        self._live = [Allowed(seg.num_docs, None if d is None or not d.any() else ~d)
                      for seg, d in zip(self.segments, self.dead)]
        self._filtered: OrderedDict[str, list[Allowed]] = OrderedDict()
        self._filtered_lock = threading.Lock()
        self._kinds: dict[str, str] | None = None

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

    def find_many(self, doc_ids: Sequence[str]) -> list[tuple[int, int]]:
        """(segment position, local number) of each live document among ``doc_ids``; ids with none are left out."""
        found, pending = [], list(doc_ids)
        for s, seg in enumerate(self.segments):
            if not pending:
                break
            dead, rest = self.dead[s], []
            for doc_id, local in zip(pending, seg.numbers_of(pending)):
                if local is None:
                    rest.append(doc_id)
                elif dead is None or not dead[local]:
                    found.append((s, local))
                else:
                    rest.append(doc_id)   # deleted here: a later segment may hold it live
            pending = rest
        return found

    def find(self, doc_id: str) -> tuple[int, int] | None:
        """(segment position, local number) of the live document with this external id, None when there is none."""
        found = self.find_many([doc_id])
        return found[0] if found else None

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
    @property
    def kinds(self) -> dict[str, str]:
        """The kind (keyword, number, bool) of every metadata key some segment holds."""
        if self._kinds is None:
            kinds: dict[str, str] = {}
            for seg in self.segments:
                kinds.update(seg.fields.kinds)
            self._kinds = kinds
        return self._kinds

    def allowed(self, flt: filters.Filter | None) -> list[Allowed]:
        """Per segment, the live documents ``flt`` allows (checked against ``kinds`` first: InvalidFilter)."""
        if flt is None:
            return self._live
        key = flt.model_dump_json()
        with self._filtered_lock:
            found = self._filtered.get(key)
            if found is not None:
                self._filtered.move_to_end(key)
                return found
        filters.check_filter(flt, self.kinds)
        sets = []
        for seg, live in zip(self.segments, self._live):
            mask = filters.allowed(flt, seg)
            sets.append(Allowed(seg.num_docs, mask if live.every else mask & live.mask))
        with self._filtered_lock:
            self._filtered[key] = sets
            if len(self._filtered) > _FILTER_CACHE:
                self._filtered.popitem(last=False)
        return sets

    def run(self, method: registry.Method, params: Any, q_indptr: np.ndarray, q_terms: np.ndarray,
            q_weights: np.ndarray, out_scores: np.ndarray, out_docs: np.ndarray,
            flt: filters.Filter | None = None) -> None:
        """Top-k (k = out width <= live documents) of validated queries among the documents ``flt`` allows (None:
        all) into out_*, merged over segments; out_* come padded with (0, -1)."""
        k = out_scores.shape[1]
        allowed = self.allowed(flt)
        live = [s for s, a in enumerate(allowed) if a.count]
        if len(live) == 1 and allowed[live[0]].count >= k:
            s = live[0]
            self._search_segment(s, method, params, allowed[s], q_indptr, q_terms, q_weights, out_scores, out_docs)
            if s:
                out_docs[out_docs >= 0] += self.offsets[s]
            return
        if not live:
            return
        n = len(q_indptr) - 1
        parts = []
        for s in live:
            width = min(k, allowed[s].count)
            scores, docs = np.zeros((n, width), np.float32), np.full((n, width), -1, np.int64)
            self._search_segment(s, method, params, allowed[s], q_indptr, q_terms, q_weights, scores, docs)
            parts.append((scores, docs))
        offsets = np.concatenate([np.full(p[1].shape[1], self.offsets[s], np.int64) for s, p in zip(live, parts)])
        heap = np.zeros(k, np.float32), np.zeros(k, np.int64)
        _merge(np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1), offsets,
               *heap, out_scores, out_docs)

    def _search_segment(self, s: int, method: registry.Method, params: Any, allowed: Allowed, q_indptr: np.ndarray,
                        q_terms: np.ndarray, q_weights: np.ndarray, out_scores: np.ndarray,
                        out_docs: np.ndarray) -> None:
        """Segment s's top-k (local numbers) among its allowed documents: by the method, or by the direct path
        when few are allowed."""
        seg = self.segments[s]
        if allowed.direct:
            search_direct(seg, allowed, q_indptr, q_terms, q_weights, out_scores, out_docs)
            return
        m, p = method, params
        if method.name not in seg.info.methods:
            m = registry.get("exact")
            p = m.search_config()
        m.search(seg, q_indptr, q_terms, q_weights, out_scores.shape[1], seg.scratch(m), out_scores, out_docs, p,
                 allowed)


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
