"""BM25 as sparse vectors, so the baseline is searched by the same index as SPLADE.

A document vector holds, for each of its analyzed terms, the whole BM25 term score (Lucene's variant):
``idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))`` with ``idf = log(1 + (N - df + 0.5) / (df + 0.5))``.
A query vector is binary (1 per distinct known term), so a dot product is exactly the BM25 score.
The vocabulary is the analyzer's terms over the corpus, sorted; its fingerprint (terms plus analyzer and
parameters) is what an index of BM25 vectors records, distinct from any transformer vocabulary's.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import scipy.sparse as sp

from lsr.retrieval.analyzer import Analyzer
from lsr.core.atomic import atomic_write_text
from lsr.core.sparse import SparseBatch

FORMAT = "lsr-bm25"
VERSION = 1


def lucene_length(dl: np.ndarray) -> np.ndarray:
    """Document lengths as Lucene stores them: one byte per document (SmallFloat.intToByte4 and back).

    Lengths under 24 are exact; longer ones keep 4 significant bits, so Anserini's published scores use these.
    """
    dl = np.asarray(dl, dtype=np.int64)
    free = 24  # 255 - longToInt4(Integer.MAX_VALUE)
    v = np.maximum(dl - free, 0)
    bits = np.floor(np.log2(np.maximum(v, 1))).astype(np.int64) + 1  # bit length
    shift = np.maximum(bits - 4, 0)
    return np.where(dl < free, dl, free + ((v >> shift) << shift))  # keeps the 4 most significant bits


def bm25_config(k1: float, b: float, analyzer: Analyzer, lucene_norms: bool = True) -> dict:
    """Everything besides the corpus that decides the weights: part of the fingerprint and of cache keys."""
    return {"k1": k1, "b": b, "analyzer": analyzer.config, "lucene_norms": lucene_norms}


@dataclass
class BM25:
    """A fitted BM25 model: vocabulary, document frequencies and length statistics of one corpus."""

    terms: list[str]
    df: np.ndarray
    n_docs: int
    avgdl: float
    k1: float = 0.9
    b: float = 0.4
    analyzer: Analyzer = field(default_factory=Analyzer)
    lucene_norms: bool = True

    def __post_init__(self) -> None:
        self.df = np.asarray(self.df, dtype=np.int64)
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1} b={self.b}")
        self._ids = {t: i for i, t in enumerate(self.terms)}
        self.idf = np.log1p((self.n_docs - self.df + 0.5) / (self.df + 0.5))

    @property
    def name(self) -> str:
        return f"bm25-{self.analyzer.stemmer}-k1={self.k1:g}-b={self.b:g}"

    @property
    def vocab_size(self) -> int:
        return len(self.terms)

    @property
    def vocab_fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode())
        for t in self.terms:
            h.update(t.encode("utf-8") + b"\n")
        return h.hexdigest()[:16]

    @property
    def config(self) -> dict:
        return bm25_config(self.k1, self.b, self.analyzer, self.lucene_norms)

    # ---- fitting and encoding -----------------------------------------------------------------------------------
    @classmethod
    def fit(cls, texts: Iterable[str], *, k1: float = 0.9, b: float = 0.4, analyzer: Analyzer | None = None,
            lucene_norms: bool = True, progress: Callable[[int], None] | None = None) -> tuple["BM25", SparseBatch]:
        """Analyzes the corpus once; returns the model and the corpus's document vectors (in input order)."""
        analyzer = analyzer or Analyzer()
        ids: dict[str, int] = {}
        rows, cols, tfs, lengths = [], [], [], []
        for n, text in enumerate(texts):
            tokens = analyzer(text)
            counts = Counter(tokens)
            cols.append(np.fromiter((ids.setdefault(t, len(ids)) for t in counts), np.int64, len(counts)))
            tfs.append(np.fromiter(counts.values(), np.float32, len(counts)))
            rows.append(np.full(len(counts), n, np.int64))
            lengths.append(len(tokens))
            if progress and n % 1024 == 1023:
                progress(1024)
        if progress:
            progress(len(lengths) % 1024)
        # relabel terms in sorted order, so the vocabulary does not depend on the documents' order
        terms = sorted(ids)
        relabel = np.empty(len(ids), np.int64)
        relabel[[ids[t] for t in terms]] = np.arange(len(terms))
        cat = (lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype))
        counts = sp.csr_matrix((cat(tfs, np.float32), (cat(rows, np.int64), relabel[cat(cols, np.int64)])),
                               shape=(len(lengths), len(terms)))
        counts.sort_indices()
        dl = np.asarray(lengths, dtype=np.int64)
        model = cls(terms, np.bincount(counts.indices, minlength=len(terms)), len(dl),
                    float(dl.mean()) if len(dl) else 0.0, k1, b, analyzer, lucene_norms)
        return model, model._weights(counts, dl)

    def _weights(self, counts: sp.csr_matrix, dl: np.ndarray) -> SparseBatch:
        lengths = lucene_length(dl) if self.lucene_norms else dl
        norm = self.k1 * (1 - self.b + self.b * lengths / max(self.avgdl, 1e-9))
        tf = counts.data.astype(np.float64)
        row = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        w = self.idf[counts.indices] * tf / (tf + norm[row])
        out = SparseBatch(counts.indptr, counts.indices, w.astype(np.float32), self.vocab_size)
        return out.prune(min_weight=np.finfo(np.float32).tiny)  # a term in every document can weigh 0: not stored

    def _term_counts(self, texts: Iterable[str]) -> tuple[sp.csr_matrix, np.ndarray]:
        rows, cols, tfs, lengths = [], [], [], []
        for n, text in enumerate(texts):
            tokens = self.analyzer(text)
            lengths.append(len(tokens))
            for t, c in Counter(tokens).items():
                if t in self._ids:
                    rows.append(n), cols.append(self._ids[t]), tfs.append(c)
        m = sp.csr_matrix((np.asarray(tfs, np.float32), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
                          shape=(len(lengths), self.vocab_size))
        m.sort_indices()
        return m, np.asarray(lengths, dtype=np.int64)

    def encode_documents(self, texts: Iterable[str]) -> SparseBatch:
        """Vectors of new documents under this corpus's statistics; terms outside the vocabulary are not indexed."""
        return self._weights(*self._term_counts(texts))

    def encode_queries(self, texts: Iterable[str]) -> SparseBatch:
        """Binary query vectors: weight 1 for each distinct analyzed term that the vocabulary knows."""
        counts, _ = self._term_counts(texts)
        return SparseBatch(counts.indptr, counts.indices, np.ones(counts.nnz, np.float32), self.vocab_size)

    # ---- persistence --------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps({"format": FORMAT, "version": VERSION, **self.config,
                                            "n_docs": self.n_docs, "avgdl": self.avgdl, "terms": self.terms,
                                            "df": self.df.tolist()}))

    @classmethod
    def load(cls, path: str | Path) -> "BM25":
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable BM25 model ({e})") from e
        if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("version") != VERSION:
            raise ValueError(f"{path}: not a {FORMAT} v{VERSION} file")
        if len(obj["terms"]) != len(obj["df"]):
            raise ValueError(f"{path}: {len(obj['terms'])} terms but {len(obj['df'])} document frequencies")
        return cls(obj["terms"], obj["df"], obj["n_docs"], obj["avgdl"], obj["k1"], obj["b"],
                   Analyzer(**obj["analyzer"]), obj["lucene_norms"])
