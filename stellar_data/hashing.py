"""Seeded, stable hashing: every per-record decision derives from hash(seed, key).

blake2b is used rather than Python's hash() (salted per process) or polars' hash (not stable
across versions), so decisions never depend on process, batch or shard boundaries.
"""

from __future__ import annotations

from hashlib import blake2b, sha256
from pathlib import Path

_UNIT = float(2**64)


def seeded_u64(seed: int, purpose: str, key: str) -> int:
    digest = blake2b(f"{seed}\x1f{purpose}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def seeded_unit(seed: int, purpose: str, key: str) -> float:
    """A number in [0, 1) fixed by (seed, purpose, key)."""
    return seeded_u64(seed, purpose, key) / _UNIT


def content_hash(instruction: str, input_: str, output: str) -> bytes:
    """16-byte digest of a normalized triple; the exact-dedup key."""
    return blake2b(f"{instruction}\x1f{input_}\x1f{output}".encode(), digest_size=16).digest()


def file_sha256(path: Path) -> str:
    digest = sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
