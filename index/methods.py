"""Search methods by name: how a method adds arrays to a segment at build time and searches a segment.

A method is a ``Method`` registered under its name:

- ``build_params`` / ``search_params``: frozen dataclasses, one per method (e.g. ``BmpBuildParams``,
  ``BmpSearchParams``). Their fields are the accepted names with their defaults, typed, and ``__post_init__`` refuses
  a value of the wrong type or out of range (ValueError naming the method, the parameter and the accepted range, via
  ``lsr.core.validate``). ``NoParams`` for a method without any. ``build_config`` / ``search_config`` turn the
  user's keywords (``Index.build(..., block_size=32)``, ``--param KEY=VALUE``, the HTTP ``params``), a mapping or
  an instance into a checked instance (frozen, so checked values are cached by name, type and value); unknown names
  are refused there. ``build_configs`` shares one set of build keywords out among the chosen methods. The manifest
  stores a method's build parameters as the dataclass's fields (``asdict``), and an index built before a field
  existed gets its default when a flush or merge reads them back.
- ``build(fwd, postings, params) -> {key: array}``: the extra arrays one segment needs, computed from the segment's
  forward index and postings (documents already reordered and quantized) with the method's build parameters. They
  are saved as ``<name>.<key>.npy`` in the segment folder and come back memory-mapped as ``seg["<name>.<key>"]``.
  ``None``: the core arrays suffice.
- ``search(seg, q_indptr, q_terms, q_weights, k, scratch, out_scores, out_docs, params, allowed) -> None``: the
  top-k of queries ``r = 0 .. len(q_indptr) - 2`` (terms ``q_terms[q_indptr[r]:q_indptr[r + 1]]``, int32 ascending
  unique ids < vocab size; weights float32 > 0) in one segment, among the documents ``allowed`` lets through
  (``index.allowed.Allowed``: ``mask``, a bool per document, empty when every one is allowed; a filter's documents
  less the deleted), written to ``out_scores[r]`` (float32, dequantized: stored impact * ``seg.scale`` * query
  weight, summed) and ``out_docs[r]`` (int64 segment-local numbers), k columns, best first (ties: lower doc first),
  padded with (0.0, -1). A disallowed document must never reach the output. ``params`` is the method's
  search-params instance. Run the whole loop in one Numba ``nogil`` call, the segment's arrays handed over as a
  bundle (index/bundles.py): batches are split into row ranges run side by side on a thread pool, and a single
  query is a batch of one. When few documents are allowed the snapshot scores them directly instead
  (index/allowed.py), so a method only sees sets above ``DIRECT_SHARE``.
- ``scratch(seg)``: working memory for one thread on one segment (score arrays, heaps), made once per thread and
  passed back to every ``search`` call, so queries allocate nothing large.
- ``check_arrays(seg)``: raises IndexCorrupt unless the method's arrays in ``seg`` have the dtypes and shapes, and
  hold the offsets and ids in range, that ``search`` indexes without bounds checks (run when a segment opens, after
  its core arrays passed ``index.segment.check_core_arrays``).

Core arrays every segment has (see index/forward.py, index/postings.py): the forward index ``fwd_indptr`` int64,
``fwd_terms`` (uint16 up to 65,536 terms, else int32), ``fwd_values``; postings ``post_indptr`` int64, ``post_docs``
int32, ``post_values`` for rare terms, ``dense_row`` int32 / ``dense`` (rows x n) for common ones; ``term_max``. Impacts are uint8 levels, float16
bits as uint16, or float32 (decode in kernels with ``index.quantize.impact``); weight = impact * ``seg.scale``.
``build`` receives the in-memory ``ForwardIndex`` and ``Postings`` of the segment.

To add a method, write a module with its parameter dataclasses that calls ``register(Method(...))`` at import, and
add it to ``_MODULES``.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class NoParams:
    """The parameters of a method that takes none (of this kind)."""


def _no_arrays(seg: Any) -> None:
    return None


@dataclass(frozen=True)
class Method:
    name: str
    search: Callable[..., None]
    scratch: Callable[[Any], Any]
    build: Callable[..., dict[str, np.ndarray]] | None = None
    build_params: type = NoParams    # a frozen dataclass: field names, defaults and checks
    search_params: type = NoParams
    check_arrays: Callable[[Any], None] = _no_arrays

    def build_config(self, given: Mapping[str, Any] | Any = None) -> Any:
        """The method's build parameters from keywords (unknown names refused; missing ones take their defaults) or
        an instance of its ``build_params``, checked."""
        return self._config(self.build_params, "build", given)

    def search_config(self, given: Mapping[str, Any] | Any = None) -> Any:
        """The method's search parameters, as ``build_config`` makes its build parameters."""
        return self._config(self.search_params, "search", given)

    def _config(self, cls: type, kind: str, given: Mapping[str, Any] | Any) -> Any:
        if type(given) is cls:
            return given
        if given is not None and type(given) is not dict and (is_dataclass(given) or not isinstance(given, Mapping)):
            raise TypeError(f"method {self.name!r} takes its {kind} parameters as {cls.__name__} or keywords, "
                            f"got {type(given).__name__}")
        try:   # the same values again (a benchmark's or a client's setting) cost a lookup, not a new check
            key = tuple((name, type(value), value) for name, value in (given or {}).items())
            hash(key)
        except TypeError:   # a value that cannot be a key: checked without the cache
            return self._parse(cls, kind, given or {})
        return _parsed(self.name, kind, key)

    def _parse(self, cls: type, kind: str, given: Mapping[str, Any]) -> Any:
        accepted = _names(cls)
        if not accepted.issuperset(given):
            unknown = sorted(set(given) - accepted)
            raise ValueError(f"method {self.name!r} has no {kind} parameter {unknown}; it takes "
                             f"{[f.name for f in fields(cls)] or 'none'}")
        return cls(**given)

    def accepts(self, kind: str) -> frozenset[str]:
        """Names of the method's ``build`` or ``search`` parameters."""
        return _names(self.build_params if kind == "build" else self.search_params)


@functools.cache
def _names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


@functools.lru_cache(maxsize=1024)
def _parsed(method: str, kind: str, key: tuple) -> Any:
    """Checked parameters by (name, type, value): the type is in the key, so True never passes as a cached 1."""
    m = get(method)
    return m._parse(m.build_params if kind == "build" else m.search_params, kind, {name: v for name, _, v in key})


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


def build_configs(names: Sequence[str], keywords: Mapping[str, Any] | None = None,
                  params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Each chosen method's build parameters (exact is always chosen), as its build-params dataclass: from
    ``params[method]`` (that dataclass, or a mapping) or else from the ``keywords`` it declares, which all chosen
    methods share (``block_size=32`` goes to bmp). A keyword no chosen method declares is refused, and so is a
    method's parameters given both ways."""
    chosen = [get(n) for n in dict.fromkeys(["exact", *names])]
    keywords, params = dict(keywords or {}), dict(params or {})
    stray = sorted(set(params) - {m.name for m in chosen})
    if stray:
        raise ValueError(f"build parameters for {stray}, which are not among the methods {[m.name for m in chosen]}")
    known = {p for m in chosen for p in m.accepts("build")}
    unknown = set(keywords) - known
    if unknown:
        raise ValueError(f"unknown build parameters {sorted(unknown)} for methods {[m.name for m in chosen]}; "
                         f"accepted: {sorted(known) or 'none'}")
    configs = {}
    for m in chosen:
        mine = {k: v for k, v in keywords.items() if k in m.accepts("build")}
        if m.name in params and mine:
            raise ValueError(f"method {m.name!r}: give its build parameters in params or as keywords, not both "
                             f"(keywords {sorted(mine)})")
        configs[m.name] = m.build_config(params.get(m.name, mine))
    return configs


def get(name: str) -> Method:
    _load()
    if name not in _REGISTRY:
        raise ValueError(f"unknown search method {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]
