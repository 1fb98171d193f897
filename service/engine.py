"""What the endpoints run: a request's query as a vector (text through the micro-batcher, sparse ids, or tokens),
its top-k in the index, and hits with stored fields and per-term explanations.

A request error (unknown method or parameter, out-of-vocabulary token, term id out of range, another vocabulary) is
a ``QueryError``, answered 422. The query encoder loads on a thread after start-up, so the service answers
``/healthz`` (and sparse queries) at once and ``/readyz`` says when text queries can be served.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from lsr.index import Index, InvalidQuery, check_query
from lsr.service.batcher import MicroBatcher, Row
from lsr.service.limits import STORED_FIELDS
from lsr.service.metrics import Metrics
from lsr.service.models import Contribution, Hit, SearchRequest, SearchResponse
from lsr.service.settings import Settings

log = logging.getLogger(__name__)


def bound_heap() -> None:
    """Makes glibc return freed encoder activations to the system: batches of every size otherwise fragment the heap
    and the resident memory of a busy service creeps up (measured: +80 MiB in 50 s of random batch sizes; flat with
    this). Allocations from 128 KiB go to mmap, and free memory above 128 KiB at the heap top is trimmed."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 128 * 1024)
    libc.mallopt(m_trim_threshold, 128 * 1024)


class QueryError(ValueError):
    """The request cannot be answered as asked (422)."""


class NotReady(RuntimeError):
    """The query encoder is still loading, or failed to load (503)."""


class Engine:
    def __init__(self, index: Index, settings: Settings, metrics: Metrics, encoder=None):
        self.index = index
        self.settings = settings
        self.metrics = metrics
        self.encoder = None
        self.batcher: MicroBatcher | None = None
        self.load_error: str | None = None
        self._vocab: dict[str, int] = {}
        self._tokens: list[str] = []
        self._ids: tuple[int, np.ndarray] | None = None  # (generation, external id of each internal number)
        self._id_set: tuple[int, frozenset] | None = None
        self.bm25 = None
        if settings.bm25_dir is not None:
            from lsr.service.hybrid import Bm25Side

            self.bm25 = Bm25Side(settings.bm25_dir)
        if encoder is not None:
            self._attach(encoder)

    # ---- the query encoder ---------------------------------------------------------------------------------------
    def load_encoder(self) -> None:
        """Loads the index's model (or ``settings.model``); on failure records why, for /readyz."""
        try:
            model = self.settings.model or self.index.model
            if not model:
                raise NotReady(f"the index at {self.index.path} records no model; set LSR_MODEL to encode text")
            import torch

            from lsr.encoding.encoder import Encoder

            torch.set_num_threads(self.settings.encode_threads)
            bound_heap()
            self._attach(Encoder.from_pretrained(model, device=self.settings.device))
        except Exception as e:  # noqa: BLE001 - the service keeps serving sparse queries and reports this
            log.error("query encoder not loaded: %s", e)
            self.load_error = f"{type(e).__name__}: {e}"

    def _attach(self, encoder) -> None:
        self.index.check_vocabulary(encoder.vocab_fingerprint)
        if encoder.vocab_size != self.index.vocab_size:
            raise NotReady(f"model {encoder.name!r} has {encoder.vocab_size} terms, the index {self.index.vocab_size}")
        self._vocab = dict(encoder.tokenizer.get_vocab())
        self._tokens = encoder.tokenizer.convert_ids_to_tokens(list(range(encoder.vocab_size)))
        self.batcher = MicroBatcher(encoder.encode_queries, window_ms=self.settings.batch_window_ms,
                                    max_batch=self.settings.max_encode_batch, in_flight=lambda: self.metrics.active,
                                    observe=self.metrics.observe_encode)
        self.encoder = encoder

    @property
    def ready(self) -> bool:
        return self.encoder is not None

    def _need_encoder(self):
        if self.encoder is None:
            raise NotReady(self.load_error or "the query encoder is still loading")
        return self.encoder

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()

    # ---- queries -------------------------------------------------------------------------------------------------
    def _sparse(self, req: SearchRequest) -> Row:
        if req.vocab_fingerprint and self.index.vocab_fingerprint and req.vocab_fingerprint != self.index.vocab_fingerprint:
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
        """Moves to the latest committed generation (a stat of the manifest when nothing changed). Called on the event
        loop's thread at the start of each request, and searches run there too, so the internal numbers of a search
        and the ids they are resolved to always come from the same generation."""
        self.index.refresh()

    async def vectors(self, reqs: list[SearchRequest]) -> list[Row]:
        """The query vector of each request; the texts among them go to the encoder together."""
        for r in reqs:
            self._check_method(r)
        rows: list[Row | None] = [None if r.query is not None else self._sparse(r) for r in reqs]
        texts = [r.query for r in reqs if r.query is not None]
        if texts:
            self._need_encoder()
            encoded = iter(await self.batcher.encode_many(texts))
            rows = [row if row is not None else next(encoded) for row in rows]
        return rows

    def _top(self, req: SearchRequest, row: Row, k: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        start = time.perf_counter()
        try:
            scores, docs = self.index.search_one(row[0], row[1], k=k, method=req.method, params=req.params,
                                                 filter=req.filter, offset=offset)
        except (ValueError, TypeError) as e:  # parameters out of range, duplicate term ids, a filter's clause, ...
            raise QueryError(str(e)) from e
        self.metrics.search.labels(req.method).observe(time.perf_counter() - start)
        return scores, docs

    def search(self, req: SearchRequest, row: Row) -> list[Hit]:
        """Top-k hits of one query vector (runs on the calling thread; the kernels release the GIL)."""
        if req.hybrid is not None:
            return self._hybrid(req, row)
        scores, docs = self._top(req, row, req.k, req.offset)
        return [self._hit(req, row, rank, float(s), int(d))
                for rank, (s, d) in enumerate(zip(scores, docs), req.offset + 1) if d >= 0]

    def _hybrid(self, req: SearchRequest, row: Row) -> list[Hit]:
        from lsr.service.hybrid import fuse

        if self.bm25 is None:
            raise QueryError("hybrid search needs a BM25 side: start the service with lsr serve --bm25 DIR")
        depth = max(req.hybrid.depth, req.k + req.offset)
        scores, docs = self._top(req, row, depth)
        splade = [(self.doc_id(int(d)), float(s)) for s, d in zip(scores, docs) if d >= 0]
        start = time.perf_counter()
        live = self.id_set()
        bm25 = [(d, s) for d, s in self.bm25.ranking(req.query, depth) if d in live]  # deleted since: dropped
        self.metrics.search.labels("bm25").observe(time.perf_counter() - start)
        fused = fuse(splade, bm25, req.hybrid, req.k + req.offset)[req.offset:]
        return [self._fields(req, Hit(id=d, score=s, rank=rank), d)
                for rank, (d, s) in enumerate(fused, req.offset + 1)]

    def _fields(self, req: SearchRequest, hit: Hit, key: int | str) -> Hit:
        """Copies the requested stored fields of document ``key`` (internal number or id) into ``hit``."""
        if req.fields:
            doc = self.index.document(key)
            for name in STORED_FIELDS:
                if name in req.fields:
                    setattr(hit, name, doc[name])
        return hit

    def _hit(self, req: SearchRequest, row: Row, rank: int, score: float, number: int) -> Hit:
        hit = self._fields(req, Hit(id=self.doc_id(number), score=score, rank=rank), number)
        if req.explain:
            hit.explanation = self._explain(row, number)
        return hit

    def _explain(self, row: Row, number: int) -> list[Contribution]:
        q_terms, q_weights = row
        d_terms, d_weights = self.index.vector(number)
        common, qi, di = np.intersect1d(q_terms, d_terms, assume_unique=True, return_indices=True)
        parts = q_weights[qi].astype(np.float64) * d_weights[di]
        order = np.argsort(-parts, kind="stable")
        return [Contribution(term=self.token(int(common[i])), id=int(common[i]), query_weight=float(q_weights[qi[i]]),
                             doc_weight=float(d_weights[di[i]]), score=float(parts[i])) for i in order if parts[i] > 0]

    def doc_id(self, number: int) -> str:
        """External id of an internal number, from an array read once per index generation (the index's own lookup
        reads a stored-document row, ~60 us, too slow for k hits per query)."""
        generation = self.index.manifest.generation
        if self._ids is None or self._ids[0] != generation:
            self._ids = (generation, self.index.doc_ids)
        return self._ids[1][number]

    def id_set(self) -> frozenset:
        """External ids of the documents in the index now."""
        generation = self.index.manifest.generation
        if self._id_set is None or self._id_set[0] != generation:
            self._id_set = (generation, frozenset(self.index.doc_ids))
        return self._id_set[1]

    def token(self, term_id: int) -> str:
        return self._tokens[term_id] if term_id < len(self._tokens) else str(term_id)

    async def answer(self, req: SearchRequest) -> SearchResponse:
        start = time.perf_counter()
        (row,) = await self.vectors([req])
        self.refresh()
        hits = self.search(req, row)
        return SearchResponse(hits=hits, took_ms=(time.perf_counter() - start) * 1000)

    async def answer_batch(self, reqs: list[SearchRequest]) -> list[SearchResponse]:
        rows = await self.vectors(reqs)
        self.refresh()
        out = []
        for req, row in zip(reqs, rows):  # on the loop's thread, like single queries (see refresh)
            start = time.perf_counter()
            out.append(SearchResponse(hits=self.search(req, row), took_ms=(time.perf_counter() - start) * 1000))
        return out
