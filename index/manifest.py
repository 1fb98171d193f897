"""The manifest: the one file that says which segments form the index. Writing it is the commit point.

``manifest.json`` holds the format version, a generation number that grows with every commit, the model name and
vocabulary fingerprint, the build parameters, the index's impact scale, the last write-ahead-log record its segments
hold (``wal_seq``, index/wal.py), and for every segment its size, the sha256 and byte length of each of its files and
its deleted-documents bitmap (index/deletes.py). It is replaced atomically (write, fsync, rename), so a reader sees the
previous generation or the new one, and a build that dies before the rename leaves no manifest and therefore nothing
that opens.

The manifest checksums itself (``checksum``: sha256 of its other fields as canonical JSON), and reading it checks
every field's type and range, segment and file names included (a name cannot leave the index folder). The numbers in
it size the arrays that Numba kernels index (index/segment.py checks the arrays against them), so an edited or
damaged manifest is refused as IndexCorrupt, never used.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lsr.index.errors import IndexCorrupt
from lsr.core.atomic import atomic_write_text

FORMAT = "lsr-index"
VERSION = 2          # 2: the manifest checksums itself (version 1 is upgraded by `lsr index --repair`)
MANIFEST = "manifest.json"
SEGMENT_NAME = re.compile(r"^seg-\d{6,}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
QUANTIZATIONS = ("uint8", "float16", "float32")
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
        fields = asdict(self)
        return json.dumps({**fields, "checksum": _checksum(fields)}, indent=1, sort_keys=True)

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
    def read(cls, folder: Path, *, upgrade: bool = False) -> "Manifest":
        """The committed manifest of ``folder``, checked; IndexCorrupt when it is missing, damaged or edited.
        ``upgrade``: also read a version 1 manifest (no checksum; `lsr index --repair` rewrites it as version 2)."""
        path = Path(folder) / MANIFEST
        if not path.exists():
            hint = " (an interrupted build leaves no manifest)" if Path(folder).is_dir() else ""
            raise IndexCorrupt(f"{folder} is not an index: no {MANIFEST}{hint}")
        try:
            raw = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
                raise IndexCorrupt(f"{path}: not an lsr index manifest (format {found!r})")
            version = raw.get("version")
            if version == 1 and upgrade:
                raw["version"] = VERSION
            elif version == 1:
                raise IndexCorrupt(f"{path}: index format version 1 has no manifest checksum; check and upgrade the "
                                   "index with `lsr index -o DIR --repair`")
            elif version != VERSION:
                raise IndexCorrupt(f"{path}: index format version {version!r} is not supported "
                                   f"(this code reads version {VERSION}); rebuild the index")
            else:
                stated = raw.pop("checksum", None)
                if stated != _checksum(raw):
                    raise IndexCorrupt(f"{path}: checksum mismatch (the manifest changed after it was written)")
            segments = [SegmentInfo(**s) for s in raw.pop("segments")]
            manifest = cls(**raw, segments=segments)
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError, AttributeError, ValueError,
                RecursionError) as e:
            raise IndexCorrupt(f"{path}: malformed manifest ({type(e).__name__}: {e})") from e
        problem = manifest.problem()
        if problem:
            raise IndexCorrupt(f"{path}: malformed manifest ({problem})")
        return manifest

    def problem(self) -> str | None:
        """What makes this manifest unusable (a field of the wrong type or out of range), or None."""
        checks = [
            (_count(self.generation, 1), "generation"), (_count(self.vocab_size, 1, 2**31 - 1), "vocab_size"),
            (self.quantization in QUANTIZATIONS, "quantization"), (_count(self.wal_seq, 0), "wal_seq"),
            (self.model is None or isinstance(self.model, str), "model"),
            (self.vocab_fingerprint is None or isinstance(self.vocab_fingerprint, str), "vocab_fingerprint"),
            (isinstance(self.build_params, dict), "build_params"),
            (_names(self.methods) and len(set(self.methods)) == len(self.methods), "methods"),
            (self.scale is None or _positive(self.scale), "scale"),
            (isinstance(self.segments, list), "segments"),
        ]
        bad = [name for ok, name in checks if not ok]
        if bad:
            return f"bad {', '.join(bad)}"
        if len({s.name for s in self.segments}) != len(self.segments):
            return "a segment is listed twice"
        for s in self.segments:
            problem = _segment_problem(s, self.methods)
            if problem:
                return f"segment {s.name!r}: {problem}"
        return None


def _checksum(fields: dict) -> str:
    """sha256 of the manifest's fields (all but the checksum) as canonical JSON."""
    return hashlib.sha256(json.dumps(fields, indent=1, sort_keys=True).encode("utf-8")).hexdigest()


def _count(value, low: int, high: int = 2**63 - 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _names(values) -> bool:
    return isinstance(values, list) and all(isinstance(v, str) for v in values)


def _file_entry(meta) -> bool:
    return (isinstance(meta, dict) and isinstance(meta.get("sha256"), str) and bool(_SHA256.match(meta["sha256"]))
            and _count(meta.get("bytes"), 0))


def _segment_problem(s: SegmentInfo, methods: list[str]) -> str | None:
    if not isinstance(s.name, str) or not SEGMENT_NAME.match(s.name):
        return "bad name"
    if not _count(s.num_docs, 1, 2**31 - 1) or not _count(s.nnz, 0):
        return "bad num_docs or nnz"
    if not _positive(s.scale):
        return "bad scale"
    if not _names(s.methods) or not set(s.methods) <= set(methods):
        return "bad methods"
    if not isinstance(s.files, dict) or not all(isinstance(f, str) and _FILE_NAME.match(f) and _file_entry(m)
                                               for f, m in s.files.items()):
        return "bad file table"
    if s.deletes is not None:
        d = s.deletes
        if not (_file_entry(d) and isinstance(d.get("file"), str) and _count(d.get("count"), 0, s.num_docs)
                and re.fullmatch(rf"{s.name}\.g\d{{6,}}\.del", d["file"]) and d["bytes"] == -(-s.num_docs // 8)):
            return "bad deletes entry"
    return None


def file_identity(path: Path) -> tuple[int, int] | None:
    """Identity of a manifest file (None: absent): a commit renames a new file over it, which changes the inode."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns
