"""Assemble: adapter entries -> typed record frame + quarantine rows (the `read` step's counts)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import polars as pl
import pyarrow as pa

from ..recipe import SourceSpec
from ..record import EXTRA_PREFIX, QUARANTINE_SCHEMA, RECORD_SCHEMA, TEXT_FIELDS
from ..sources.base import Entry, RawItem, Rejection, SourceFile
from ..sources.files import excerpt
from ..text import HAN_CLASS
from .base import StepStats


def quarantine_row(source: str, file: str, rejection: Rejection, record_id: str | None = None) -> dict[str, Any]:
    return {
        "source": source,
        "file": file,
        "location": rejection.location,
        "row": rejection.row,
        "rule": rejection.rule,
        "message": rejection.message,
        "deliberate": rejection.deliberate,
        "id": record_id,
        "raw": rejection.raw,
    }


_RECORD_FRAME_SCHEMA = pl.from_arrow(RECORD_SCHEMA.empty_table()).schema


def _type_problem(item: RawItem) -> str | None:
    for name in TEXT_FIELDS:
        value = getattr(item, name)
        if name == "input" and value is None:
            continue
        if not isinstance(value, str):
            return f"{name} must be a string, got {type(value).__name__}"
    return None


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
    items: list[RawItem] = []
    rejected: list[dict[str, Any]] = []
    for entry in entries:
        if isinstance(entry, RawItem) and _all_strings(entry):
            items.append(entry)
        elif isinstance(entry, Rejection):
            stats.dropped[entry.rule] += 1
            rejected.append(quarantine_row(spec.name, entry.file or file.relative, entry))
        else:
            record_id = _record_id(spec, prefix, entry)
            raw = {name: getattr(entry, name) for name in TEXT_FIELDS}
            problem = Rejection(entry.row, entry.location, "wrong_type", _type_problem(entry), excerpt(raw))
            stats.dropped["wrong_type"] += 1
            rejected.append(quarantine_row(spec.name, entry.file or file.relative, problem, record_id))
    stats.kept = len(items)
    stats.total = stats.kept + len(rejected)
    frame = _record_frame(items, spec, file, prefix)
    quarantine = pl.from_arrow(
        _table({n: [r[n] for r in rejected] for n in QUARANTINE_SCHEMA.names}, QUARANTINE_SCHEMA)
    )
    return frame, quarantine, stats


def _all_strings(item: RawItem) -> bool:
    return (
        isinstance(item.instruction, str)
        and isinstance(item.output, str)
        and (item.input is None or isinstance(item.input, str))
    )


def _record_id(spec: SourceSpec, prefix: str, item: RawItem) -> str:
    return f"{spec.name}:{item.key}" if item.key is not None else f"{prefix}{item.row}"


def _column(items: list[RawItem], name: str) -> list[Any]:
    return [getattr(item, name) for item in items]


def _optional(items: list[RawItem], name: str) -> list[str | None]:
    """An optional field; empty counts as absent (the default applies)."""
    return [getattr(item, name) or None for item in items]


def _record_frame(items: list[RawItem], spec: SourceSpec, file: SourceFile, prefix: str) -> pl.DataFrame:
    keys = pl.Series("key", _column(items, "key"), dtype=pl.String)
    rows = pl.Series("source_row", _column(items, "row"), dtype=pl.Int64)
    record_id = pl.coalesce(pl.lit(f"{spec.name}:") + keys, pl.lit(prefix) + rows.cast(pl.String))
    frame = pl.DataFrame(
        [
            pl.Series("instruction", _column(items, "instruction"), dtype=pl.String),
            pl.Series("input", _column(items, "input"), dtype=pl.String).fill_null(""),
            pl.Series("output", _column(items, "output"), dtype=pl.String),
            keys,
            rows,
            pl.Series("lang", _optional(items, "lang"), dtype=pl.String),
            pl.Series("group", _optional(items, "group"), dtype=pl.String),
            pl.Series("source_file", _optional(items, "file"), dtype=pl.String),
            pl.Series("original_id", _column(items, "original_id"), dtype=pl.String),
        ]
    )
    detected = pl.when(pl.concat_str(TEXT_FIELDS).str.contains(HAN_CLASS)).then(pl.lit("zh")).otherwise(pl.lit("en"))
    frame = frame.with_columns(record_id.alias("id")).with_columns(
        pl.lit(spec.category).alias("category"),
        pl.lit(spec.name).alias("source"),
        pl.col("lang").fill_null(detected if spec.lang == "auto" else pl.lit(spec.lang)),
        pl.col("group").fill_null(pl.col("id")),
        pl.col("source_file").fill_null(pl.lit(file.relative)),
        pl.lit(None, dtype=pl.String).alias("template_id"),
        pl.lit(0, dtype=pl.Int32).alias("copy_index"),
    )
    frame = frame.select(pl.col(name).cast(dtype) for name, dtype in _RECORD_FRAME_SCHEMA.items())
    extra_names = sorted({name for item in items if item.extra for name in item.extra})
    if extra_names:
        frame = frame.with_columns(
            pl.Series(EXTRA_PREFIX + name, [(i.extra or {}).get(name) for i in items], dtype=pl.String).fill_null("")
            for name in extra_names
        )
    return frame


def _table(columns: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pydict(columns, schema=schema)
