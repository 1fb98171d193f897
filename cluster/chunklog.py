"""The record of a distributed encoding job: which chunks of the corpus are encoded, in which files.

A job's work folder holds one vectors file per finished chunk (``chunk-000012.npz``, the format ``lsr encode``
writes) and ``chunks.json``, rewritten atomically after each chunk file is written and fsynced. A chunk counts as
done only once ``chunks.json`` lists it, so a job killed at any moment restarts with exactly the chunks it lacks; a
chunk file that is not listed is a leftover and is encoded again. The log also keeps what the chunks were made
from (corpus, chunk size, encoder settings): resuming with anything else is refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from lsr.core.atomic import atomic_write_bytes, atomic_write_text
from lsr.core.vectors import VectorsFile, load_vectors

FORMAT = "lsr-chunks"
VERSION = 1
LOG = "chunks.json"


class ChunkLogError(ValueError):
    """The work folder belongs to another job, or a chunk file no longer matches its record."""


@dataclass
class ChunkRecord:
    file: str
    docs: int
    nnz: int
    max_weight: float     # the largest weight: the index's uint8 scale is the largest over all chunks
    sha256: str
    bytes: int


class ChunkLog:
    def __init__(self, folder: Path, job: dict, done: dict[int, ChunkRecord]):
        self.folder = folder
        self.job = job
        self.done = done

    @classmethod
    def open(cls, folder: str | Path, job: dict) -> "ChunkLog":
        """The log in ``folder`` (created when absent); ``job`` describes corpus, chunking and encoder settings."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOG
        job = json.loads(json.dumps(job))   # the form it has once written, so that a resumed job compares equal
        if not path.exists():
            log = cls(folder, job, {})
            log._write()
            return log
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT or raw.get("version") != VERSION:
                raise ChunkLogError(f"{path}: not an lsr chunk log of version {VERSION}")
            done = {int(n): ChunkRecord(**r) for n, r in raw["done"].items()}
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise ChunkLogError(f"{path}: malformed chunk log ({e})") from e
        if raw["job"] != job:
            diff = sorted(k for k in set(job) | set(raw["job"]) if job.get(k) != raw["job"].get(k))
            raise ChunkLogError(f"{folder} holds chunks of another job (differs in {diff}: {raw['job']!r}); "
                                "remove it or choose another output to start afresh")
        return cls(folder, job, done)

    def _write(self) -> None:
        body = {"format": FORMAT, "version": VERSION, "job": self.job,
                "done": {str(n): vars(r) for n, r in sorted(self.done.items())}}
        atomic_write_text(self.folder / LOG, json.dumps(body, indent=0) + "\n")

    def add(self, number: int, payload: bytes, docs: int, nnz: int, max_weight: float) -> None:
        """Writes a finished chunk's vectors file (bytes as ``lsr.vectors.write_vectors`` makes them), then lists it."""
        name = f"chunk-{number:06d}.npz"
        atomic_write_bytes(self.folder / name, payload)
        self.done[number] = ChunkRecord(name, docs, nnz, float(max_weight), hashlib.sha256(payload).hexdigest(),
                                        len(payload))
        self._write()

    def load(self, number: int) -> VectorsFile:
        """A finished chunk's vectors, checked against the sha256 recorded when it was written."""
        record = self.done[number]
        data = (self.folder / record.file).read_bytes() if (self.folder / record.file).exists() else b""
        if len(data) != record.bytes or hashlib.sha256(data).hexdigest() != record.sha256:
            raise ChunkLogError(f"{self.folder / record.file}: missing or changed since it was written; remove it from "
                                f"{LOG} (or remove the folder) to encode that chunk again")
        return load_vectors(io.BytesIO(data))

    def missing(self, numbers) -> list[int]:
        return [n for n in numbers if n not in self.done]
