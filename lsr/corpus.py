"""Reading corpora: JSONL, Parquet, a BEIR folder, or an ir_datasets id, as a stream of documents.

Every form yields ``Document(id, text, title)``; ``Document.full_text`` is the "title text" string that
BEIR's conventions encode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        return f"{self.title} {self.text}" if self.title else self.text


class CorpusError(ValueError):
    """The corpus cannot be read: unknown form, missing fields, malformed records."""


def _record(obj: dict, where: str) -> Document:
    if not isinstance(obj, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    doc_id = obj.get("id", obj.get("_id", obj.get("doc_id")))
    if doc_id is None or "text" not in obj:
        raise CorpusError(f"{where}: a document needs 'id' (or '_id') and 'text' fields, got {sorted(obj)}")
    text, title = obj["text"], obj.get("title") or ""
    if not isinstance(text, str) or not isinstance(title, str):
        raise CorpusError(f"{where}: 'text' and 'title' must be strings")
    return Document(str(doc_id), text, title)


def _jsonl(path: Path) -> Iterator[Document]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CorpusError(f"{path}:{n}: malformed JSON ({e.msg})") from e
                yield _record(obj, f"{path}:{n}")


def _parquet(path: Path) -> Iterator[Document]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    id_col = next((c for c in ("id", "_id", "doc_id") if c in names), None)
    if id_col is None or "text" not in names:
        raise CorpusError(f"{path}: a Parquet corpus needs 'id' and 'text' columns, has {sorted(names)}")
    cols = [id_col, "text"] + (["title"] if "title" in names else [])
    for batch in pf.iter_batches(columns=cols, batch_size=4096):
        d = batch.to_pydict()
        titles = d.get("title") or [""] * len(d["text"])
        for i, t, ti in zip(d[id_col], d["text"], titles):
            yield Document(str(i), t or "", ti or "")


def _ir_datasets(dataset_id: str) -> Iterator[Document]:
    try:
        import ir_datasets
    except ImportError as e:
        raise CorpusError("reading an ir_datasets id needs the package ir-datasets") from e
    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError as e:
        raise CorpusError(f"{dataset_id!r} is neither a file, a folder, nor a known ir_datasets id") from e
    if not ds.has_docs():
        raise CorpusError(f"ir_datasets {dataset_id!r} has no documents")
    for doc in ds.docs_iter():
        yield Document(doc.doc_id, getattr(doc, "text", "") or "", getattr(doc, "title", "") or "")


def read_corpus(source: str | Path) -> Iterator[Document]:
    """Documents of a JSONL/Parquet file, a BEIR folder (corpus.jsonl inside), or an ir_datasets id."""
    path = Path(source)
    if path.is_dir():
        corpus = path / "corpus.jsonl"
        if not corpus.exists():
            raise CorpusError(f"{path} is a folder without corpus.jsonl (expected a BEIR folder)")
        return _jsonl(corpus)
    if path.is_file():
        suffixes = "".join(path.suffixes[-2:]).lower()
        if suffixes.endswith((".jsonl", ".json")):
            return _jsonl(path)
        if suffixes.endswith((".parquet", ".pq")):
            return _parquet(path)
        raise CorpusError(f"{path}: unknown corpus format (expected .jsonl or .parquet)")
    if str(source).endswith((".jsonl", ".parquet", ".json", ".pq")):
        raise CorpusError(f"{source}: no such file")
    return _ir_datasets(str(source))


def count_documents(source: str | Path) -> int | None:
    """The number of documents when it is cheap to know (ir_datasets metadata, Parquet footer), else None."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if not path.exists():
        try:
            import ir_datasets

            return ir_datasets.load(str(source)).docs_count()
        except Exception:  # noqa: BLE001 - a count is only for the progress bar
            return None
    return None
