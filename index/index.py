"""The index: a manifest plus immutable segments on disk, opened memory-mapped, searched by any method, and
updated in place by one writer.

``Index.build`` quantizes and (optionally) reorders the documents, derives postings and each method's arrays, writes
one segment and commits the manifest. ``Index.open`` maps a committed generation. ``search`` runs a method in every
segment and merges the per-segment top-k (index/snapshot.py); batches run one query per call on a thread pool over
``nogil`` kernels.

Live updates (index/writer.py): ``Index.open(path, writable=True)`` takes the index's writer lock; then ``add``,
``upsert`` and ``delete`` are durable when they return, ``flush``/``commit`` writes recent documents as a segment,
``compact`` merges everything into one, and merges run in the background. An Index searches one snapshot at a time;
``refresh()`` (or ``refresh_interval``) moves it to the latest one: the writer's acknowledged writes in its own
process, the latest committed generation in any other.

Thread safety: one Index may be shared by any number of threads. Searches run side by side and never wait for a
writer; writes are serialized by the writer (one at a time, each fsynced before it returns).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from lsr.index import methods as registry
from lsr.index.builder import Progress, build_segment
from lsr.index.docstore import doc_table
from lsr.index.errors import IndexCorrupt, ReadOnlyIndex, VocabularyMismatch
from lsr.index.filters import Filter, parse_filter
from lsr.index.follower import Follower
from lsr.index.forward import ForwardIndex
from lsr.index.lock import WriterLock
from lsr.index.manifest import MANIFEST, OWNED, Manifest, file_identity
from lsr.index.query import check_query
from lsr.index.quantize import check_quantization
from lsr.index.segment import Segment
from lsr.index.snapshot import Snapshot
from lsr.index.wal import log_files, scan_log
from lsr.index.writer import Writer
from lsr.core import validate
from lsr.core.documents import Document, as_document
from lsr.core.metadata import merge_kinds
from lsr.core.sparse import SparseBatch

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """Top-k of n queries: ``scores`` (n, k) float32 and ``docs`` (n, k) int64 internal numbers, -1 = no hit."""

    scores: np.ndarray
    docs: np.ndarray
    snapshot: Snapshot = field(repr=False)   # the snapshot searched: internal numbers are its own

    @property
    def ids(self) -> list[list[str]]:
        """External ids of the hits of each query (padding left out)."""
        return [[self.snapshot.doc_id(d) for d in row if d >= 0] for row in self.docs]


def _check_folder(path: Path, overwrite: bool) -> None:
    """FileExistsError unless ``path`` is absent, an empty folder, or an index that ``overwrite`` may replace."""
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    if not path.exists():
        return
    if (path / MANIFEST).exists() and not overwrite:
        raise FileExistsError(f"{path} already holds an index; pass overwrite=True (lsr index --overwrite)")
    foreign = [p.name for p in path.iterdir() if p.name != MANIFEST and not OWNED.match(p.name)]
    if foreign:
        raise FileExistsError(f"{path} is not empty and not an index (found {sorted(foreign)[:5]}); "
                              "choose an empty or new folder")


def _prepare_folder(path: Path, overwrite: bool) -> Manifest | None:
    """Makes ``path`` ready for a build; returns the manifest it replaces, if any."""
    _check_folder(path, overwrite)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MANIFEST).exists():
        return None
    try:
        return Manifest.read(path)
    except IndexCorrupt:   # nothing worth keeping: the new build starts the generations again
        return None


def _check_documents(vectors: SparseBatch, doc_ids: Sequence[str],
                     texts: Sequence[Document | Mapping] | None) -> tuple[list[str], list[Document] | None]:
    """The ids as strings and the texts as Documents (dict records accepted), after checking them against the
    vectors."""
    if not isinstance(vectors, SparseBatch):
        raise TypeError(f"vectors must be an lsr SparseBatch, got {type(vectors).__name__}")
    try:
        vectors.validate()
    except ValueError as e:
        raise ValueError(f"document vectors: {e}") from e
    if len(vectors) == 0:
        raise ValueError("cannot build an index of zero documents")
    ids = [str(i) for i in doc_ids]
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} document ids for {len(vectors)} vectors")
    if any(not i for i in ids):
        raise ValueError("document ids must be non-empty strings")
    if len(set(ids)) != len(ids):
        raise ValueError("document ids must be unique")
    if texts is None:
        return ids, None
    if isinstance(texts, (str, bytes, Mapping, SparseBatch)) or not hasattr(texts, "__len__"):
        raise TypeError(f"texts must be a sequence of lsr Documents or dicts with 'id', 'text' and optional "
                        f"'title', one per document, got {type(texts).__name__}")
    docs = [as_document(t, f"texts[{i}]") for i, t in enumerate(texts)]
    if len(docs) != len(ids):
        raise ValueError(f"{len(docs)} texts for {len(ids)} documents")
    kinds: dict[str, str] = {}
    for i, d in enumerate(docs):   # a key holds one kind of value (lsr.core.metadata)
        merge_kinds(kinds, d.metadata, f"texts[{i}]")
    mismatch = next((i for i, (t, d) in enumerate(zip(docs, ids)) if t.id != d), None)
    if mismatch is not None:
        raise ValueError(f"texts[{mismatch}] has id {docs[mismatch].id!r}, doc_ids[{mismatch}] is {ids[mismatch]!r}")
    return ids, docs


def _build_record(reorder: bool, configs: dict[str, Any]) -> dict:
    """The manifest's ``build_params``: the reorder flag and each method's parameters as plain fields."""
    return {"reorder": bool(reorder), **{name: asdict(p) for name, p in configs.items()}}


def _check_scale(scale: float | None, quantization: str) -> None:
    if scale is None:
        return
    validate.number("scale", scale, 0, low_open=True)
    if quantization != "uint8" and scale != 1.0:
        raise ValueError(f"scale must be 1.0 or None with {quantization} impacts, which store the weights themselves "
                         f"(it sets the weight of a uint8 level), got {scale!r}")


class Index:
    """An index folder as searches see it: one consistent snapshot at a time (and, when writable, its writer)."""

    def __init__(self, path: Path, snapshot: Snapshot, writer: Writer | None = None,
                 refresh_interval: float | None = None, verify: bool = True, follower: Follower | None = None):
        self.path = path
        self._snap = snapshot
        self._writer = writer
        self._follower = follower
        self.refresh_interval = refresh_interval
        self._verify = verify
        self._refresh_lock = threading.Lock()
        self._manifest_stat = file_identity(path / MANIFEST)
        self._stop_refreshing = threading.Event()
        if refresh_interval:   # refreshes run on their own thread, never inside a search; every half interval, so
            # that a write acknowledged just after one move is searchable after the next one, within the interval
            threading.Thread(target=_refresh_loop, args=(weakref.ref(self), refresh_interval / 2,
                                                         self._stop_refreshing),
                             name="lsr-refresh", daemon=True).start()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._defaults: dict[str, tuple[registry.Method, Any]] = {}   # method -> (Method, default params)

    # ---- build / open -------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, path: str | os.PathLike, vectors: SparseBatch, doc_ids: Sequence[str], *,
              texts: Sequence[Document | Mapping] | None = None, model: str | None = None,
              vocab_fingerprint: str | None = None, quantization: str = "uint8", reorder: bool = True,
              methods: Sequence[str] = ("exact", "bmp"), overwrite: bool = False, scale: float | None = None,
              progress: Progress | None = None, params: Mapping[str, Any] | None = None,
              **method_params) -> "Index":
        """Builds a one-segment index at ``path`` (a new or empty folder, or an index to replace with overwrite).

        ``texts``: the stored documents, one per id in the same order (``Document`` or dict records {"id", "text",
        "title", "metadata"}; metadata: lsr.core.metadata, filtered by ``search(..., filter=...)``). Method parameters: ``params`` maps a method to its build-params dataclass or a mapping (e.g.
        ``{"bmp": BmpBuildParams(block_size=32)}``, see ``lsr.index.methods.build_configs``); keywords
        (``method_params``) go to every chosen method that declares them (e.g. ``block_size`` for bmp). ``scale``
        fixes the weight of one uint8 level (default: the largest weight / 255); documents added later share it. The
        manifest is written last: a build interrupted at any point leaves no index that opens (or the previous one
        intact). Building over an index takes its writer lock, so it fails while a writer has it open.
        ``progress(stage, done, total)`` is told as each build stage starts.
        """
        path = Path(path)
        check_quantization(quantization)
        ids, texts = _check_documents(vectors, doc_ids, texts)
        configs = registry.build_configs(methods, method_params, params)
        _check_scale(scale, quantization)
        old = _prepare_folder(path, overwrite)
        with WriterLock(path):
            fwd = ForwardIndex.from_vectors(vectors, quantization, scale)
            generation = old.generation + 1 if old else 1
            # a name no segment of the replaced index has: its segments must stay intact until the commit
            number = max([generation] + [int(s.name[4:]) + 1 for s in (old.segments if old else [])])
            info, _ = build_segment(path, f"seg-{number:06d}", fwd, doc_table(ids, texts), reorder=reorder,
                                    configs=configs, progress=progress)
            # records of a write-ahead log left by an earlier index here (damaged or not) are superseded: mark the
            # readable ones applied
            wal_seq = max([old.wal_seq if old else 0] + [r.seq for r in scan_log(path).records])
            manifest = Manifest(generation=generation, vocab_size=vectors.vocab_size, quantization=quantization,
                                model=model, vocab_fingerprint=vocab_fingerprint,
                                build_params=_build_record(reorder, configs), methods=list(configs),
                                segments=[info], scale=fwd.scale, wal_seq=wal_seq)
            manifest.write(path)
            manifest.remove_unlisted(path)
            for log in log_files(path):
                log.unlink()
        return cls.open(path, verify=False)

    @staticmethod
    def check_build(path: str | os.PathLike | None, *, quantization: str = "uint8",
                    methods: Sequence[str] = ("exact", "bmp"), overwrite: bool = False,
                    params: Mapping[str, Any] | None = None, **method_params) -> None:
        """Raises what ``build`` would raise for these arguments, before any work: a bad quantization, an unknown
        method or parameter, a destination that is not free (``path`` None: not checked). Callers check this before
        encoding a corpus."""
        check_quantization(quantization)
        registry.build_configs(methods, method_params, params)
        if path is not None:
            _check_folder(Path(path), overwrite)

    @classmethod
    def create(cls, path: str | os.PathLike, vocab_size: int, *, model: str | None = None,
               vocab_fingerprint: str | None = None, quantization: str = "uint8", reorder: bool = True,
               methods: Sequence[str] = ("exact", "bmp"), scale: float | None = None,
               refresh_interval: float | None = 1.0, params: Mapping[str, Any] | None = None,
               **method_params) -> "Index":
        """Creates an empty index at ``path`` (a new or empty folder) and opens it for writing (for other writer
        options, close it and ``open`` it again).

        With uint8 impacts the scale is fixed by ``scale`` or, when None, by the first documents added (their
        largest weight / 255); later weights above 255 levels are stored at the top level."""
        path = Path(path)
        check_quantization(quantization)
        configs = registry.build_configs(methods, method_params, params)
        vocab_size = validate.integer("vocab_size", vocab_size, 1)
        _check_scale(scale, quantization)
        _prepare_folder(path, overwrite=False)
        Manifest(generation=1, vocab_size=vocab_size, quantization=quantization, model=model,
                 vocab_fingerprint=vocab_fingerprint, build_params=_build_record(reorder, configs),
                 methods=list(configs), scale=scale if quantization == "uint8" else 1.0).write(path)
        return cls.open(path, writable=True, verify=False, refresh_interval=refresh_interval)

    @classmethod
    def open(cls, path: str | os.PathLike, verify: bool = True, *, writable: bool = False,
             refresh_interval: float | None | str = "default", lock_timeout: float = 0.0, follow: bool = False,
             **writer_options) -> "Index":
        """Maps the committed generation at ``path``; ``verify`` checks every file's sha256 (sizes always).

        ``writable``: take the writer lock (IndexLocked when another writer holds it, after waiting
        ``lock_timeout`` seconds), replay the write-ahead log and accept writes; ``writer_options`` go to
        ``index.writer.Writer`` (``flush_docs``, ``flush_age``, ``merge_policy``, ``background_merges``,
        ``background_flushes``, ``build_threads``).
        ``refresh_interval``: seconds within which an acknowledged write becomes searchable: a background thread
        moves to the latest snapshot every half interval (the other half leaves room for the move's own work), so
        that no search pays for one (0: every search first moves to the latest; None: only ``refresh()`` does).
        Default: 1 s when writable or following, else None (the opened generation stays).
        ``follow`` (read-only): also see the writes another process's writer has acknowledged but not committed
        yet, read from its write-ahead log (index/follower.py), at each refresh.
        """
        path = Path(path)
        if refresh_interval == "default":
            refresh_interval = 1.0 if writable or follow else None
        if refresh_interval is not None:
            refresh_interval = validate.number("refresh_interval", refresh_interval, 0)
        if writable:
            writer = Writer.open(path, verify=verify, lock_timeout=lock_timeout, **writer_options)
            return cls(path, writer.snapshot(), writer, refresh_interval, verify)
        if writer_options:
            raise ValueError(f"writer options {sorted(writer_options)} need writable=True")
        if follow:
            follower = Follower(path, verify)
            return cls(path, follower.snapshot(), None, refresh_interval, verify, follower)
        return cls(path, Snapshot.open(path, verify), None, refresh_interval, verify)

    # ---- snapshots ----------------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The snapshot searches use now (with ``refresh_interval`` 0, the latest one)."""
        if self.refresh_interval == 0:
            self.refresh()
        return self._snap

    def refresh(self) -> bool:
        """Moves to the latest snapshot: the writer's (acknowledged writes included) or the latest committed
        generation. Returns whether it changed."""
        with self._refresh_lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> bool:
        old = self._snap
        if self._writer is not None:
            self._snap = self._writer.snapshot()
        elif self._follower is not None:
            self._snap = self._follower.snapshot()
        else:
            stat = file_identity(self.path / MANIFEST)
            if stat == self._manifest_stat:
                return False
            self._snap = Snapshot.open(self.path, self._verify, reuse={s.name: s for s in old.segments})
            self._manifest_stat = stat
        return self._snap is not old

    @property
    def manifest(self) -> Manifest:
        return self._snap.manifest

    @property
    def segments(self) -> list[Segment]:
        return self._snap.segments

    @property
    def generation(self) -> int:
        """The committed generation of the current snapshot."""
        return self._snap.generation

    # ---- writes -------------------------------------------------------------------------------------------------
    @property
    def writable(self) -> bool:
        return self._writer is not None

    def _write_path(self) -> Writer:
        if self._writer is None:
            raise ReadOnlyIndex(f"{self.path} was opened read-only; open it with Index.open(path, writable=True) "
                                "to add, replace or delete documents")
        return self._writer

    def _put(self, doc_ids: Sequence[str], vectors: SparseBatch, texts: Sequence[Document | Mapping] | None,
             replace: bool) -> None:
        writer = self._write_path()
        if isinstance(vectors, SparseBatch) and len(vectors) == 0 and len(doc_ids) == 0:
            return
        if isinstance(vectors, SparseBatch) and vectors.vocab_size != self.vocab_size:
            raise VocabularyMismatch(f"the documents are over {vectors.vocab_size} terms, the index over "
                                     f"{self.vocab_size}: they come from another vocabulary")
        ids, docs = _check_documents(vectors, doc_ids, texts)
        writer.put(ids, vectors, docs, replace=replace)

    def add(self, doc_ids: Sequence[str], vectors: SparseBatch,
            texts: Sequence[Document | Mapping] | None = None) -> None:
        """Adds new documents; ValueError (nothing written) when an id is already in the index. Durable on return;
        searches see them after the next refresh. ``texts`` as in ``build``."""
        self._put(doc_ids, vectors, texts, replace=False)

    def upsert(self, doc_ids: Sequence[str], vectors: SparseBatch,
               texts: Sequence[Document | Mapping] | None = None) -> None:
        """Adds documents, replacing those whose ids are already in the index. Durable on return."""
        self._put(doc_ids, vectors, texts, replace=True)

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Deletes documents by id (unknown ids are ignored); returns how many were deleted. Durable on return."""
        if isinstance(doc_ids, str):
            raise TypeError("delete takes a sequence of ids; wrap a single id in a list")
        return self._write_path().delete([str(i) for i in doc_ids])

    def flush(self) -> int:
        """Writes the recent documents as a segment and commits it with all deletes; returns the generation, which
        this Index moves to. Readers in other processes see the writes from this generation on."""
        generation = self._write_path().flush()
        self.refresh()
        return generation

    commit = flush

    def compact(self) -> int:
        """Flushes, then merges every segment into one without the deleted documents; returns the generation."""
        generation = self._write_path().compact()
        self.refresh()
        return generation

    def merge(self) -> int:
        """Runs now, on this thread, the merges the merge policy asks for (the background thread does the same
        after flushes); returns how many ran."""
        writer, count = self._write_path(), 0
        while writer.merge_once():
            count += 1
        self.refresh()
        return count

    def stats(self) -> dict:
        """Documents, segments and generation of the current snapshot; with a writer, also its recent documents
        not yet flushed, and the flushes and merges since it opened."""
        snap = self.snapshot()
        out = {"documents": snap.num_docs, "segments": len(snap.manifest.segments), "generation": snap.generation,
               "deleted": sum(snap.dead_counts), "writable": self._writer is not None}
        if self._writer is not None:
            out.update(self._writer.stats())
        return out

    def close(self, commit: bool = True) -> None:
        """Commits (unless ``commit`` is False: the write-ahead log keeps the writes) and releases the writer lock
        of a writable Index; searches keep working on the last snapshot."""
        self._stop_refreshing.set()
        if self._writer is not None:
            self._writer.close(commit)
            self._snap = self._writer.snapshot()
            self._writer = None
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- metadata -----------------------------------------------------------------------------------------------
    @property
    def num_docs(self) -> int:
        """Live documents in the current snapshot."""
        return self.snapshot().num_docs

    @property
    def vocab_size(self) -> int:
        return self.manifest.vocab_size

    @property
    def model(self) -> str | None:
        return self.manifest.model

    @property
    def vocab_fingerprint(self) -> str | None:
        return self.manifest.vocab_fingerprint

    @property
    def methods(self) -> list[str]:
        return list(self.manifest.methods)

    @property
    def scale(self) -> float | None:
        """The weight of one stored uint8 level, shared by every segment (1.0 for float impacts)."""
        if self._writer is not None:
            return self._writer.scale
        return self.manifest.scale if self.manifest.scale is not None else (
            self.segments[0].scale if self.segments else None)

    @property
    def doc_ids(self) -> np.ndarray:
        """External ids by internal number (object array of str; None where a document is deleted)."""
        return self.snapshot().doc_ids()

    def nbytes(self) -> int:
        """Bytes on disk of the committed generation (all segment files)."""
        return sum(m["bytes"] for s in self.manifest.segments for m in s.files.values())

    def check_vocabulary(self, fingerprint: str | None) -> None:
        """Raises VocabularyMismatch when ``fingerprint`` differs from the index's (unknown on either side: passes)."""
        if fingerprint and self.vocab_fingerprint and fingerprint != self.vocab_fingerprint:
            raise VocabularyMismatch(
                f"the queries come from a vocabulary with fingerprint {fingerprint}, but the index at {self.path} was "
                f"built with {self.vocab_fingerprint} (model {self.model!r}); encode queries with that model")

    # ---- documents ----------------------------------------------------------------------------------------------
    def doc_id(self, number: int) -> str:
        """External id of an internal number of the current snapshot (numbers change when it is refreshed)."""
        return self.snapshot().doc_id(number)

    def document(self, key: int | str) -> dict:
        """{"id", "title", "text", "metadata"} of an internal number or an external id; KeyError when there is
        none."""
        return self.snapshot().document(key)

    def vector(self, key: int | str) -> tuple[np.ndarray, np.ndarray]:
        """(term ids int32, weights float32) of a document as stored (quantized); KeyError when there is none."""
        return self.snapshot().vector(key)

    # ---- search -------------------------------------------------------------------------------------------------
    def _resolve(self, method: str, params: Any, keywords: dict) -> tuple[registry.Method, Any]:
        """The method and its checked search parameters: ``params`` (its search-params dataclass, or a mapping) or
        ``keywords``."""
        if params is not None and keywords:
            raise ValueError(f"method {method!r}: give its search parameters in params or as keywords, not both")
        given = params if params is not None else keywords
        default = type(given) is dict and not given   # the defaults, checked once per method
        if default and method in self._defaults:
            return self._defaults[method]
        if method not in self.manifest.methods:
            raise ValueError(f"this index was built without method {method!r}; it has {self.manifest.methods}")
        m = registry.get(method)
        resolved = m, m.search_config(given)
        if default:
            self._defaults[method] = resolved
        return resolved

    def check_search(self, method: str = "exact", params: Any = None, **keywords) -> None:
        """ValueError for a method this index lacks or parameters it does not take; cheap, before any encoding."""
        self._resolve(method, params, keywords)

    def search_one(self, q_indices: np.ndarray, q_values: np.ndarray, k: int = 10, method: str = "exact",
                   snapshot: Snapshot | None = None, params: Any = None, filter: Filter | Mapping | str | None = None,
                   offset: int = 0, **keywords) -> tuple[np.ndarray, np.ndarray]:
        """One query (term ids, weights) on the calling thread: (scores, internal doc numbers) of ranks offset + 1
        to offset + k, best first (ties: lower number first), each of length min(k, num_docs - offset), padded
        with (0.0, -1). Zero weights are ignored; a bad query raises ``InvalidQuery`` (a ValueError;
        ``lsr.index.query.check_query``). The method's search parameters come as its dataclass
        (``params=BmpSearchParams(alpha=0.9)``), a mapping (``params={"alpha": 0.9}``: what a caller passing user
        input should use, as no name of it can collide with this method's arguments) or keywords (``alpha=0.9``).
        ``filter``: only documents whose metadata it allows (lsr.index.filters: a dict, JSON text or a ``Filter``;
        a bad one raises ``InvalidFilter``, a ValueError naming the clause). ``offset``: pages; with an exact
        method, the page at offset k is exactly ranks k + 1 to 2k of the unpaged ranking.
        The numbers belong to the snapshot searched: to resolve them safely while the index may refresh, pin one
        (``snap = idx.snapshot()``), pass it here and ask it (``snap.document(number)``)."""
        k = validate.integer("k", k, 1)
        offset = validate.integer("offset", offset, 0)
        m, p = self._resolve(method, params, keywords)
        flt = parse_filter(filter)
        terms, weights = check_query(q_indices, q_values, self.vocab_size)
        snap = snapshot or self.snapshot()
        total = min(offset + k, snap.num_docs)
        scores, docs = np.zeros((1, total), np.float32), np.full((1, total), -1, np.int64)
        snap.run(m, p, np.array([0, len(terms)], dtype=np.int64), terms, weights, scores, docs, flt)
        return scores[0, offset:], docs[0, offset:]

    def search(self, queries: SparseBatch, k: int = 10, method: str = "exact", threads: int | None = None,
               snapshot: Snapshot | None = None, params: Any = None, filter: Filter | Mapping | str | None = None,
               offset: int = 0, **keywords) -> SearchResult:
        """Top-k of every query; ``threads`` (default: all cores) run queries side by side. The result keeps the
        snapshot it searched (the current one, or ``snapshot``), so its ids resolve after any refresh. Search
        parameters, ``filter`` and ``offset`` as in ``search_one`` (one filter for every query)."""
        k = validate.integer("k", k, 1)
        offset = validate.integer("offset", offset, 0)
        if threads is not None:
            threads = validate.integer("threads", threads, 1)
        m, params = self._resolve(method, params, keywords)
        flt = parse_filter(filter)
        if not isinstance(queries, SparseBatch):
            raise TypeError(f"queries must be an lsr.sparse.SparseBatch, got {type(queries).__name__}")
        if queries.vocab_size != self.vocab_size:
            raise VocabularyMismatch(f"the queries are over {queries.vocab_size} terms, the index over "
                                     f"{self.vocab_size}: they come from another vocabulary")
        try:
            queries.validate()
        except ValueError as e:
            raise ValueError(f"queries: {e}") from e
        snap = snapshot or self.snapshot()
        snap.allowed(flt)   # checks the filter (and evaluates it once) before any thread starts
        n, total = len(queries), min(offset + k, snap.num_docs)
        scores = np.zeros((n, total), dtype=np.float32)
        docs = np.full((n, total), -1, dtype=np.int64)

        def run(lo: int, hi: int) -> None:
            snap.run(m, params, queries.indptr[lo:hi + 1], queries.indices, queries.values, scores[lo:hi],
                     docs[lo:hi], flt)

        threads = min(threads or os.cpu_count() or 1, max(n, 1))
        if threads <= 1:
            run(0, n)
        else:
            step = -(-n // (threads * 4))
            pool = self._thread_pool(threads)
            for f in [pool.submit(run, lo, min(lo + step, n)) for lo in range(0, n, step)]:
                f.result()
        return SearchResult(np.ascontiguousarray(scores[:, offset:]), np.ascontiguousarray(docs[:, offset:]), snap)

    def _thread_pool(self, threads: int) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None or self._pool._max_workers != threads:
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                self._pool = ThreadPoolExecutor(threads, thread_name_prefix="lsr-search")
            return self._pool


def _refresh_loop(index: "weakref.ref[Index]", interval: float, stop: threading.Event) -> None:
    """Starts a refresh of the Index every ``interval`` seconds, start to start, until it is closed or collected.

    Start to start: with a fixed pause after each refresh, a write acknowledged just after one began waited for the
    whole of it, the pause and the whole of the next, and under ingest load that went past the 1 s promise (1.06 s,
    BENCHMARKS.md, issue 16). A refresh longer than the interval is followed by a pause of a tenth of one, so the
    writer's other threads keep the CPU between them."""
    pause = interval
    while not stop.wait(pause):
        idx = index()
        if idx is None:
            return
        started = time.monotonic()
        try:
            idx.refresh()
        except Exception:   # e.g. a reader racing a writer's cleanup: the next round tries again
            log.exception("refreshing %s failed", idx.path)
        del idx
        pause = max(interval / 10, interval - (time.monotonic() - started))

