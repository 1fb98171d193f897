"""Crafted index files: segment arrays rewritten (an element set to a boundary value, an array cut short or widened,
another dtype) and manifest numbers edited, every checksum recomputed, so that only the structure checks stand
between the files and the kernels. A child process with Numba's bounds checks on (its own kernel cache: they are
compiled with the checks) opens each copy, searches it with every method and reads its documents: it must refuse
the copy (IndexCorrupt) or answer without any access out of bounds (an IndexError) or other error. A crash of the
child fails the test too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import index_fuzz

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from pathlib import Path
import numba
import numpy as np
from tests import index_fuzz

@numba.njit
def _probe(a, i):
    return a[i]

try:   # the bounds checks are on: an index out of range raises instead of reading
    _probe(np.zeros(3), 5)
    print("BOUNDSCHECK OFF", flush=True)
except IndexError:
    print("BOUNDSCHECK ON", flush=True)
pristine, work, n, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mutations = index_fuzz.crafted(pristine, np.random.default_rng(seed), n)
failures = index_fuzz.run(pristine, work, mutations, None, log=lambda label: print(label, flush=True))
print("FAILURES", len(failures), flush=True)
for f in failures:
    print(f, flush=True)
"""


def test_crafted_files_are_refused_or_read_within_bounds(tmp_path):
    pristine = tmp_path / "index"
    index_fuzz.build(pristine)
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"),
           "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(pristine), str(tmp_path / "work"), "160", "23"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0, f"the child died ({out.returncode}) after: {lines[-1:]}\n{out.stderr[-3000:]}"
    assert lines[0] == "BOUNDSCHECK ON"
    summary = next(i for i, line in enumerate(lines) if line.startswith("FAILURES"))
    assert lines[summary] == "FAILURES 0", "\n".join(lines[summary:summary + 20])
    assert summary == 161   # every mutation ran
