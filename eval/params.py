"""Parameters given on the command line as KEY=VALUE, where a comma list of values sweeps a grid of settings."""

from __future__ import annotations

import itertools
from typing import Any, Sequence


def parse_value(text: str) -> Any:
    """An int, a float, a bool (true/false) or else the string itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_settings(items: Sequence[str]) -> list[dict[str, Any]]:
    """["alpha=0.8,1.0", "beta=0.5"] -> [{"alpha": 0.8, "beta": 0.5}, {"alpha": 1.0, "beta": 0.5}]; [] -> [{}]."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier() or not values.strip():
            raise ValueError(f"a parameter is KEY=VALUE or KEY=V1,V2,... (a sweep), got {item!r}")
        if key in grid:
            raise ValueError(f"parameter {key!r} is given twice; list its values as {key}=V1,V2")
        grid[key] = [parse_value(v) for v in values.split(",")]
    return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
