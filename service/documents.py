"""Document writes: encode the texts, then take the index's durable write path (write-ahead log fsynced before
``upsert`` / ``delete`` return, then a commit), so a 2xx answer means the document is kept.

Each write call is one writer session: take the index's writer lock (waiting up to ``write_lock_timeout``), write,
commit, release; the session's background merger runs the merge the index's tiered policy picks meanwhile (closing
waits for it), so the small segments of single writes do not pile up. Any worker of
``lsr serve --workers N`` can therefore write, and every worker's searches see the commit at their next request
(the read index follows the latest committed generation). Bulk loads belong to ``lsr index``; this path is for
documents arriving one call at a time. Encoding shares the query encoder's thread; reads run on the search pool.

A write session whose log does not replay (IndexCorrupt) makes the service not ready (Engine.mark_damaged) and is
answered 503 with the reason and the way to recover; answers never name the index's path nor another writer's pid.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

from lsr.index import Index, backup
from lsr.index.backup import BackupInfo
from lsr.index.errors import IndexCorrupt, IndexLocked
from lsr.core.documents import Document
from lsr.service.engine import Engine, NotReady, QueryError
from lsr.service.models import DocumentIn


class WriterBusy(RuntimeError):
    """Another process kept the index's writer lock past the timeout (503, retry)."""


class Documents:
    def __init__(self, engine: Engine, lock_timeout: float):
        self.engine = engine
        self.lock_timeout = lock_timeout
        self._lock = asyncio.Lock()  # one write at a time in this process; the writer lock orders processes

    async def get(self, doc_id: str) -> dict:
        """{"id", "title", "text", "metadata"}; KeyError when unknown."""
        return await self.engine.pool.run(self._get, doc_id)

    def _get(self, doc_id: str) -> dict:
        self.engine.refresh()
        return self.engine.index.document(doc_id)

    def _session(self, write: Callable[[Index], object]) -> object:
        if self.engine.damaged:
            raise NotReady(self.engine.damaged)
        try:
            writer = Index.open(self.engine.index.path, verify=False, writable=True, lock_timeout=self.lock_timeout)
        except IndexLocked:
            raise WriterBusy(f"the index is busy with another writer for more than {self.lock_timeout:g} s; "
                             "retry") from None
        except IndexCorrupt as e:
            raise NotReady(self.engine.mark_damaged(e)) from e
        with writer:  # closing commits and waits for a running merge
            return write(writer)

    async def _write(self, write: Callable[[Index], object]) -> object:
        async with self._lock:
            result = await asyncio.to_thread(self._session, write)
        await self.engine.pool.run(self.engine.refresh)
        return result

    async def upsert(self, docs: list[DocumentIn]) -> list[str]:
        """Adds each document, or replaces the one with its id; returns once they are committed."""
        encoder = self.engine.encoder
        if encoder is None:
            raise NotReady(self.engine.load_error or "the encoder is still loading")
        texts = [Document(d.id, d.text, d.title, d.metadata) for d in docs]
        try:
            vectors = await self.engine.batcher.run(encoder.encode_documents, [t.full_text for t in texts])
        except (ValueError, TypeError, UnicodeError) as e:
            raise QueryError(f"the documents cannot be encoded: {type(e).__name__}: {e}") from e
        ids = [d.id for d in docs]
        try:
            await self._write(lambda w: w.upsert(ids, vectors, texts))
        except ValueError as e:   # a metadata key whose kind the index already holds otherwise; nothing written
            raise QueryError(str(e).replace("texts[", "body[")) from e
        self.engine.metrics.documents.labels("upsert").inc(len(docs))
        return ids

    async def snapshot(self, repository: Path, name: str | None) -> BackupInfo:
        """A backup of the index (lsr.index.backup), made in a writer session: every write so far flushed first,
        so it holds each write acknowledged before the call."""
        return await self._write(lambda w: backup.create(w, repository, name))

    async def delete(self, doc_id: str) -> None:
        """Deletes one document; KeyError when there is none with this id."""
        if not await self._write(lambda w: w.delete([doc_id])):
            raise KeyError(doc_id)
        self.engine.metrics.documents.labels("delete").inc()
