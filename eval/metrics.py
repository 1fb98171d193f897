"""Effectiveness measures through ir-measures (pytrec_eval underneath), per query and averaged.

A judged query that the run does not answer (no hits at all: a BM25 query made only of stopwords, say) scores 0
and still counts in the mean, as ``trec_eval -c`` does; averaging only answered queries would flatter a method.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from lsr.eval.runs import Run


def parse_measures(names: Sequence[str]) -> list:
    import ir_measures

    if not names:
        raise ValueError("no measures to compute")
    parsed = []
    for name in names:
        try:
            parsed.append(ir_measures.parse_measure(name))
        except (ValueError, NameError, SyntaxError, TypeError) as e:
            raise ValueError(f"unknown measure {name!r} (ir-measures syntax, e.g. nDCG@10, R@1000, RR(rel=2)@10)") \
                from e
    return parsed


def within_depth(names: Sequence[str], k: int) -> list[str]:
    """The measures whose cutoff a run of depth k can fill (R@1000 of a top-10 run would only mislead)."""
    return [str(m) for m in parse_measures(names) if (m.params.get("cutoff") or 0) <= k]


def evaluate_run(run: Run, qrels: Mapping[str, Mapping[str, int]], measures: Sequence[str]
                 ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(mean per measure, {measure: {query id: value}}) over every query in ``qrels``."""
    import ir_measures

    parsed = parse_measures(measures)
    per_query = {str(m): dict.fromkeys(qrels, 0.0) for m in parsed}
    scored = {q: {d: float(s) for d, s in hits} for q, hits in run.items() if q in qrels and hits}
    if scored:
        for r in ir_measures.iter_calc(parsed, {q: dict(j) for q, j in qrels.items()}, scored):
            per_query[str(r.measure)][r.query_id] = float(r.value)
    aggregate = {m: (sum(v.values()) / len(v) if v else 0.0) for m, v in per_query.items()}
    return aggregate, per_query
