"""Any JSON / JSONL / CSV / Parquet file in a known shape, through a column mapping in the recipe.

[sources.options]
format = "csv"                       # auto (from the extension), json, jsonl, csv, parquet
columns = { instruction = "question", output = "answer", input = "context", id = "qid" }

CSV files are read by csv_rows.py (its rules: locations, the header, large fields, a quote left
open), JSON and JSON Lines by json_items.py. A mapped `id` must be a string or a number (a list or
an object there is `wrong_type`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SourceFileError
from .base import Entry, RawItem, Rejection, SourceFile
from .csv_rows import csv_rows
from .files import excerpt, json_objects, missing_fields
from .json_items import iter_json_items

EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class GenericOptions:
    columns: dict[str, str]
    format: str = "auto"

    def format_of(self, file: SourceFile) -> str:
        if self.format != "auto":
            return self.format
        try:
            return EXTENSIONS[file.path.suffix.lower()]
        except KeyError:
            raise SourceFileError(
                f"{file.relative}: cannot tell the format from the extension; set options.format"
            ) from None


def read_rows(file: SourceFile, fmt: str, columns: dict[str, str]) -> Iterator[tuple[int, str, Any] | Rejection]:
    """(row, location, value) per item of a file in format `fmt`, or a Rejection. `columns`: the
    mapping, for a CSV header's check and the Parquet columns read."""
    if fmt in ("json", "jsonl"):
        yield from iter_json_items(file)
    elif fmt == "csv":
        yield from csv_rows(file, columns)
    else:
        yield from _parquet_rows(file, columns)


def _require_columns(file: SourceFile, header: list[str], columns: dict[str, str]) -> None:
    missing = [c for c in columns.values() if c not in header]
    if missing:
        raise SourceFileError(
            f"{file.relative}: column(s) {', '.join(map(repr, missing))} not in the file's header {header}"
        )


def _parquet_rows(file: SourceFile, columns: dict[str, str]) -> Iterator[tuple[int, str, Any]]:
    try:
        parquet = pq.ParquetFile(file.path)
    except FileNotFoundError:
        raise SourceFileError(f"{file.relative}: file not found ({file.path})") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceFileError(f"{file.relative}: not a readable Parquet file: {exc}") from None
    _require_columns(file, parquet.schema_arrow.names, columns)
    row = 0
    for values_of_batch in _parquet_batches(file, parquet, sorted(set(columns.values()))):
        for values in values_of_batch:
            yield row, f"row {row}", values
            row += 1


def _parquet_batches(file: SourceFile, parquet: pq.ParquetFile, names: list[str]) -> Iterator[list[dict[str, Any]]]:
    """Each batch's rows as dicts. Pages are decoded as the batches are read, so a damaged page
    fails here, mid-file: one SourceFileError naming the file."""
    batches = parquet.iter_batches(columns=names)
    rows = 0
    while True:
        try:
            batch = next(batches, None)
            values = None if batch is None else batch.to_pylist()
        except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
            message = " ".join(str(exc).split())
            raise SourceFileError(f"{file.relative}: damaged Parquet data at or after row {rows}: {message}") from None
        if values is None:
            return
        yield values
        rows += len(values)


def read_generic(file: SourceFile, options: GenericOptions, lang: str) -> Iterator[Entry]:
    mapping = options.columns
    for entry in json_objects(read_rows(file, options.format_of(file), mapping)):
        if isinstance(entry, Rejection):
            yield entry
            continue
        row, location, record = entry
        if problem := missing_fields(row, location, record, (mapping["instruction"], mapping["output"])):
            yield problem
            continue
        original_id = record.get(mapping["id"]) if "id" in mapping else None
        if original_id is not None and not isinstance(original_id, str | int | float):
            message = f"id must be a string or a number, got {type(original_id).__name__}"
            yield Rejection(row, location, "wrong_type", message, excerpt(record))
            continue
        yield RawItem(
            row=row,
            location=location,
            instruction=record[mapping["instruction"]],
            input=record.get(mapping["input"], "") if "input" in mapping else "",
            output=record[mapping["output"]],
            original_id=None if original_id is None else str(original_id),
        )
