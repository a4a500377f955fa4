"""`[quality] max_quarantine_ratio`: a source whose items a rule refused past this share fails the
build (checked once every file is read, before any global step), since a source that bad is more
likely a wrong adapter or a broken file than data worth training on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from .errors import QuarantineLimitError
from .steps.base import StepStats
from .writers.quarantine import rejection_counts

if TYPE_CHECKING:
    from .recipe import Recipe


@dataclass(frozen=True)
class QualityConfig:
    """`[quality]` (a source may override `max_quarantine_ratio`)."""

    max_quarantine_ratio: float = 0.05
    """Quarantined items (deliberate exclusions not counted) over items read."""


def check_quarantine_limits(recipe: Recipe, stats: dict[tuple[str, str], StepStats], quarantine: pl.DataFrame) -> None:
    for spec in recipe.sources:
        read = stats.get(("read", spec.name))
        if read is None or read.total == 0:
            continue
        counts = rejection_counts(quarantine, spec.name, deliberate=False)
        ratio = sum(counts.values()) / read.total
        limit = recipe.quarantine_limit(spec)
        if ratio > limit:
            reasons = ", ".join(f"{rule} {n}" for rule, n in sorted(counts.items(), key=lambda kv: -kv[1]))
            raise QuarantineLimitError(
                f"source {spec.name!r}: {sum(counts.values())} of {read.total} items quarantined ({ratio:.1%}) "
                f"exceeds max_quarantine_ratio {limit:.1%} ({reasons}); see `stellar-data check` for details"
            )
