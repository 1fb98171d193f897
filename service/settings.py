"""Service settings: every knob has a default and an ``LSR_`` environment variable (``LSR_MAX_K=100``), so the same
values reach ``create_app`` in tests, ``lsr serve`` and each uvicorn worker process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LSR_", extra="forbid")

    index_dir: Path | None = Field(None, description="index folder (lsr serve --index sets it)")
    indexes: dict[str, Path] = Field(default_factory=dict, description="several indexes by name, the first serving "
                                     "the single-index routes (env: a JSON object; lsr serve --index NAME=DIR sets "
                                     "it); when empty, index_dir alone, named after its folder")
    snapshot_dir: Path | None = Field(None, description="snapshots of index NAME go to snapshot_dir/NAME (default: "
                                      "<index folder>.snapshots beside each index; the same file system, hard links)")
    access_log: bool = Field(False, description="one line per request on stderr (service/access.py)")
    model: str | None = Field(None, description="query encoder; default: the model the index records")
    device: str = Field("cpu", description="device of the query encoder")
    hybrid: bool = Field(False, description="serve hybrid search: a live BM25 side over the stored texts "
                                            "(service/hybrid.py)")
    verify_checksums: bool = Field(True, description="check every index file's sha256 when a worker opens it")

    # auth (service/auth.py)
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                     description="accepted API keys (env: comma-separated)")
    api_keys_file: Path | None = Field(None, description="file of API keys, one per line (# comments)")
    protect_reads: bool = Field(False, description="reads (search, documents, stats, metrics) need a key too")

    # limits (service/limits.py and the request models)
    max_body_bytes: int = Field(1 << 20, ge=1024)
    max_query_chars: int = Field(2000, ge=1)
    max_query_terms: int = Field(1024, ge=1)
    max_k: int = Field(1000, ge=1)
    max_batch: int = Field(64, ge=1, description="queries per /search/batch call")
    max_field_hits: int = Field(2000, ge=1, description="hits with stored fields per request (sum of k over its "
                                                        "queries that ask for fields)")
    max_explain_hits: int = Field(1000, ge=1, description="hits with explanations per request (sum of k over its "
                                                          "queries that ask to explain)")
    max_documents: int = Field(10_000, ge=1, description="documents per POST /documents call")
    max_document_chars: int = Field(100_000, ge=1)
    max_ingest_bytes: int = Field(64 << 20, ge=1024, description="body of one POST /documents call (read as it "
                                                                 "streams; other requests: max_body_bytes)")
    write_lock_timeout: float = Field(10.0, ge=0, description="seconds a write waits for the index's writer when "
                                                              "no worker owns it (another process holds its lock)")

    # the long-lived writer (service/writepath.py, index/writer.py)
    refresh_interval: float = Field(1.0, ge=0, description="seconds until an acknowledged write is searchable in "
                                                           "every worker (0: at each search, costly under ingest)")
    flush_docs: int = Field(10_000, ge=1, description="the writer commits its buffer as a segment at this many "
                                                      "documents...")
    flush_age: float = Field(30.0, gt=0, description="...or when its oldest write is this many seconds old")

    # work off the event loop (service/offload.py) and shutdown (service/shutdown.py)
    search_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1,
                                description="threads that run searches, document reads and answer writing, so the "
                                            "event loop only reads requests and sends answers (default: cores)")
    stream_bytes: int = Field(1 << 20, ge=1024, description="answers larger than this are streamed in pieces of "
                                                            "about this size (memory stays bounded), smaller ones "
                                                            "sent whole")
    shutdown_drain_s: float = Field(0.5, ge=0, le=60, description="after SIGTERM, seconds of still accepting and "
                                    "reading requests before uvicorn's graceful shutdown (requests sent before the "
                                    "signal are read, then answered)")

    # query encoding (service/batcher.py)
    batch_window_ms: float = Field(2.0, ge=0, description="how long a query waits for others to share its batch")
    max_encode_batch: int = Field(64, ge=1)
    encode_threads: int = Field(1, ge=1, description="threads of the encoder (numpy's BLAS, or torch); more help "
                                "only on idle cores (oversubscribed OpenMP threads wait on each other: 10x slower "
                                "measured here)")
    document_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1,
                                  description="threads that encode the texts of document writes at once, with the "
                                  "numpy encoder (default: cores): a worker that holds every ingest connection still "
                                  "uses every core (the torch encoder takes one batch at a time)")
    ingest_nice: int = Field(10, ge=0, le=19, description="ingest work (parsing write bodies, the document "
                             "threads, the writer's applies, flushes and merges) runs this much nicer than searches, "
                             "which get the cores first when both want them (Linux; 0: same priority)")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split(cls, v):
        if isinstance(v, str):
            return [k.strip() for k in v.split(",") if k.strip()]
        return v

    def keys(self) -> list[str]:
        """Every configured key: ``api_keys`` plus the lines of ``api_keys_file``."""
        keys = list(self.api_keys)
        if self.api_keys_file is not None:
            lines = self.api_keys_file.read_text(encoding="utf-8").splitlines()
            keys += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        return keys
