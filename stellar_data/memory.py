"""Keep freed memory in the process for reuse, instead of handing it back to the OS at once.

glibc unmaps a freed block above its mmap threshold (128 KiB to start with) and trims the heap top
above its trim threshold, so the next batch's numpy scratch arrays and Python texts fault fresh,
zeroed pages in again. On the 2-core VMs we build on, touching fresh memory costs about 2.4 s per
GiB: the similarity fold of one 250k-record file ran in 1.8 s instead of 3.4 s with the thresholds
raised (docs/BENCHMARKS.md). The ingest worker processes set it (pipeline.py); the cost is a higher
resident size between batches, not a larger peak of live data. polars (jemalloc) and pyarrow
(mimalloc) manage their own memory and are unaffected.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB for this process; False where the C library
    is not glibc (nothing is changed there)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): no mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))
