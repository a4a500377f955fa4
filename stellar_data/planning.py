"""`stellar-data plan`: the mixture plan of a recipe, computed without writing anything."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .executor import Progress, worker_count
from .pipeline import compute, ingest_all
from .plan import plan_build
from .recipe import Recipe, load_recipe
from .steps.mix import MixPlan


@dataclass(frozen=True)
class MixtureReport:
    mix: MixPlan | None
    before: dict[str, int]
    """Train records per category before mixing."""
    after: dict[str, int]
    copy_factors: dict[str, dict[int, int]]
    validation_records: int

    def rows(self) -> list[tuple[str, ...]]:
        """One table row per category, as the CLI prints it."""
        total_after = sum(self.after.values())
        plans = {c.category: c for c in self.mix.categories} if self.mix else {}
        rows = []
        for category in sorted(set(self.before) | set(plans)):
            plan = plans.get(category)
            factors = self.copy_factors.get(category, {})
            present = [times for times, n in factors.items() if n]
            copies = (
                f"{min(present)}-{max(present)}"
                if present and min(present) != max(present)
                else str(present[0])
                if present
                else "1"
            )
            if plan is None:
                status, target, target_share = "kept as is", str(self.before[category]), "-"
            else:
                status = "skipped (empty)" if plan.skipped else "capped by max_copies" if plan.capped else "ok"
                target, target_share = str(plan.target), f"{plan.target_share:.1%}"
            achieved = self.after.get(category, 0)
            share = f"{achieved / total_after:.1%}" if total_after else "-"
            rows.append(
                (
                    category,
                    str(self.before.get(category, 0)),
                    target,
                    str(achieved),
                    target_share,
                    share,
                    copies,
                    status,
                )
            )
        return rows


def mixture_plan(recipe: str | Path | Recipe, *, sources: str | Path | None = None, seed: int | None = None,
                 workers: int | None = None, progress: Progress | None = None) -> MixtureReport:  # fmt: skip
    """Run the pipeline in a temporary folder and report the mixture, writing no corpus."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, sources_dir=sources, seed=seed)
    plan = plan_build(recipe)
    with tempfile.TemporaryDirectory(prefix="stellar-plan-") as work:
        ingested = ingest_all(plan, Path(work), worker_count(workers, recipe.run), progress)
        computed = compute(recipe, ingested)
    train = computed.final.filter(pl.col("split") == "train")
    after = dict(train.group_by("category").len().iter_rows())
    validation = computed.final.height - train.height
    mixed = computed.details["mix"]
    return MixtureReport(mixed.plan, mixed.before, after, mixed.copy_factors, validation)
