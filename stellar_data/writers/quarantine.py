"""quarantine.parquet: every rejected item with source, file, location, rule and message."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..record import QUARANTINE_SCHEMA
from .parquet import to_arrow, write_table

QUARANTINE_NAME = "quarantine.parquet"


def write_quarantine(frame: pl.DataFrame, path: Path) -> None:
    ordered = frame.sort(["source", "file", "row", "rule"], nulls_last=True, maintain_order=True)
    write_table(to_arrow(ordered, QUARANTINE_SCHEMA), path)


def rejection_counts(quarantine: pl.DataFrame, source: str, deliberate: bool) -> dict[str, int]:
    """{rule: rows} of one source, for quarantined (deliberate=False) or excluded items."""
    rows = quarantine.filter((pl.col("source") == source) & (pl.col("deliberate") == deliberate))
    return dict(sorted(rows.group_by("rule").len().iter_rows()))
