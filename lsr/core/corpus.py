"""Reading corpora: JSONL, Parquet, a BEIR folder, or an ir_datasets id, as a stream of documents.

Every form yields ``Document(id, text, title, metadata)``; ``Document.full_text`` is the "title text" string that
BEIR's conventions encode. Metadata (lsr.core.metadata) is a ``metadata`` object per JSONL record; in Parquet a
``metadata`` column of structs or maps (a null field is an absent key: Parquet cannot tell them apart) or of JSON
object strings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from lsr.core.documents import Document
from lsr.core.errors import CorpusError


def _record(obj: dict, where: str) -> Document:
    if not isinstance(obj, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    try:
        return Document.from_mapping(obj, where)
    except ValueError as e:
        raise CorpusError(str(e)) from None


def blank_line(raw: bytes) -> bool:
    """A line with nothing but whitespace (Unicode whitespace included), which JSONL readers skip."""
    s = raw.strip()
    return not s or (not s.isascii() and not s.decode("utf-8", "replace").strip())


def _jsonl(path: Path, start: int, stop: int | None, offset: int, line: int) -> Iterator[Document]:
    """Records ``start:stop`` of a JSONL file, where record ``start`` begins at byte ``offset`` on line ``line``."""
    if stop is not None and stop <= start:
        return
    with open(path, "rb") as f:
        f.seek(offset)
        number = start
        for n, raw in enumerate(f, line):
            if blank_line(raw):
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise CorpusError(f"{path}:{n}: not UTF-8 text ({e.reason})") from e
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}:{n}: malformed JSON ({e.msg})") from e
            yield _record(obj, f"{path}:{n}")
            number += 1
            if number == stop:
                return


def _parquet(path: Path, start: int, stop: int | None) -> Iterator[Document]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    id_col = next((c for c in ("id", "_id", "doc_id") if c in names), None)
    if id_col is None or "text" not in names:
        raise CorpusError(f"{path}: a Parquet corpus needs 'id' and 'text' columns, has {sorted(names)}")
    cols = [id_col, "text"] + [c for c in ("title", "metadata") if c in names]
    meta = pf.metadata
    stop = meta.num_rows if stop is None else min(stop, meta.num_rows)
    groups, pos, first = [], None, 0   # the row groups that hold rows start:stop, and the first row they hold
    for g in range(meta.num_row_groups):
        rows = meta.row_group(g).num_rows
        if first < stop and first + rows > start:
            groups.append(g)
            pos = first if pos is None else pos
        first += rows
    for batch in pf.iter_batches(columns=cols, batch_size=4096, row_groups=groups) if groups else ():
        lo, hi = max(start - pos, 0), min(stop - pos, batch.num_rows)
        pos += batch.num_rows
        if lo >= hi:
            continue
        d = batch.slice(lo, hi - lo).to_pydict()
        titles = d.get("title") or [""] * (hi - lo)
        metas = d.get("metadata") or [None] * (hi - lo)
        for row, (i, t, ti, m) in enumerate(zip(d[id_col], d["text"], titles, metas), pos - batch.num_rows + lo):
            try:
                yield Document(str(i), t or "", ti or "", _parquet_metadata(m))
            except ValueError as e:
                raise CorpusError(f"{path}: row {row}: {e}") from None
        if pos >= stop:
            return


def _parquet_metadata(value):
    """A Parquet ``metadata`` cell as a dict: a struct (dict) or map (key-value pairs) without its null fields, or a
    JSON object string."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"metadata is not a JSON object ({e.msg})") from None
    elif isinstance(value, list):   # a map column
        value = dict(value)
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v is not None}
    return value


def _ir_datasets(dataset_id: str, start: int, stop: int | None) -> Iterator[Document]:
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
    docs = ds.docs_iter()
    if start or stop is not None:
        docs = docs[start:stop]   # ir_datasets seeks in its document store instead of reading what comes before
    for doc in docs:
        yield Document(doc.doc_id, getattr(doc, "text", "") or "", getattr(doc, "title", "") or "")


def resolve_corpus(source: str | Path) -> tuple[str, str]:
    """The form of ``source`` ("jsonl", "parquet" or "ir_datasets") and the file or dataset id to read."""
    path = Path(source)
    if path.is_dir():
        corpus = path / "corpus.jsonl"
        if not corpus.exists():
            raise CorpusError(f"{path} is a folder without corpus.jsonl (expected a BEIR folder)")
        return "jsonl", str(corpus)
    if path.is_file():
        suffixes = "".join(path.suffixes[-2:]).lower()
        if suffixes.endswith((".jsonl", ".json")):
            return "jsonl", str(path)
        if suffixes.endswith((".parquet", ".pq")):
            return "parquet", str(path)
        raise CorpusError(f"{path}: unknown corpus format (expected .jsonl or .parquet)")
    if str(source).endswith((".jsonl", ".parquet", ".json", ".pq")):
        raise CorpusError(f"{source}: no such file")
    return "ir_datasets", str(source)


def read_range(form: str, where: str, start: int = 0, stop: int | None = None, offset: int = 0,
               line: int = 1) -> Iterator[Document]:
    """Documents ``start:stop`` of a resolved corpus (see ``resolve_corpus``). In JSONL, document ``start`` begins at
    byte ``offset`` on line ``line`` (``lsr.chunks`` records both), so a reader skips what comes before unread."""
    if form == "jsonl":
        return _jsonl(Path(where), start, stop, offset, line)
    if form == "parquet":
        return _parquet(Path(where), start, stop)
    if form == "ir_datasets":
        return _ir_datasets(where, start, stop)
    raise CorpusError(f"unknown corpus form {form!r}")


def read_corpus(source: str | Path) -> Iterator[Document]:
    """Documents of a JSONL/Parquet file, a BEIR folder (corpus.jsonl inside), or an ir_datasets id."""
    return read_range(*resolve_corpus(source))


def count_documents(source: str | Path) -> int | None:
    """The number of documents, for a progress bar's total: JSONL records (a BEIR folder's too) are counted by
    reading the file once, Parquet rows and ir_datasets documents come from metadata; None when unknown."""
    try:
        form, where = resolve_corpus(source)
    except CorpusError:
        return None
    if form == "jsonl":
        with open(where, "rb") as f:
            return sum(1 for raw in f if not blank_line(raw))
    if form == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(where).metadata.num_rows
    try:
        import ir_datasets

        return ir_datasets.load(where).docs_count()
    except Exception:  # noqa: BLE001 - a count is only for the progress bar
        return None


def documents_by_id(source: str | Path, ids: list[str]) -> list[Document]:
    """The documents of ``source`` in the order of ``ids`` (to store the texts of vectors encoded elsewhere); every
    id must be there."""
    wanted = set(ids)
    found = {d.id: d for d in read_corpus(source) if d.id in wanted}
    missing = [i for i in ids if i not in found]
    if missing:
        raise CorpusError(f"{source} lacks {len(missing)} of the indexed ids (e.g. {missing[:3]})")
    return [found[i] for i in ids]
