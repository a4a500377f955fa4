"""The rows of a CSV file (for the generic adapter): Python's csv, excel dialect, record by record.

Rules:
- Location: `line N`, the 1-based physical line the record starts on (a quoted field may hold
  line breaks; blank lines count, and are skipped).
- The header is the first non-blank record. A mapped column missing from it, or written in it more
  than once, is a file-level error; a repeated column that is not mapped is not read.
- Fields of any size are read: csv's field limit (128 KiB by default) is raised to the file's
  length. The limit is the csv module's, process-wide: it is only ever raised, never lowered.
- A record with more or fewer cells than the header: `malformed_csv`.
- A quote left open: a record that runs over several lines, has the wrong number of cells and holds
  an odd number of quote characters started with a quote that never closed. Only its first line is
  quarantined (`malformed_csv`, unclosed quote) and reading resumes on the next line, so the good
  rows after it are read. A multi-line record with balanced quotes and the wrong number of cells is
  one malformed record (all its lines).
- A csv error in a record (none is expected of the excel dialect) quarantines its first line, and
  reading resumes on the next, the same way.
- Bytes that are not UTF-8 in a record: `invalid_utf8`; a wholly mis-encoded file: file-level.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import SourceFileError
from .base import Rejection, SourceFile
from .files import check_encoding, decode_text, excerpt, has_invalid_utf8, invalid_utf8_rejection, read_bytes

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
"""A physical line as csv sees one (io.StringIO with newline=""): ended by LF, CRLF or CR."""


class _Lines:
    """The physical lines of a text from an offset, as csv pulls them; `ends` holds where each of
    the lines pulled since it was last cleared ends."""

    def __init__(self, text: str, start: int) -> None:
        self._matches = _LINE.finditer(text, start)
        self.ends: list[int] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        match = next(self._matches)
        self.ends.append(match.end())
        return match.group()


@dataclass(frozen=True, slots=True)
class _Record:
    line: int
    """The 1-based line it starts on."""
    start: int
    first_line_end: int
    stop: int
    lines: int
    cells: list[str]
    error: str | None = None
    """csv's message when it could not read the record (then `cells` is empty)."""


class _Reader:
    """csv.reader over a text, a record at a time, knowing where each record starts; it can resume
    on the line after a record's first line."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._restart(0, 1)

    def _restart(self, offset: int, line: int) -> None:
        self._lines = _Lines(self._text, offset)
        self._reader = csv.reader(self._lines)
        self._offset, self._line = offset, line

    def __iter__(self) -> _Reader:
        return self

    def __next__(self) -> _Record:
        self._lines.ends.clear()
        try:
            cells, error = next(self._reader), None
        except csv.Error as exc:
            cells, error = [], str(exc)
        ends = self._lines.ends
        if not ends:
            raise StopIteration
        record = _Record(self._line, self._offset, ends[0], ends[-1], len(ends), cells, error)
        self._offset, self._line = ends[-1], self._line + len(ends)
        if error is not None:
            self.resume_after_first_line(record)
        return record

    def resume_after_first_line(self, record: _Record) -> None:
        self._restart(record.first_line_end, record.line + 1)

    def first_line(self, record: _Record) -> str:
        return self._text[record.start : record.first_line_end]

    def quotes(self, record: _Record) -> int:
        return self._text.count('"', record.start, record.stop)


def allow_fields_up_to(chars: int) -> None:
    """Raise csv's process-wide field limit to `chars` (never lower it)."""
    if csv.field_size_limit() < chars:
        csv.field_size_limit(chars)


def csv_rows(file: SourceFile, columns: dict[str, str]) -> Iterator[tuple[int, str, dict[Any, Any]] | Rejection]:
    """(row, location, {column: cell}) per record, or a Rejection; `row` counts non-blank records."""
    text, clean = decode_text(file, read_bytes(file))
    if not clean:
        check_encoding(file, text.splitlines())
    allow_fields_up_to(len(text))
    reader = _Reader(text)
    header = next((record for record in reader if record.cells or record.error), None)
    if header is not None and header.error is not None:
        raise SourceFileError(f"{file.relative}: invalid CSV header at line {header.line}: {header.error}")
    names = header.cells if header is not None else []
    _check_header(file, names, columns)
    row = 0
    for record in reader:
        if not record.cells and record.error is None:
            continue  # a blank line
        yield _entry(reader, record, row, names, clean)
        row += 1


def _entry(
    reader: _Reader, record: _Record, row: int, names: list[str], clean: bool
) -> tuple[int, str, dict[Any, Any]] | Rejection:
    location = f"line {record.line}"
    cells, width = record.cells, len(names)
    if record.error is not None:
        message = f"invalid CSV: {record.error}"
        return Rejection(row, location, "malformed_csv", message, excerpt(reader.first_line(record)))
    if len(cells) != width and record.lines > 1 and reader.quotes(record) % 2:
        reader.resume_after_first_line(record)
        message = f"unclosed quote (the record would run over {record.lines} lines with {len(cells)} of {width} cells)"
        return Rejection(row, location, "malformed_csv", message, excerpt(reader.first_line(record)))
    values: dict[Any, Any] = dict(zip(names, cells, strict=False))
    if len(cells) > width:  # as csv.DictReader: the extra cells under None, missing ones as None
        values[None] = cells[width:]
        return Rejection(row, location, "malformed_csv", "more cells than header columns", excerpt(values))
    if len(cells) < width:
        values.update({name: None for name in names[len(cells) :]})
        return Rejection(row, location, "malformed_csv", "fewer cells than header columns", excerpt(values))
    if not clean and any(has_invalid_utf8(cell) for cell in cells):
        return invalid_utf8_rejection(row, location, "\x1f".join(values.values()))
    return row, location, values


def _check_header(file: SourceFile, names: list[str], columns: dict[str, str]) -> None:
    shown = [name[:40] for name in names[:20]] + (["..."] if len(names) > 20 else [])
    missing = [c for c in columns.values() if c not in names]
    if missing:
        raise SourceFileError(
            f"{file.relative}: column(s) {', '.join(map(repr, missing))} not in the file's header {shown}"
        )
    repeated = sorted({c for c in columns.values() if names.count(c) > 1})
    if repeated:
        raise SourceFileError(
            f"{file.relative}: column(s) {', '.join(map(repr, repeated))} appear more than once in the header"
        )
