"""A split's records in output order, gathered from the record table one slice at a time.

The global steps decide on thin rows (ids, keys, `_table_row`); the text stays in one record table. The
writers ask for slices (a shard, a batch of train.json), so a split is never held as a second copy
of the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ..record import RECORD_FIELDS

_GATHERED = [c for c in RECORD_FIELDS if c not in ("id", "copy_index")]
"""Record columns taken from the table; `id` and `copy_index` come with the order (copies differ)."""


@dataclass(frozen=True)
class SplitRecords:
    table: pl.DataFrame
    """Every record's columns (see Computed.table)."""
    order: pl.DataFrame
    """One row per output record, in output order: `_table_row` (the table row holding its columns), and
    the `id` and `copy_index` it is written with (a mixture copy shares its original's row)."""

    @classmethod
    def of(cls, table: pl.DataFrame, final: pl.DataFrame, split: str) -> SplitRecords:
        """`split`'s records in the corpus order: the seeded shuffle (`_order`), ties broken by id."""
        order = final.filter(pl.col("split") == split).sort("_order", "id").select("_table_row", "id", "copy_index")
        return cls(table, order)

    @property
    def height(self) -> int:
        return self.order.height

    def slice(self, offset: int, length: int | None = None) -> pl.DataFrame:
        """Records offset..offset+length as a frame of the record columns."""
        rows = self.order.slice(offset, length)
        at = rows["_table_row"]
        gathered = self.table.select(pl.col(_GATHERED).gather(at))  # only what is written: no keys, no `_x_*`
        return gathered.with_columns(rows["id"], rows["copy_index"].cast(pl.Int32)).select(RECORD_FIELDS)
