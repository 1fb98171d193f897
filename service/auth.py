"""API keys: ``Authorization: Bearer <key>``, compared in constant time against every configured key.

Writes always need a key, and with no key configured they are refused (a fresh deployment is read-only, never open).
Reads need one only when ``protect_reads`` is set; reads are everything a reader could learn from: searches,
documents, stats, metrics, the OpenAPI schema and its console (/docs), and /readyz's details (probes get a bare
status without a key). No header: 401 (with ``WWW-Authenticate``); a wrong key: 403.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status


class ApiKeys:
    def __init__(self, keys: list[str], protect_reads: bool):
        self._keys = [k.encode("utf-8") for k in keys if k]
        self.protect_reads = protect_reads

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def _valid(self, given: str) -> bool:
        candidate = given.encode("utf-8")
        ok = False
        for key in self._keys:  # no early exit: the time taken does not say which key, or how much, matched
            ok |= hmac.compare_digest(candidate, key)
        return ok

    def allows(self, request: Request) -> bool:
        """Whether ``request`` may read (no exception: for answers that only leave out details)."""
        try:
            self.check(request, write=False)
        except HTTPException:
            return False
        return True

    def check(self, request: Request, write: bool) -> None:
        if not write and not self.protect_reads:
            return
        if write and not self.configured:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                "writes are disabled: no API key is configured (set LSR_API_KEYS or LSR_API_KEYS_FILE)")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "an API key is needed: send 'Authorization: Bearer <key>'",
                                headers={"WWW-Authenticate": "Bearer"})
        if not self._valid(given.strip()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this API key is not accepted")


async def require_read(request: Request) -> None:
    """FastAPI dependency of the read endpoints (async: a sync one would cost a thread hop per request)."""
    request.app.state.keys.check(request, write=False)


async def require_write(request: Request) -> None:
    """FastAPI dependency of the write endpoints."""
    request.app.state.keys.check(request, write=True)
