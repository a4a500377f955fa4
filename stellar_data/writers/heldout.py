"""astro_qa_heldout/: the held-out items as plain benchmark items, the input of a later evaluation.

Its own table and config (not in data/, which holds only record-schema splits). One row per item
and language; `answer` is the option letters (`C`, `BD`), `true` / `false` for judgments, or the
reference text for subjective items.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from .parquet import WrittenSplit, write_table

HELDOUT_DIR = "astro_qa_heldout"
OPTION = pa.struct([pa.field("label", pa.string(), nullable=False), pa.field("text", pa.string(), nullable=False)])
HELDOUT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("group", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("type_label", pa.string(), nullable=False),
        pa.field("subfield", pa.string(), nullable=False),
        pa.field("lang", pa.string(), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("options", pa.list_(pa.field("item", OPTION, nullable=False)), nullable=False),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("explanation", pa.string(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("original_id", pa.string(), nullable=True),
    ]
)


def heldout_table(records: pl.DataFrame) -> pa.Table:
    """records: held-out item records with their `_x_*` structured fields."""
    ordered = records.sort("group", "lang", "id")
    options = [
        [{"label": c, "text": row[f"_x_option_{c}"]} for c in "ABCDE" if row[f"_x_option_{c}"]]
        for row in ordered.select(f"_x_option_{c}" for c in "ABCDE").iter_rows(named=True)
    ]
    columns = {
        "id": ordered["id"],
        "group": ordered["group"],
        "source": ordered["source"],
        **{name: ordered[f"_x_{name}"] for name in ("type", "type_label", "subfield")},
        "lang": ordered["lang"],
        **{name: ordered[f"_x_{name}"] for name in ("question", "prompt")},
        "options": options,
        **{name: ordered[f"_x_{name}"] for name in ("answer", "explanation")},
        "source_file": ordered["source_file"],
        "original_id": ordered["original_id"],
    }
    return pa.table({k: v.to_arrow() if isinstance(v, pl.Series) else v for k, v in columns.items()}).cast(
        HELDOUT_SCHEMA
    )


def write_heldout(records: pl.DataFrame, directory: Path) -> WrittenSplit:
    if records.height == 0:
        return WrittenSplit([], 0)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "test-00000-of-00001.parquet"
    table = heldout_table(records)
    write_table(table, path)
    return WrittenSplit([path], table.nbytes)
