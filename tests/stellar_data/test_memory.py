"""The allocator settings for builds: glibc's thresholds raised where glibc is the C library, and
polars' allocator with a longer decay in the ingest worker processes; the cyclic collector paused
while a worker parses."""

from __future__ import annotations

import gc
import os
import platform
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from stellar_data.memory import (
    JEMALLOC_CONF,
    KEEP_DIRTY_PAGES,
    collector_paused,
    keep_freed_memory,
    started_keeping_freed_memory,
)


def test_keep_freed_memory_applies_on_glibc_and_is_a_no_op_elsewhere() -> None:
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is on_glibc
    assert keep_freed_memory() is on_glibc  # idempotent


def _allocator_options() -> str:
    import polars  # noqa: F401  (its import writes its own options first)

    return os.environ[JEMALLOC_CONF]


def test_a_process_started_in_the_block_runs_polars_with_the_longer_decay() -> None:
    before = os.environ.get(JEMALLOC_CONF)  # polars, imported by this process, has set its own
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        with started_keeping_freed_memory():
            options = pool.submit(_allocator_options).result()
        assert os.environ.get(JEMALLOC_CONF) == before
    # jemalloc takes the last value of an option: ours comes after polars' 500 ms
    assert options.endswith(KEEP_DIRTY_PAGES)
    assert options.rindex("dirty_decay_ms:5000") > options.rindex("dirty_decay_ms:500,")


def test_the_environment_is_put_back_even_when_the_variable_was_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(JEMALLOC_CONF, raising=False)
    with started_keeping_freed_memory():
        assert os.environ[JEMALLOC_CONF] == KEEP_DIRTY_PAGES
    assert JEMALLOC_CONF not in os.environ


def test_the_collector_is_off_in_the_block_and_on_again_after_it() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_is_on_again_when_the_block_raises() -> None:
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("a bad file")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
