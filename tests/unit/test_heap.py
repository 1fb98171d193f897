"""The CPU encoder keeps freed memory: a freed block is reused without page-faulting it back in."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc only")

# In a fresh process (the suite's encoders have applied it already): faults of a freed-and-reallocated 16 MiB
# block before and after keep_freed_memory().
PROBE = """
import resource, numpy as np
from lsr.encoding.heap import keep_freed_memory

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.empty(16 << 18, dtype=np.float32)
    block.fill(1.0)
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults(); default = faults()
applied = keep_freed_memory()
faults(); kept = faults()
print(default, applied, kept)
"""


def test_freed_blocks_are_reused_without_faults():
    default, applied, kept = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True,
                                            text=True).stdout.split()
    assert applied == "True"
    assert int(default) > 100 and int(kept) < int(default) / 10, (default, kept)


# Each CPU encoder in a fresh process, the numpy one as a serving worker loads it (``Engine.load_encoder`` over a
# real index): afterwards a freed 16 MiB block comes back without faults. The service once set 128 KiB
# thresholds there instead, and its text ingest ran at 0.24x the encoder's rate.
WORKER = """
import tempfile, numpy as np
from lsr.core.sparse import SparseBatch
from lsr.index import Index
from lsr.service.engine import Engine
from lsr.service.metrics import Metrics
from lsr.service.settings import Settings
from lsr.encoding.query import QueryEncoder
vocab = QueryEncoder.from_pretrained('splade-tiny').vocab_size
docs = SparseBatch(np.array([0, 1, 2]), np.array([5, 7]), np.array([1.0, 2.0], np.float32), vocab)
index = Index.build(tempfile.mkdtemp() + '/ix', docs, ['a', 'b'], model='splade-tiny')
engine = Engine(index, Settings(), Metrics())
engine.load_encoder()
assert engine.encoder is not None, engine.load_error
from lsr.encoding import screen
assert not screen.available() or "packed_decoder" in vars(engine.encoder.network)   # warmed up before the trim
"""
LOADERS = {
    "torch": "from lsr.encoding.encoder import Encoder; Encoder.from_pretrained('splade-tiny', device='cpu')",
    "service worker": WORKER,
}


@pytest.mark.parametrize("encoder", sorted(LOADERS))
def test_cpu_encoders_apply_it(encoder):
    probe = PROBE.replace("applied = keep_freed_memory()", LOADERS[encoder] + "\napplied = True")
    default, _, kept = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                      text=True).stdout.split()
    assert int(default) > 100 and int(kept) < int(default) / 10, (default, kept)
