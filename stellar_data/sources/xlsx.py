"""Reading the first worksheet of an XLSX workbook, every failure a file-level error.

openpyxl parses a read-only sheet lazily, while its rows are iterated: malformed sheet XML, a
member whose CRC or deflate stream is broken, or a truncated archive surface mid-way, from the
row iterator. `sheet_rows` wraps that iterator so each becomes one `SourceFileError` naming the
workbook (with the Excel row reached), never a traceback.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SourceFileError

_BROKEN_WORKBOOK = (SyntaxError, zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, OSError)
"""What openpyxl raises on a damaged workbook: XML parse errors (ElementTree's and lxml's are
SyntaxErrors), zip and deflate errors, missing members, values it cannot convert."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def sheet_rows(
    path: Path, relative: str, aliases: dict[str, str] | None = None
) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """The first sheet's header (stripped, `aliases` applied, trailing empty names dropped) and an
    iterator over its data rows (values only, as wide as the header)."""
    import openpyxl  # here, not with the module: only XLSX sources need it (0.1 s to import)
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise SourceFileError(f"{relative}: file not found ({path})") from None
    except (InvalidFileException, *_BROKEN_WORKBOOK) as exc:
        raise SourceFileError(f"{relative}: not a readable XLSX workbook ({_one_line(exc)})") from None
    sheet = workbook.worksheets[0]
    first = next(_guarded(sheet.iter_rows(min_row=1, max_row=1, values_only=True), relative, 1), ())
    names = aliases or {}
    header = [names.get(str(h).strip(), str(h).strip()) if h is not None else "" for h in first]
    while header and not header[-1]:
        header.pop()  # e.g. Astro-QA's EN subjective declares 16,380 empty columns
    return header, _guarded(sheet.iter_rows(min_row=2, max_col=len(header), values_only=True), relative, 2)


def _guarded(rows: Iterator[tuple[Any, ...]], relative: str, first_row: int) -> Iterator[tuple[Any, ...]]:
    """`rows`, with a failure while parsing them turned into a SourceFileError naming the file."""
    excel_row = first_row
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except _BROKEN_WORKBOOK as exc:
            raise SourceFileError(
                f"{relative}: damaged XLSX workbook, sheet unreadable after row {excel_row - 1} ({_one_line(exc)})"
            ) from None
        yield values
        excel_row += 1
