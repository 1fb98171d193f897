"""Recall against latency, one curve per method: what an approximate method buys, and at what recall it pays; and
latency against corpus size, one curve per method: how each grows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

_STYLE = {"exact": ("black", "*"), "scipy": ("gray", "X"), "peer-splade-index": ("tab:brown", "P"),
          "bmp": ("tab:green", "^"), "peer-bmp": ("tab:olive", "v"), "seismic": ("tab:blue", "o"),
          "peer-seismic": ("tab:orange", "s")}


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (recall, ms) points no other point beats on both: highest recall first, latency falling."""
    front, best = [], np.inf
    for r, t in sorted(points, key=lambda p: (-p[0], p[1])):
        if t < best:
            front.append((r, t))
            best = t
    return front


def recall_latency(report: dict, path: Path, title: str = "") -> None:
    """Every setting as a faint point, each method's Pareto front as a line; log latency axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = f"recall@{report['k']}"
    fig, ax = plt.subplots(figsize=(8, 5))
    for name in dict.fromkeys(e["name"] for e in report["methods"]):
        pts = [(e[key] if key in e else e["recall@10"], e["mean_ms"]) for e in report["methods"] if e["name"] == name]
        color, marker = _STYLE.get(name, ("tab:purple", "d"))
        ax.scatter(*zip(*pts), color=color, marker=marker, alpha=0.2, s=12)
        front = pareto(pts)
        ax.plot(*zip(*front), color=color, marker=marker, markersize=5, label=name)
    ax.set_yscale("log")
    ax.set_xlabel(f"{key} against exact float32 scores")
    ax.set_ylabel("mean latency per query (ms, one thread)")
    ax.set_title(f"{title}: {report['docs']:,} documents, {report['queries']:,} queries".lstrip(": "))
    _save(fig, ax, path)


def _save(fig, ax, path: Path) -> None:
    import matplotlib.pyplot as plt

    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def growth(series: dict[str, list[dict]], path: Path, title: str = "") -> None:
    """Latency against corpus size (the series of ``bench.scale.growth``): mean (solid) and p99 (dotted), log-log,
    one colour per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (label, points) in enumerate(series.items()):
        color = f"C{i}"
        x = [p["docs"] for p in points]
        ax.plot(x, [p["mean_ms"] for p in points], marker="o", color=color, label=label)
        ax.plot(x, [p["p99_ms"] for p in points], linestyle=":", color=color, alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("documents")
    ax.set_ylabel("latency per query, ms (one thread; solid: mean, dotted: p99)")
    ax.set_title(title or "search latency against corpus size")
    _save(fig, ax, path)
