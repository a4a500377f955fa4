"""Quality steps: record-local steps that refuse text which teaches a model nothing or the wrong
thing, each with its reason and evidence (base.py is their contract). One file per step; each runs
when the recipe has its table `[filters.<name>]` (and on the sources that table does not exclude).

QUALITY_STEPS holds them by name in chain order (steps/base.py RECORD_STEPS places them around
normalize and validate); FILTER_RULES are the rules of the deliberate ones, the `filtered` counts.
"""

from __future__ import annotations

from .base import FilterConfig, QualityStep
from .mojibake import Mojibake

_STEPS: tuple[type[QualityStep], ...] = (Mojibake,)

QUALITY_STEPS: dict[str, type[QualityStep]] = {step.name: step for step in _STEPS}
FILTER_RULES = frozenset(rule for step in _STEPS if step.deliberate for rule in step.rules)

__all__ = ["FILTER_RULES", "QUALITY_STEPS", "FilterConfig", "QualityStep"]
