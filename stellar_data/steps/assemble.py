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
from ..text import detect_lang
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
    row-based ids get the file segment from `id_prefix` when the source has several files."""
    stats = StepStats("read", spec.name)
    prefix = id_prefix(spec, file)
    columns: dict[str, list[Any]] = {name: [] for name in RECORD_SCHEMA.names}
    extra: dict[str, list[str | None]] = {}
    rejected: list[dict[str, Any]] = []
    for entry in entries:
        stats.total += 1
        if isinstance(entry, Rejection):
            stats.dropped[entry.rule] += 1
            rejected.append(quarantine_row(spec.name, entry.file or file.relative, entry))
            continue
        record_id = f"{spec.name}:{entry.key}" if entry.key is not None else f"{prefix}{entry.row}"
        problem = _type_problem(entry)
        if problem is not None:
            stats.dropped["wrong_type"] += 1
            raw = {name: getattr(entry, name) for name in TEXT_FIELDS}
            rejected.append(
                quarantine_row(
                    spec.name,
                    entry.file or file.relative,
                    Rejection(entry.row, entry.location, "wrong_type", problem, excerpt(raw)),
                    record_id,
                )
            )
            continue
        stats.kept += 1
        input_ = entry.input or ""
        lang = entry.lang or (
            detect_lang(entry.instruction, input_, entry.output) if spec.lang == "auto" else spec.lang
        )
        values = {
            "id": record_id,
            "instruction": entry.instruction,
            "input": input_,
            "output": entry.output,
            "category": spec.category,
            "source": spec.name,
            "lang": lang,
            "group": entry.group or record_id,
            "source_file": entry.file or file.relative,
            "source_row": entry.row,
            "template_id": None,
            "original_id": entry.original_id,
            "copy_index": 0,
        }
        for name, value in values.items():
            columns[name].append(value)
        for name, value in (entry.extra or {}).items():
            extra.setdefault(EXTRA_PREFIX + name, [None] * (stats.kept - 1)).append(value)
        for values_so_far in extra.values():  # an adapter that omits a field for one item
            if len(values_so_far) < stats.kept:
                values_so_far.append(None)
    frame = pl.DataFrame(columns, schema=_RECORD_FRAME_SCHEMA)
    if extra:
        frame = frame.with_columns(
            pl.Series(name, values, dtype=pl.String).fill_null("") for name, values in sorted(extra.items())
        )
    quarantine = pl.from_arrow(
        _table({n: [r[n] for r in rejected] for n in QUARANTINE_SCHEMA.names}, QUARANTINE_SCHEMA)
    )
    return frame, quarantine, stats


def _table(columns: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pydict(columns, schema=schema)
