"""A split written in one pass: its Parquet shards and, for train, train.json.

Each batch (one row group) is gathered from the record table once and handed to two writer threads,
one per file kind, which write in order; meanwhile the main thread gathers the next batch. polars
and pyarrow encode and compress without the GIL, so the two files are written side by side, and at
most a few batches are in memory at a time.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..record import RECORD_SCHEMA
from .ordered import SplitRecords
from .parquet import ROW_GROUP_RECORDS, ShardSink, WrittenSplit, shard_name
from .train_json import TrainJsonSink


@dataclass(frozen=True)
class OutputConfig:
    """`[output]`."""

    shard_records: int = 100_000
    """Records per Parquet shard of a split."""
    train_json: bool = True
    """Also write train.json (the train split as one JSON array, as alpaca-lora reads it)."""


_IN_FLIGHT = 2
"""Writes queued before the main thread waits: bounds the batches held in memory."""


def write_split(
    records: SplitRecords,
    directory: Path,
    split: str,
    shard_records: int,
    train_json: Path | None = None,
    row_group_records: int = ROW_GROUP_RECORDS,
) -> WrittenSplit:
    """Shards `{split}-NNNNN-of-MMMMM.parquet` of at most `shard_records` records (none for an empty
    split), and train.json at `train_json` when given."""
    count = -(-records.height // shard_records)
    paths = [directory / shard_name(split, index, count) for index in range(count)]
    if paths:
        directory.mkdir(parents=True, exist_ok=True)
    shards = ShardSink(paths, RECORD_SCHEMA)
    json = TrainJsonSink(train_json, records.height) if train_json is not None else None
    batch_size = min(row_group_records, shard_records)
    try:
        with ThreadPoolExecutor(1) as shard_thread, ThreadPoolExecutor(1) as json_thread:
            pending: deque[Future[None]] = deque()
            for shard in range(count):
                end = min((shard + 1) * shard_records, records.height)
                for offset in range(shard * shard_records, end, batch_size):
                    batch = records.slice(offset, min(batch_size, end - offset))
                    pending.append(shard_thread.submit(shards.write, shard, batch))
                    if json is not None:
                        pending.append(json_thread.submit(json.write, batch))
                    while len(pending) > _IN_FLIGHT:
                        pending.popleft().result()
            for future in pending:
                future.result()
    finally:
        shards.close()
        if json is not None:
            json.close()
    return WrittenSplit(paths, shards.num_bytes)
