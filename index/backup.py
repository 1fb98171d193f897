"""On-disk snapshots of an index (backups): consistent point-in-time copies, made while writes go on.

Not to be confused with ``lsr.index.snapshot.Snapshot``, the in-memory view one search uses. A backup is a folder
in a repository (by default ``<index>.snapshots/`` beside the index) that is itself an index folder:

    <repository>/<name>/manifest.json    the committed manifest it was taken from (its generation and wal_seq)
    <repository>/<name>/seg-N/...        hard links to that manifest's segment files
    <repository>/<name>/seg-N.gG.del     hard links to its delete bitmaps
    <repository>/<name>/snapshot.json    name, time, generation, wal_seq, documents, bytes

Why it is consistent without stopping writes: a committed manifest describes exactly the state after its
``wal_seq``-th log record (index/writer.py), and every file it lists is immutable (segments and bitmaps are written
once under a new name; the manifest itself is replaced by rename, never rewritten). So hard links to the listed files
plus a copy of the manifest are that state, whatever the writer does afterwards. The writer may retire a listed
segment (a merge) while the links are made: a link then fails, and the copy starts over from the newer manifest.

``create`` flushes a writable index first, so every write acknowledged before the call (still only in the log) is in
a segment the backup holds. Hard links cost no space and no copying, but need the repository on the index's file
system. ``restore`` links a backup into a new index folder (the backup stays as it was: a restored index's writer
only ever adds files and renames a new manifest over the old one).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lsr.core.atomic import atomic_write_text, fsync_dir
from lsr.index.index import Index
from lsr.index.lock import WriterLock
from lsr.index.manifest import MANIFEST, Manifest
from lsr.index.snapshot import Snapshot

INFO = "snapshot.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ATTEMPTS = 20


class BackupError(ValueError):
    """A backup cannot be made, found or restored as asked (the message says why)."""


class BackupExists(BackupError):
    """A backup of that name is already in the repository."""


class BackupNotFound(BackupError):
    """No backup of that name is in the repository."""


@dataclass(frozen=True)
class BackupInfo:
    """What ``snapshot.json`` records of a backup."""

    name: str
    created: str           # UTC, ISO 8601
    generation: int        # the index's committed generation it holds
    wal_seq: int           # the last write-ahead-log record whose effects it holds
    documents: int
    segments: int
    bytes: int


def default_repository(index_dir: str | os.PathLike) -> Path:
    """``<index>.snapshots`` beside the index: on its file system, as hard links need."""
    index_dir = Path(index_dir).resolve()
    return index_dir.with_name(index_dir.name + ".snapshots")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name) or name.endswith(".tmp"):
        raise BackupError(f"bad snapshot name {name!r}: 1 to 64 letters, digits, '.', '_' or '-', starting with a "
                          "letter or digit, not ending in '.tmp'")
    return name


def create(index: Index, repository: str | os.PathLike, name: str | None = None) -> BackupInfo:
    """Backs up ``index``: flushes it when it is writable (acknowledged writes reach a segment), then links its
    latest committed generation into ``repository/name`` (default name: the UTC time and the generation).
    BackupError when the name is taken, or the repository is on another file system."""
    if index.writable:
        index.flush()
    repository = Path(repository)
    if name is not None:
        check_name(name)
        if (repository / name).exists():
            raise BackupExists(f"a snapshot named {name!r} already exists")
    repository.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    tmp = repository / f"{name or stamp}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        manifest = _link_committed(index.path, tmp)
        Snapshot.open(tmp, verify=False)   # every listed file present with its size: it opens as an index
        names = [name] if name else [f"{stamp}-g{manifest.generation:06d}"] + [
            f"{stamp}-g{manifest.generation:06d}-{n}" for n in range(1, 1000)]   # the same second, generation
        for candidate in names:
            info = BackupInfo(name=candidate, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              generation=manifest.generation, wal_seq=manifest.wal_seq, documents=manifest.num_docs,
                              segments=len(manifest.segments), bytes=_bytes(tmp))
            atomic_write_text(tmp / INFO, json.dumps(asdict(info), indent=1) + "\n")
            try:
                os.rename(tmp, repository / candidate)   # the backup appears whole, or not at all
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                continue
            fsync_dir(repository)
            return info
        raise BackupExists(f"a snapshot named {names[-1]!r} already exists")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _link_committed(source: Path, dest: Path) -> Manifest:
    """Hard-links the committed generation of ``source`` into the new folder ``dest``; returns its manifest. Starts
    over when a newer commit removed a listed file meanwhile."""
    for attempt in range(_ATTEMPTS):
        manifest = Manifest.read(source)
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        try:
            for seg in manifest.segments:
                (dest / seg.name).mkdir()
                for file in seg.files:
                    _link(source / seg.name / file, dest / seg.name / file)
                fsync_dir(dest / seg.name)
                if seg.deletes:
                    _link(source / seg.deletes["file"], dest / seg.deletes["file"])
        except FileNotFoundError:
            if attempt + 1 < _ATTEMPTS and Manifest.read(source).generation != manifest.generation:
                continue
            raise
        manifest.write(dest)
        fsync_dir(dest)
        return manifest
    raise BackupError(f"the index kept changing under {_ATTEMPTS} attempts to link one generation; retry")


def _link(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError as e:
        if e.errno == errno.EXDEV:
            raise BackupError("the snapshot repository must be on the index's file system (snapshots are hard "
                              "links); choose a folder there") from None
        raise


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def read_info(folder: Path) -> BackupInfo:
    try:
        return BackupInfo(**json.loads((folder / INFO).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as e:
        raise BackupError(f"snapshot {folder.name!r} has no readable {INFO} ({type(e).__name__})") from e


def list_backups(repository: str | os.PathLike) -> list[BackupInfo]:
    """The complete backups in ``repository``, oldest generation first (none when it does not exist)."""
    repository = Path(repository)
    if not repository.is_dir():
        return []
    found = []
    for p in repository.iterdir():
        if NAME.match(p.name) and not p.name.endswith(".tmp") and (p / INFO).exists():
            try:
                found.append(read_info(p))
            except BackupError:
                if p.exists():   # else deleted meanwhile
                    raise
    return sorted(found, key=lambda b: (b.generation, b.created, b.name))


def find(repository: str | os.PathLike, name: str) -> Path:
    folder = Path(repository) / check_name(name)
    if not (folder / INFO).exists():
        raise BackupNotFound(f"no snapshot named {name!r}")
    return folder


def delete(repository: str | os.PathLike, name: str) -> None:
    """Removes a backup (the index and other backups keep their own links to shared files). It is renamed away
    first, so it disappears at once and whole, and of two concurrent deletes one gets BackupNotFound."""
    folder = find(repository, name)
    gone = folder.with_name(f"{name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        os.rename(folder, gone)
    except FileNotFoundError:
        raise BackupNotFound(f"no snapshot named {name!r}") from None
    shutil.rmtree(gone)


def restore(repository: str | os.PathLike, name: str, target: str | os.PathLike, *, overwrite: bool = False,
            verify: bool = True) -> BackupInfo:
    """Makes ``target`` an index holding backup ``name`` (hard links; the backup is unchanged). ``verify`` checks
    every file's sha256 first. An existing ``target`` is replaced only with ``overwrite`` and when no writer holds
    it (stop the server that serves it first)."""
    source = find(repository, name)
    info = read_info(source)
    Snapshot.open(source, verify=verify)   # IndexCorrupt (and nothing restored) when a file was damaged
    target = Path(target).resolve()
    if target.exists() and not overwrite:
        raise BackupError(f"{target} exists; restore into a new folder, or pass overwrite")
    tmp = target.with_name(f"{target.name}.restore-{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _link_committed(source, tmp)
        if target.exists():
            lock = WriterLock(target).acquire() if (target / MANIFEST).exists() else None   # IndexLocked: in use
            try:
                old = target.with_name(f"{target.name}.replaced-{os.getpid()}.tmp")
                os.rename(target, old)
                os.rename(tmp, target)
            finally:
                if lock is not None:
                    lock.release()
            shutil.rmtree(old)
        else:
            os.rename(tmp, target)
        fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info
