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


def test_cpu_encoder_applies_it():
    from lsr.encoding.encoder import Encoder
    from lsr.encoding.heap import keep_freed_memory

    Encoder.from_pretrained("splade-tiny", device="cpu")
    assert keep_freed_memory.cache_info().currsize == 1
