"""Where a worker's writes go: the index's one long-lived writer, in this process or in another worker's.

Exactly one process holds an index's writer (the flock on ``write.lock``, index/lock.py). Each worker of ``lsr serve
--workers N`` tries to take it when it starts; the one that gets it is the owner: it keeps the writer open for its
lifetime (write-ahead log with group commit, in-memory buffer, flushes and merges on the writer's own threads) and
listens on a local Unix socket named after the index's folder, in a folder only its user may enter
(``$XDG_RUNTIME_DIR`` or the temp folder, ``lsr-<uid>/``, mode 0700), answering only processes of that user
(SO_PEERCRED). The lock's holder replaces a socket file a dead owner left. The other workers are clients: they hand
each write to the owner as one write-ahead-log record (the log's own framing, checksummed) and answer their request
once the owner replies that it is durable. Nothing else is shared and nothing is elected: the kernel's lock decides,
and releases it when its holder dies. A client that cannot reach an owner tries to take the lock itself (replaying
the log, as any writer opening does) and becomes the owner; while another process holds it (an ``lsr index
--append``, or an owner still starting) it retries until ``write_lock_timeout``, then answers 503. A write whose
connection broke before the owner's reply (the owner died) may or may not be logged: it is sent again, to the next
owner. An upsert sent twice leaves the same documents; a delete sent twice finds nothing the second time (404).

Searches: the owner's Index is the writer's (snapshots include its buffer); a client's follows the writer's log
(index/follower.py); either way a worker sees an acknowledged write within ``refresh_interval``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import struct
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Awaitable, Callable

from lsr.index import Index, IndexCorrupt, IndexLocked, backup
from lsr.index.backup import BackupError, BackupExists, BackupInfo, BackupNotFound
from lsr.index.wal import DELETE, MAGIC, PUT, Record
from lsr.service.engine import NotReady
from lsr.service.settings import Settings

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<4sII")      # the log's record header: magic, body length, crc32 of the body
COMMAND = b"LSRC"                   # a snapshot command, framed like a record
_REPLY = struct.Struct("<I")        # reply: u32 length, then JSON
_CRED = struct.Struct("3i")         # SO_PEERCRED: pid, uid, gid


class WriterBusy(RuntimeError):
    """Another process kept the index's writer lock past the timeout (503, retry)."""


class WriteRefused(ValueError):
    """The writer refused the write as invalid (422); nothing was written."""


class WriterFailed(RuntimeError):
    """The write failed in the writer for another reason (500); the owner's log says why."""


_ERRORS = {c.__name__: c for c in (WriteRefused, BackupError, BackupExists, BackupNotFound)}


def address(folder: Path) -> Path:
    """The owner's socket for the index at ``folder``, in this user's private run folder."""
    run = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"lsr-{os.getuid()}"
    run.mkdir(mode=0o700, exist_ok=True)
    if run.stat().st_uid != os.getuid() or run.stat().st_mode & 0o077:
        raise PermissionError(f"{run} must belong to this user alone (mode 0700)")
    return run / f"writer-{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:24]}.sock"


class WritePath:
    def __init__(self, folder: Path, settings: Settings, index: Index, adopt: Callable[[Index], None],
                 damaged: Callable[[IndexCorrupt], str]):
        self.folder = folder
        self.settings = settings
        self.index = index            # writable when this process owns the writer
        self._adopt = adopt           # hands a newly opened writable Index to the engine
        self._damaged = damaged
        self._server: asyncio.AbstractServer | None = None
        self._taking: asyncio.Lock | None = None
        self.handed = 0               # writes sent to another process's writer
        self.served = 0               # writes this owner took from other processes

    @classmethod
    def open(cls, folder: Path, settings: Settings) -> tuple[Index, IndexCorrupt | None]:
        """The worker's Index at start: the writer's when its lock is free, else one following the log. A log that
        does not replay leaves a plain read-only Index and the error (the service is then not ready)."""
        try:
            return cls._writable(folder, settings), None
        except (IndexLocked, PermissionError):   # another process writes, or this one may not (read-only files)
            return Index.open(folder, verify=settings.verify_checksums, follow=True,
                              refresh_interval=settings.refresh_interval), None
        except IndexCorrupt as e:
            return Index.open(folder, verify=settings.verify_checksums), e

    @staticmethod
    def _writable(folder: Path, settings: Settings) -> Index:
        return Index.open(folder, verify=settings.verify_checksums, writable=True, lock_timeout=0,
                          refresh_interval=settings.refresh_interval, flush_docs=settings.flush_docs,
                          flush_age=settings.flush_age, upkeep_nice=settings.ingest_nice)

    @property
    def owner(self) -> bool:
        return self.index.writable

    # ---- the owner ----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Owner: starts answering other workers' writes (call from the worker's event loop)."""
        if self.owner and self._server is None:
            path = address(self.folder)
            path.unlink(missing_ok=True)   # a dead owner's: this process holds the writer lock now
            self._server = await asyncio.start_unix_server(self._serve, path=str(path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            _, uid, _ = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
            if uid != os.getuid():
                return
            request = await _read_request(reader)
            try:
                if isinstance(request, Record):
                    reply = {"count": await self._apply(request)}
                else:
                    info = await self._snapshot(Path(request["repository"]), request["name"])
                    reply = {"snapshot": asdict(info)}
                self.served += 1
            except (WriteRefused, BackupError) as e:
                reply = {"error": type(e).__name__, "detail": str(e)}
            except IndexCorrupt as e:
                reply = {"error": "damaged", "detail": self._damaged(e)}
            except Exception as e:  # noqa: BLE001 - the client answers 500; the reason stays in this log
                log.exception("a request handed over by another worker failed")
                reply = {"error": "failed", "detail": type(e).__name__}
            data = json.dumps(reply).encode()
            writer.write(_REPLY.pack(len(data)) + data)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass   # the client went away, or sent what is not a record: nothing was written
        finally:
            writer.close()

    async def _apply(self, record: Record) -> int:
        """Runs one write on this process's writer (off the event loop); the count of documents written or
        deleted. The same call for this worker's requests and those handed over."""
        index = self.index
        try:
            if record.op == PUT:
                await asyncio.to_thread(index.upsert, record.ids, record.vectors, record.docs)
                return len(record.ids)
            return await asyncio.to_thread(index.delete, record.ids)
        except IndexCorrupt:
            raise
        except ValueError as e:   # e.g. a metadata key whose kind the index already holds otherwise
            raise WriteRefused(str(e)) from e

    async def _snapshot(self, repository: Path, name: str | None) -> BackupInfo:
        return await asyncio.to_thread(backup.create, self.index, repository, name)

    # ---- any worker ---------------------------------------------------------------------------------------------
    async def write(self, op: int, ids: list[str], vectors=None, docs=None) -> int:
        """Writes through the index's writer, wherever it is; returns once durable (the count written)."""
        record = Record(0, op, ids, vectors, docs)
        return await self._call(record.encode(), lambda: self._apply(record))

    async def snapshot(self, repository: Path, name: str | None) -> BackupInfo:
        """A snapshot (lsr.index.backup) made by the index's writer, wherever it is: it flushes first, so the
        snapshot holds every write acknowledged before the call."""
        body = json.dumps({"repository": str(repository), "name": name}).encode()
        return await self._call(_HEAD.pack(COMMAND, len(body), zlib.crc32(body)) + body,
                                lambda: self._snapshot(repository, name))

    async def _call(self, frame: bytes, here: Callable[[], Awaitable]):
        deadline = time.monotonic() + self.settings.write_lock_timeout
        while True:
            if self.owner:
                return await here()
            try:
                return await self._hand(frame)
            except (ConnectionError, FileNotFoundError, asyncio.IncompleteReadError):
                pass   # no owner listening, or it died before replying: take the writer, or wait for one
            if await self._take_over():
                continue
            if time.monotonic() >= deadline:
                raise WriterBusy(f"the index is busy with another writer for more than "
                                 f"{self.settings.write_lock_timeout:g} s; retry")
            await asyncio.sleep(0.05)

    async def _hand(self, frame: bytes):
        reader, writer = await asyncio.open_unix_connection(str(address(self.folder)))
        try:
            writer.write(frame)
            await writer.drain()
            (length,) = _REPLY.unpack(await reader.readexactly(_REPLY.size))
            reply = json.loads(await reader.readexactly(length))
        finally:
            writer.close()
        self.handed += 1
        if "error" in reply:
            kind, detail = reply["error"], reply["detail"]
            if kind == "damaged":
                raise NotReady(detail)
            if kind in _ERRORS:
                raise _ERRORS[kind](detail)
            raise WriterFailed(f"the request failed in the writer ({detail}); the server log says why")
        return reply["count"] if "count" in reply else BackupInfo(**reply["snapshot"])

    async def _take_over(self) -> bool:
        """Takes the writer when no process holds its lock; True when this process owns it now."""
        self._taking = self._taking or asyncio.Lock()
        async with self._taking:
            if self.owner:
                return True
            # not on the niced ingest pool (the loop's default executor): the threads the open starts (the refresh
            # that makes writes searchable) take their opener's priority
            try:
                with ThreadPoolExecutor(1, thread_name_prefix="lsr-open") as opener:
                    index = await asyncio.get_running_loop().run_in_executor(opener, self._writable, self.folder,
                                                                             self.settings)
            except IndexLocked:
                return False
            log.warning("took over the index's writer (its previous owner is gone)")
            old, self.index = self.index, index
            self._adopt(index)
            old.close()
            await self.start()
            return True

    async def close(self) -> None:
        """Stops answering other workers, then closes the writer (committing its buffer) when this process owns
        it."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            address(self.folder).unlink(missing_ok=True)
        await asyncio.to_thread(self.index.close)

    def stats(self) -> dict:
        out = {"owner": self.owner, "handed": self.handed, "served": self.served}
        if self.owner:
            out.update(self.index.stats())
        return out


async def _read_request(reader: asyncio.StreamReader) -> Record | dict:
    """A write (one record as the log frames it) or a snapshot command (JSON, framed alike); ValueError for bytes
    that are neither."""
    magic, length, crc = _HEAD.unpack(await reader.readexactly(_HEAD.size))
    body = await reader.readexactly(length)
    if magic not in (MAGIC, COMMAND) or zlib.crc32(body) != crc:
        raise ValueError("not a request")
    if magic == COMMAND:
        return json.loads(body)
    record = Record.decode(body)
    if record.op not in (PUT, DELETE):
        raise ValueError("not a write")
    return record
