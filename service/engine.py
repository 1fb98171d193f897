"""What the endpoints run: a request's query as a vector (text through the micro-batcher, sparse ids, or tokens),
its top-k in one snapshot of the index, as an ``Answer`` that service/answers.py writes out.

A request error (unknown method or parameter, out-of-vocabulary token, term id out of range, another vocabulary, a
text the encoder refuses) is a ``QueryError``, answered 422; in /search/batch it stays with its query. The query
encoder loads on a thread after start-up, so the service answers ``/healthz`` (and sparse queries) at once and
``/readyz`` says when text queries can be served. Searches run on the ``Offload`` pool, never on the event loop;
each takes one snapshot of the index and resolves everything (ids, stored fields, explanations) against it, so a
refresh between two steps cannot mix generations.

A damaged index (a write-ahead log that does not replay, found at start or by a write) makes the service not ready
(``damaged``: /readyz 503 with the reason and how to recover); searches of the committed segments go on.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from lsr.index import Index, IndexCorrupt, InvalidQuery, check_query
from lsr.index.snapshot import Snapshot
from lsr.index.wal import check_replay
from lsr.encoding.vocabulary import Vocabulary
from lsr.service.batcher import BatcherClosed, Deferred, MicroBatcher, Row, TextRejected
from lsr.service.metrics import Metrics
from lsr.service.models import BatchError, Contribution, InvalidBatchQuery, QueryTerm, SearchRequest
from lsr.service.offload import Offload
from lsr.service.settings import Settings

log = logging.getLogger(__name__)


class QueryError(ValueError):
    """The request cannot be answered as asked (422)."""


class NotReady(RuntimeError):
    """The query encoder is still loading, or failed to load, or the index is damaged (503)."""


@dataclass
class Answer:
    """One query's hits in one snapshot: (id, score, key) each, the key being the internal number, or the id for
    fused hybrid hits. Stored fields and explanations are read from ``snap`` while the answer is written."""

    req: SearchRequest
    row: Row
    snap: Snapshot
    hits: list[tuple[str, float, int | str]]
    took_ms: float


class Engine:
    def __init__(self, index: Index, settings: Settings, metrics: Metrics, encoder=None):
        self.index = index
        self.settings = settings
        self.metrics = metrics
        self.pool = Offload(settings.search_threads, settings.stream_bytes)
        self.encoder = None   # lsr.encoding.query.QueryEncoder, or a torch Encoder
        self.batcher: MicroBatcher | None = None
        self.load_error: str | None = None
        self.damaged: str | None = None
        self._vocab: dict[str, int] = {}
        self._tokens: list[str] = []
        self._ids: tuple[Snapshot, np.ndarray] | None = None   # external id of each internal number of a snapshot
        self._ids_lock = threading.Lock()
        self.bm25 = None
        if settings.hybrid:
            from lsr.service.hybrid import LiveBm25

            self.bm25 = LiveBm25()
        if encoder is not None:
            self._attach(encoder)

    # ---- the query encoder ---------------------------------------------------------------------------------------
    def load_encoder(self, encoder=None) -> None:
        """Loads the index's model (or ``settings.model``) unless ``encoder`` is given (another index's, of the same
        model); on failure records why, for /readyz. On the CPU that is the numpy encoder where it covers the model,
        for queries and document writes alike: a worker never loads torch (~600 MB less each)."""
        try:
            if encoder is not None:
                return self._attach(encoder)
            model = self.settings.model or self.index.model
            if not model:
                raise NotReady("the index records no model; set LSR_MODEL to encode text")
            if self.settings.device == "cpu":
                from lsr.encoding.heap import release_freed_memory
                from lsr.encoding.loader import load_query_encoder

                encoder = load_query_encoder(model, threads=self.settings.encode_threads)
                encoder.encode_queries(["warm up"])   # one-off work (the screen's packing, its centre) done here
                release_freed_memory()                # and its temporaries returned: the heap keeps freed memory
            else:
                import torch

                from lsr.encoding.encoder import Encoder

                torch.set_num_threads(self.settings.encode_threads)
                encoder = Encoder.from_pretrained(model, device=self.settings.device)
            self._attach(encoder)
        except Exception as e:  # noqa: BLE001 - the service keeps serving sparse queries and reports this
            log.error("query encoder not loaded: %s", e)
            self.load_error = f"the query encoder failed to load ({type(e).__name__}); the server log says why"

    def _attach(self, encoder) -> None:
        self.index.check_vocabulary(encoder.vocab_fingerprint)
        if encoder.vocab_size != self.index.vocab_size:
            raise NotReady(f"model {encoder.name!r} has {encoder.vocab_size} terms, the index {self.index.vocab_size}")
        vocab = Vocabulary.of_tokenizer(encoder.tokenizer)
        self._vocab = vocab.ids
        self._tokens = list(vocab.tokens)
        self.batcher = MicroBatcher(encoder.encode_queries, window_ms=self.settings.batch_window_ms,
                                    max_batch=self.settings.max_encode_batch, in_flight=lambda: self.metrics.active,
                                    observe=self.metrics.observe_encode,
                                    document_threads=self.settings.document_threads if getattr(
                                        encoder, "parallel_calls", False) else None,
                                    document_nice=self.settings.ingest_nice,
                                    any_thread=getattr(encoder, "parallel_calls", False))
        self.encoder = encoder

    @property
    def ready(self) -> bool:
        return self.encoder is not None and self.damaged is None

    def not_ready(self) -> str | None:
        """Why /readyz says 503, or None."""
        return self.damaged or self.load_error or (None if self.encoder is not None else "the query encoder is "
                                                   "still loading")

    def tokens(self) -> dict[str, int]:
        """The model's vocabulary, token -> id (NotReady until the encoder is loaded)."""
        self._need_encoder()
        return self._vocab

    def _need_encoder(self):
        if self.encoder is None:
            raise NotReady(self.load_error or "the query encoder is still loading")
        return self.encoder

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()
        self.pool.close()

    # ---- damage -------------------------------------------------------------------------------------------------
    def public(self, message: str) -> str:
        """``message`` with the index's folder left out: answers never name paths of the server."""
        folder = str(self.index.path.resolve())
        return message.replace(folder + "/", "").replace(folder, "the index").replace(str(self.index.path), "the index")

    def mark_damaged(self, error: IndexCorrupt) -> str:
        """Records the damage (the service is not ready from now on) and returns the answer's text."""
        log.error("index damaged: %s", error)
        self.damaged = f"the index is damaged: {self.public(str(error))}"
        return self.damaged

    def check_log(self) -> None:
        """At start: would the write-ahead log replay (``check_replay``)? If not, the service is not ready."""
        try:
            check_replay(self.index.path, self.index.snapshot())
        except IndexCorrupt as e:
            self.mark_damaged(e)

    # ---- queries -------------------------------------------------------------------------------------------------
    def _sparse(self, req: SearchRequest) -> Row:
        fingerprint = self.index.vocab_fingerprint
        if req.vocab_fingerprint and fingerprint and req.vocab_fingerprint != fingerprint:
            raise QueryError(f"the query's vocabulary (fingerprint {req.vocab_fingerprint}) is not the index's "
                             f"({self.index.vocab_fingerprint}, model {self.index.model!r}); encode it with that model")
        if req.terms is not None:
            self._need_encoder()
            unknown = [t for t in req.terms if t not in self._vocab]
            if unknown:
                raise QueryError(f"tokens not in the vocabulary of {self.index.model!r}: {unknown[:10]}")
            ids = np.fromiter((self._vocab[t] for t in req.terms), np.int64, len(req.terms))
            values = np.fromiter(req.terms.values(), np.float32, len(req.terms))
        else:
            ids, values = np.asarray(req.indices, dtype=np.int64), req.values
        try:
            return check_query(ids, values, self.index.vocab_size)
        except InvalidQuery as e:
            raise QueryError(str(e)) from e

    def _check_method(self, req: SearchRequest) -> None:
        if req.method not in self.index.methods:
            raise QueryError(f"unknown method {req.method!r}: this index serves {self.index.methods}")

    def refresh(self) -> None:
        """Moves to the latest snapshot now (the writer's, or what a follower reads of its log); on the pool."""
        self.index.refresh()

    async def vectors(self, reqs: list[SearchRequest]) -> list[Row | BaseException]:
        """Per request, its query vector or its own error; the texts among them go to the encoder together."""
        rows: list[Row | BaseException | None] = []
        for r in reqs:
            try:
                self._check_method(r)
                rows.append(None if r.query is not None else self._sparse(r))
            except (QueryError, NotReady) as e:
                rows.append(e)
        texts = [r.query for r, row in zip(reqs, rows) if row is None]
        if texts:
            try:
                self._need_encoder()
                encoded = iter(await self.batcher.encode_many(texts))
            except (NotReady, BatcherClosed) as e:
                encoded = iter([e] * len(texts))
            rows = [next(encoded) if row is None else row for row in rows]
        return rows

    def _top(self, req: SearchRequest, row: Row, k: int, snap: Snapshot,
             offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        start = time.perf_counter()
        try:
            scores, docs = self.index.search_one(row[0], row[1], k=k, method=req.method, params=req.params,
                                                 snapshot=snap, filter=req.filter, offset=offset)
        except (ValueError, TypeError) as e:  # parameters out of range, duplicate term ids, a filter's clause, ...
            raise QueryError(str(e)) from e
        self.metrics.search.labels(req.method).observe(time.perf_counter() - start)
        return scores, docs

    def _answer(self, req: SearchRequest, row: Row, snap: Snapshot) -> Answer:
        """Top-k of one query vector in ``snap`` (on the calling thread; the kernels release the GIL)."""
        start = time.perf_counter()
        if req.hybrid is not None:
            hits = self._hybrid(req, row, snap)
        else:
            scores, docs = self._top(req, row, req.k, snap, req.offset)
            ids = self.doc_ids(snap)
            hits = [(ids[d], float(s), int(d)) for s, d in zip(scores, docs) if d >= 0]
        return Answer(req, row, snap, hits, (time.perf_counter() - start) * 1000)

    def _hybrid(self, req: SearchRequest, row: Row, snap: Snapshot) -> list[tuple[str, float, str]]:
        from lsr.service.hybrid import fuse

        if self.bm25 is None:
            raise QueryError("hybrid search needs the BM25 side: start the service with lsr serve --hybrid")
        depth = max(req.hybrid.depth, req.k + req.offset)
        scores, docs = self._top(req, row, depth, snap)
        ids = self.doc_ids(snap)
        splade = [(ids[d], float(s)) for s, d in zip(scores, docs) if d >= 0]
        start = time.perf_counter()
        bm25 = self.bm25.ranking(snap, req.query, depth)   # the same snapshot: every write, no deleted document
        self.metrics.search.labels("bm25").observe(time.perf_counter() - start)
        return [(d, s, d) for d, s in fuse(splade, bm25, req.hybrid, req.k + req.offset)[req.offset:]]

    def _snapshot(self) -> Snapshot:
        """The snapshot searches use: the index's refresh thread moves it twice per ``refresh_interval`` (0: at
        each call), so no search pays for building the writer's in-memory segment."""
        return self.index.snapshot()

    async def vector(self, req: SearchRequest) -> Row | Deferred:
        """One request's query vector; its error is raised (the endpoint's 422 or 503). A lone text comes back
        deferred, to be encoded on the pool thread that answers it (``MicroBatcher.lone``)."""
        if req.query is not None and self.batcher is not None and self.batcher.lone() and self.ready:
            self._check_method(req)
            return functools.partial(self.batcher.encode_here, req.query)
        (row,) = await self.vectors([req])
        if isinstance(row, BaseException):
            raise row
        return row

    async def batch_vectors(self, items: list[SearchRequest | InvalidBatchQuery]) -> list[Row | BaseException | None]:
        """Each valid query's vector or its own error (None for a query that failed validation)."""
        valid = [q for q in items if isinstance(q, SearchRequest)]
        vectors = iter(await self.vectors(valid))
        return [next(vectors) if isinstance(q, SearchRequest) else None for q in items]

    def answer(self, req: SearchRequest, row: Row | Deferred) -> Answer:
        """One query's answer in the latest snapshot (on the pool); QueryError raised."""
        return self._answer(req, row() if callable(row) else row, self._snapshot())

    def answer_all(self, items: list[SearchRequest | InvalidBatchQuery],
                   rows: list[Row | BaseException | None]) -> list[Answer | BatchError]:
        """Each query's answer or its own error, all in one snapshot (on the pool)."""
        snap = self._snapshot()
        out: list[Answer | BatchError] = []
        for req, row in zip(items, rows):
            if isinstance(req, InvalidBatchQuery):
                out.append(BatchError(status=422, detail=req.detail))
            elif isinstance(row, BaseException):
                out.append(item_error(row))
            else:
                try:
                    out.append(self._answer(req, row, snap))
                except QueryError as e:
                    out.append(item_error(e))
        return out

    # ---- what answers show -----------------------------------------------------------------------------------------
    def doc_ids(self, snap: Snapshot) -> np.ndarray:
        """External ids by internal number of ``snap``, read once per snapshot (a stored-document row per hit would
        cost ~60 us: too slow for k hits per query)."""
        with self._ids_lock:
            if self._ids is None or self._ids[0] is not snap:
                self._ids = (snap, snap.doc_ids())
            return self._ids[1]

    def explain(self, snap: Snapshot, row: Row, number: int) -> list[Contribution]:
        """The query terms that give document ``number`` its score, heaviest first."""
        q_terms, q_weights = row
        d_terms, d_weights = snap.vector(number)
        common, qi, di = np.intersect1d(q_terms, d_terms, assume_unique=True, return_indices=True)
        parts = q_weights[qi].astype(np.float64) * d_weights[di]
        order = np.argsort(-parts, kind="stable")
        return [Contribution(term=self.token(int(common[i])), id=int(common[i]), query_weight=float(q_weights[qi[i]]),
                             doc_weight=float(d_weights[di[i]]), score=float(parts[i])) for i in order if parts[i] > 0]

    def query_terms(self, row: Row) -> list[QueryTerm]:
        """The query vector's terms, heaviest first: what a text query was expanded to."""
        terms, weights = row
        return [QueryTerm(term=self.token(int(terms[i])), id=int(terms[i]), weight=float(weights[i]))
                for i in np.argsort(-weights, kind="stable")]

    def token(self, term_id: int) -> str:
        return self._tokens[term_id] if term_id < len(self._tokens) else str(term_id)


def item_error(e: BaseException) -> BatchError:
    """A /search/batch query's own error: 422 for the query, 503 for the service not ready; anything else is a
    bug and is raised."""
    if isinstance(e, (QueryError, TextRejected)):
        return BatchError(status=422, detail=str(e))
    if isinstance(e, (NotReady, BatcherClosed)):
        return BatchError(status=503, detail=str(e))
    raise e
