"""The ``bm25s`` package as a peer of our BM25: same collection, same measures, its own index and scorer.

With ``analyzer`` given, bm25s indexes exactly our analyzer's tokens, so any difference is in the scoring and the
index, not the text processing; without it, bm25s runs its own tokenizer (English stopwords, Snowball stemmer),
the way its users would.
"""

from __future__ import annotations

import time

import numpy as np

from lsr.retrieval.analyzer import Analyzer
from lsr.eval.datasets import EvalSet
from lsr.eval.runs import Run, from_hits


def bm25s_run(es: EvalSet, *, k: int = 1000, k1: float = 0.9, b: float = 0.4,
              analyzer: Analyzer | None = None) -> tuple[Run, np.ndarray, float]:
    """(run, per-query milliseconds of one-query retrieve calls, indexing seconds)."""
    import bm25s

    docs = list(es.docs())
    texts = [d.full_text for d in docs]
    queries = list(es.queries.values())
    t = time.perf_counter()
    if analyzer is not None:
        corpus = [analyzer(x) for x in texts]
        query_tokens = [list(dict.fromkeys(analyzer(q))) for q in queries]  # binary query weights, as ours
    else:
        import Stemmer

        stemmer = Stemmer.Stemmer("english")
        corpus = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
        query_tokens = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, return_ids=False,
                                      show_progress=False)
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index(corpus, show_progress=False)
    index_s = time.perf_counter() - t
    depth = min(k + int(es.drop_self_hits), len(docs))
    ids, scores, lat = [], [], np.empty(len(queries))
    for i, tokens in enumerate(query_tokens):
        t = time.perf_counter()
        found, s = retriever.retrieve([tokens or [""]], k=depth, show_progress=False, n_threads=1)
        lat[i] = (time.perf_counter() - t) * 1000
        keep = s[0] > 0  # bm25s pads with zero-score documents; an index returns only matches
        ids.append([docs[j].id for j in found[0][keep]])
        scores.append(s[0][keep])
    width = max((len(s) for s in scores), default=0)
    padded = np.zeros((len(scores), width), np.float32)
    for i, s in enumerate(scores):
        padded[i, :len(s)] = s
    return from_hits(list(es.queries), ids, padded, k, es.drop_self_hits), lat, index_s
