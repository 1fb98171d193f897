"""Document writes: the request's documents checked (service/ingest.py), their texts encoded in pieces on the
encoder's document threads (one request's texts spread over all of them), then one write through the index's
long-lived writer (service/writepath.py): a 2xx answer means the write-ahead log holds it on disk. Flushes and
merges run on the writer's own threads, never inside a request. Every worker's searches see the write within the
refresh interval; ``GET /documents/{id}`` refreshes first, so a client reads its own writes at once.

A writer whose log does not replay (IndexCorrupt) makes the service not ready (Engine.mark_damaged) and is answered
503 with the reason and the way to recover; answers never name the index's path nor another writer's pid.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from lsr.core.sparse import SparseBatch
from lsr.index.backup import BackupInfo
from lsr.index.wal import DELETE, PUT
from lsr.service.engine import Engine, NotReady, QueryError
from lsr.service.ingest import Incoming, Limits, Vocabulary
from lsr.service.settings import Settings
from lsr.service.writepath import WritePath, WriteRefused

_TEXTS = re.compile(r"texts\[(\d+)\]\.")


class Documents:
    def __init__(self, engine: Engine, path: WritePath, settings: Settings):
        self.engine = engine
        self.path = path
        self.limits = Limits(settings.max_documents, settings.max_document_chars, settings.max_document_chars * 8
                             + (1 << 20))
        self.batch = settings.max_encode_batch

    def incoming(self) -> Incoming:
        """An empty request, checked against the index's vocabulary."""
        idx = self.engine.index
        return Incoming(Vocabulary(idx.vocab_size, idx.vocab_fingerprint, self.engine.tokens), self.limits)

    async def get(self, doc_id: str) -> dict:
        """{"id", "title", "text", "metadata"}; KeyError when unknown."""
        return await self.engine.pool.run(self._get, doc_id)

    def _get(self, doc_id: str) -> dict:
        self.engine.refresh()
        return self.engine.index.document(doc_id)

    def _ready(self) -> None:
        if self.engine.damaged:
            raise NotReady(self.engine.damaged)

    async def upsert(self, incoming: Incoming) -> list[str]:
        """Adds each document, or replaces the one with its id; returns once they are durable."""
        self._ready()
        texts, encoded = incoming.texts, None
        if texts:
            encoder = self.engine.encoder
            if encoder is None:
                raise NotReady(self.engine.load_error or "the encoder is still loading")
            try:
                size = min(self.batch, -(-len(texts) // self.engine.batcher.document_threads))   # every thread
                parts = await asyncio.gather(*[self.engine.batcher.run(encoder.encode_documents, texts[lo:lo + size])
                                               for lo in range(0, len(texts), size)])
            except (ValueError, TypeError, UnicodeError) as e:
                raise QueryError(f"the documents cannot be encoded: {type(e).__name__}: {e}") from e
            encoded = SparseBatch.concat(parts)
        ids = incoming.ids
        try:
            await self.path.write(PUT, ids, incoming.vectors(encoded), incoming.docs)
        except WriteRefused as e:   # a metadata key whose kind the index already holds otherwise; nothing written
            raise QueryError(_TEXTS.sub(lambda m: _named(incoming.where[int(m.group(1))]), str(e))) from e
        self.engine.metrics.documents.labels("upsert").inc(len(ids))
        return ids

    async def snapshot(self, repository: Path, name: str | None) -> BackupInfo:
        """A snapshot of the index (lsr.index.backup) by its writer: every write so far flushed first, so it holds
        each write acknowledged before the call."""
        self._ready()
        return await self.path.snapshot(repository, name)

    async def delete(self, doc_id: str) -> None:
        """Deletes one document; KeyError when there is none with this id."""
        self._ready()
        if not await self.path.write(DELETE, [doc_id]):
            raise KeyError(doc_id)
        self.engine.metrics.documents.labels("delete").inc()


def _named(where: str) -> str:
    """How the writer's "texts[i]." reads in an answer: "body[i]." (a JSON array) or "line n: " (NDJSON)."""
    return f"{where}." if where.endswith("]") else f"{where}: "
