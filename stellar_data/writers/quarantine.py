"""quarantine.parquet: every rejected item with source, file, location, rule and message."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..record import QUARANTINE_SCHEMA
from ..steps.quality import FILTER_RULES
from .parquet import to_arrow, write_table

QUARANTINE_NAME = "quarantine.parquet"


def write_quarantine(frame: pl.DataFrame, path: Path) -> None:
    ordered = frame.sort(["source", "file", "row", "rule"], nulls_last=True, maintain_order=True)
    write_table(to_arrow(ordered, QUARANTINE_SCHEMA), path)


REJECTION_KINDS = ("quarantined", "excluded", "filtered")
"""How a record-local step refused an item: a rule found it broken (quarantined, the quarantine
limit), the adapter left it out on purpose (excluded), or a quality filter did (filtered, its own
limit). Every quarantine row is of one kind: its `deliberate` flag and its rule tell which."""


def rejection_counts(quarantine: pl.DataFrame, source: str, kind: str) -> dict[str, int]:
    """{rule: rows} of one source's rejections of one kind (REJECTION_KINDS)."""
    filtered = pl.col("rule").is_in(sorted(FILTER_RULES))
    selected = {
        "quarantined": ~pl.col("deliberate"),
        "excluded": pl.col("deliberate") & ~filtered,
        "filtered": pl.col("deliberate") & filtered,
    }[kind]
    rows = quarantine.filter((pl.col("source") == source) & selected)
    return dict(sorted(rows.group_by("rule").len().iter_rows()))
