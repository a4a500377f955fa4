"""The step contract: every step reports `total / kept / dropped_<reason>` per source.

Steps are pure functions over polars frames; the orchestrator (build.py) merges their counts
into the manifest, where per source they reconcile: a step's `total` equals `kept` plus the sum
of its drops, and a step's `kept` is the next step's `total`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

STEPS = ("read", "normalize", "validate", "dedup", "neardup", "holdout", "decontaminate", "split", "expand", "mix")
"""Every step, in pipeline order; per source, each step's `kept` is the next one's `total`
(for expand and mix, which make records from items, `notes.records` is what they put out)."""
SPLITS = ("train", "validation")


@dataclass
class StepStats:
    step: str
    source: str
    total: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    """Counts that are not drops (e.g. records changed by normalization)."""

    def merge(self, other: StepStats) -> None:
        if (other.step, other.source) != (self.step, self.source):
            raise ValueError(f"cannot merge {other.step}/{other.source} into {self.step}/{self.source}")
        self.total += other.total
        self.kept += other.kept
        self.dropped.update(other.dropped)
        self.notes.update(other.notes)

    @property
    def reconciles(self) -> bool:
        return self.total == self.kept + sum(self.dropped.values())

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"step": self.step, "source": self.source, "total": self.total, "kept": self.kept}
        row.update({f"dropped_{reason}": n for reason, n in sorted(self.dropped.items())})
        row.update({reason: n for reason, n in sorted(self.notes.items())})
        return row
