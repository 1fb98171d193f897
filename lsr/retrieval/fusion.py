"""Hybrid search: fusing the rankings of several retrievers (BM25 and SPLADE) for one query.

Pure Python on (document id, score) lists, with no index or dataset imports, so the HTTP service and the
offline evaluation fuse the same way. The two standard fusions:
- reciprocal rank fusion (Cormack et al., SIGIR 2009): sum of w / (k + rank); only ranks count, so retrievers with
  incomparable score scales fuse without tuning;
- a normalised linear combination: each ranking's scores min-max scaled to [0, 1] within the query, then a weighted
  sum; a document missing from a ranking gets 0 there.
"""

from __future__ import annotations

from typing import Hashable, Sequence, TypeVar

K = TypeVar("K", bound=Hashable)
Ranking = Sequence[tuple[K, float]]  # best first

FUSIONS = ("rrf", "linear")


def _check(rankings: Sequence[Ranking], weights: Sequence[float] | None) -> list[float]:
    if not rankings:
        raise ValueError("fusion needs at least one ranking")
    weights = [1.0] * len(rankings) if weights is None else [float(w) for w in weights]
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    if any(w < 0 or w != w for w in weights):
        raise ValueError(f"fusion weights must be >= 0, got {weights}")
    return weights


def _top(scores: dict, k: int | None) -> list[tuple[K, float]]:
    # stable sort: among equal fused scores the document met first (best ranked in the first ranking) wins
    fused = sorted(scores.items(), key=lambda kv: -kv[1])
    return fused if k is None else fused[:k]


def reciprocal_rank_fusion(rankings: Sequence[Ranking], *, rrf_k: float = 60.0, weights: Sequence[float] | None = None,
                           k: int | None = None) -> list[tuple[K, float]]:
    """Documents by sum over rankings of weight / (rrf_k + rank), rank counted from 1; the top ``k`` (all if None)."""
    weights = _check(rankings, weights)
    if rrf_k < 0:
        raise ValueError(f"rrf_k must be >= 0, got {rrf_k}")
    scores: dict = {}
    for ranking, w in zip(rankings, weights):
        for rank, (doc, _) in enumerate(ranking, 1):
            scores[doc] = scores.get(doc, 0.0) + w / (rrf_k + rank)
    return _top(scores, k)


def linear_fusion(rankings: Sequence[Ranking], *, weights: Sequence[float] | None = None,
                  k: int | None = None) -> list[tuple[K, float]]:
    """Documents by the weighted sum of their min-max normalised scores (a ranking of equal scores maps to 1)."""
    weights = _check(rankings, weights)
    scores: dict = {}
    for ranking, w in zip(rankings, weights):
        if not ranking:
            continue
        values = [s for _, s in ranking]
        lo, hi = min(values), max(values)
        for doc, s in ranking:
            norm = (s - lo) / (hi - lo) if hi > lo else 1.0
            scores[doc] = scores.get(doc, 0.0) + w * norm
    return _top(scores, k)


def fuse(rankings: Sequence[Ranking], method: str = "rrf", **params) -> list[tuple[K, float]]:
    """``method`` is "rrf" (params rrf_k, weights, k) or "linear" (params weights, k)."""
    if method == "rrf":
        return reciprocal_rank_fusion(rankings, **params)
    if method == "linear":
        return linear_fusion(rankings, **params)
    raise ValueError(f"unknown fusion {method!r}; choose one of {FUSIONS}")


def hybrid(splade: Ranking, bm25: Ranking, method: str = "rrf", *, weight: float = 0.5, rrf_k: float = 60.0,
           k: int | None = None) -> list[tuple[K, float]]:
    """SPLADE and BM25 rankings fused, SPLADE's share being ``weight`` (BM25's 1 - weight): the hybrid that
    ``lsr eval --method hybrid`` measures. For RRF, weight 0.5 gives the plain method (both weights 1)."""
    if not 0 <= weight <= 1:
        raise ValueError(f"hybrid weight (of SPLADE; BM25 gets 1 - weight) must lie in [0, 1], got {weight}")
    if method == "rrf":
        return reciprocal_rank_fusion([splade, bm25], rrf_k=rrf_k, weights=[2 * weight, 2 - 2 * weight], k=k)
    return fuse([splade, bm25], method, weights=[weight, 1 - weight], k=k)
