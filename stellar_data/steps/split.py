"""Split train / validation by group, so an item's variants never straddle the splits.

A group goes to validation when u(seed, group) < its fraction, where u is the seeded hash of the
group in [0, 1) (computed per record at ingest, so the decision does not depend on batching). A
group whose records come from sources with different fractions uses the smallest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from .base import StepContext, StepResult, StepStats

if TYPE_CHECKING:
    from ..recipe import Recipe


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


@dataclass(frozen=True)
class SplitConfig:
    """`[split]` (a source may override `validation_fraction`)."""

    validation_fraction: float = 0.02


class Split:
    """`[split]` and each source's `validation_fraction`: every item to train or validation."""

    name = "split"
    removes = None
    report_key = None

    def __init__(self, fractions: dict[str, float]) -> None:
        self.fractions = fractions

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> Split:
        return cls({s.name: recipe.validation_fraction_of(s) for s in recipe.sources})

    def run(self, thin: pl.DataFrame, ctx: StepContext) -> StepResult:
        assigned, stats = assign_splits(thin, self.fractions)
        return StepResult(assigned, stats=stats)

    @classmethod
    def count_columns(cls) -> tuple[str, ...]:
        return ("kept", "train", "validation")

    @classmethod
    def source_counts(cls, stats: StepStats) -> dict[str, Any]:
        """Items that passed every filter (`kept`), and where they went."""
        return {
            "kept": stats.total,
            "train": stats.notes.get("train", 0),
            "validation": stats.notes.get("validation", 0),
        }
