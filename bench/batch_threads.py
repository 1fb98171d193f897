"""Batch search on 1 and 2 threads over an existing index: the best of 5 interleaved passes of 3,000 queries each,
for the CPUs this process may use (pin them with taskset to choose the cores).

    taskset -c 0,4 python -m bench.batch_threads INDEX QUERIES.npz [METHOD]

A lighter probe than `lsr bench index` (no build, no peers) for machines where only the thread scaling is wanted.
"""

import json
import os
import sys
import time

import numpy as np

from lsr.index import Index
from lsr.core.vectors import load_vectors

idx = Index.open(sys.argv[1])
q = load_vectors(sys.argv[2]).vectors
q = q.take(np.arange(1000))
method = sys.argv[3] if len(sys.argv) > 3 else "exact"
idx.search(q, k=10, method=method, threads=2)
res = {}
for rnd in range(5):
    for t in (1, 2):
        s = time.perf_counter(); c = time.process_time()
        for _ in range(3):
            idx.search(q, k=10, method=method, threads=t)
        wall = time.perf_counter() - s
        res.setdefault(t, []).append((3000 / wall, (time.process_time() - c) / wall))
best = {t: max(v) for t, v in res.items()}
print(json.dumps({"cpus": sorted(os.sched_getaffinity(0)), "method": method, "qps1": round(best[1][0]), "qps2": round(best[2][0]),
                  "speedup": round(best[2][0] / best[1][0], 3), "cpu_per_wall2": round(best[2][1], 2)}))
