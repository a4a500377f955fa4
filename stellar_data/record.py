"""The record: one explicit Arrow schema, mirrored by schemas/record.schema.json."""

from __future__ import annotations

from functools import cache
from typing import Any

import polars as pl
import pyarrow as pa

TEXT_FIELDS = ("instruction", "input", "output")

EXTRA_PREFIX = "_x_"
"""Columns holding an adapter's structured fields (RawItem.extra) beside the record columns, while a
build runs; never written to the record shards."""

RECORD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("instruction", pa.string(), nullable=False),
        pa.field("input", pa.string(), nullable=False),
        pa.field("output", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("lang", pa.string(), nullable=False),
        pa.field("group", pa.string(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),
        pa.field("template_id", pa.string(), nullable=True),
        pa.field("original_id", pa.string(), nullable=True),
        pa.field("copy_index", pa.int32(), nullable=False),
    ]
)
RECORD_FIELDS = tuple(RECORD_SCHEMA.names)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("file", pa.string(), nullable=False),
        pa.field("location", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=True),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
        pa.field("deliberate", pa.bool_(), nullable=False),
        pa.field("id", pa.string(), nullable=True),
        pa.field("raw", pa.string(), nullable=True),
    ]
)
QUARANTINE_FIELDS = tuple(QUARANTINE_SCHEMA.names)

RAW_EXCERPT_CHARS = 2000
"""Quarantine rows keep at most this much of the offending input, enough to find and fix it."""


@cache
def frame_schema(schema: pa.Schema) -> pl.Schema:
    """The polars schema of an Arrow schema. Built from record batches: pyarrow's `empty_table` and
    `from_pydict` import pandas (0.2 s in every worker process)."""
    return pl.from_arrow(pa.Table.from_batches([], schema)).schema


def quarantine_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Quarantine rows (dicts keyed by QUARANTINE_FIELDS) as a frame of QUARANTINE_SCHEMA's types."""
    return pl.DataFrame(
        {name: [row[name] for row in rows] for name in QUARANTINE_FIELDS}, schema=frame_schema(QUARANTINE_SCHEMA)
    )
