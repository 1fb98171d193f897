"""Sharded search on Ray Serve: one deployment per shard (each replica holds that shard's index, memory-mapped) and
a front deployment that fans a query out to every shard, merges their top-k and answers over HTTP (or a handle).

A shard's top-k holds every document of that shard that can be in the global top-k, and all shards share one
impact scale (``cluster.shards``), so the merged hits are the hits of one index over all documents, scores included.
Ties are ordered by shard and then by the shard's own order, which is the one index's order when the documents are
not reordered. A shard call that fails because its replica died is sent again (Serve routes it to a live replica).
"""

import asyncio
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.exceptions import RayActorError

from lsr.cluster.shards import Layout

RETRIES = 6


class ShardUnavailable(RuntimeError):
    """No replica of a shard answered after every retry."""


class SearchRequest(BaseModel):
    """A text query (encoded by the front with the index's model) or a sparse one (term ids and weights)."""

    model_config = ConfigDict(extra="forbid")
    query: str | None = Field(None, max_length=10_000)
    indices: list[int] | None = Field(None, max_length=100_000)
    values: list[float] | None = Field(None, max_length=100_000)
    k: int = Field(10, ge=1, le=1000)
    method: str = "exact"
    params: dict[str, float | int | bool] = Field(default_factory=dict)


class Hit(BaseModel):
    id: str
    score: float
    rank: int


class SearchResponse(BaseModel):
    hits: list[Hit]
    took_ms: float
    shards: int


class ShardSearcher:
    """A replica of one shard."""

    def __init__(self, path: str):
        from lsr.index import Index

        self.index = Index.open(path, verify=False)

    def search(self, indices: np.ndarray, values: np.ndarray, k: int, method: str,
               params: dict) -> tuple[np.ndarray, list[str]]:
        """The shard's top-k: scores (float32) and external ids, best first."""
        scores, docs = self.index.search_one(indices, values, k=k, method=method, params=params)
        hit = docs >= 0
        return scores[hit], [self.index.doc_id(d) for d in docs[hit]]


api = FastAPI(title="lsr sharded search", description="Fans each query out to the shards and merges their top-k.")


@serve.ingress(api)
class ShardedFront:
    def __init__(self, layout: dict, *shards):
        self.layout = layout
        self.shards = shards
        self._encoder = None

    async def _ask(self, s: int, *args) -> tuple[np.ndarray, list[str]]:
        error = None
        for attempt in range(RETRIES):
            try:
                return await self.shards[s].search.remote(*args)
            except RayActorError as e:   # the replica died under the call: Serve sends the retry to a live one
                error = e
                await asyncio.sleep(0.01 * 2 ** attempt)
        raise ShardUnavailable(f"shard {s}: no replica answered after {RETRIES} tries ({error})")

    async def search(self, indices, values, k: int = 10, method: str = "exact", params: dict | None = None
                     ) -> list[tuple[str, float]]:
        """(id, score) of the top-k over all shards, best first."""
        indices, values = np.asarray(indices), np.asarray(values, dtype=np.float32)
        parts = await asyncio.gather(*(self._ask(s, indices, values, k, method, params or {})
                                       for s in range(len(self.shards))))
        ranked = sorted((-float(score), s, r, doc) for s, (scores, ids) in enumerate(parts)
                        for r, (score, doc) in enumerate(zip(scores, ids)))
        return [(doc, -neg) for neg, _, _, doc in ranked[:k]]

    def _encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        if self._encoder is None:
            from lsr.encoding.loader import load_query_encoder

            model = self.layout.get("model")
            if not model:
                raise ValueError("this index records no model, so text queries cannot be encoded; send indices/values")
            self._encoder = load_query_encoder(model)
        return self._encoder.encode_queries([text]).row(0)

    @api.post("/search", response_model=SearchResponse)
    async def http_search(self, body: SearchRequest) -> SearchResponse:
        start = time.perf_counter()
        if (body.query is None) == (body.indices is None or body.values is None):
            raise HTTPException(422, "send either 'query' (text) or both 'indices' and 'values'")
        try:
            indices, values = self._encode(body.query) if body.query is not None else (body.indices, body.values)
            hits = await self.search(indices, values, body.k, body.method, body.params)
        except ShardUnavailable as e:
            raise HTTPException(503, str(e)) from e
        except (ValueError, TypeError) as e:   # bad query, unknown method or parameter (raised in a shard)
            raise HTTPException(400, str(e).splitlines()[-1]) from e
        return SearchResponse(hits=[Hit(id=i, score=s, rank=r + 1) for r, (i, s) in enumerate(hits)],
                              took_ms=(time.perf_counter() - start) * 1e3, shards=len(self.shards))

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/stats")
    async def stats(self) -> dict[str, Any]:
        return {"documents": sum(s["docs"] for s in self.layout["shards"]), **self.layout}


def deploy(index_dir: str | Path, *, replicas: int = 1, cpus_per_replica: float = 1.0, front_replicas: int = 1,
           name: str = "lsr", route_prefix: str = "/", host: str = "127.0.0.1", port: int | None = 8000):
    """Runs a sharded index (``cluster.shards`` layout) on the connected Ray cluster as application ``name``:
    ``replicas`` per shard and a front that answers POST {route_prefix}search on host:port (``port`` None: no HTTP,
    handles only). Returns the front's handle, whose ``search`` method takes (indices, values, k, method, params)."""
    index_dir = Path(index_dir)
    layout = Layout.read(index_dir)
    serve.start(http_options={"host": host, "port": port} if port is not None else None,
                proxy_location="EveryNode" if port is not None else "Disabled")
    shard = serve.deployment(ShardSearcher)
    shards = [shard.options(name=s.name, num_replicas=replicas, ray_actor_options={"num_cpus": cpus_per_replica},
                            health_check_period_s=2).bind(str(index_dir / s.name)) for s in layout.shards]
    front = serve.deployment(ShardedFront).options(
        name="front", num_replicas=front_replicas, ray_actor_options={"num_cpus": min(cpus_per_replica, 1.0)})
    return serve.run(front.bind(asdict(layout), *shards), name=name, route_prefix=route_prefix)
