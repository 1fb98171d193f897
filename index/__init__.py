"""The inverted index: memory-mapped segments searched by exact, BMP and Seismic methods, in Numba.

    from lsr.index import Index
    idx = Index.build("my-index", vectors, doc_ids, texts=docs, model="splade-tiny", vocab_fingerprint=fp)
    idx = Index.open("my-index")
    res = idx.search(queries, k=10, method="bmp")          # res.scores, res.docs, res.ids
    res = idx.search(queries, method="bmp", alpha=0.9)     # or params=BmpSearchParams(alpha=0.9) (lsr.index.bmp)

    idx = Index.open("my-index", writable=True)            # one writer at a time; durable add/upsert/delete
    idx.upsert(ids, vectors, texts=docs); idx.delete(["d7"]); idx.flush(); idx.close()

See index/methods.py for adding a search method, index/writer.py for live updates and ARCHITECTURE.md for the
on-disk layout.
"""

from lsr.index.errors import IndexCorrupt, IndexLocked, InvalidQuery, ReadOnlyIndex, VocabularyMismatch
from lsr.index.index import Index, SearchResult
from lsr.index.query import check_query
from lsr.index.snapshot import Snapshot

__all__ = ["Index", "SearchResult", "Snapshot", "check_query", "IndexCorrupt", "IndexLocked", "InvalidQuery",
           "ReadOnlyIndex", "VocabularyMismatch"]
