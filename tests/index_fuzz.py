"""Fuzzing of index files: damage one file of a copy of an index (truncate it, flip a byte, edit a number of the
manifest), or, as a crafted index would, rewrite a segment array or a manifest number and recompute every
checksum; then open the copy, search it with every method and read its documents.

What must come out: IndexCorrupt, or, for damage the checksums cover, exactly the undamaged answers. A crash (the
tests run the crafted cases in a child process with Numba's bounds checks on) or any other exception is a failure.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from lsr.core.documents import Document
from lsr.index import Index, IndexCorrupt
from lsr.index.manifest import Manifest
from tests.vectors import random_batch

METHODS = ("exact", "bmp", "seismic")
Mutation = tuple[str, Callable[[Path], None]]


def build(path: Path) -> None:
    """Two segments (the second with deletes) of toy vectors, all three methods, and a record left in the log."""
    docs = random_batch(340, 30, seed=5)
    ids = [f"d{i}" for i in range(len(docs))]
    texts = [Document(i, f"text of {i}", f"title {i}") for i in ids]
    Index.build(path, docs.take(np.arange(300)), ids[:300], texts=texts[:300], methods=METHODS, block_size=16)
    idx = Index.open(path, writable=True, background_merges=False)
    idx.add(ids[300:330], docs.take(np.arange(300, 330)), texts[300:330])
    idx.delete(ids[:10])
    idx.flush()
    idx.add(ids[330:], docs.take(np.arange(330, 340)), texts[330:])
    idx.close(commit=False)


def answers(path: Path, writable: bool = False) -> dict:
    """Everything a reader gets from the index: its documents, and the hits of every method for a few queries."""
    idx = Index.open(path, writable=writable, **({"refresh_interval": 0} if writable else {}))
    try:
        queries = random_batch(6, 10, seed=9)
        out = {"documents": idx.num_docs, "ids": sorted(i for i in idx.doc_ids if i is not None),
               "stored": [idx.document(f"d{i}") for i in (11, 150, 305)]}
        for method in METHODS:
            res = idx.search(queries, k=25, method=method, threads=1)
            out[method] = (res.ids, np.round(res.scores, 5).tolist())
        out["one"] = idx.search_one(*queries.row(0), k=1000, method="bmp")[0].tolist()
        return out
    finally:
        idx.close(commit=False)


def outcome(path: Path, writable: bool = False) -> dict | str:
    """The answers, or "IndexCorrupt" when the index is refused."""
    try:
        return answers(path, writable)
    except IndexCorrupt:
        return "IndexCorrupt"


def files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name != "write.lock")


# ---- damage: what checksums, sizes and the log's rules catch --------------------------------------------------------
def damage(path: Path, rng: np.random.Generator, n: int) -> list[Mutation]:
    """``n`` random truncations, byte flips and (unsigned) manifest number edits of the files of ``path``."""
    targets = files(path)
    out: list[Mutation] = []
    for _ in range(n):
        f = targets[int(rng.integers(len(targets)))]
        rel, size = f.relative_to(path), f.stat().st_size
        kind = int(rng.integers(3))
        if kind == 0 and size:
            at = int(rng.integers(size))
            out.append((f"truncate {rel} at {at}", lambda p, rel=rel, at=at: _truncate(p / rel, at)))
        elif kind == 1 and size:
            at, bit = int(rng.integers(size)), int(rng.integers(8))
            out.append((f"flip bit {bit} of byte {at} of {rel}", lambda p, rel=rel, at=at, bit=bit: _flip(p / rel, at,
                                                                                                         bit)))
        else:
            field, value = _manifest_edit(path, rng)
            out.append((f"manifest {field} = {value!r}", lambda p, f=field, v=value: _edit_manifest(p, f, v, False)))
    return out


def _truncate(f: Path, at: int) -> None:
    with open(f, "r+b") as fh:
        fh.truncate(at)


def _flip(f: Path, at: int, bit: int) -> None:
    data = bytearray(f.read_bytes())
    data[at] ^= 1 << bit
    f.write_bytes(bytes(data))


def _numbers(obj, prefix: tuple = ()) -> list[tuple]:
    """Paths of the numbers in a JSON value."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _numbers(v, prefix + (k,))]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _numbers(v, prefix + (i,))]
    return [prefix] if isinstance(obj, (int, float)) and not isinstance(obj, bool) else []


def _manifest_edit(path: Path, rng: np.random.Generator) -> tuple[tuple, object]:
    raw = json.loads((path / "manifest.json").read_text())
    fields = _numbers(raw)
    field = fields[int(rng.integers(len(fields)))]
    value = _get(raw, field)
    choices = [0, -1, value - 1, value + 1, value * 2, 10**12, 0.5, None, "7", True]
    return field, choices[int(rng.integers(len(choices)))]


def _get(obj, field: tuple):
    for k in field:
        obj = obj[k]
    return obj


def _edit_manifest(path: Path, field: tuple, value, sign: bool) -> None:
    f = path / "manifest.json"
    raw = json.loads(f.read_text())
    parent = _get(raw, field[:-1])
    parent[field[-1]] = value
    if sign:
        raw.pop("checksum", None)
        raw["checksum"] = hashlib.sha256(json.dumps(raw, indent=1, sort_keys=True).encode()).hexdigest()
    f.write_text(json.dumps(raw, indent=1, sort_keys=True))


# ---- crafted: consistent checksums, broken structure ----------------------------------------------------------------
def crafted(path: Path, rng: np.random.Generator, n: int) -> list[Mutation]:
    """``n`` rewrites of a segment array (an element set to a boundary value, an array cut short or widened, another
    dtype) or a manifest number, with every checksum recomputed: what only the structure checks can refuse."""
    manifest = Manifest.read(path)
    arrays = [(s.name, f) for s in manifest.segments for f in s.files if f.endswith(".npy")]
    out: list[Mutation] = []
    for _ in range(n):
        kind = int(rng.integers(4))
        if kind == 3:
            field, value = _manifest_edit(path, rng)
            out.append((f"signed manifest {field} = {value!r}", lambda p, f=field, v=value: _edit_manifest(p, f, v,
                                                                                                         True)))
            continue
        seg, name = arrays[int(rng.integers(len(arrays)))]
        seed = int(rng.integers(2**31))
        out.append((f"{('element', 'length', 'dtype')[kind]} of {seg}/{name} (seed {seed})",
                    lambda p, seg=seg, name=name, kind=kind, seed=seed: _rewrite(p, seg, name, kind, seed)))
    return out


def _rewrite(path: Path, seg: str, name: str, kind: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = np.load(path / seg / name)
    if kind == 0 and a.size:
        flat = a.reshape(-1).copy()
        info = np.iinfo(a.dtype) if a.dtype.kind in "iu" else None
        bounds = [0, 1, -1, a.size, a.size + 1, 300, 340, 400, 401, 65535] + ([info.max, info.min] if info else
                                                                                   [np.nan, np.inf, -1.0])
        value = bounds[int(rng.integers(len(bounds)))]
        with np.errstate(all="ignore"):
            flat[int(rng.integers(flat.size))] = np.array(value).astype(a.dtype)
        a = flat.reshape(a.shape)
    elif kind == 1:
        a = a[:max(0, len(a) - int(rng.integers(1, 4)))] if rng.random() < 0.7 else np.concatenate([a, a[:2]])
    else:
        a = a.astype({np.dtype(np.int64): np.int32, np.dtype(np.int32): np.int64, np.dtype(np.uint8): np.uint16,
                      np.dtype(np.uint16): np.uint8, np.dtype(np.uint32): np.int64, np.dtype(np.float32): np.float64
                      }.get(a.dtype, np.float32))
    np.save(path / seg / name, a, allow_pickle=False)
    _resign(path, seg, name)


def _resign(path: Path, seg: str, name: str) -> None:
    f = path / "manifest.json"
    raw = json.loads(f.read_text())
    data = (path / seg / name).read_bytes()
    for s in raw["segments"]:
        if s["name"] == seg:
            s["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    raw.pop("checksum", None)
    raw["checksum"] = hashlib.sha256(json.dumps(raw, indent=1, sort_keys=True).encode()).hexdigest()
    f.write_text(json.dumps(raw, indent=1, sort_keys=True))


def run(pristine: Path, work: Path, mutations: list[Mutation], allowed: list[dict] | None, writable: bool = False,
        log: Callable[[str], None] = lambda line: None) -> list[str]:
    """Applies each mutation to a fresh copy of ``pristine``; returns the failures: an answer not among ``allowed``
    (None: any answer will do) or an exception other than IndexCorrupt."""
    failures = []
    for label, mutate in mutations:
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(pristine, work)
        mutate(work)
        log(label)
        try:
            got = outcome(work, writable)
        except Exception as e:   # noqa: BLE001 - any other error is what the test reports
            failures.append(f"{label}: {type(e).__name__}: {e}")
            continue
        if allowed is not None and got != "IndexCorrupt" and got not in allowed:
            failures.append(f"{label}: a different answer, not refused")
    return failures
