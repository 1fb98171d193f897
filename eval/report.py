"""The evaluation report: every result JSON of a folder as a Markdown table and an effectiveness/latency plot.

Each ``lsr eval ... --report DIR`` adds its result to DIR and redraws, so the trade-off between methods and their
parameters (nDCG@10 against mean query latency) is seen side by side, BM25 and hybrids included.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from lsr.core.atomic import atomic_open, atomic_write_text

MAIN_MEASURE = "nDCG@10"
_SETTING_KEYS = ("max_length", "window_overlap", "bm25", "splade_method")  # the same across a report's settings, or shown apart


def result_filename(result: dict) -> str:
    """A stable name per (dataset, model, method, params, k): trying a setting again replaces its old result."""
    key = json.dumps([result["dataset"], result["model"], result["method"], result["params"], result.get("k")],
                     sort_keys=True)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{result['dataset']}-{result['method']}").strip("_")
    return f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:10]}.json"


def load_results(folder: str | Path) -> list[dict]:
    results = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        for r in obj if isinstance(obj, list) else [obj]:
            if isinstance(r, dict) and {"dataset", "method", "metrics"} <= set(r):
                results.append(r)
    return results


def _varying(result: dict) -> dict:
    """The parameters that vary between settings (fixed ones like max_length are left out)."""
    if result["method"] == "bm25":
        return {}
    params = {k: v for k, v in result.get("params", {}).items()
              if k not in _SETTING_KEYS and not (k == "quantization" and v == "uint8")}
    if result["method"] == "hybrid":
        params = {"splade": result["params"].get("splade_method"), **params}
    return params


def setting_label(result: dict) -> str:
    inner = ", ".join(f"{k}={v}" for k, v in _varying(result).items())
    return f"{result['method']}({inner})" if inner else result["method"]


def _fmt(x, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _groups(results: list[dict]) -> dict[str, list[dict]]:
    """Results by collection and run depth: settings are only comparable within one."""
    groups: dict[str, list[dict]] = {}
    for r in sorted(results, key=lambda r: (r["dataset"], r.get("k") or 0)):
        groups.setdefault(f"{r['dataset']} (k={r.get('k')})", []).append(r)
    return groups


def markdown_table(results: list[dict]) -> str:
    out = []
    for title, group in _groups(results).items():
        rows = sorted(group, key=lambda r: -(r["metrics"].get(MAIN_MEASURE) or 0))
        measures = list(dict.fromkeys(m for r in rows for m in r["metrics"]))
        out += [f"### {title}", "",
                "| model | setting | " + " | ".join(measures) + " | mean ms | p99 ms | queries |",
                "|---|---|" + "---:|" * (len(measures) + 3)]
        for r in rows:
            cells = [r["model"], setting_label(r), *(_fmt(r["metrics"].get(m)) for m in measures),
                     _fmt(r.get("latency_ms"), 3), _fmt(r.get("latency_p99_ms"), 3), _fmt(r.get("queries"))]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def plot(results: list[dict], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _groups(results)
    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 5), squeeze=False)
    for ax, (title, group) in zip(axes[0], groups.items()):
        rows = [r for r in group if r.get("latency_ms")]
        for n, method in enumerate(sorted({r["method"] for r in rows})):
            pts = [(r["latency_ms"], r["metrics"].get(MAIN_MEASURE, 0.0), r) for r in rows if r["method"] == method]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker="os^vDP*X"[n % 8], label=method)
            for x, y, r in pts:  # the legend names the method; a point names only what differs
                label = ",".join(f"{k}={v}" for k, v in _varying(r).items() if k != "splade")
                ax.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("mean query latency (ms, one thread, log scale)")
        ax.set_ylabel(MAIN_MEASURE)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def write_report(folder: str | Path) -> tuple[Path, Path]:
    """Writes report.md and report.png into ``folder`` from the result JSONs there."""
    folder = Path(folder)
    results = load_results(folder)
    if not results:
        raise ValueError(f"{folder} holds no evaluation results (*.json written by lsr eval)")
    md, png = folder / "report.md", folder / "report.png"
    atomic_write_text(md, f"# Evaluation report\n\n{MAIN_MEASURE} against mean query latency: {png.name}\n\n"
                          + markdown_table(results))
    plot(results, png)
    return md, png
