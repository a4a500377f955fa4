"""Any JSON / JSONL / CSV / Parquet file in a known shape, through a column mapping in the recipe.

[sources.options]
format = "csv"                       # auto (from the extension), json, jsonl, csv, parquet
columns = { instruction = "question", output = "answer", input = "context", id = "qid" }
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SourceFileError
from .base import Entry, RawItem, Rejection, SourceFile
from .files import (
    check_encoding,
    decode_text,
    excerpt,
    has_invalid_utf8,
    invalid_utf8_rejection,
    iter_json_items,
    json_objects,
    missing_fields,
    read_bytes,
)

_EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class GenericOptions:
    columns: dict[str, str]
    format: str = "auto"

    def format_of(self, file: SourceFile) -> str:
        if self.format != "auto":
            return self.format
        try:
            return _EXTENSIONS[file.path.suffix.lower()]
        except KeyError:
            raise SourceFileError(
                f"{file.relative}: cannot tell the format from the extension; set options.format"
            ) from None


def _rows(file: SourceFile, fmt: str, columns: dict[str, str]) -> Iterator[tuple[int, str, Any] | Rejection]:
    if fmt in ("json", "jsonl"):
        yield from iter_json_items(file)
    elif fmt == "csv":
        yield from _csv_rows(file, columns)
    else:
        yield from _parquet_rows(file, columns)


def _require_columns(file: SourceFile, header: list[str], columns: dict[str, str]) -> None:
    missing = [c for c in columns.values() if c not in header]
    if missing:
        raise SourceFileError(
            f"{file.relative}: column(s) {', '.join(map(repr, missing))} not in the file's header {header}"
        )


def _csv_rows(file: SourceFile, columns: dict[str, str]) -> Iterator[tuple[int, str, Any] | Rejection]:
    text, clean = decode_text(file, read_bytes(file))
    if not clean:
        check_encoding(file, text.splitlines())
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        _require_columns(file, list(reader.fieldnames or []), columns)
        for row, values in enumerate(reader):
            location = f"line {reader.line_num}"
            if None in values:  # csv puts extra cells under the key None
                yield Rejection(row, location, "malformed_csv", "more cells than header columns", excerpt(values))
            elif None in values.values():  # and fills missing cells with None
                yield Rejection(row, location, "malformed_csv", "fewer cells than header columns", excerpt(values))
            elif not clean and any(has_invalid_utf8(v) for v in values.values()):
                yield invalid_utf8_rejection(row, location, "\x1f".join(values.values()))
            else:
                yield row, location, values
    except csv.Error as exc:
        raise SourceFileError(f"{file.relative}: invalid CSV at line {reader.line_num}: {exc}") from None


def _parquet_rows(file: SourceFile, columns: dict[str, str]) -> Iterator[tuple[int, str, Any]]:
    try:
        parquet = pq.ParquetFile(file.path)
    except FileNotFoundError:
        raise SourceFileError(f"{file.relative}: file not found ({file.path})") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceFileError(f"{file.relative}: not a readable Parquet file: {exc}") from None
    _require_columns(file, parquet.schema_arrow.names, columns)
    row = 0
    for batch in parquet.iter_batches(columns=sorted(set(columns.values()))):
        for values in batch.to_pylist():
            yield row, f"row {row}", values
            row += 1


def read_generic(file: SourceFile, options: dict[str, Any], lang: str) -> Iterator[Entry]:
    config = GenericOptions(**options)
    mapping = config.columns
    for entry in json_objects(_rows(file, config.format_of(file), mapping)):
        if isinstance(entry, Rejection):
            yield entry
            continue
        row, location, record = entry
        if problem := missing_fields(row, location, record, (mapping["instruction"], mapping["output"])):
            yield problem
            continue
        original_id = record.get(mapping["id"]) if "id" in mapping else None
        yield RawItem(
            row=row,
            location=location,
            instruction=record[mapping["instruction"]],
            input=record.get(mapping["input"], "") if "input" in mapping else "",
            output=record[mapping["output"]],
            original_id=None if original_id is None else str(original_id),
        )
