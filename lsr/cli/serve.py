"""`lsr serve` (FastAPI under uvicorn over one index or several) and `lsr serve-shards` (Ray Serve over a sharded
index)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lsr.cli.common import echo_json, fail, reported

app = typer.Typer()


@app.command()
def serve(
    index_dirs: list[str] = typer.Option(..., "--index", help="index folder, or NAME=DIR; repeat it to serve several "
                                         "(routes /indexes/NAME/...; the first also serves /search, /documents, ...)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, min=0, max=65535),
    workers: int = typer.Option(1, min=1, help="worker processes; they share the memory-mapped index"),
    model: Optional[str] = typer.Option(None, help="query encoder (default: the model the index records)"),
    api_keys_file: Optional[Path] = typer.Option(None, help="API keys, one per line (or set LSR_API_KEYS)"),
    protect_reads: bool = typer.Option(False, help="searches and reads need an API key too"),
    hybrid: bool = typer.Option(False, help="serve hybrid search: a BM25 side over the stored texts that follows "
                                            "every write"),
    graceful_timeout: float = typer.Option(30.0, help="seconds that in-flight requests get to finish on SIGTERM"),
    snapshots: Optional[Path] = typer.Option(None, help="snapshots of index NAME go to SNAPSHOTS/NAME (default: "
                                                       "DIR.snapshots beside each index; hard links: same file system)"),
    access_log: bool = typer.Option(False, help="one line per request on stderr"),
    log_level: str = typer.Option("info"),
) -> None:
    """Serve an index over HTTP: FastAPI under uvicorn, OpenAPI at /docs. Other settings: LSR_* variables
    (lsr/service/settings.py)."""
    import json
    import os
    import tempfile

    import uvicorn
    from pydantic import ValidationError

    from lsr.index import Index, IndexCorrupt
    from lsr.index.wal import check_replay
    from lsr.service import listeners
    from lsr.service.indexes import check_names, parse_index
    from lsr.service.settings import Settings

    with reported(ValueError):
        pairs = [parse_index(value) for value in index_dirs]
        check_names([name for name, _ in pairs])   # the same name twice
    folders = dict(pairs)
    with reported(IndexCorrupt, OSError):
        opened = [Index.open(folder, verify=False) for folder in folders.values()]
        for idx in opened:
            check_replay(idx.path, idx.snapshot())   # a damaged log: refuse to start, saying how to recover
    idx = opened[0]
    given = {"INDEX_DIR": idx.path.resolve(),
             "INDEXES": json.dumps({name: str(folder.resolve()) for name, folder in folders.items()}),
             "MODEL": model, "API_KEYS_FILE": api_keys_file,
             "PROTECT_READS": "true" if protect_reads else None, "HYBRID": "true" if hybrid else None,
             "SNAPSHOT_DIR": snapshots.resolve() if snapshots else None, "ACCESS_LOG": "true" if access_log else None}
    os.environ.update({f"LSR_{k}": str(v) for k, v in given.items() if v is not None})
    try:
        settings = Settings()  # the workers read the same variables: fail here, once, on a bad value
        keys = settings.keys()
    except (ValidationError, OSError) as e:
        fail(f"service settings: {e}")
    if settings.protect_reads and not keys:
        fail("--protect-reads needs an API key: set LSR_API_KEYS or pass --api-keys-file (otherwise nothing could "
             "be read)")
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lsr-metrics-")  # /metrics sums workers
    options = dict(factory=True, host=host, port=port, workers=workers, timeout_graceful_shutdown=graceful_timeout,
                   log_level=log_level, access_log=False)
    if workers == 1 or not listeners.supported():
        uvicorn.run("lsr.service.app:from_env", **options)
        return
    from uvicorn.supervisors import Multiprocess   # uvicorn.run's own supervisor; each worker binds its own socket

    with reported(OSError):
        held = listeners.bind(host, port)
    typer.echo(f"lsr serving on http://{host}:{held.placeholder.getsockname()[1]} ({workers} workers, a socket "
               "each)", err=True)
    try:
        Multiprocess(uvicorn.Config("lsr.service.app:from_env", **options), sockets=held).run()
    finally:
        held.placeholder.close()


@app.command("serve-shards")
def serve_shards(
    index_dir: Path = typer.Option(..., "--index", help="a sharded index (lsr index --shards N)"),
    replicas: int = typer.Option(1, min=1, help="replicas of every shard"),
    cpus_per_replica: float = typer.Option(1.0, min=0.0, help="CPUs Ray reserves for each replica"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000, min=1, max=65535),
    ray_address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help="cluster to join (default: a local "
                                                                              "one)"),
) -> None:
    """Serve a sharded index on Ray Serve: a deployment per shard, a front that fans out and merges (POST /search)."""
    import time

    try:
        from lsr.cluster.connect import connect
        from lsr.cluster.serve import deploy
    except ImportError as e:
        fail(f"serve-shards needs Ray Serve: pip install 'lsr[ray]' ({e})")
    from lsr.index import IndexCorrupt

    connect(ray_address)
    with reported(IndexCorrupt):
        deploy(index_dir, replicas=replicas, cpus_per_replica=cpus_per_replica, host=host, port=port)
    echo_json({"url": f"http://{host}:{port}/search", "index": str(index_dir)})
    while True:   # Serve runs in the cluster; this process keeps the local cluster alive until Ctrl-C
        time.sleep(3600)
