"""The manifest: the one file that says which segments form the index. Writing it is the commit point.

``manifest.json`` holds the format version, a generation number that grows with every commit, the model name and
vocabulary fingerprint, the build parameters, the index's impact scale, the last write-ahead-log record its segments
hold (``wal_seq``, index/wal.py), and for every segment its size, the sha256 and byte length of each of its files and
its deleted-documents bitmap (index/deletes.py). It is replaced atomically (write, fsync, rename), so a reader sees the previous generation or the new
one, and a build that dies before the rename leaves no manifest and therefore nothing that opens.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lsr.index.errors import IndexCorrupt
from lsr.core.atomic import atomic_write_text

FORMAT = "lsr-index"
VERSION = 1
MANIFEST = "manifest.json"
# what an index folder holds besides the manifest: segments (and their temporaries), delete bitmaps, the log, the lock
OWNED = re.compile(r"^(seg-\d+(\.tmp)?|seg-\d+\.g\d+\.del(\.tmp)?|manifest\.json\.tmp|wal|write\.lock)$")
_UNLISTED = re.compile(r"^(seg-\d+(\.tmp)?|seg-\d+\.g\d+\.del(\.tmp)?|manifest\.json\.tmp)$")


@dataclass
class SegmentInfo:
    """One immutable segment: a folder of .npy arrays (plus stored documents) holding ``num_docs`` documents."""

    name: str
    num_docs: int
    nnz: int
    scale: float                      # weight of one stored impact level
    files: dict[str, dict]            # file name -> {"sha256": hex, "bytes": n}
    methods: list[str]                # search methods whose arrays this segment holds
    deletes: dict | None = None       # deleted documents: {"file", "sha256", "bytes", "count"} (index/deletes.py)


@dataclass
class Manifest:
    generation: int
    vocab_size: int
    quantization: str
    model: str | None = None
    vocab_fingerprint: str | None = None
    build_params: dict = field(default_factory=dict)   # {"reorder": bool, "<method>": {param: value}}
    methods: list[str] = field(default_factory=list)
    segments: list[SegmentInfo] = field(default_factory=list)
    scale: float | None = None        # the index's impact scale, fixed at creation so that every segment shares it
    wal_seq: int = 0                  # last write-ahead-log record whose effects the segments hold (index/wal.py)
    format: str = FORMAT
    version: int = VERSION

    @property
    def num_docs(self) -> int:
        """Live documents: stored ones less the deleted."""
        return sum(s.num_docs - (s.deletes or {}).get("count", 0) for s in self.segments)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    def write(self, folder: Path) -> None:
        atomic_write_text(Path(folder) / MANIFEST, self.to_json() + "\n")

    def remove_unlisted(self, folder: Path, keep: set[str] = frozenset()) -> None:
        """Deletes the segment folders, delete bitmaps and temporary files this manifest does not list (nor
        ``keep``): what an interrupted build, flush or merge, or an older generation, left behind."""
        listed = {s.name for s in self.segments} | {s.deletes["file"] for s in self.segments if s.deletes} | keep
        for p in Path(folder).iterdir():
            if _UNLISTED.match(p.name) and p.name not in listed:
                shutil.rmtree(p) if p.is_dir() else p.unlink()

    @classmethod
    def read(cls, folder: Path) -> "Manifest":
        path = Path(folder) / MANIFEST
        if not path.exists():
            hint = " (an interrupted build leaves no manifest)" if Path(folder).is_dir() else ""
            raise IndexCorrupt(f"{folder} is not an index: no {MANIFEST}{hint}")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT:
                raise IndexCorrupt(f"{path}: not an lsr index manifest (format {raw.get('format')!r})")
            if raw.get("version") != VERSION:
                raise IndexCorrupt(f"{path}: index format version {raw.get('version')} is not supported "
                                   f"(this code reads version {VERSION}); rebuild the index")
            segments = [SegmentInfo(**s) for s in raw.pop("segments")]
            return cls(**raw, segments=segments)
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as e:
            raise IndexCorrupt(f"{path}: malformed manifest ({e})") from e
