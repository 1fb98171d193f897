"""Blocking work off the event loop: searches, document reads, index refreshes and the writing of answers run on a
thread pool (``LSR_SEARCH_THREADS`` threads), so the loop only accepts connections, reads requests and sends
answers. A loop that a search holds stops reading: health checks stall, and on SIGTERM uvicorn closes connections
whose requests it never read (service/shutdown.py).

An answer is written by a generator of JSON pieces, pulled on the pool: when all of it fits in ``stream_bytes`` it
goes out whole (with a Content-Length), otherwise it is streamed piece by piece as the client reads, so a request
for thousands of hits with their stored text never holds its whole answer in memory.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

from fastapi import Response
from fastapi.responses import StreamingResponse

JSON = "application/json"


class Offload:
    def __init__(self, threads: int, stream_bytes: int):
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="lsr-search")
        self.stream_bytes = stream_bytes

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def respond(self, pieces: Iterator[bytes]) -> Response:
        """The answer the generator ``pieces`` writes (on the pool): whole when small, else streamed."""
        first, done = await self.run(_take, pieces, self.stream_bytes)
        if done:
            return Response(first, media_type=JSON)

        async def rest():
            yield first
            while True:
                piece, finished = await self.run(_take, pieces, self.stream_bytes)
                if piece:
                    yield piece
                if finished:
                    return

        return StreamingResponse(rest(), media_type=JSON)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _take(pieces: Iterator[bytes], limit: int) -> tuple[bytes, bool]:
    """The next pieces joined, up to about ``limit`` bytes; and whether the generator is exhausted."""
    out, size = [], 0
    for piece in pieces:
        out.append(piece)
        size += len(piece)
        if size >= limit:
            return b"".join(out), False
    return b"".join(out), True
