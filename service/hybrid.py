"""Hybrid search: a BM25 ranking beside the SPLADE one, fused the way the offline evaluation fuses them
(``eval/fusion.py``: reciprocal rank fusion or a normalised linear combination).

The BM25 side is a folder with ``bm25.json`` (the fitted ``eval.bm25.BM25``) and ``index/`` (an lsr index of the BM25
document vectors, searched exactly), built from the SPLADE index's stored texts by ``build_bm25``
(``lsr serve --bm25 DIR`` builds it when DIR holds none). It is a snapshot: documents written to the service later
are found through the SPLADE side only, and BM25 hits of documents no longer in the SPLADE index are dropped.
"""

from __future__ import annotations

from pathlib import Path

from lsr.index import Index
from lsr.service.models import Hybrid

BM25_MODEL = "bm25.json"
BM25_INDEX = "index"

Ranking = list[tuple[str, float]]


def build_bm25(index: Index, folder: Path) -> int:
    """Fits BM25 on the stored texts of ``index`` and writes the BM25 side to ``folder``; returns its documents."""
    from lsr.retrieval.bm25 import BM25

    ids = [str(i) for i in index.doc_ids]
    docs = [index.document(n) for n in range(len(ids))]
    if not any(d["text"] or d["title"] for d in docs):
        raise ValueError(f"the index at {index.path} stores no text: BM25 has nothing to analyse")
    model, vectors = BM25.fit(f"{d['title']} {d['text']}".strip() for d in docs)
    folder.mkdir(parents=True, exist_ok=True)
    Index.build(folder / BM25_INDEX, vectors, ids, model=model.name, vocab_fingerprint=model.vocab_fingerprint,
                quantization="float32", reorder=False, methods=("exact",), overwrite=True)
    model.save(folder / BM25_MODEL)  # written last: its presence marks a complete side
    return len(ids)


class Bm25Side:
    def __init__(self, folder: Path):
        from lsr.retrieval.bm25 import BM25

        if not (folder / BM25_MODEL).exists():
            raise ValueError(f"{folder} holds no BM25 side ({BM25_MODEL}); build it with lsr serve --bm25 {folder}")
        self.model = BM25.load(folder / BM25_MODEL)
        self.index = Index.open(folder / BM25_INDEX)
        self.index.check_vocabulary(self.model.vocab_fingerprint)
        self._ids = self.index.doc_ids

    def ranking(self, text: str, depth: int) -> Ranking:
        terms, weights = self.model.encode_queries([text]).row(0)
        scores, numbers = self.index.search_one(terms, weights, k=depth)
        return [(self._ids[n], float(s)) for s, n in zip(scores, numbers) if n >= 0]


def fuse(splade: Ranking, bm25: Ranking, h: Hybrid, k: int) -> Ranking:
    """The top ``k`` of the two rankings fused; SPLADE weighs ``h.weight``, BM25 ``1 - h.weight``."""
    from lsr.retrieval.fusion import FUSIONS, fuse as fuse_rankings

    if h.fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {h.fusion!r}; choose one of {list(FUSIONS)}")
    params = {"rrf_k": h.rrf_k} if h.fusion == "rrf" else {}
    return fuse_rankings([splade, bm25], h.fusion, weights=[h.weight, 1 - h.weight], k=k, **params)
