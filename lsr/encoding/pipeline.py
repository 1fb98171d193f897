"""A whole corpus through an encoder, in chunks, with a progress callback: what `lsr encode`, `lsr index` and the
evaluation share.

Chunks are the ones `lsr index --ray` encodes elsewhere (``lsr.core.chunks``): a vector depends in its last bits on
the batch it was padded in, and batches are formed within a chunk, so every path gives the same vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lsr.core.chunks import CHUNK_DOCS
from lsr.core.corpus import read_corpus
from lsr.core.documents import Document
from lsr.core.errors import CorpusError
from lsr.core.sparse import SparseBatch


@dataclass
class EncodedCorpus:
    """Vectors of a corpus in its order, with the ids and documents they came from."""

    vectors: SparseBatch
    ids: list[str]
    documents: list[Document]
    truncated: int   # documents longer than max_length tokens, cut to it
    windowed: int = 0   # documents longer than max_length tokens, encoded as overlapping windows (not cut)


def encode_corpus(corpus: str, encoder, *, max_length: int, batch_size: int, top_k: int | None = None,
                  min_weight: float | None = None, queries: bool = False, chunk: int = CHUNK_DOCS,
                  progress: Callable[[int], None] | None = None) -> EncodedCorpus:
    """Streams ``corpus`` (a path or ir_datasets id, see ``lsr.core.corpus``) through ``encoder`` chunk by chunk,
    length-sorted within each; documents longer than max_length are windowed as the encoder's ``window_overlap``
    says. Raises CorpusError for an unreadable corpus or repeated ids."""
    encode = encoder.encode_queries if queries else encoder.encode_documents
    parts: list[SparseBatch] = []
    docs: list[Document] = []
    truncated = windowed = 0
    buffer: list[Document] = []

    def flush() -> None:
        nonlocal truncated, windowed
        parts.append(encode([d.full_text for d in buffer], max_length=max_length, batch_size=batch_size, top_k=top_k,
                            min_weight=min_weight, progress=progress))
        truncated += encoder.stats.truncated
        windowed += encoder.stats.windowed
        docs.extend(buffer)
        buffer.clear()

    for doc in read_corpus(corpus):
        buffer.append(doc)
        if len(buffer) == chunk:
            flush()
    if buffer or not parts:
        flush()
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise CorpusError(f"{corpus}: document ids are not unique")
    return EncodedCorpus(SparseBatch.concat(parts), ids, docs, truncated, windowed)
