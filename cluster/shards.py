"""A sharded index: documents split by corpus order into N ordinary indexes that share one impact scale.

```
my-index/
  shards.json     format, version, the shared scale and quantization, model, vocabulary, and per shard its folder,
                  document count and first global document number
  shard-000/      an ordinary index (index.Index opens it alone)
  shard-001/
```
Every shard is built with the scale of the whole corpus (its largest weight / 255 for uint8), so a document scores
as it does in one index over all documents (up to float32 summation order: a shard keeps other common terms as dense
rows, so it adds a document's terms in another order, a few ulps), and a front that merges the shards' top-k returns
the one index's hits (``disagreements`` checks that). ``shards.json`` is written last, atomically: an interrupted build leaves nothing that opens.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from lsr.index.errors import IndexCorrupt
from lsr.core.atomic import atomic_write_text

FORMAT = "lsr-sharded-index"
VERSION = 1
LAYOUT = "shards.json"


@dataclass
class ShardInfo:
    name: str        # folder inside the sharded index
    docs: int
    first: int       # global number of its first document (shards hold consecutive ranges of the corpus)


@dataclass
class Layout:
    scale: float
    quantization: str
    model: str | None
    vocab_fingerprint: str | None
    vocab_size: int
    methods: list[str]
    shards: list[ShardInfo] = field(default_factory=list)
    build: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    version: int = VERSION

    @property
    def num_docs(self) -> int:
        return sum(s.docs for s in self.shards)

    def write(self, folder: Path) -> None:
        atomic_write_text(Path(folder) / LAYOUT, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def read(cls, folder: str | Path) -> "Layout":
        path = Path(folder) / LAYOUT
        if not path.exists():
            raise IndexCorrupt(f"{folder} is not a sharded index: no {LAYOUT}")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT or raw.get("version") != VERSION:
                raise IndexCorrupt(f"{path}: not a sharded index layout of version {VERSION}")
            shards = [ShardInfo(**s) for s in raw.pop("shards")]
            return cls(**raw, shards=shards)
        except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as e:
            raise IndexCorrupt(f"{path}: malformed layout ({e})") from e


def shard_name(i: int) -> str:
    return f"shard-{i:03d}"


def split_contiguous(sizes: Sequence[int], n: int) -> list[list[int]]:
    """Splits consecutive items (chunks or documents, of ``sizes`` documents each) into n consecutive groups of about
    equal document counts; every group is non-empty."""
    if not 1 <= n <= len(sizes):
        raise ValueError(f"cannot split {len(sizes)} chunks into {n} shards (1 <= shards <= chunks)")
    total, groups, acc = sum(sizes), [[] for _ in range(n)], 0
    g = 0
    for i, size in enumerate(sizes):
        # move to the next group once this one has its share, keeping one item for each group still to fill
        while g < n - 1 and groups[g] and (acc >= total * (g + 1) / n or len(sizes) - i <= n - 1 - g):
            g += 1
        groups[g].append(i)
        acc += size
    return groups


def disagreements(hits: Sequence[tuple[str, float]], one, terms, weights, k: int, method: str = "exact",
                  rtol: float = 1e-6) -> list[str]:
    """How ``hits`` (id, score) of a sharded search differ from the top ``k`` of ``one`` index over all documents:
    empty when they have the same scores and each hit is a document of ``one`` with its score, both to ``rtol``
    (float32 summation order); documents tied at the cut may stand in for each other."""
    import numpy as np

    scores, numbers = one.search_one(terms, weights, k=k + 20, method=method)   # deeper: ties at the cut
    ref = {one.doc_id(d): float(s) for s, d in zip(scores, numbers) if d >= 0}
    top = sorted(ref.values(), reverse=True)[:k]
    mine = sorted((s for _, s in hits), reverse=True)
    out = [] if len(mine) == len(top) and np.allclose(mine, top, rtol=rtol) else [f"scores {mine} != {top}"]
    return out + [f"{i}: {s} (one index: {ref.get(i)})" for i, s in hits
                  if i not in ref or abs(ref[i] - s) > rtol * abs(s)]
