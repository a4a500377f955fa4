"""The contract of a quality step: a record-local step (steps/base.py `RecordStep`) built from its
recipe table `[filters.<name>]` and the source it runs on.

A quality step decides per record: kept (rule null) or refused with a rule and a message holding the
evidence (the matched span, the measured value and its threshold). `verdict_result` turns those two
columns into the step's RecordResult: kept rows, quarantine rows located where the adapter found the
record, and counts per rule. A step may also change the text it keeps (mojibake repairs) and say so
in its notes.

Two kinds: `deliberate` filters (refusal, language, length, repetition) are exclusions a recipe
chose, counted per source as `filtered` apart from the quarantine ratio, under their own limit
(`max_filtered_ratio`); the others (mojibake, replacement characters) refuse broken text, which
counts as quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import polars as pl

from ...record import QUARANTINE_SCHEMA, RAW_EXCERPT_CHARS, TEXT_FIELDS, frame_schema, quarantine_frame
from ..assemble import LOCATION_COLUMN
from ..base import RecordResult, StepStats

if TYPE_CHECKING:
    from ...recipe import SourceSpec


@dataclass(frozen=True)
class FilterConfig:
    """What every `[filters.<name>]` table may say besides its own settings: where the step does not
    run (e.g. refusals are right in self-cognition safety data)."""

    exclude_sources: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()

    def applies_to(self, spec: SourceSpec) -> bool:
        return spec.name not in self.exclude_sources and spec.category not in self.exclude_categories


class QualityStep(Protocol):
    name: ClassVar[str]
    """The step's name in the counts, and its recipe table `[filters.<name>]`."""
    rules: ClassVar[tuple[str, ...]]
    """Every quarantine rule it may give (unique across steps)."""
    deliberate: ClassVar[bool]
    """True: a filter (counted as `filtered`); False: broken text (counted as quarantined)."""
    config: ClassVar[type[FilterConfig]]

    def __init__(self, config: FilterConfig, spec: SourceSpec) -> None: ...

    def run(self, frame: pl.DataFrame, source: str) -> RecordResult: ...


RULE = "_rule"
MESSAGE = "_message"


def joined_text(fields: tuple[str, ...] = TEXT_FIELDS) -> pl.Expr:
    """The record's `fields` joined by newlines, skipping empty ones (what a filter judges as one text)."""
    return pl.concat_str([pl.col(f) for f in fields], separator="\n", ignore_nulls=True).str.strip_chars("\n")


def raw_excerpt() -> pl.Expr:
    """The record's text fields as a JSON object, cut to RAW_EXCERPT_CHARS: the quarantine's `raw`."""
    return pl.struct(list(TEXT_FIELDS)).struct.json_encode().str.slice(0, RAW_EXCERPT_CHARS)


def verdict_result(
    step: str, frame: pl.DataFrame, source: str, rule: pl.Series, message: pl.Series, *, deliberate: bool
) -> RecordResult:
    """The step's result from one verdict per row: `rule` (null: kept) and `message` (its evidence)."""
    if rule.len() != frame.height or message.len() != frame.height:
        raise ValueError(f"{step}: {rule.len()} verdicts for {frame.height} records")
    judged = frame.with_columns(rule.alias(RULE), message.alias(MESSAGE))
    refused = judged.filter(pl.col(RULE).is_not_null())
    rows = refused.select(
        pl.lit(source).alias("source"),
        pl.col("source_file").alias("file"),
        pl.col(LOCATION_COLUMN).alias("location"),
        pl.col("source_row").alias("row"),
        pl.col(RULE).alias("rule"),
        pl.col(MESSAGE).fill_null("").alias("message"),
        pl.lit(deliberate).alias("deliberate"),
        pl.col("id"),
        raw_excerpt().alias("raw"),
    ).cast(dict(frame_schema(QUARANTINE_SCHEMA)))
    kept = judged.filter(pl.col(RULE).is_null()).drop(RULE, MESSAGE)
    stats = StepStats(step, source, total=frame.height, kept=kept.height)
    stats.dropped.update(dict(refused.group_by(RULE).len().iter_rows()))
    return RecordResult(kept, rows, stats)


@dataclass(frozen=True)
class Passing:
    """A quality step that does not run on this source: every record passes, counted."""

    name: str
    drops: ClassVar[str] = "nothing"

    def run(self, frame: pl.DataFrame, source: str) -> RecordResult:
        return passing_result(self.name, frame, source)


def passing_result(step: str, frame: pl.DataFrame, source: str) -> RecordResult:
    """Every record of `frame` passes `step` unchanged (a step with nothing to judge in a batch)."""
    return RecordResult(frame, quarantine_frame([]), StepStats(step, source, total=frame.height, kept=frame.height))
