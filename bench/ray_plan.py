"""Capacity planning for MS MARCO v1 (8.8M passages) and v2 (138M): memory per document measured on a real index,
shards per 64 GiB node, and encoding hours per GPU at measured documents per second.

    python -m bench.ray_plan --docs data/windows.npz --texts data/windows.jsonl \
        --gpu-results bench/results/head_gpu_h100_model_e2e.json --output bench/results/ray_plan.json

The index (exact + bmp + seismic, uint8, default parameters) is built once; its files are grouped by what they
serve. A node keeps the search arrays of its shards in memory (page cache); the stored texts are read only for the
hits shown, so they need disk, not memory. Memory per node for the index: 64 GiB less 16 GiB for the OS, the
processes and query working memory.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

GIB = 1 << 30
CORPORA = {"MS MARCO v1 passages": 8_841_823, "MS MARCO v2 passages": 138_364_198}
NODE_GIB, RESERVED_GIB = 64, 16


def group(name: str) -> str:
    if name == "docs.arrow":
        return "stored texts"
    if name.startswith(("fwd_",)):
        return "forward index"
    if name.startswith(("post_", "term_")):
        return "postings (exact)"
    return name.split(".")[0]   # bmp.*, seismic.*


def gpu_rates(path: Path | None) -> dict:
    """docs/s of one GPU end to end (bench/head_gpu.py's end-to-end run, issue 3), by model size."""
    if path is None or not path.exists():
        return {}
    runs = json.loads(path.read_text()).get("e2e", [])
    return {f"{r['model']} (bf16, {json.loads(path.read_text())['device']})": r["ours_docs_s"] for r in runs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=Path, required=True)
    p.add_argument("--texts", help="corpus with the texts to store (matched by id)")
    p.add_argument("--gpu-results", type=Path)
    p.add_argument("--output", type=Path, default=Path("bench/results/ray_plan.json"))
    args = p.parse_args()

    from lsr.index import Index
    from lsr.core.corpus import read_corpus
    from lsr.core.vectors import load_vectors

    vf = load_vectors(args.docs)
    ids = [str(i) for i in vf.ids]
    texts = None
    if args.texts:
        found = {d.id: d for d in read_corpus(args.texts)}
        texts = [found[i] for i in ids]
    folder = Path(tempfile.mkdtemp(prefix="lsr-ray-plan-"))
    t = time.perf_counter()
    idx = Index.build(folder / "idx", vf.vectors, ids, texts=texts, methods=("exact", "bmp", "seismic"))
    build_s = time.perf_counter() - t
    n = idx.num_docs
    groups: dict[str, int] = {}
    for seg in idx.manifest.segments:
        for name, meta in seg.files.items():
            groups[group(name)] = groups.get(group(name), 0) + meta["bytes"]
    per_doc = {g: round(b / n, 1) for g, b in sorted(groups.items())}
    searched = {"exact": per_doc["forward index"] + per_doc["postings (exact)"]}
    searched["exact+bmp"] = searched["exact"] + per_doc.get("bmp", 0)
    searched["exact+bmp+seismic"] = searched["exact+bmp"] + per_doc.get("seismic", 0)
    usable = (NODE_GIB - RESERVED_GIB) * GIB
    rates = gpu_rates(args.gpu_results)
    table = []
    for corpus, docs in CORPORA.items():
        for layout, b in searched.items():
            table.append({"corpus": corpus, "docs": docs, "methods": layout, "bytes_per_doc": b,
                          "index_gib": round(docs * b / GIB, 1), "texts_gib": round(docs * per_doc["stored texts"] / GIB, 1),
                          "shards_on_64gib_nodes": math.ceil(docs * b / usable),
                          "gpu_hours": {m: round(docs / r / 3600, 2) for m, r in rates.items()}})
    report = {"measured_on": str(args.docs), "docs": n, "terms_per_doc": round(vf.vectors.nnz / n, 1),
              "build_s": round(build_s, 1), "bytes_per_doc": per_doc, "searched_bytes_per_doc": searched,
              "node_gib": NODE_GIB, "reserved_gib": RESERVED_GIB, "gpu_docs_per_s": rates, "table": table}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{n} docs of {args.docs}, {report['terms_per_doc']} terms/doc; bytes per doc: {per_doc}")
    for r in table:
        print(f"{r['corpus']:<22}{r['methods']:<20}{r['bytes_per_doc']:>8} B/doc{r['index_gib']:>9} GiB"
              f"{r['shards_on_64gib_nodes']:>4} nodes  GPU h: {r['gpu_hours']}")


if __name__ == "__main__":
    main()
