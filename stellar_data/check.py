"""`stellar-data check`: validate a recipe and read its sources, writing nothing.

Unlike `build`, which stops at the first file-level error, check reads every file and reports all
problems at once, with the per-source quarantine ratio against its limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .errors import StellarDataError
from .executor import Progress, run_ingest, worker_count
from .ingest import IngestResult, IngestTask, ingest
from .pipeline import merged_stats
from .plan import plan_build
from .recipe import Recipe, load_recipe
from .steps.base import RECORD_STEPS
from .writers.quarantine import rejection_counts


@dataclass
class SourceReport:
    name: str
    files: int
    read: int = 0
    valid: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    filtered: dict[str, int] = field(default_factory=dict)
    limit: float = 0.0
    filtered_limit: float = 0.0
    errors: list[str] = field(default_factory=list)
    """File-level errors of this source's files (its counts cover only the files read)."""

    @property
    def ratio(self) -> float:
        return sum(self.quarantined.values()) / self.read if self.read else 0.0

    @property
    def filtered_ratio(self) -> float:
        return sum(self.filtered.values()) / self.read if self.read else 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def status(self) -> str:
        """`error` (a file failed), `over limit` (quarantine ratio), `over filter limit` or `ok`."""
        if self.errors:
            return "error"
        if self.ratio > self.limit:
            return "over limit"
        return "ok" if self.filtered_ratio <= self.filtered_limit else "over filter limit"


@dataclass
class CheckReport:
    recipe: Recipe
    sources: list[SourceReport]
    errors: list[str]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors and all(s.ok for s in self.sources)


def _ingest_or_error(task: IngestTask) -> IngestResult | str:
    try:
        return ingest(task)
    except StellarDataError as exc:
        return str(exc)


def check(
    recipe: str | Path | Recipe,
    *,
    sources: str | Path | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> CheckReport:
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, sources_dir=sources)
    errors: list[str] = []
    try:
        plan = plan_build(recipe)
    except StellarDataError as exc:  # a path problem (paths.py): nothing can be read
        return CheckReport(recipe, [], [str(exc)], [])
    tasks = [IngestTask(p.spec, p.file, p.index, recipe.seed, recipe.protected_terms) for p in plan.files]
    workers = worker_count(workers, recipe.run)
    outcomes = run_ingest(tasks, workers, progress, run=_ingest_or_error)
    results = [o for o in outcomes if isinstance(o, IngestResult)]
    failed = {(t.spec.name, o) for t, o in zip(tasks, outcomes, strict=True) if isinstance(o, str)}
    errors += list(dict.fromkeys(o for o in outcomes if isinstance(o, str)))  # a file read as spans: once
    stats = merged_stats(results)
    quarantine = pl.concat([r.quarantine for r in results]) if results else None
    reports = []
    for spec in recipe.sources:
        if spec.name in plan.skipped:
            continue
        report = SourceReport(
            spec.name,
            len({p.file.path for p in plan.files if p.spec.name == spec.name}),
            limit=recipe.quarantine_limit(spec),
            filtered_limit=recipe.filtered_limit(spec),
            errors=[e for e in errors if (spec.name, e) in failed],
        )
        if ("read", spec.name) in stats:
            report.read = stats[("read", spec.name)].total
            report.valid = stats[(RECORD_STEPS[-1], spec.name)].kept
            report.quarantined = rejection_counts(quarantine, spec.name, "quarantined")
            report.excluded = rejection_counts(quarantine, spec.name, "excluded")
            report.filtered = rejection_counts(quarantine, spec.name, "filtered")
        reports.append(report)
    return CheckReport(recipe, reports, errors, list(plan.skipped.values()))
