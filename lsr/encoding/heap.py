"""Keep freed memory in the process on CPU inference.

glibc hands every block above its mmap threshold back to the kernel when it is freed, so each batch of a CPU
forward pass page-faults its activations in again: ~34,000 faults per 64 scifact documents with splade-tiny. At two
threads the faults of the two workers serialise on the process's memory map lock, and encoding ran at 1.33x its
one-thread speed; with freed memory kept it runs at ~1.7x (BENCHMARKS.md, "CPU documents"). The cost is that the
process keeps its peak working set instead of returning it between batches. Other C libraries are left alone.

Both CPU encoders set it (the torch ``Encoder`` on a CPU device, the numpy ``QueryEncoder`` always), so a serving
worker does too. The service used to do the opposite (128 KiB thresholds, to keep a torch encoder's resident
memory flat): every document batch it encoded then page-faulted ~79,000 times per 64 documents, and text ingest
over HTTP ran at 0.24x the encoder's own rate (0.57x with memory kept; BENCHMARKS.md, issue 16).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP = 1 << 30   # blocks up to 1 GiB come from the heap, and the heap is trimmed only above 1 GiB free


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library where it is glibc (whose malloc these settings are for), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


@functools.cache
def keep_freed_memory() -> bool:
    """Once per process: glibc keeps freed blocks for reuse. True where it applied (glibc), False elsewhere."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP))


def release_freed_memory() -> bool:
    """Hands the heap's free memory back to the system now (glibc ``malloc_trim``): for a long-lived process after
    its one-off start-up work (loading weights, packing the screen), whose temporaries the kept heap would otherwise
    hold for its lifetime. True where it applied."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
