"""Search methods by name: how a method adds arrays to a segment at build time and searches a segment.

A method is a ``Method`` registered under its name:

- ``build(fwd, postings, params) -> {key: array}``: the extra arrays one segment needs, computed from the segment's
  forward index and postings (documents already reordered and quantized). They are saved as ``<name>.<key>.npy``
  in the segment folder and come back memory-mapped as ``seg["<name>.<key>"]``. ``None``: the core arrays suffice.
- ``search(seg, q_indptr, q_terms, q_weights, k, scratch, out_scores, out_docs, **params) -> None``: the top-k of
  queries ``r = 0 .. len(q_indptr) - 2`` (terms ``q_terms[q_indptr[r]:q_indptr[r + 1]]``, int32 ascending unique ids
  < vocab size; weights float32 > 0) in one segment, written to ``out_scores[r]`` (float32, dequantized: stored
  impact * ``seg.scale`` * query weight, summed) and ``out_docs[r]`` (int64 segment-local numbers), k columns, best
  first (ties: lower doc first), padded with (0.0, -1). Run the whole loop in one Numba ``nogil`` call: batches are
  split into row ranges run side by side on a thread pool, and a single query is a batch of one.
- ``scratch(seg)``: working memory for one thread on one segment (score arrays, heaps), made once per thread and
  passed back to every ``search`` call, so queries allocate nothing large.
- ``build_params`` / ``search_params``: defaults (the accepted names); ``check(params)`` raises ValueError for a
  value out of range (it sees the merged defaults + user values, build or search).

Core arrays every segment has (see index/forward.py, index/postings.py): the forward index ``fwd_indptr`` int64,
``fwd_terms`` (uint16 up to 65,536 terms, else int32), ``fwd_values``; postings ``post_indptr`` int64, ``post_docs``
int32, ``post_values`` for rare terms, ``dense_row`` int32 / ``dense`` (rows x n) for common ones; ``term_max``. Impacts are uint8 levels, float16
bits as uint16, or float32 (decode in kernels with ``index.quantize.impact``); weight = impact * ``seg.scale``.
``build`` receives the in-memory ``ForwardIndex`` and ``Postings`` of the segment.

To add a method, write a module that calls ``register(Method(...))`` at import and add it to ``_MODULES``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np


def _no_check(params: dict) -> None:
    return None


@dataclass(frozen=True)
class Method:
    name: str
    search: Callable[..., None]
    scratch: Callable[[Any], Any]
    build: Callable[..., dict[str, np.ndarray]] | None = None
    build_params: Mapping[str, Any] = field(default_factory=dict)
    search_params: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict], None] = _no_check

    def build_config(self, given: Mapping[str, Any]) -> dict:
        """Defaults overridden by the given build parameters this method declares, checked."""
        params = {**self.build_params, **{k: v for k, v in given.items() if k in self.build_params}}
        self.check(params)
        return params

    def search_config(self, given: Mapping[str, Any]) -> dict:
        unknown = set(given) - set(self.search_params)
        if unknown:
            raise ValueError(f"method {self.name!r} has no search parameter {sorted(unknown)}; "
                             f"it takes {sorted(self.search_params) or 'none'}")
        params = {**self.search_params, **given}
        self.check(params)
        return params


_MODULES = ("lsr.index.exact", "lsr.index.bmp", "lsr.index.seismic")
_REGISTRY: dict[str, Method] = {}
_loaded = False


def register(method: Method) -> None:
    _REGISTRY[method.name] = method


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _MODULES:
            importlib.import_module(module)


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def get(name: str) -> Method:
    _load()
    if name not in _REGISTRY:
        raise ValueError(f"unknown search method {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]
