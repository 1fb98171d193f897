"""The access log (``lsr serve --access-log``, ``LSR_ACCESS_LOG``; off by default): one line per request, written
when its answer is complete, on the ``lsr.access`` logger (stderr):

    2026-12-06T15:45:51.123Z 127.0.0.1:51234 "POST /indexes/docs/search HTTP/1.1" 200 1234B 3.1ms

uvicorn's own access log is left off: it writes its line when an answer starts, so it has no size and no duration
(and a streamed answer is not finished then). The query string is left out: it never carries a key, but keeping the
line to the path keeps it to what every request has."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("lsr.access")


def _handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    return handler


class AccessLog:
    """ASGI middleware writing one line per HTTP request."""

    def __init__(self, app):
        self.app = app
        log.setLevel(logging.INFO)
        if not log.handlers:
            log.addHandler(_handler())
            log.propagate = False   # a root handler someone configured would print each line twice

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status, size = time.perf_counter(), 500, 0

        async def sending(message):
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            peer = f"{client[0]}:{client[1]}" if client else "-"
            log.info('%s "%s %s HTTP/%s" %d %dB %.1fms', peer, scope["method"], scope.get("raw_path", b"").decode(
                "latin-1") or scope["path"], scope.get("http_version", "1.1"), status, size,
                (time.perf_counter() - start) * 1000)
