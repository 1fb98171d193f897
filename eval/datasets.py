"""Test collections: documents, judged queries, relevance judgements and the measures their community reports.

A collection is named by an ir_datasets id (``beir/scifact/test``, ``msmarco-passage/dev/small``,
``msmarco-passage/trec-dl-2019/judged``, ...) or is a local BEIR folder (``corpus.jsonl``, ``queries.jsonl``,
``qrels/<split>.tsv``), the form BEIR's own download unpacks to.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lsr.core.corpus import read_corpus
from lsr.core.documents import Document

BEIR_MEASURES = ("nDCG@10", "R@100", "R@1000")
MSMARCO_DEV_MEASURES = ("RR@10", "nDCG@10", "R@100", "R@1000")
# TREC DL passage judgements are graded 0-3 and "relevant" means >= 2 for the binary measures
TREC_DL_MEASURES = ("nDCG@10", "RR(rel=2)@10", "R(rel=2)@100", "R(rel=2)@1000")


class DatasetError(ValueError):
    """The collection cannot be used for evaluation: unknown id, no queries or judgements, malformed files."""


@dataclass
class EvalSet:
    """One evaluation collection. ``docs()`` streams the documents (MS MARCO's 8.8M do not fit a list comfortably)."""

    name: str
    corpus: str  # what lsr.corpus.read_corpus reads: the ir_datasets id of the documents, or the BEIR folder
    docs_key: str  # identity of the document collection, shared by its splits: the vector cache's key
    queries: dict[str, str]  # judged queries only: query id -> text
    qrels: dict[str, dict[str, int]]
    measures: tuple[str, ...]
    drop_self_hits: bool  # BEIR's evaluator drops a hit whose document id is the query id (ArguAna, Quora)
    doc_count: int | None

    def docs(self) -> Iterator[Document]:
        return read_corpus(self.corpus)

    def with_queries(self, limit: int) -> "EvalSet":
        """The first ``limit`` judged queries (in id order as loaded), for quick runs."""
        keep = dict(list(self.queries.items())[:limit])
        return EvalSet(self.name, self.corpus, self.docs_key, keep, {q: self.qrels[q] for q in keep}, self.measures,
                       self.drop_self_hits, self.doc_count)


def default_measures(name: str) -> tuple[str, ...]:
    if name.startswith("msmarco-passage/trec-dl"):
        return TREC_DL_MEASURES
    if name.startswith("msmarco-passage/"):
        return MSMARCO_DEV_MEASURES
    return BEIR_MEASURES


def _judged(queries: dict[str, str], qrels: dict[str, dict[str, int]], name: str) -> dict[str, str]:
    judged = {q: t for q, t in queries.items() if q in qrels}
    if not judged:
        raise DatasetError(f"{name}: no query has relevance judgements")
    return judged


def _from_ir_datasets(dataset_id: str) -> EvalSet:
    import ir_datasets

    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError as e:
        raise DatasetError(f"{dataset_id!r} is neither a BEIR folder nor a known ir_datasets id") from e
    for what in ("docs", "queries", "qrels"):
        if not getattr(ds, f"has_{what}")():
            raise DatasetError(f"ir_datasets {dataset_id!r} has no {what}; evaluation needs all three "
                               "(pick a split such as beir/scifact/test)")
    try:
        queries = {q.query_id: getattr(q, "text", None) or getattr(q, "title", "") for q in ds.queries_iter()}
        qrels: dict[str, dict[str, int]] = {}
        for r in ds.qrels_iter():
            qrels.setdefault(r.query_id, {})[r.doc_id] = int(r.relevance)
    except (OSError, IOError) as e:  # noqa: UP024 - ir_datasets raises plain IOError when a download is needed
        raise DatasetError(f"{dataset_id}: files are missing and cannot be downloaded here ({e})") from e
    corpus = ir_datasets.docs_parent_id(dataset_id)
    return EvalSet(dataset_id, corpus, corpus, _judged(queries, qrels, dataset_id), qrels,
                   default_measures(dataset_id), dataset_id.startswith("beir/"), ds.docs_count())


def _beir_folder(path: Path, split: str) -> EvalSet:
    corpus, queries_file, qrels_file = path / "corpus.jsonl", path / "queries.jsonl", path / "qrels" / f"{split}.tsv"
    for f in (corpus, queries_file, qrels_file):
        if not f.is_file():
            raise DatasetError(f"{path} is not a BEIR folder: {f.relative_to(path)} is missing")
    queries = {}
    with open(queries_file, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                    queries[str(obj["_id"])] = obj["text"]
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise DatasetError(f"{queries_file}:{n}: expected a JSON object with '_id' and 'text'") from e
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_file, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if n == 1 and row and not row[-1].lstrip("-").isdigit():
                continue  # BEIR's header: query-id corpus-id score
            if len(row) != 3 or not row[2].lstrip("-").isdigit():
                raise DatasetError(f"{qrels_file}:{n}: expected 'query-id<TAB>corpus-id<TAB>score', got {row}")
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    stat = corpus.stat()
    # the corpus file's identity (path, size, time) keys the vector cache, so an edited corpus is re-encoded
    key = hashlib.sha256(f"{corpus.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return EvalSet(str(path), str(path), f"local/{path.resolve().name}-{key}", _judged(queries, qrels, str(path)),
                   qrels, BEIR_MEASURES, True, None)


def load_eval_set(name: str | Path, split: str = "test") -> EvalSet:
    """An ir_datasets id, or a local BEIR folder whose judgements ``qrels/<split>.tsv`` are used."""
    path = Path(name)
    if path.is_dir():
        return _beir_folder(path, split)
    if path.exists():
        raise DatasetError(f"{path} is a file; expected an ir_datasets id or a BEIR folder")
    return _from_ir_datasets(str(name))
