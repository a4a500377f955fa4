"""`[quality] max_quarantine_ratio`: a source whose items a rule refused past this share fails the
build (checked once every file is read, before any global step), since a source that bad is more
likely a wrong adapter or a broken file than data worth training on. `max_filtered_ratio` does the
same for the items the quality filters removed, which the quarantine ratio does not count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from .errors import FilterLimitError, QuarantineLimitError
from .steps.base import StepStats
from .writers.quarantine import rejection_counts

if TYPE_CHECKING:
    from .recipe import Recipe


@dataclass(frozen=True)
class QualityConfig:
    """`[quality]` (a source may override `max_quarantine_ratio`)."""

    max_quarantine_ratio: float = 0.05
    """Quarantined items (deliberate exclusions not counted) over items read."""
    max_filtered_ratio: float = 0.2
    """Items the quality filters removed (steps/quality/) over items read: a filter that removes
    more is more likely a wrong threshold or a wrong `lang` than a bad source."""


def check_quarantine_limits(recipe: Recipe, stats: dict[tuple[str, str], StepStats], quarantine: pl.DataFrame) -> None:
    for spec in recipe.sources:
        read = stats.get(("read", spec.name))
        if read is None or read.total == 0:
            continue
        counts = rejection_counts(quarantine, spec.name, "quarantined")
        ratio = sum(counts.values()) / read.total
        limit = recipe.quarantine_limit(spec)
        if ratio > limit:
            raise QuarantineLimitError(
                f"source {spec.name!r}: {sum(counts.values())} of {read.total} items quarantined ({ratio:.1%}) "
                f"exceeds max_quarantine_ratio {limit:.1%} ({_reasons(counts)}); see `stellar-data check` for details"
            )
        filtered = rejection_counts(quarantine, spec.name, "filtered")
        ratio = sum(filtered.values()) / read.total
        limit = recipe.filtered_limit(spec)
        if ratio > limit:
            raise FilterLimitError(
                f"source {spec.name!r}: {sum(filtered.values())} of {read.total} items filtered ({ratio:.1%}) "
                f"exceeds max_filtered_ratio {limit:.1%} ({_reasons(filtered)}); check the filters' thresholds "
                "and the source's lang, or raise the limit"
            )


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{rule} {n}" for rule, n in sorted(counts.items(), key=lambda kv: -kv[1]))
