"""Document writes: encode the texts, then hand them to the index's durable write path (write-ahead log, fsynced
before ``Index.upsert`` / ``Index.delete`` return), so a 2xx answer means the document is kept.

One write at a time per process (an asyncio lock); the index's writer lock orders writers across processes.
Encoding shares the query encoder's thread, so document and query encoding never fight over the cores.
"""

from __future__ import annotations

import asyncio

from lsr.corpus import Document
from service.engine import Engine, NotReady
from service.models import DocumentIn


class WritesUnsupported(RuntimeError):
    """The index has no write path (answered 501)."""


class Documents:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._lock = asyncio.Lock()

    def _writable(self):
        index = self.engine.index
        if not all(hasattr(index, name) for name in ("upsert", "delete")):
            raise WritesUnsupported("this index cannot take writes yet: live updates (Index.upsert / Index.delete, "
                                    "issue 7) are not in this build")
        return index

    def get(self, doc_id: str) -> dict:
        """{"id", "title", "text"}; KeyError when unknown."""
        return self.engine.index.document(doc_id)

    async def upsert(self, docs: list[DocumentIn]) -> list[str]:
        """Adds each document, or replaces the one with its id; returns once they are durable."""
        index = self._writable()
        encoder = self.engine.encoder
        if encoder is None:
            raise NotReady(self.engine.load_error or "the encoder is still loading")
        texts = [Document(d.id, d.text, d.title) for d in docs]
        vectors = await self.engine.batcher.run(encoder.encode_documents, [t.full_text for t in texts])
        async with self._lock:
            await asyncio.to_thread(index.upsert, [d.id for d in docs], vectors, texts)
        self.engine.metrics.documents.labels("upsert").inc(len(docs))
        return [d.id for d in docs]

    async def delete(self, doc_id: str) -> None:
        """Deletes one document; KeyError when there is none with this id."""
        index = self._writable()
        async with self._lock:
            self.get(doc_id)
            await asyncio.to_thread(index.delete, [doc_id])
        self.engine.metrics.documents.labels("delete").inc()
