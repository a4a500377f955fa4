"""The allocator setting for builds: glibc's thresholds raised where glibc is the C library."""

from __future__ import annotations

import platform

from stellar_data.memory import keep_freed_memory


def test_keep_freed_memory_applies_on_glibc_and_is_a_no_op_elsewhere() -> None:
    on_glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is on_glibc
    assert keep_freed_memory() is on_glibc  # idempotent
