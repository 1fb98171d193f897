"""The ray profile of docker-compose.yml (no Docker engine here: the file is checked, not run)."""

import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_ray_profile_runs_a_cluster_an_indexer_and_the_sharded_front():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    ray = {name: s for name, s in services.items() if "ray" in s.get("profiles", [])}
    assert set(ray) == {"ray-head", "ray-worker", "ray-indexer", "ray-search"}
    assert ray["ray-head"]["command"][:2] == ["start", "--head"] and "8001:8001" in ray["ray-head"]["ports"]
    assert ray["ray-worker"]["command"][:3] == ["start", "--address", "ray-head:6379"]
    indexer, search = ray["ray-indexer"]["command"], ray["ray-search"]["command"]
    assert indexer[0] == "index" and "--ray" in indexer and indexer[indexer.index("--ray-address") + 1] == "ray-head:6379"
    assert search[0] == "serve-shards" and search[search.index("--index") + 1] == indexer[indexer.index("--output") + 1]
    assert ray["ray-search"]["depends_on"]["ray-indexer"]["condition"] == "service_completed_successfully"
    assert all("lsr-index:/index" in s["volumes"] for s in ray.values())
    assert ray["ray-head"]["build"]["args"]["EXTRAS"] == "ray" and "COPY cluster" in (REPO / "Dockerfile").read_text()
    if shutil.which("docker-compose"):
        out = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "--profile", "ray", "config",
                              "--quiet"], capture_output=True, text=True, env={**os.environ, "LSR_API_KEYS": "k"})
        assert out.returncode == 0, out.stderr
