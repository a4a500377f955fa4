"""Exact dedup on the normalized (instruction, input, output).

Priority (documented in the README): among records with the same content the one kept is the
first by (source priority, recipe order of the source, file order, row in file). A source's
priority defaults to its position in the recipe, so earlier sources win unless `priority` says
otherwise. Works on thin columns only: id, source, content hash and the ranking keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from .base import Filter, Removal, StepContext, StepResult, StepStats, per_source_stats

if TYPE_CHECKING:
    from ..recipe import Recipe


@dataclass(frozen=True)
class DedupConfig:
    """`[dedup]`."""

    exact: bool = True


RANK_COLUMNS = ("_rank", "_source_order", "_file_index", "source_row")


def exact_dedup(thin: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, StepStats]]:
    """thin: id, source, _hash and RANK_COLUMNS. Returns (kept, duplicates with `kept_id`, stats per source)."""
    # Rank and group row numbers only: sorting the thin frame itself (ids, groups, ...) would copy it.
    ranked = thin.select("_hash", *RANK_COLUMNS).with_row_index("_row").sort(list(RANK_COLUMNS))
    ranked = ranked.select("_row", pl.col("_row").first().over("_hash").alias("_kept_row"))
    is_first = ranked["_row"] == ranked["_kept_row"]
    kept = thin[ranked["_row"].filter(is_first)]
    dropped = ranked.filter(~is_first)
    duplicates = thin[dropped["_row"]].with_columns(thin["id"].gather(dropped["_kept_row"]).alias("kept_id"))
    stats = per_source_stats("dedup", thin, duplicates, "duplicate")
    return kept, duplicates, stats


class ExactDedup(Filter):
    """`[dedup] exact`: one record per normalized content."""

    name = "dedup"
    removes = Removal("duplicate", "duplicates", pl.format("same normalized content as {}", pl.col("kept_id")))

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> ExactDedup | None:
        return cls() if recipe.exact_dedup else None

    def run(self, thin: pl.DataFrame, ctx: StepContext) -> StepResult:
        kept, duplicates, _ = exact_dedup(thin)
        return StepResult(kept, duplicates)
