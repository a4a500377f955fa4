"""Assemble: adapter entries -> typed record frame + quarantine rows (the `read` step's counts).

Rules:
- The frame holds the record columns, then `_location` (LOCATION_COLUMN): each record's location
  as its adapter wrote it (`line 16`, `item 3`, `row 5 (ID 41)`), so that a record the validate
  step refuses is quarantined where the adapter found it; validate drops the column.
- A text field holding a lone surrogate (no character: it cannot be written as UTF-8) quarantines
  its item as `invalid_unicode`, whatever adapter let it through; the other items are kept.
- Quarantine text (raw excerpts, messages) never holds a lone surrogate: each becomes U+FFFD.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from ..record import EXTRA_PREFIX, RECORD_SCHEMA, TEXT_FIELDS, frame_schema, quarantine_frame
from ..sources.base import Entry, ItemBatch, RawItem, Rejection, SourceFile
from ..sources.files import excerpt

if TYPE_CHECKING:
    from ..recipe import SourceSpec
from ..text import HAN_CLASS
from .base import StepStats

LOCATION_COLUMN = "_location"
"""Each record's location as its adapter wrote it, from assemble to validate (see the rules)."""
_SURROGATE = re.compile("[\ud800-\udfff]")


def quarantine_row(source: str, file: str, rejection: Rejection, record_id: str | None = None) -> dict[str, Any]:
    return {
        "source": source,
        "file": file,
        "location": rejection.location,
        "row": rejection.row,
        "rule": rejection.rule,
        "message": _encodable(rejection.message),
        "deliberate": rejection.deliberate,
        "id": record_id,
        "raw": None if rejection.raw is None else _encodable(rejection.raw),
    }


def _encodable(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def file_token(relative: str) -> str:
    """The file's path as an id segment (ids hold no whitespace or colons)."""
    return re.sub(r"[\s:]+", "_", relative)


def id_prefix(spec: SourceSpec, file: SourceFile) -> str:
    """`<source>:` for a source read from one literal path; `<source>:<file>:` when the recipe names
    several paths or a glob, so row-based ids stay unique across the source's files."""
    single = len(spec.paths) == 1 and not any(ch in spec.paths[0] for ch in "*?[")
    return f"{spec.name}:" if single else f"{spec.name}:{file_token(file.relative)}:"


def assemble(
    entries: Iterable[Entry], spec: SourceSpec, file: SourceFile
) -> tuple[pl.DataFrame, pl.DataFrame, StepStats]:
    """Adapter keys (e.g. Astro-QA's `4opt:442`) are unique within a source by the adapter's contract;
    row-based ids get the file segment from `id_prefix` when the source has several files.

    One tight loop sorts items from rejections and checks the types; everything per-record after it
    (ids, defaults, language detection) is vectorized, since this runs once per item of the corpus.
    """
    stats = StepStats("read", spec.name)
    prefix = id_prefix(spec, file)
    columns = _Columns()
    rejected: list[dict[str, Any]] = []

    def reject(rejection: Rejection, record_id: str | None = None) -> None:
        stats.dropped[rejection.rule] += 1
        rejected.append(quarantine_row(spec.name, rejection.file or file.relative, rejection, record_id))

    for entry in entries:
        if isinstance(entry, ItemBatch):
            for row, raw in columns.add_batch(entry):
                reject(_wrong_type(raw, entry.location(row), row), f"{prefix}{row}")
        elif isinstance(entry, RawItem) and _all_strings(entry):
            columns.add_item(entry)
        elif isinstance(entry, Rejection):
            reject(entry)
        else:
            raw = {name: getattr(entry, name) for name in TEXT_FIELDS}
            reject(_wrong_type(raw, entry.location, entry.row), _record_id(spec, prefix, entry))
    try:
        frame = _record_frame(columns, spec, file, prefix)
    except UnicodeEncodeError:  # rare: find the items at fault, then build the frame without them
        bad, locations = columns.unencodable(), columns.locations().to_list()
        for index, surrogate in bad.items():
            reject(columns.invalid_unicode(index, surrogate, locations[index]), columns.record_id(index, spec, prefix))
        columns = columns.without(bad, locations)
        frame = _record_frame(columns, spec, file, prefix)
    stats.kept = len(columns.rows)
    stats.total = stats.kept + len(rejected)
    return frame, quarantine_frame(rejected), stats


def _all_strings(item: RawItem) -> bool:
    return (
        isinstance(item.instruction, str)
        and isinstance(item.output, str)
        and (item.input is None or isinstance(item.input, str))
    )


def _wrong_type(raw: dict[str, Any], location: str, row: int) -> Rejection:
    for name in TEXT_FIELDS:
        value = raw[name]
        if not isinstance(value, str) and not (name == "input" and value is None):
            message = f"{name} must be a string, got {type(value).__name__}"
            return Rejection(row, location, "wrong_type", message, excerpt(raw))
    raise ValueError(f"{location}: every field is a string")


def _record_id(spec: SourceSpec, prefix: str, item: RawItem) -> str:
    return f"{spec.name}:{item.key}" if item.key is not None else f"{prefix}{item.row}"


_OPTIONAL = ("key", "group", "original_id", "lang", "file")
_DEFAULTED = {"lang": "lang", "group": "group", "file": "source_file"}
"""Optional RawItem fields with a default -> their record column."""


@dataclass
class _Columns:
    """The accepted items' fields, a list per field (one Python list append per field and item)."""

    rows: list[int] = field(default_factory=list)
    instruction: list[str] = field(default_factory=list)
    input: list[str | None] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    optional: dict[str, list[str | None]] = field(default_factory=lambda: {name: [] for name in _OPTIONAL})
    extra: list[dict[str, str] | None] = field(default_factory=list)
    location_parts: list[pl.Series] = field(default_factory=list)
    """The locations of the items before `item_locations`' (an ItemBatch's are built as a column)."""
    item_locations: list[str] = field(default_factory=list)

    def add_item(self, item: RawItem) -> None:
        self.item_locations.append(item.location)
        self.rows.append(item.row)
        self.instruction.append(item.instruction)
        self.input.append(item.input)
        self.output.append(item.output)
        for name, values in self.optional.items():
            values.append(getattr(item, name))
        self.extra.append(item.extra)

    def add_batch(self, batch: ItemBatch) -> list[tuple[int, dict[str, Any]]]:
        """Adds the batch's items whose fields are strings; returns the others as (row, fields)."""
        typed = [
            isinstance(a, str) and isinstance(c, str) and (b is None or isinstance(b, str))
            for a, b, c in zip(batch.instruction, batch.input, batch.output, strict=True)
        ]
        refused = []
        start = len(self.rows)
        if all(typed):
            self.rows += batch.rows
            self.instruction += batch.instruction
            self.input += batch.input
            self.output += batch.output
        else:
            for ok, row, a, b, c in zip(typed, batch.rows, batch.instruction, batch.input, batch.output, strict=True):
                if not ok:
                    refused.append((row, {"instruction": a, "input": b, "output": c}))
                    continue
                self.rows.append(row)
                self.instruction.append(a)
                self.input.append(b)
                self.output.append(c)
        added = len(batch) - len(refused)
        for values in self.optional.values():
            values += [None] * added
        self.extra += [None] * added
        self.location_parts += [_strings(self.item_locations), _batch_locations(batch.kind, self.rows[start:])]
        self.item_locations = []
        return refused

    def locations(self) -> pl.Series:
        return pl.concat([*self.location_parts, _strings(self.item_locations)]).alias(LOCATION_COLUMN)

    def unencodable(self) -> dict[int, str]:
        """index -> the first lone surrogate, of each item holding one in a text field."""
        texts = [self.instruction, self.input, self.output, *self.optional.values()]
        texts.append([" ".join(map(str, extra.values())) if extra else None for extra in self.extra])
        found: dict[int, str] = {}
        for values in texts:
            for index, value in enumerate(values):
                if value and index not in found and (match := _SURROGATE.search(value)):
                    found[index] = match.group()
        return dict(sorted(found.items()))

    def invalid_unicode(self, index: int, surrogate: str, location: str) -> Rejection:
        fields = {"instruction": self.instruction[index], "input": self.input[index], "output": self.output[index]}
        message = f"\\u{ord(surrogate):04x} is a lone surrogate, not a character"
        file = self.optional["file"][index]
        return Rejection(self.rows[index], location, "invalid_unicode", message, excerpt(fields), file)

    def record_id(self, index: int, spec: SourceSpec, prefix: str) -> str:
        key = self.optional["key"][index]
        return f"{spec.name}:{key}" if key is not None else f"{prefix}{self.rows[index]}"

    def without(self, indices: Iterable[int], locations: list[str]) -> _Columns:
        drop = set(indices)
        keep = [i for i in range(len(self.rows)) if i not in drop]

        def take(values: list[Any]) -> list[Any]:
            return [values[i] for i in keep]

        optional = {name: take(values) for name, values in self.optional.items()}
        return _Columns(take(self.rows), take(self.instruction), take(self.input), take(self.output), optional,
                        take(self.extra), item_locations=take(locations))  # fmt: skip


def _strings(values: list[str]) -> pl.Series:
    try:
        return pl.Series(LOCATION_COLUMN, values, dtype=pl.String)
    except UnicodeEncodeError:  # a location naming a cell that holds a lone surrogate
        return pl.Series(LOCATION_COLUMN, [_encodable(v) for v in values], dtype=pl.String)


def _batch_locations(kind: str, rows: list[int]) -> pl.Series:
    """`base.location` of each row, as one column."""
    numbers = pl.Series(rows, dtype=pl.Int64)
    if kind == "line":
        return ("line " + (numbers + 1).cast(pl.String)).alias(LOCATION_COLUMN)
    return ("item " + numbers.cast(pl.String)).alias(LOCATION_COLUMN)


def _record_frame(columns: _Columns, spec: SourceSpec, file: SourceFile, prefix: str) -> pl.DataFrame:
    optional = {name: pl.Series(name, values, dtype=pl.String) for name, values in columns.optional.items()}
    keys = optional["key"]
    rows = pl.Series("source_row", columns.rows, dtype=pl.Int64)
    record_id = pl.coalesce(pl.lit(f"{spec.name}:") + keys, pl.lit(prefix) + rows.cast(pl.String))
    frame = pl.DataFrame(
        [
            pl.Series("instruction", columns.instruction, dtype=pl.String),
            pl.Series("input", columns.input, dtype=pl.String).fill_null(""),
            pl.Series("output", columns.output, dtype=pl.String),
            keys,
            rows,
            # an empty optional field counts as absent (the default applies)
            *(optional[name].replace("", None).alias(out) for name, out in _DEFAULTED.items()),
            optional["original_id"],
        ]
    )
    has_han = pl.any_horizontal(pl.col(name).str.contains(HAN_CLASS) for name in TEXT_FIELDS)  # no joined copy
    detected = pl.when(has_han).then(pl.lit("zh")).otherwise(pl.lit("en"))
    frame = frame.with_columns(record_id.alias("id")).with_columns(
        pl.lit(spec.category).alias("category"),
        pl.lit(spec.name).alias("source"),
        pl.col("lang").fill_null(detected if spec.lang == "auto" else pl.lit(spec.lang)),
        pl.col("group").fill_null(pl.col("id")),
        pl.col("source_file").fill_null(pl.lit(file.relative)),
        pl.lit(None, dtype=pl.String).alias("template_id"),
        pl.lit(0, dtype=pl.Int32).alias("copy_index"),
    )
    frame = frame.select(pl.col(name).cast(dtype) for name, dtype in frame_schema(RECORD_SCHEMA).items())
    frame = frame.with_columns(columns.locations())
    extra_names = sorted({name for extra in columns.extra if extra for name in extra})
    if extra_names:
        frame = frame.with_columns(
            pl.Series(EXTRA_PREFIX + name, [(e or {}).get(name) for e in columns.extra], dtype=pl.String).fill_null("")
            for name in extra_names
        )
    return frame
