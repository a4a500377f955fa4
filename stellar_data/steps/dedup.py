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
    # Rank and group row numbers only: sorting the thin frame itself (ids, groups, ...) would copy it.
    ranked = thin.select("_hash", *RANK_COLUMNS).with_row_index("_row").sort(list(RANK_COLUMNS))
    ranked = ranked.select("_row", pl.col("_row").first().over("_hash").alias("_kept_row"))
    is_first = ranked["_row"] == ranked["_kept_row"]
    kept = thin[ranked["_row"].filter(is_first)]
    dropped = ranked.filter(~is_first)
    duplicates = thin[dropped["_row"]].with_columns(thin["id"].gather(dropped["_kept_row"]).alias("kept_id"))
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
