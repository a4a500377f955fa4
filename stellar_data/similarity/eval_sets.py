"""The eval sets declared in the recipe: questions, with their options, answer and ids, read through a
column mapping from a CSV (such as `Question,A,B,C,D,Answer`, an unnamed index column allowed), JSON
Lines, JSON or Parquet file.

The files are read by the generic adapter's readers (sources/generic.py), with their rules for
encodings, CSV quoting, JSON syntax and damaged Parquet data. An eval set is read whole or not at
all: an item those readers would quarantine is an error here, since a question left out would go
unchecked. Every problem is one SourceFileError naming the eval set and its file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SourceFileError
from ..sources.base import Rejection, SourceFile
from ..sources.files import json_objects
from ..sources.generic import EXTENSIONS, read_rows

if TYPE_CHECKING:  # steps/decontaminate.py imports eval_index.py, which imports this module
    from ..steps.decontaminate import EvalSetSpec

FORMATS = frozenset(EXTENSIONS.values())


def read_eval_set(spec: EvalSetSpec, root: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """(questions, extras, ids) of a declared eval set file: `extras` are each item's option texts and
    answer (required too for short questions). One clear error naming a bad file or column."""
    path = root / spec.path
    where = f"eval set {spec.name}"
    if not path.exists():
        raise SourceFileError(f"{where}: file not found: {path}")
    fmt = spec.format if spec.format != "auto" else EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise SourceFileError(f"{where}: cannot tell the format of {spec.path}; set format")
    if fmt not in FORMATS:
        raise SourceFileError(f"{where}: format {fmt!r} is not one of {', '.join(sorted(FORMATS))}")
    wanted = [spec.question, *spec.options, *(c for c in (spec.answer, spec.id) if c)]
    try:
        rows = _rows(SourceFile(path, spec.path), fmt, wanted)
    except SourceFileError as exc:
        raise SourceFileError(f"{where}: {exc}") from None
    missing = [c for c in wanted if rows and c not in rows[0]]
    if not rows or missing:
        names = ", ".join(map(repr, missing or [spec.question]))
        raise SourceFileError(f"{where}: {spec.path} has no column {names}")
    questions = [str(r.get(spec.question) or "") for r in rows]
    extra_columns = (*spec.options, *([spec.answer] if spec.answer else []))
    extras = [[str(r.get(c) or "") for c in extra_columns] for r in rows]
    ids = [str(r.get(spec.id)) if spec.id else str(i) for i, r in enumerate(rows)]
    return questions, extras, ids


def _rows(file: SourceFile, fmt: str, columns: list[str]) -> list[dict[str, Any]]:
    """Every item of the file, as an object; the first one the generic readers would quarantine is
    an error. Parquet is read by column, so it is given the columns; a CSV or JSON item holds all of
    its own, and their absence is told by the caller, in the eval set's words."""
    mapping = {c: c for c in columns} if fmt == "parquet" else {}
    rows = []
    for entry in json_objects(read_rows(file, fmt, mapping)):
        if isinstance(entry, Rejection):
            raise SourceFileError(f"{file.relative}: {entry.location}: {entry.message}")
        rows.append(entry[2])
    return rows
