"""Exact dedup on the normalized (instruction, input, output).

Priority (documented in the README): among records with the same content the one kept is the
first by (source priority, recipe order of the source, file order, row in file). A source's
priority defaults to its position in the recipe, so earlier sources win unless `priority` says
otherwise. Works on thin columns only: id, source, content hash and the ranking keys.
"""

from __future__ import annotations

import polars as pl

from .base import StepStats

RANK_COLUMNS = ("_rank", "_source_order", "_file_index", "source_row")


def exact_dedup(thin: pl.DataFrame, *, enabled: bool = True) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, StepStats]]:
    """thin: id, source, _hash and RANK_COLUMNS. Returns (kept, duplicates with `kept_id`, stats per source)."""
    if not enabled:  # `[dedup] exact = false`: everything kept, the step still reports its counts
        return (
            thin,
            thin.clear().with_columns(pl.lit(None, dtype=pl.String).alias("kept_id")),
            per_source_stats("dedup", thin, thin.clear(), "duplicate"),
        )
    ranked = thin.sort(list(RANK_COLUMNS)).with_columns(pl.col("id").first().over("_hash").alias("kept_id"))
    is_first = pl.col("id") == pl.col("kept_id")
    kept = ranked.filter(is_first).drop("kept_id")
    duplicates = ranked.filter(~is_first)
    stats = per_source_stats("dedup", thin, duplicates, "duplicate")
    return kept, duplicates, stats


def per_source_stats(step: str, before: pl.DataFrame, dropped: pl.DataFrame, reason: str) -> dict[str, StepStats]:
    totals = dict(before.group_by("source").len().iter_rows())
    drops = dict(dropped.group_by("source").len().iter_rows())
    stats = {}
    for source, total in totals.items():
        n = drops.get(source, 0)
        step_stats = StepStats(step, source, total=total, kept=total - n)
        if n:
            step_stats.dropped[reason] = n
        stats[source] = step_stats
    return stats
