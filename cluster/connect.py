"""Joining a Ray cluster (or starting a local one) so that its workers import this same lsr."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])   # the folder that holds lsr/, index/ and cluster/


def connect(address: str | None = None, num_cpus: int | None = None, **kwargs) -> None:
    """``ray.init``: ``address`` None starts a local cluster (or joins RAY_ADDRESS), "auto" joins the running one,
    "HOST:PORT" or "ray://HOST:PORT" a remote one. Workers get this checkout on their PYTHONPATH (where it exists on
    a node; elsewhere lsr must be installed). No dashboard, and a local cluster binds to loopback only."""
    local = address is None and not os.environ.get("RAY_ADDRESS")
    if local:   # a one-node cluster advertises 127.0.0.1, not the host's address (read when ray is first imported)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    ray.init(address=address, num_cpus=num_cpus if local else None, include_dashboard=False if local else None,
             runtime_env={"env_vars": {"PYTHONPATH": path}}, log_to_driver=False,
             **({"_node_ip_address": "127.0.0.1"} if local else {}), **kwargs)
