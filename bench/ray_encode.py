"""Encoding throughput on Ray Data actors against one process encoding the same chunks, in the same run.

    python -m bench.ray_encode --corpus data/windows.jsonl --docs 1536 --chunk-docs 128 \
        --actors 1 --actors 2 --rounds 3 --output bench/results/ray_encode_cpu.json
    python -m bench.ray_encode --corpus windows.jsonl --docs 65536 --chunk-docs 8192 --device cuda \
        --actors 1 --batch-size 128 --rounds 1 --output ray_encode_gpu.json    # on a GPU machine

The first ``--docs`` documents of the corpus are cut into chunks; the baseline encodes them chunk by chunk in this
process (``torch`` on all the CPUs, or the GPU), then each Ray configuration encodes them again with ``cluster.encode``
(a fresh Ray Data pipeline: actors start, load the model, encode). Reported per configuration: wall docs/s (actor
start-up included), steady docs/s (after every actor delivered its first chunk), start-up seconds, and whether the
vectors equal the baseline's bit for bit.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def slice_corpus(source: str, docs: int, folder: Path) -> Path:
    from lsr.core.corpus import read_corpus

    path = folder / "slice.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for d in itertools.islice(read_corpus(source), docs):
            f.write(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n")
    return path


def baseline(plan, settings, device: str) -> tuple[dict, list]:
    """One process, the same chunks, the same encoder settings."""
    from lsr.encoding.encoder import Encoder

    t = time.perf_counter()
    encoder = Encoder.from_pretrained(settings.model, device=device)
    load = time.perf_counter() - t
    encoder.encode_documents(["warm up the kernels"] * 4)
    parts, t = [], time.perf_counter()
    for chunk in plan.chunks:
        docs = plan.read(chunk)
        parts.append(encoder.encode_documents([d.full_text for d in docs], max_length=settings.max_length,
                                              batch_size=settings.batch_size))
    seconds = time.perf_counter() - t
    return {"name": "one process", "actors": 0, "model_load_s": round(load, 2), "seconds": round(seconds, 2),
            "docs_per_s": round(plan.num_docs / seconds, 1)}, parts


def on_ray(plan, settings, device: str, actors: int, reference: list, folder: Path) -> dict:
    from lsr.cluster.chunklog import ChunkLog
    from lsr.cluster.encode import encode_chunks

    log = ChunkLog.open(folder / f"chunks-{actors}", settings.job(plan, device))
    arrivals = []
    start = time.perf_counter()
    report = encode_chunks(plan, log, settings, device, actors=actors,
                           progress=lambda n: arrivals.append((time.perf_counter() - start, n)))
    wall = time.perf_counter() - start
    first = min(actors, len(arrivals)) - 1            # the last actor's first chunk: every actor is running
    steady_docs = sum(n for _, n in arrivals[first + 1:])
    steady_s = arrivals[-1][0] - arrivals[first][0]
    same = all(np.array_equal(getattr(log.load(c.number).vectors, a), getattr(reference[c.number], a))
               for c in plan.chunks for a in ("indptr", "indices", "values"))
    return {"name": f"ray {actors} actor{'s' if actors > 1 else ''}", "actors": actors, "seconds": round(wall, 2),
            "docs_per_s": round(report.docs / wall, 1),
            "steady_docs_per_s": round(steady_docs / steady_s, 1) if steady_s > 0 else None,
            "startup_s": round(arrivals[first][0], 2), "actor_encode_s": round(report.actor_seconds, 2),
            "identical_vectors": bool(same)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True)
    p.add_argument("--docs", type=int, default=2048)
    p.add_argument("--chunk-docs", type=int, default=256)
    p.add_argument("--actors", type=int, action="append")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--model", default="splade-tiny")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    p.add_argument("--output", type=Path, default=Path("bench/results/ray_encode_cpu.json"))
    args = p.parse_args()

    import os

    import torch

    from lsr.cluster.connect import connect
    from lsr.cluster.encode import EncodeSettings
    from lsr.core.chunks import plan_chunks

    folder = Path(tempfile.mkdtemp(prefix="lsr-ray-encode-"))
    plan = plan_chunks(slice_corpus(args.corpus, args.docs, folder), args.chunk_docs)
    settings = EncodeSettings(args.model, args.max_length, args.batch_size, args.device)
    cpus = args.cpus or os.cpu_count()
    torch.set_num_threads(cpus)
    connect(num_cpus=cpus)
    rounds, reference = [], None
    for n in range(args.rounds):   # interleaved rounds: every configuration sees the machine's drift alike
        base, parts = baseline(plan, settings, args.device)
        reference = reference or parts
        rows = [base] + [on_ray(plan, settings, args.device, a, reference, folder / f"r{n}")
                         for a in args.actors or [1, 2]]
        for r in rows[1:]:
            r["steady_vs_one_process"] = round(r["steady_docs_per_s"] / base["docs_per_s"], 2)
        rounds.append(rows)
    median = []
    for i in range(len(rounds[0])):   # per configuration, the round with the median steady rate
        runs = sorted((r[i] for r in rounds), key=lambda r: r.get("steady_docs_per_s", r["docs_per_s"]))
        median.append({**runs[len(runs) // 2], "steady_vs_one_process_by_round": [r[i].get("steady_vs_one_process")
                                                                                  for r in rounds]})
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"{cpus} CPUs"
    report = {"corpus": args.corpus, "docs": plan.num_docs, "chunk_docs": args.chunk_docs, "model": args.model,
              "batch_size": args.batch_size, "device": device, "load": os.getloadavg(), "median": median, "rounds": rounds}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{plan.num_docs} docs of {args.corpus}, chunks of {args.chunk_docs}, {device}")
    print(f"median of {args.rounds} interleaved rounds; steady vs one process by round in the JSON")
    print(f"{'run':<19}{'wall docs/s':>12}{'steady docs/s':>15}{'start-up s':>12}{'identical':>11}")
    for r in median:
        print(f"{r['name']:<19}{r['docs_per_s']:>12}{str(r.get('steady_docs_per_s', r['docs_per_s'])):>15}"
              f"{str(r.get('startup_s', '-')):>12}{str(r.get('identical_vectors', '-')):>11}")


if __name__ == "__main__":
    main()
