"""Validate every record against schemas/record.schema.json.

jsonschema per record costs tens of microseconds, too slow for a million records, so the schema's
per-field keywords (type/null, minLength, maxLength, pattern, enum, minimum) are compiled once into
polars expressions that find the suspect rows in one vectorized pass. jsonschema itself then judges
exactly those rows and writes the messages, so it stays the authority. A schema using a keyword
outside that set is validated row by row with jsonschema (correct, just slower).

The `_location` column assemble adds (each record's location as its adapter wrote it) is not a
record field: an invalid record's failure carries it (ingest quarantines the record there), and the
valid frame keeps it, so that a global step's quarantine rows name the same place; the writers take
only the record fields, so it never reaches the shards.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import polars as pl

from ..record import RAW_EXCERPT_CHARS, quarantine_frame
from .assemble import LOCATION_COLUMN
from .base import RecordResult, StepStats

_IGNORED = {"description", "title", "$comment", "examples", "default"}
_COMPILED = {"type", "minLength", "maxLength", "pattern", "enum", "minimum"}
# Top-level keywords the compiled check accounts for (the frame's columns are the properties).
_OBJECT_LEVEL = _IGNORED | {"$schema", "$id", "type", "properties", "required", "additionalProperties"}
# Characters on which Python's `re` (used by jsonschema) and polars' regex may disagree, e.g. `\s`
# matches U+001C..U+001F only in Python. Values holding any are always re-checked by jsonschema.
_DIALECT_SENSITIVE = r"[\x00-\x1f\x7f-\x9f\u2028\u2029]"


def _violation(name: str, rules: dict[str, Any]) -> pl.Expr | None:
    """An expression true where the column may violate its property schema; None if not compilable."""
    if set(rules) - _IGNORED - _COMPILED:
        return None
    col = pl.col(name)
    types = rules.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    parts = [] if "null" in types else [col.is_null()]
    if "minLength" in rules:
        parts.append(col.str.len_chars() < rules["minLength"])
    if "maxLength" in rules:
        parts.append(col.str.len_chars() > rules["maxLength"])
    if "pattern" in rules:
        parts.append(~col.str.contains(rules["pattern"]))
        parts.append(col.str.contains(_DIALECT_SENSITIVE))
    if "enum" in rules:
        parts.append(~col.is_in(rules["enum"]))
    if "minimum" in rules:
        parts.append(col < rules["minimum"])
    return pl.any_horizontal(p.fill_null(False) for p in parts) if parts else pl.lit(False)


class RecordValidator:
    def __init__(self, schema: dict[str, Any]) -> None:
        jsonschema.Draft202012Validator.check_schema(schema)
        self._validator = jsonschema.Draft202012Validator(schema)
        self._properties: dict[str, Any] = schema.get("properties", {})
        expressions = [_violation(name, rules) for name, rules in self._properties.items()]
        compilable = not set(schema) - _OBJECT_LEVEL and all(e is not None for e in expressions)
        self._suspect = pl.any_horizontal(expressions) if compilable else None

    def errors(self, record: dict[str, Any]) -> list[jsonschema.ValidationError]:
        return sorted(self._validator.iter_errors(record), key=lambda e: (list(map(str, e.path)), e.message))

    def __call__(
        self, frame: pl.DataFrame, source: str
    ) -> tuple[pl.DataFrame, list[tuple[dict[str, Any], str, str]], StepStats]:
        """Returns (valid rows, [(record, rule, message)] for invalid rows, stats); `record` holds every
        column of the frame, `_location` included."""
        stats = StepStats("validate", source, total=frame.height)
        missing = sorted(set(self._properties) - set(frame.columns))
        if missing:
            raise ValueError(f"record frame lacks schema properties {missing}")
        if self._suspect is None:
            suspects = frame.with_row_index("_row")
        else:
            suspects = frame.with_row_index("_row").filter(self._suspect)
        invalid_rows: list[int] = []
        failures: list[tuple[dict[str, Any], str, str]] = []
        for record in suspects.iter_rows(named=True):
            row = record.pop("_row")
            candidate = {k: record[k] for k in self._properties}
            errors = self.errors(candidate)
            if not errors:
                continue
            first = errors[0]
            field = str(first.path[0]) if first.path else "record"
            rule = f"invalid_{field}"
            message = "; ".join(f"{'.'.join(map(str, e.path)) or 'record'}: {_short(e.message)}" for e in errors)
            invalid_rows.append(row)
            failures.append((record, rule, message))
            stats.dropped[rule] += 1
        valid = (
            frame
            if not invalid_rows
            else frame.with_row_index("_row").filter(~pl.col("_row").is_in(invalid_rows)).drop("_row")
        )
        stats.kept = valid.height
        return valid, failures, stats


def _short(message: str) -> str:
    return message if len(message) <= 300 else message[: RAW_EXCERPT_CHARS // 10] + "..."


class Validate:
    """The record schema; an invalid record is quarantined where its adapter found it."""

    name = "validate"
    drops = "invalid_<field>: the first field the schema refuses"

    def __init__(self, schema: dict[str, Any]) -> None:
        self.validator = RecordValidator(schema)

    def run(self, frame: pl.DataFrame, source: str) -> RecordResult:
        valid, failures, stats = self.validator(frame, source)
        rows = [
            {
                "source": source,
                "file": record["source_file"],  # a folder source's records name their own file
                "location": record[LOCATION_COLUMN],  # as the adapter wrote it (`line 16`, `item 3`, ...)
                "row": record["source_row"],
                "rule": rule,
                "message": message,
                "deliberate": False,
                "id": record["id"],
                "raw": str({k: record[k] for k in ("instruction", "input", "output")})[:RAW_EXCERPT_CHARS],
            }
            for record, rule, message in failures
        ]
        return RecordResult(valid, quarantine_frame(rows), stats)
