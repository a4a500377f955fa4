"""Parquet shards `{split}-NNNNN-of-MMMMM.parquet`: explicit schema, zstd, page index."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_OPTIONS = {"compression": "zstd", "write_page_index": True, "write_statistics": True}

ROW_GROUP_RECORDS = 25_000
"""Records per row group of a shard: a shard is gathered, converted and written one row group at a
time, which bounds the memory a writer thread holds (and suits readers that stream row groups)."""


def to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """The frame as an Arrow table with exactly `schema` (never the inferred one)."""
    return frame.select(schema.names).to_arrow().cast(schema)


def write_table(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, **PARQUET_OPTIONS)


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


@dataclass(frozen=True)
class WrittenSplit:
    paths: list[Path]
    num_bytes: int
    """Arrow bytes of the split, as `datasets` counts them (`num_bytes` in a dataset card)."""


Mapper = Callable[[Callable[[int], int], Iterable[int]], Iterator[int]]


def write_shards(
    frame: pl.DataFrame,
    schema: pa.Schema,
    directory: Path,
    split: str,
    shard_records: int,
    map_shards: Mapper = map,
) -> WrittenSplit:
    """Write `frame` in order, at most `shard_records` rows per shard. Nothing for an empty frame.

    `map_shards`: how the shards are written, e.g. a thread pool's `map` to write them side by side
    (each shard is its own file, so the bytes do not depend on it)."""
    if frame.height == 0:
        return WrittenSplit([], 0)
    directory.mkdir(parents=True, exist_ok=True)
    count = -(-frame.height // shard_records)
    paths = [directory / shard_name(split, index, count) for index in range(count)]

    def write(index: int) -> int:
        start = index * shard_records
        end = min(start + shard_records, frame.height)
        num_bytes = 0
        with pq.ParquetWriter(paths[index], schema, **PARQUET_OPTIONS) as writer:
            for offset in range(start, end, ROW_GROUP_RECORDS):
                table = to_arrow(frame.slice(offset, min(ROW_GROUP_RECORDS, end - offset)), schema)
                writer.write_table(table)
                num_bytes += table.nbytes
        return num_bytes

    return WrittenSplit(paths, sum(map_shards(write, range(count))))
