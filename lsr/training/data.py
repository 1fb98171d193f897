"""Training data: queries, the documents they are judged against, their positives and given negatives.

Two sources share one form. A collection with a training split (an ir_datasets id such as ``beir/scifact/train``,
or a BEIR folder with ``qrels/train.tsv``) gives ids, texts and graded judgements; a JSONL file of triples
(``{"query": ..., "positive": ... | "positives": [...], "negatives": [...]}``, texts) gives the texts alone, and
its distinct texts become the document table. Documents are referred to by their row in that table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class TrainingDataError(ValueError):
    """The training data cannot be used: unknown source, no judged query, malformed records."""


@dataclass
class TrainingData:
    """Query i is ``query_texts[i]``; its positives and given negatives are rows of the document table."""

    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    positives: list[np.ndarray]
    negatives: list[np.ndarray] = field(default_factory=list)   # given with the data (triples), may be empty
    has_ids: bool = True   # False for JSONL triples: ids are made up, so no run file can refer to them
    source: str = ""

    def __post_init__(self) -> None:
        if not self.negatives:
            self.negatives = [np.zeros(0, np.int64) for _ in self.query_ids]
        if not (len(self.query_ids) == len(self.query_texts) == len(self.positives) == len(self.negatives)):
            raise TrainingDataError("queries, positives and negatives must have one entry per query")

    def __len__(self) -> int:
        return len(self.query_ids)

    def subset(self, rows: np.ndarray) -> "TrainingData":
        """The queries ``rows`` over the same document table."""
        pick = (lambda xs: [xs[i] for i in rows])
        return TrainingData(self.doc_ids, self.doc_texts, pick(self.query_ids), pick(self.query_texts),
                            pick(self.positives), pick(self.negatives), self.has_ids, self.source)

    def relevance(self) -> dict[str, dict[str, int]]:
        """Judgements in the evaluation's form: query id -> {document id: 1}."""
        return {q: {self.doc_ids[d]: 1 for d in pos} for q, pos in zip(self.query_ids, self.positives)}


def split_dev(data: TrainingData, fraction: float, seed: int) -> tuple[TrainingData, TrainingData]:
    """(train, dev): a seeded random ``fraction`` of the queries held out to choose hyperparameters and the
    checkpoint. The test split of a collection is never touched here."""
    if not 0 < fraction < 1:
        raise ValueError(f"the dev fraction must lie in (0, 1), got {fraction}")
    n_dev = int(round(len(data) * fraction))
    if n_dev < 1 or n_dev >= len(data):
        raise TrainingDataError(f"{len(data)} training queries cannot give a dev split of {fraction:.0%} "
                                "with queries left to train on")
    order = np.random.default_rng([seed, 0xDE7]).permutation(len(data))
    return data.subset(np.sort(order[n_dev:])), data.subset(np.sort(order[:n_dev]))


def load_training_data(source: str, split: str = "train") -> TrainingData:
    """An ir_datasets id, a BEIR folder (its ``qrels/<split>.tsv``), or a JSONL file of triples."""
    path = Path(source)
    if path.is_file():
        if path.suffix not in (".jsonl", ".json"):
            raise TrainingDataError(f"{path}: a training file is JSONL of triples (.jsonl)")
        return _from_triples(path)
    return _from_collection(source, split)


def _from_collection(source: str, split: str) -> TrainingData:
    from lsr.eval.datasets import DatasetError, load_eval_set

    try:
        es = load_eval_set(source, split)
    except DatasetError as e:
        raise TrainingDataError(str(e)) from e
    doc_ids, doc_texts = [], []
    for d in es.docs():
        doc_ids.append(d.id)
        doc_texts.append(d.full_text)
    row = {d: i for i, d in enumerate(doc_ids)}
    query_ids, query_texts, positives = [], [], []
    for q, text in es.queries.items():
        pos = sorted(row[d] for d, rel in es.qrels[q].items() if rel > 0 and d in row)
        if pos and text.strip():
            query_ids.append(q)
            query_texts.append(text)
            positives.append(np.asarray(pos, np.int64))
    if not query_ids:
        raise TrainingDataError(f"{source}: no query has a relevant document in the corpus")
    return TrainingData(doc_ids, doc_texts, query_ids, query_texts, positives, source=str(source))


def _texts(obj: dict, key: str, where: str) -> list[str]:
    value = obj.get(key, [])
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        raise TrainingDataError(f"{where}: {key!r} must be a non-empty string or a list of them")
    return values


def _from_triples(path: Path) -> TrainingData:
    table: dict[str, int] = {}
    query_ids, query_texts, positives, negatives = [], [], [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise TrainingDataError(f"{where}: malformed JSON ({e.msg})") from e
            if not isinstance(obj, dict) or not isinstance(obj.get("query"), str) or not obj["query"].strip():
                raise TrainingDataError(f"{where}: expected an object with a non-empty 'query' string")
            pos = _texts(obj, "positive", where) + _texts(obj, "positives", where)
            if not pos:
                raise TrainingDataError(f"{where}: no 'positive' (or 'positives') text")
            neg = _texts(obj, "negatives", where)
            query_ids.append(f"q{len(query_ids)}")
            query_texts.append(obj["query"])
            positives.append(np.asarray([table.setdefault(t, len(table)) for t in pos], np.int64))
            negatives.append(np.asarray([table.setdefault(t, len(table)) for t in neg], np.int64))
    if not query_ids:
        raise TrainingDataError(f"{path}: no triples")
    return TrainingData([f"d{i}" for i in range(len(table))], list(table), query_ids, query_texts, positives,
                        negatives, has_ids=False, source=str(path))
