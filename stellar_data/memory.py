"""Keep freed memory in the process for reuse, instead of handing it back to the OS at once.

glibc unmaps a freed block above its mmap threshold (128 KiB to start with) and trims the heap top
above its trim threshold, so the next batch's numpy scratch arrays and Python texts fault fresh,
zeroed pages in again. On the 2-core VMs we build on, touching fresh memory costs about 2.4 s per
GiB: the similarity fold of one 250k-record file ran in 1.8 s instead of 3.4 s with the thresholds
raised (docs/BENCHMARKS.md). The ingest worker processes set it (executor.py); the cost is a higher
resident size between batches, not a larger peak of live data. polars' allocator (jemalloc) keeps
freed pages only as long as its decay time, 0.5 s as polars sets it: the workers are started with
5 s (`started_keeping_freed_memory`), which cut the 1M build's page faults from 1.45M to 1.04M.
Python's side: `collector_paused` spares the workers' parsed batches the cyclic collector's rescans.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager

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


JEMALLOC_CONF = "_RJEM_MALLOC_CONF"
"""The environment variable polars' allocator (jemalloc, prefixed `_rjem_`) reads its options from
when a process starts. polars' own import sets it to 500 ms / 1 s decay, followed by what was already
in it: the last value of an option wins."""
KEEP_DIRTY_PAGES = "dirty_decay_ms:5000,muzzy_decay_ms:5000"
"""5 s: longer than an ingest task takes, so the next task reuses the pages the last one freed. With
no decay at all (-1) the faults fell as far (0.98M against 1.04M at 1M records), but every worker then
held its peak to the end: the every-step build's tree peaked at 3.93 GB against 3.69 GB."""


@contextmanager
def started_keeping_freed_memory() -> Iterator[None]:
    """Processes started inside this block run polars' allocator with a 5 s decay instead of 0.5 s:
    pages it frees stay in the process for the next span or file, instead of going back to the OS
    and faulting in fresh (see above). For the ingest workers, which build and drop the same few
    hundred MB for every task. jemalloc reads its options once, at process start, so they go into the
    environment the processes inherit, after any already there, and are taken out again when the
    block ends.
    """
    inherited = os.environ.get(JEMALLOC_CONF)
    os.environ[JEMALLOC_CONF] = KEEP_DIRTY_PAGES if not inherited else f"{inherited},{KEEP_DIRTY_PAGES}"
    try:
        yield
    finally:
        if inherited is None:
            os.environ.pop(JEMALLOC_CONF, None)
        else:
            os.environ[JEMALLOC_CONF] = inherited


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off inside the block, and back as it was after it.

    An ingest batch keeps ~10^5 parsed JSON values alive until it is assembled, so the collector,
    run every 700 new container objects, scans them over and over: 0.6 s of the workers' CPU at 1M
    records (perf). Parsed JSON holds no reference cycles; reference counting frees it all.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
