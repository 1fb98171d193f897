"""The inverted index: memory-mapped segments searched by exact, BMP (and later Seismic) methods, in Numba.

    from index import Index
    idx = Index.build("my-index", vectors, doc_ids, texts=docs, model="splade-tiny", vocab_fingerprint=fp)
    idx = Index.open("my-index")
    res = idx.search(queries, k=10, method="bmp")          # res.scores, res.docs, res.ids

See index/methods.py for adding a search method and ARCHITECTURE.md for the on-disk layout.
"""

from index.errors import IndexCorrupt, VocabularyMismatch
from index.index import Index, SearchResult

__all__ = ["Index", "SearchResult", "IndexCorrupt", "VocabularyMismatch"]
