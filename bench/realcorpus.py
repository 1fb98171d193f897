"""``lsr bench corpus build``: a BEIR-style folder of real passages, large enough to measure search at a million
documents, with judged queries inside it.

Passages (``bench.passages``) are cut from Project Gutenberg books and Wikipedia articles (``bench.textsources``);
the documents of small judged collections (scifact, nfcorpus) are mixed in whole as *needles*, their test queries
and judgements carried over with prefixed ids, so that nDCG@10 over the whole corpus measures what an approximate
method loses at scale. Output folder:

- ``corpus.jsonl``: ``_id``, ``title``, ``text``, in a seeded random order (any prefix is a uniform sample, so nested
  prefixes give the corpus sizes of a growth curve), exact duplicate texts dropped (the first in source order kept;
  needles are never dropped). A document that lost at least ``COPY_SHARE`` of its passages that way is another
  edition of a text already in (Gutenberg holds many books both whole and in volumes): its other passages are the
  same text cut at other boundaries, so they go too;
- ``queries.jsonl``: the first sentence (5 to 40 words) of each of ``heldout`` passages drawn at random and removed
  from the corpus (``q:<passage id>``), then the needles' test queries (``q:<collection>:<query id>``);
- ``qrels/test.tsv``: the needles' judgements only. A held-out query's own passage is not in the corpus and its
  neighbours are not judged, so those queries measure latency and recall against exact search, not effectiveness;
  ``heldout.jsonl`` keeps the removed passages for whoever wants to judge them;
- ``summary.json``: counts per source and the words-per-passage distribution.

Streaming: passages go to ``BUCKETS`` files by a seeded 64-bit hash of their text; each bucket is then sorted by
(hash, source order) in memory. The hash order is the random order, and equal texts meet in one bucket, next to
each other, so deduplication needs no corpus-wide set. Memory is one bucket (1/64 of the text), not the corpus. A
third pass streams the corpus once more to drop the other editions' remaining passages.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from bench.passages import PassageBounds, passages, sentences
from bench.textsources import documents, gutenberg_document, wikipedia_document
from lsr.core.atomic import atomic_write_text
from lsr.core.progress import ProgressFactory, no_progress

BUCKETS = 64
COPY_SHARE = 0.2
QUERY_WORDS = (5, 40)
DEFAULT_NEEDLES = ("beir/scifact/test", "beir/nfcorpus/test")


@dataclass(frozen=True)
class BuildSettings:
    gutenberg: Path | None
    wikipedia: Path | None
    needles: tuple[str, ...] = DEFAULT_NEEDLES   # ir_datasets ids or BEIR folders with a test split
    heldout: int = 1000
    seed: int = 0
    bounds: PassageBounds = PassageBounds()


@dataclass
class SourceStats:
    documents: int = 0
    skipped: int = 0           # Gutenberg books without a start marker
    empty: int = 0             # documents that gave no passage
    passages: int = 0          # cut (needles: documents read)
    duplicates: int = 0
    copies: int = 0            # documents dropped as another edition of a text already in
    copy_passages: int = 0     # their passages that were not exact duplicates
    held_out: int = 0
    words: array = field(default_factory=lambda: array("I"))   # words per passage kept in the corpus

    def summary(self) -> dict:
        w = np.frombuffer(self.words, dtype=np.uint32) if len(self.words) else np.zeros(1, np.uint32)
        pct = dict(zip(("min", "p5", "p25", "median", "p75", "p95", "max"),
                       np.percentile(w, [0, 5, 25, 50, 75, 95, 100]).round(1).tolist()))
        return {"documents": self.documents, "skipped_no_start_marker": self.skipped, "without_passages": self.empty,
                "passages_cut": self.passages, "duplicates_dropped": self.duplicates,
                "other_editions_dropped": self.copies, "their_other_passages_dropped": self.copy_passages,
                "held_out": self.held_out,
                "in_corpus": len(self.words), "words_per_passage": {**pct, "mean": round(float(w.mean()), 1)}}


@dataclass
class Needles:
    prefix: str
    docs: Iterator
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def needle_prefix(name: str) -> str:
    """``beir/scifact/test`` -> ``scifact``; a BEIR folder -> its folder name."""
    path = Path(name)
    if path.is_dir():
        return "_".join(path.resolve().name.split())
    parts = name.split("/")
    return parts[1] if parts[0] == "beir" and len(parts) > 1 else "-".join(parts)


def load_needles(names: tuple[str, ...]) -> list[Needles]:
    """The judged collections; raises lsr.eval.datasets.DatasetError for an unknown one, ValueError for a clash."""
    from lsr.eval.datasets import load_eval_set

    prefixes = [needle_prefix(n) for n in names]
    clash = {p for p in prefixes if prefixes.count(p) > 1} | ({"gutenberg", "wikipedia", "q"} & set(prefixes))
    if clash:
        raise ValueError(f"needle collections need distinct names other than gutenberg, wikipedia and q: {sorted(clash)}")
    out = []
    for name, prefix in zip(names, prefixes):
        es = load_eval_set(name)
        out.append(Needles(prefix, es.docs(), es.queries, es.qrels))
    return out


def _key(text: str, salt: bytes) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8, salt=salt).hexdigest()


class _Buckets:
    """Records spread over BUCKETS files by the first hex digits of their key."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True)
        self.paths = [folder / f"{b:02x}.jsonl" for b in range(BUCKETS)]
        self.files = [open(p, "w", encoding="utf-8") for p in self.paths]
        self.seq = 0

    def add(self, key: str, source: str, doc_id: str, title: str, text: str) -> None:
        self.files[int(key[:2], 16) * BUCKETS // 256].write(
            json.dumps([key, self.seq, source, doc_id, title, text], ensure_ascii=False) + "\n")
        self.seq += 1

    def close(self) -> None:
        for f in self.files:
            f.close()

    def sorted(self, b: int) -> list[list]:
        with open(self.paths[b], encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        self.paths[b].unlink()
        return sorted(rows, key=lambda r: (r[0], r[1]))


def _query(text: str) -> str | None:
    """The first sentence when it has QUERY_WORDS words, else None (a "Yes." or a 90-word sentence is no query)."""
    first = sentences(text)[0] if text else ""
    return first if QUERY_WORDS[0] <= len(first.split()) <= QUERY_WORDS[1] else None


def _jsonl(f, **record) -> None:
    f.write(json.dumps(record, ensure_ascii=False) + "\n")


def build(settings: BuildSettings, output: Path, *, overwrite: bool = False,
          progress: ProgressFactory = no_progress) -> dict:
    """Writes the folder (into ``OUTPUT.partial`` first, renamed when complete); returns the summary."""
    if settings.gutenberg is None and settings.wikipedia is None:
        raise ValueError("give at least one source: a Gutenberg folder or a Wikipedia folder")
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists (pass overwrite to replace it)")
    needles = load_needles(settings.needles)
    files = list(documents(settings.gutenberg, settings.wikipedia))
    if settings.gutenberg is not None and not any(s == "gutenberg" for s, _ in files):
        raise ValueError(f"{settings.gutenberg}: no .txt book found (expected Author/Title.txt)")
    if settings.wikipedia is not None and not any(s == "wikipedia" for s, _ in files):
        raise ValueError(f"{settings.wikipedia}: no article found (expected Page/*.md or Abstract/*.md)")
    start = time.perf_counter()
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    salt = settings.seed.to_bytes(16, "little", signed=True)
    stats: dict[str, SourceStats] = {}
    buckets = _Buckets(partial / "buckets")
    seen_ids: set[str] = set()
    try:
        with progress("cutting passages", len(files)) as advance:
            for source, path in files:
                doc = gutenberg_document(settings.gutenberg, path) if source == "gutenberg" else \
                    wikipedia_document(path)
                s = stats.setdefault(source, SourceStats())
                s.documents += 1
                advance(1)
                if doc is None:
                    s.skipped += 1
                    continue
                if doc.id in seen_ids:
                    raise ValueError(f"{path}: two documents map to the id {doc.id!r}")
                seen_ids.add(doc.id)
                n = -1
                for n, text in enumerate(passages(doc.paragraphs, settings.bounds)):
                    buckets.add(_key(text, salt), source, f"{doc.id}:{n}", doc.title, text)
                s.passages += n + 1
                s.empty += n < 0
        for nd in needles:
            s = stats.setdefault(nd.prefix, SourceStats())
            for d in nd.docs:
                buckets.add(_key(d.text, salt), nd.prefix, f"{nd.prefix}:{d.id}", d.title, d.text)
                s.documents += 1
                s.passages += 1
        buckets.close()
        queries = _write(partial, buckets, stats, needles, settings.heldout, progress)
    except BaseException:
        buckets.close()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(partial / "buckets")
    needle_names = {nd.prefix for nd in needles}
    summary = {"seed": settings.seed, "bounds": vars(settings.bounds),
               "inputs": {"gutenberg": str(settings.gutenberg) if settings.gutenberg else None,
                          "wikipedia": str(settings.wikipedia) if settings.wikipedia else None,
                          "needles": list(settings.needles)},
               "documents": sum(len(s.words) for s in stats.values()),
               "passages": sum(len(s.words) for n, s in stats.items() if n not in needle_names),
               "needles": sum(len(s.words) for n, s in stats.items() if n in needle_names),
               "queries": queries, "sources": {n: s.summary() for n, s in stats.items()},
               "seconds": round(time.perf_counter() - start, 1)}
    atomic_write_text(partial / "summary.json", json.dumps(summary, indent=1) + "\n")
    if output.exists():
        shutil.rmtree(output)
    partial.rename(output)
    return summary


def _doc(passage_id: str) -> str:
    return passage_id.rsplit(":", 1)[0]


def _write(folder: Path, buckets: _Buckets, stats: dict[str, SourceStats], needles: list[Needles], heldout: int,
           progress: ProgressFactory) -> dict:
    """Second pass: each bucket in hash order, duplicates dropped, the first ``heldout`` eligible passages held out;
    third pass: other editions dropped."""
    needle_names = {nd.prefix for nd in needles}
    held: list[tuple[str, str]] = []
    passages, duplicates = Counter(), Counter()   # per document
    with open(folder / "corpus.unfiltered.jsonl", "w", encoding="utf-8") as corpus, \
            open(folder / "heldout.jsonl", "w", encoding="utf-8") as removed, \
            progress("shuffling, deduplicating, writing", BUCKETS) as advance:
        for b in range(BUCKETS):
            prev_key, texts = None, set()
            for key, _, source, doc_id, title, text in buckets.sorted(b):
                if key != prev_key:
                    prev_key, texts = key, set()
                needle = source in needle_names
                passages[_doc(doc_id)] += 1
                if text in texts and not needle:
                    stats[source].duplicates += 1
                    duplicates[_doc(doc_id)] += 1
                    continue
                texts.add(text)
                query = None if needle or len(held) >= heldout else _query(text)
                if query is not None:
                    held.append((f"q:{doc_id}", query))
                    stats[source].held_out += 1
                    _jsonl(removed, _id=doc_id, title=title, text=text, query=f"q:{doc_id}")
                    continue
                corpus.write(json.dumps([source, doc_id, title, text], ensure_ascii=False) + "\n")
            advance(1)
    copies = {d for d, n in duplicates.items() if n >= COPY_SHARE * passages[d]}
    with open(folder / "corpus.unfiltered.jsonl", encoding="utf-8") as rows, \
            open(folder / "corpus.jsonl", "w", encoding="utf-8") as corpus:
        for line in rows:
            source, doc_id, title, text = json.loads(line)
            if _doc(doc_id) in copies:
                stats[source].copy_passages += 1
                continue
            stats[source].words.append(len(text.split()))
            _jsonl(corpus, _id=doc_id, title=title, text=text)
    (folder / "corpus.unfiltered.jsonl").unlink()
    for d in copies:
        stats[d.split(":", 1)[0]].copies += 1
    (folder / "qrels").mkdir()
    counts = {"heldout": len(held)}
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as q, \
            open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as qrels:
        qrels.write("query-id\tcorpus-id\tscore\n")
        for qid, text in held:
            _jsonl(q, _id=qid, text=text)
        for nd in needles:
            for qid, text in nd.queries.items():
                _jsonl(q, _id=f"q:{nd.prefix}:{qid}", text=text)
                for doc, rel in nd.qrels[qid].items():
                    qrels.write(f"q:{nd.prefix}:{qid}\t{nd.prefix}:{doc}\t{rel}\n")
            counts[nd.prefix] = len(nd.queries)
    return counts
