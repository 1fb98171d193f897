"""Dynamic micro-batching of query encoding: concurrent requests share one forward pass.

Requests ``await batcher.encode(text)``. A single task on the event loop takes the waiting texts, waits a little for
more, encodes them as one batch on the encoder's own thread, and resolves each caller's future with its row. While a
batch runs, new texts queue up, so the batch size, and with it throughput, grows with the load.

How long to wait: until as many texts are in as there were requests in flight when the previous batch finished (its
own callers, who send their next queries a moment after their answers, plus those queued meanwhile), for at most
``window_ms``. Without that wait a closed loop of 64 clients settles into two half-size batches taking turns. A lone
client never waits. Waiting longer does not pay on CPU: past about 8 texts a batch costs the same per text.

A lone text (the only request in flight, nothing queued or encoding, an encoder callable from any thread) need not
wait for the batching task at all: ``lone`` says so, and ``encode_here`` encodes it on the caller's thread, which
for a search is the pool thread that runs the search next (one thread hop per query instead of two: ~0.5 ms of a
one-client text query).

A failure stays with the text that caused it: when encoding a batch raises, its halves are encoded again, down to
single texts, so every other text in the batch gets its vector and the one the encoder refuses alone gets the error
(``TextRejected`` when it is a ValueError, TypeError or UnicodeError: the text itself is at fault; anything else as
raised). The encoder is any function of texts to a SparseBatch; it needs no error handling of its own.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from lsr.core.priority import lower_thread_priority
from lsr.core.sparse import SparseBatch

Row = tuple[np.ndarray, np.ndarray]
Deferred = Callable[[], Row]   # a row computed on the thread that needs it (MicroBatcher.encode_here)


class BatcherClosed(RuntimeError):
    """The service is shutting down and encodes no more."""


class TextRejected(ValueError):
    """The encoder failed on this text alone (the request's 422)."""


Outcome = Row | BaseException


class MicroBatcher:
    def __init__(self, encode: Callable[[list[str]], SparseBatch], *, window_ms: float, max_batch: int,
                 in_flight: Callable[[], int] = lambda: 0,
                 observe: Callable[[int, float], None] = lambda n, seconds: None,
                 document_threads: int | None = None, document_nice: int = 0, any_thread: bool = False):
        self._encode = encode
        self.any_thread = any_thread   # the encoder takes calls from several threads at once
        self.window = window_ms / 1000.0
        self.max_batch = max_batch
        self._in_flight = in_flight
        self._observe = observe
        self._queue: asyncio.Queue[tuple[str, asyncio.Future]] | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lsr-encode")
        self.document_threads = document_threads or 1
        self._documents = self._pool if document_threads is None else \
            ThreadPoolExecutor(document_threads, thread_name_prefix="lsr-encode-docs",
                               initializer=lower_thread_priority, initargs=(document_nice,))
        self.batches = 0
        self.texts = 0
        self._expect = 0  # requests in flight when the previous batch finished
        self._encoding = False

    def lone(self) -> bool:
        """Whether a text may skip the batching task: the only request in flight, nothing queued or encoding."""
        return (self.any_thread and self._in_flight() <= 1 and not self._encoding
                and (self._queue is None or self._queue.empty()))

    def encode_here(self, text: str) -> Row:
        """``encode`` on the calling thread (a pool thread: see ``lone``)."""
        start = time.perf_counter()
        (outcome,) = self._isolated([text])
        self._observe(1, time.perf_counter() - start)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def encode(self, text: str) -> Row:
        """The query vector of ``text`` (term ids, weights); its own encoding error is raised."""
        (outcome,) = await self.encode_many([text])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def encode_many(self, texts: list[str]) -> list[Outcome]:
        """Per text (e.g. of one /search/batch call), its vector or its own error; they may share batches with
        other requests."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())
        if self._task.done():
            raise BatcherClosed("the query encoder is shut down")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        for t, f in zip(texts, futures):
            self._queue.put_nowait((t, f))
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def run(self, fn: Callable, *args):
        """Runs other encoder work (documents to index): on one of ``document_threads`` threads beside the query
        batches' own, ``document_nice`` nicer than them (``lsr.core.priority``), or, where that is None (an encoder
        not to be called from two threads at once), on the query batches' thread between batches."""
        return await asyncio.get_running_loop().run_in_executor(self._documents, fn, *args)

    async def _gather(self) -> list[tuple[str, asyncio.Future]]:
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.window
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            left = deadline - time.monotonic()
            if left <= 0 or len(batch) >= max(self._expect, self._in_flight()):  # nobody else is coming: go now
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except asyncio.TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            live = [(t, f) for t, f in batch if not f.done()]  # a caller that went away needs no encoding
            if not live:
                continue
            start = time.perf_counter()
            self._encoding = True
            try:
                outcomes = await loop.run_in_executor(self._pool, self._isolated, [t for t, _ in live])
            except BaseException as e:  # every waiting caller gets the error; the loop goes on unless cancelled
                _fail(live, e if isinstance(e, Exception) else BatcherClosed("the service is shutting down"))
                if isinstance(e, asyncio.CancelledError):
                    raise
                continue
            finally:
                self._encoding = False
            self._expect = self._in_flight()
            self._observe(len(live), time.perf_counter() - start)
            self.batches += 1
            self.texts += len(live)
            for (_, f), outcome in zip(live, outcomes):
                if f.done():
                    continue
                if isinstance(outcome, BaseException):
                    f.set_exception(outcome)
                else:
                    f.set_result(outcome)

    def _isolated(self, texts: list[str]) -> list[Outcome]:
        """Each text's vector, or the error the encoder raises for that text alone (on the encoder's thread)."""
        try:
            vectors = self._encode(texts)
        except Exception as e:   # noqa: BLE001 - bisect to the text(s) at fault; the others are encoded
            if len(texts) == 1:
                if isinstance(e, (ValueError, TypeError, UnicodeError)):
                    return [TextRejected(f"the query text cannot be encoded: {type(e).__name__}: {e}")]
                return [e]
            half = len(texts) // 2
            return self._isolated(texts[:half]) + self._isolated(texts[half:])
        out = []
        for i in range(len(texts)):
            terms, weights = vectors.row(i)
            out.append((terms.copy(), weights.copy()))
        return out

    async def close(self) -> None:
        """Stops the batching task; texts still waiting get BatcherClosed (uvicorn has drained requests by then)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            queued = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
            _fail(queued, BatcherClosed("the service is shutting down"))
        for pool in {self._pool, self._documents}:
            pool.shutdown(wait=True)


def _fail(items: list[tuple[str, asyncio.Future]], error: BaseException) -> None:
    for _, f in items:
        if not f.done():
            f.set_exception(error)
