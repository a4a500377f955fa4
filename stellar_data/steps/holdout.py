"""Hold out whole groups as an evaluation benchmark, stratified, before any split or expansion.

Within each stratum (by default the item's question type and subfield) the groups are ordered by
hash(seed, group) and the first round(fraction x groups) are held out, so the held-out share is
exact per stratum and does not depend on batching. Every record of a held-out group leaves the
corpus, in every language, before the train / validation split and before template expansion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from ..hashing import seeded_u64
from .base import Filter, Removal, StepContext, StepResult, StepStats, per_source_stats

if TYPE_CHECKING:
    from ..recipe import Recipe


@dataclass(frozen=True)
class HoldoutConfig:
    fraction: float = 0.1
    stratify: tuple[str, ...] = ("type", "subfield")
    """Structured fields (`_x_<name>` columns) or record columns (e.g. `lang`) to stratify by."""


def _column(frame: pl.DataFrame, name: str) -> str:
    return f"_x_{name}" if f"_x_{name}" in frame.columns else name


def holdout_groups(frame: pl.DataFrame, config: HoldoutConfig, seed: int) -> set[str]:
    """frame: one source's records (group + stratification columns)."""
    strata = [_column(frame, name) for name in config.stratify]
    groups = frame.group_by("group").agg(pl.col(c).sort().first() for c in strata)
    chosen: set[str] = set()
    for _, part in groups.group_by(strata, maintain_order=False):
        names = sorted(part["group"].to_list(), key=lambda g: (seeded_u64(seed, "holdout", g), g))
        chosen.update(names[: int(config.fraction * len(names) + 0.5)])
    return chosen


def holdout(
    frame: pl.DataFrame, configs: dict[str, HoldoutConfig], seed: int
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, StepStats]]:
    """Returns (kept, held out, stats per source); sources without a config keep everything."""
    held: set[str] = set()
    for source, config in configs.items():
        part = frame.filter(pl.col("source") == source)
        if part.height:
            held |= holdout_groups(part, config, seed)
    is_held = pl.col("group").is_in(sorted(held)) & pl.col("source").is_in(sorted(configs))
    kept, removed = frame.filter(~is_held), frame.filter(is_held)
    return kept, removed, per_source_stats("holdout", frame, removed, "held_out")


class Holdout(Filter):
    """`holdout` of a source: whole groups leave the corpus for the held-out benchmark."""

    name = "holdout"
    removes = Removal("held_out", "held_out", None)  # to the benchmark, not the quarantine

    def __init__(self, configs: dict[str, HoldoutConfig], seed: int) -> None:
        self.configs, self.seed = configs, seed

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> Holdout | None:
        configs = {s.name: s.holdout for s in recipe.sources if s.holdout is not None}
        return cls(configs, recipe.seed) if configs else None

    def run(self, thin: pl.DataFrame, ctx: StepContext) -> StepResult:
        kept, held, _ = holdout(thin, self.configs, self.seed)
        return StepResult(kept, held, held=ctx.table.join(held.select("id"), on="id", how="semi"))
