"""Runs: ranked hits per query, as search returns them and as TREC run files store them."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lsr.core.atomic import atomic_open

Run = dict[str, list[tuple[str, float]]]  # query id -> [(document id, score)], best first


def from_hits(query_ids: Sequence[str], doc_ids: Sequence[Sequence[str]], scores: np.ndarray, k: int,
              drop_self_hits: bool = False) -> Run:
    """A run from search results (rows of external ids and scores, -1 padding already mapped away by the index).

    With ``drop_self_hits`` a hit whose document id equals its query id is removed (BEIR's convention), so search
    for k + 1 to keep k.
    """
    run: Run = {}
    for qid, ids, row in zip(query_ids, doc_ids, scores):
        hits = [(d, float(s)) for d, s in zip(ids, row) if d is not None and not (drop_self_hits and d == qid)]
        run[qid] = hits[:k]
    return run


def write_trec_run(path: str | Path, run: Run, tag: str) -> None:
    """``qid Q0 docid rank score tag`` lines, ranks from 1; written atomically."""
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"a run tag must be one word, got {tag!r}")
    with atomic_open(path, "w") as f:
        for qid, hits in run.items():
            for rank, (doc, score) in enumerate(hits, 1):
                f.write(f"{qid} Q0 {doc} {rank} {score:.6g} {tag}\n")


def read_trec_run(path: str | Path) -> Run:
    run: Run = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}:{n}: expected 'qid Q0 docid rank score tag', got {line.strip()!r}")
            try:
                score = float(parts[4])
            except ValueError as e:
                raise ValueError(f"{path}:{n}: score {parts[4]!r} is not a number") from e
            run.setdefault(parts[0], []).append((parts[2], score))
    for hits in run.values():
        hits.sort(key=lambda h: -h[1])
    return run
