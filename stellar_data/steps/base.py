"""The step contracts. Two kinds of step, each with one small contract:

- A **record-local step** (read, the quality steps, normalize, validate) sees one file's records at a
  time, in a worker; it lives in ingest.py's chain (RECORD_STEPS names them in order).
- A **global step** sees every record at once as thin columns (no text) and decides which go on:
  `run(thin, ctx) -> StepResult`. The pipeline is one declared list of global step classes
  (pipeline.GLOBAL_STEPS); each class builds itself from its recipe section (`from_recipe`, None
  when the recipe turns it off) and declares what it removes (`removes`: the drop reason, which is
  also the quarantine rule, the manifest's per-source count and the quarantine message).

Every count is derived from the step list, never written out per step: the runner counts a step's
`total / kept / dropped_<reason>` per source from its input and its `removed` rows (a step that makes
or multiplies records says its own counts in `StepResult.stats`), and the manifest's per-source
counts are each step's `source_counts`. Per source they reconcile: a step's `total` equals `kept`
plus the sum of its drops, and a step's `kept` is the next step's `total` (for expand and mix, which
make records from items, `notes.records` is what they put out).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import polars as pl

if TYPE_CHECKING:
    from ..recipe import Recipe
    from ..similarity.eval_index import EvalItem

RECORD_STEPS = ("read", "mojibake", "normalize", "validate", "length", "repetition", "refusal", "language")
"""The record-local steps, in order: `read` (the adapter, then steps/assemble.py) and the chain of
RecordSteps ingest.py builds for each file (`record_steps`). Mojibake is repaired before normalize
(which would make it unrepairable); the filters judge normalized, valid records, cheapest first. A
quality step the recipe leaves off passes every record (steps/quality/)."""
RECORD_COUNTS = ("read", "quarantined", "excluded", "filtered", "valid")
"""The per-source counts of the record-local steps: items read, quarantined (a rule refused them),
excluded (deliberately, by the adapter: e.g. Astro-QA matching items), filtered (deliberately, by a
quality filter: steps/quality/) and valid (what the chain passes on). The global steps add theirs
(`count_columns`), then the records written per split."""
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


def per_source_stats(step: str, before: pl.DataFrame, dropped: pl.DataFrame, reason: str) -> dict[str, StepStats]:
    """A filtering step's counts per source: `before` rows in, `dropped` rows out for `reason`."""
    totals = dict(before.group_by("source").len().iter_rows())
    drops = dict(dropped.group_by("source").len().iter_rows())
    stats = {}
    for source, total in totals.items():
        n = drops.get(source, 0)
        step_stats = StepStats(step, source, total=total, kept=total - n)
        if n:
            step_stats.dropped[reason] = n
        stats[source] = step_stats
    return stats


@dataclass
class RecordResult:
    kept: pl.DataFrame
    rejected: pl.DataFrame
    """Quarantine rows (record.QUARANTINE_SCHEMA) of the records the step refused, each with its
    location, rule (one of the step's `drops`) and message."""
    stats: StepStats


class RecordStep(Protocol):
    """A record-local step after `read`: one batch of one file's records at a time, in a worker, so
    it must be picklable and must not depend on how the file is batched."""

    name: ClassVar[str]
    drops: ClassVar[str]
    """The quarantine rules it may give, said for readers (e.g. `invalid_<field>`)."""

    def run(self, frame: pl.DataFrame, source: str) -> RecordResult: ...


@dataclass(frozen=True)
class Removal:
    """What a filtering global step removes, declared once."""

    reason: str
    """The drop reason in the step's counts, and the quarantine rule of the removed rows."""
    count: str
    """The manifest's per-source count of removed items (e.g. `duplicates`)."""
    message: pl.Expr | None
    """The quarantine message over the removed rows' evidence columns; None: the removed rows are
    not quarantined (held-out items go to the benchmark instead)."""

    @property
    def label(self) -> str:
        """The count as a column heading (`near duplicates`)."""
        return self.count.replace("_", " ")


@dataclass
class StepContext:
    """What a global step may read besides its thin rows. Owned by one run of the pipeline."""

    recipe: Recipe
    table: pl.DataFrame
    """Every record's columns, text included; thin rows point into it by `_table_row`."""
    held: pl.DataFrame
    """Records of the held-out items (set by the hold-out step)."""
    eval_items: list[EvalItem] | None = None
    """Every eval item, built once by the ingest's `eval_index` stage (with decontamination)."""


@dataclass
class StepResult:
    kept: pl.DataFrame
    """The thin rows that go on to the next step."""
    removed: pl.DataFrame | None = None
    """Rows removed for the step's declared `removes.reason`, with their evidence columns."""
    stats: dict[str, StepStats] | None = None
    """Per-source counts, for steps that make or multiply records; None: the runner derives them
    from the input and `removed`."""
    report: Any = None
    """The step's manifest section (under `report_key`), JSON-able."""
    detail: Any = None
    """What the step decided, for in-memory readers (e.g. the mixture plan for `stellar-data plan`)."""
    table: pl.DataFrame | None = None
    """The record table, when the step added records to it."""
    held: pl.DataFrame | None = None
    """Records the step set aside as a benchmark."""
    warnings: tuple[str, ...] = ()
    """For the console and the manifest's `warnings`."""


class GlobalStep(Protocol):
    name: ClassVar[str]
    removes: ClassVar[Removal | None]
    """Declared by filtering steps; None for steps that only annotate, make or multiply records."""
    report_key: ClassVar[str | None]
    """The manifest's top-level key of the step's report (None when it has none): null there when the
    recipe turns the step off."""

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> GlobalStep | None: ...

    def run(self, thin: pl.DataFrame, ctx: StepContext) -> StepResult: ...

    @classmethod
    def source_counts(cls, stats: StepStats) -> dict[str, Any]:
        """The step's entries in the manifest's per-source `counts`."""
        ...

    @classmethod
    def count_columns(cls) -> tuple[str, ...]:
        """The scalar ones among them, in order: the columns of the per-source summary tables
        (`Corpus.stats()`, the CLI, the card, the report)."""
        ...


class Filter:
    """The common behaviour of filtering global steps: their per-source count is their removals."""

    removes: ClassVar[Removal]
    report_key: ClassVar[str | None] = None

    @classmethod
    def source_counts(cls, stats: StepStats) -> dict[str, Any]:
        return {cls.removes.count: stats.dropped.get(cls.removes.reason, 0)}

    @classmethod
    def count_columns(cls) -> tuple[str, ...]:
        return (cls.removes.count,)


def passing_stats(step: str, thin: pl.DataFrame) -> dict[str, StepStats]:
    """The counts of a step the recipe turns off: every source's rows pass."""
    return {source: StepStats(step, source, n, n) for source, n in thin.group_by("source").len().iter_rows()}
