"""Split train / validation by group, so an item's variants never straddle the splits.

A group goes to validation when u(seed, group) < its fraction, where u is the seeded hash of the
group in [0, 1) (computed per record at ingest, so the decision does not depend on batching). A
group whose records come from sources with different fractions uses the smallest.
"""

from __future__ import annotations

import polars as pl

from .base import StepStats


def assign_splits(thin: pl.DataFrame, fractions: dict[str, float]) -> tuple[pl.DataFrame, dict[str, StepStats]]:
    """thin: id, source, group, _split_u. Adds `split` ("train" / "validation")."""
    fraction = pl.col("source").replace_strict(fractions, return_dtype=pl.Float64)
    assigned = thin.with_columns(
        pl.when(pl.col("_split_u") < fraction.min().over("group"))
        .then(pl.lit("validation"))
        .otherwise(pl.lit("train"))
        .alias("split")
    )
    stats: dict[str, StepStats] = {}
    for source, split, n in assigned.group_by("source", "split").len().iter_rows():
        step_stats = stats.setdefault(source, StepStats("split", source))
        step_stats.total += n
        step_stats.kept += n
        step_stats.notes[split] += n
    return assigned, stats
