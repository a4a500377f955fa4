"""Mix: rebalance the train split's categories to target shares or counts, exactly.

Semantics (also in the README):

- Sizes. Categories with an absolute `count` take theirs first. The others have a `share`; their
  shares must sum to 1 and divide the remainder: `total - sum(counts)`, where `total` is given, or
  derived from the `anchor` category, whose size is kept (remainder = anchor size / anchor share).
  Targets are whole numbers that add up exactly (largest remainder).
- Caps. A category may be copied at most `max_copies` times per record (1 = never upsampled). A
  target the cap makes unreachable is capped and reported (`capped`), never silently violated; the
  other categories keep their targets, so the achieved shares then differ from the targets.
- Upsampling (target > available, ratio r): every record appears floor(r) or ceil(r) times: all get
  floor(r) copies and the remainder is drawn without replacement. Downsampling: records are drawn
  without replacement. Draws order records by hash(seed, id), so they do not depend on batching.
- Only the train split is mixed; validation keeps its records as they are and never gets copies.
- Copies get `copy_index` 1, 2, ... and the id `<id>:c<k>`; the final shuffle (hash of the id)
  keeps copies of one record apart.
- An empty category with a target is a recipe error, unless it says `skip_if_empty = true`: it is
  then dropped from the plan (reported) and the remaining shares are rescaled to sum to 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..errors import RecipeError
from ..hashing import seeded_u64s
from ..sources import STRATA_COLUMNS
from .base import StepContext, StepResult, StepStats

if TYPE_CHECKING:
    from ..recipe import Recipe, SourceSpec

FINAL_COLUMNS = ("id", "source", "category", "lang", "split", "copy_index", "_order", "_table_row")
"""The columns the writers and the manifest read after the last step (with the `_x_*` strata
when the records have them): mixing copies rows, so it carries no more than these."""


@dataclass(frozen=True)
class CategoryTarget:
    share: float | None = None
    count: int | None = None
    max_copies: float = 1.0
    skip_if_empty: bool = False


@dataclass(frozen=True)
class MixConfig:
    categories: dict[str, CategoryTarget]
    total: int | None = None
    anchor: str | None = None


@dataclass(frozen=True)
class CategoryPlan:
    category: str
    available: int
    target: int
    """Records wanted before the cap."""
    achieved: int
    """Records after mixing: min(target, available x max_copies)."""
    target_share: float
    skipped: bool = False

    @property
    def capped(self) -> bool:
        return self.achieved < self.target

    @property
    def ratio(self) -> float:
        return self.achieved / self.available if self.available else 0.0


@dataclass(frozen=True)
class MixPlan:
    categories: tuple[CategoryPlan, ...]
    total_target: int
    warnings: tuple[str, ...] = field(default=())

    @property
    def total_achieved(self) -> int:
        return sum(c.achieved for c in self.categories)

    def achieved_share(self, category: str) -> float:
        total = self.total_achieved
        plan = next(c for c in self.categories if c.category == category)
        return plan.achieved / total if total else 0.0


def _largest_remainder(weights: dict[str, float], total: int) -> dict[str, int]:
    """Whole numbers proportional to `weights` that add up to `total` exactly."""
    exact = {k: w * total for k, w in weights.items()}
    floors = {k: math.floor(v) for k, v in exact.items()}
    left = total - sum(floors.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - floors[k]), k))[:left]:
        floors[k] += 1
    return floors


def plan_mix(available: dict[str, int], config: MixConfig) -> MixPlan:
    """Sizes per category from the records available in train (pure; raises RecipeError)."""
    unknown = sorted(set(config.categories) - set(available))
    # `available` has every category some source declares (0 when none of its records reached train):
    # a category named in the mix but declared by no source is a typo.
    if unknown:
        produced = ", ".join(sorted(available))
        named = ", ".join(map(repr, unknown))
        raise RecipeError(f"mix.categories: {named} not produced by any source (categories: {produced})")
    unlisted = sorted(c for c in available if c not in config.categories and available[c])
    if unlisted:
        raise RecipeError(
            f"mix.categories: category {unlisted[0]!r} has records but no target; give it a share or a count"
        )
    warnings: list[str] = []
    skipped: list[CategoryPlan] = []
    targets: dict[str, CategoryTarget] = {}
    for name, target in config.categories.items():
        if available.get(name, 0) == 0:
            if not target.skip_if_empty:
                raise RecipeError(
                    f"mix.categories.{name}: the category is empty in train (set skip_if_empty = true to skip it)"
                )
            warnings.append(f"category {name!r} is empty and skipped")
            skipped.append(CategoryPlan(name, 0, 0, 0, 0.0, skipped=True))
            continue
        targets[name] = target
    # The recipe's shares must sum to 1 as written; a skipped category's share is then spread
    # over the others in proportion.
    recipe_shares = {n: t.share for n, t in config.categories.items() if t.count is None and t.share is not None}
    if recipe_shares and not math.isclose(sum(recipe_shares.values()), 1.0, abs_tol=1e-9):
        names, total = ", ".join(sorted(recipe_shares)), sum(recipe_shares.values())
        raise RecipeError(f"mix.categories: the shares of {names} sum to {total:g}, not 1")
    counted = {n: t.count for n, t in targets.items() if t.count is not None}
    shared = {n: recipe_shares[n] for n in targets if n in recipe_shares}
    if shared:
        kept_sum = sum(shared.values())
        shared = {n: s / kept_sum for n, s in shared.items()}
    if config.anchor is not None:
        if config.anchor not in shared:
            raise RecipeError(f"mix.anchor: {config.anchor!r} must be a category with a share")
        remainder = round(available[config.anchor] / shared[config.anchor])
    elif config.total is not None:
        remainder = config.total - sum(counted.values())
        if remainder < 0 or (remainder > 0 and not shared):
            raise RecipeError(f"mix.total {config.total} does not fit the counts {counted}")
    elif shared:
        raise RecipeError("mix: set either `total` or `anchor` to size the categories with a share")
    else:
        remainder = 0
    sizes = dict(counted) | (_largest_remainder(shared, remainder) if shared else {})
    total_target = sum(sizes.values())
    plans = []
    for name, target in targets.items():
        wanted = sizes[name]
        reachable = math.floor(available[name] * target.max_copies)
        achieved = min(wanted, reachable)
        plans.append(
            CategoryPlan(name, available[name], wanted, achieved, wanted / total_target if total_target else 0.0)
        )
        if achieved < wanted:
            warnings.append(
                f"category {name!r}: target {wanted} unreachable with max_copies {target.max_copies:g} "
                f"({available[name]} available): capped at {achieved}"
            )
    return MixPlan(tuple(plans + skipped), total_target, tuple(warnings))


def copies_per_record(ids: pl.Series, target: int, seed: int) -> pl.Series:
    """How many times each record appears, aligned with `ids`: floor(r) for all, +1 for a seeded draw
    of the remainder. For a downsample (target < len(ids)) that is 1 for the drawn records and 0 for
    the others. Only a draw hashes the ids (the remainder is usually 0 for an anchor category)."""
    if ids.is_empty():
        return pl.Series("_times", [], dtype=pl.Int64)
    whole, extra = divmod(target, len(ids))
    times = np.full(len(ids), whole, dtype=np.int64)
    if extra:
        draws = pl.DataFrame([seeded_u64s(seed, "mix", ids).alias("draw"), ids.alias("id")])
        drawn = draws.select(pl.arg_sort_by("draw", "id").head(extra)).to_series().to_numpy()
        times[drawn] += 1
    return pl.Series("_times", times)


def apply_mix(
    train: pl.DataFrame, plan: MixPlan, seed: int
) -> tuple[pl.DataFrame, dict[str, StepStats], dict[str, dict[int, int]]]:
    """The mixed train split; stats per source (total = records in, notes: records out) and, per
    category, the copy-factor distribution {times a record appears: records}."""
    achieved = {c.category: c.achieved for c in plan.categories if not c.skipped}
    parts = []
    distribution: dict[str, dict[int, int]] = {}
    for category, target in achieved.items():
        part = train.filter(pl.col("category") == category)
        part = part.with_columns(copies_per_record(part["id"], target, seed))
        distribution[category] = dict(sorted(part.group_by("_times").len().iter_rows()))
        parts.append(part)
    counted = pl.concat(parts) if parts else train.with_columns(pl.lit(0, dtype=pl.Int64).alias("_times")).clear()
    repeated = (
        counted.filter(pl.col("_times") > 0)
        .with_columns(pl.int_ranges(0, pl.col("_times")).alias("copy_index"))
        .explode("copy_index")
    )
    copy = pl.col("copy_index")
    mixed = repeated.with_columns(
        pl.when(copy == 0).then(pl.col("id")).otherwise(pl.format("{}:c{}", pl.col("id"), copy)).alias("id"),
        copy.cast(pl.Int32),
    ).drop("_times")
    if "_order" in mixed.columns:  # copies must not sit next to their original after the shuffle
        # an original keeps its id, so its order (seeded by the id) is already right: only copies draw
        copies = (pl.col("copy_index") > 0).arg_true()
        rows = mixed.select(copies).to_series()
        orders = seeded_u64s(seed, "order", mixed["id"].gather(rows))
        mixed = mixed.with_columns(mixed["_order"].scatter(rows, orders))
    stats: dict[str, StepStats] = {}
    per_source = counted.group_by("source").agg(
        pl.len().alias("total"),
        (pl.col("_times") > 0).sum().alias("kept"),
        (pl.col("_times") - 1).clip(lower_bound=0).sum().alias("copies"),
    )
    for source, total, kept, copies in per_source.iter_rows():
        step_stats = StepStats("mix", source, total=total, kept=kept)
        if total - kept:
            step_stats.dropped["downsampled"] = total - kept
        step_stats.notes["copies"] = copies
        step_stats.notes["records"] = kept + copies
        stats[source] = step_stats
    return mixed, stats, distribution


@dataclass(frozen=True)
class MixOutcome:
    """What mixing decided, for `stellar-data plan`."""

    plan: MixPlan | None
    before: dict[str, int]
    """Train records per category before mixing (every category a source declares)."""
    copy_factors: dict[str, dict[int, int]]
    """Per category: {times a record appears in train: records}."""


class Mix:
    """`[mix]`: the train split rebalanced to its targets; validation as it is. Without a `[mix]`
    section train keeps every record (a pass-through)."""

    name = "mix"
    removes = None
    report_key = "mix"

    def __init__(self, sources: tuple[SourceSpec, ...], config: MixConfig | None, seed: int) -> None:
        self.sources, self.config, self.seed = sources, config, seed

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> Mix:
        return cls(recipe.sources, recipe.mix, recipe.seed)

    def run(self, thin: pl.DataFrame, ctx: StepContext) -> StepResult:
        strata = [c for c in STRATA_COLUMNS if c in thin.columns]
        final = thin.select(*FINAL_COLUMNS, *strata)
        train, validation = final.filter(pl.col("split") == "train"), final.filter(pl.col("split") == "validation")
        # Every category a source declares, with 0 where no record reached train (an empty category).
        before = {spec.category: 0 for spec in self.sources} | dict(train.group_by("category").len().iter_rows())
        before = dict(sorted(before.items()))
        plan, stats, factors = None, {}, {}
        if self.config is not None:
            plan = plan_mix(before, self.config)
            train, stats, factors = apply_mix(train, plan, self.seed)
        for spec in self.sources:
            if spec.name not in stats:  # no mix (or no train records): a pass-through
                n = train.filter(pl.col("source") == spec.name).height
                stats[spec.name] = StepStats("mix", spec.name, n, n)
                stats[spec.name].notes.update({"copies": 0, "records": n})
        return StepResult(
            pl.concat([train, validation], how="diagonal_relaxed"),
            stats=stats,
            report=None if plan is None else self._report(plan, factors),
            detail=MixOutcome(plan, before, factors),
            warnings=plan.warnings if plan else (),
        )

    def _report(self, plan: MixPlan, factors: dict[str, dict[int, int]]) -> dict[str, Any]:
        """Per category: available, target and achieved records and shares, the copy-factor distribution."""
        assert self.config is not None
        total = plan.total_achieved
        categories = {}
        for category in plan.categories:
            categories[category.category] = {
                "available": category.available,
                "target": category.target,
                "achieved": category.achieved,
                "target_share": round(category.target_share, 6),
                "achieved_share": round(category.achieved / total, 6) if total else 0.0,
                "max_copies": self.config.categories[category.category].max_copies,
                "capped": category.capped,
                "skipped": category.skipped,
                "copies": {str(times): n for times, n in factors.get(category.category, {}).items()},
            }
        return {
            "total": self.config.total,
            "anchor": self.config.anchor,
            "total_target": plan.total_target,
            "total_achieved": total,
            "categories": categories,
            "warnings": list(plan.warnings),
        }

    @classmethod
    def count_columns(cls) -> tuple[str, ...]:
        return ()  # its counts are a nested `mix` entry (before / downsampled / copies), not columns

    @classmethod
    def source_counts(cls, stats: StepStats) -> dict[str, Any]:
        return {
            "mix": {
                "before": stats.total,
                "downsampled": stats.dropped.get("downsampled", 0),
                "copies": stats.notes.get("copies", 0),
            }
        }
