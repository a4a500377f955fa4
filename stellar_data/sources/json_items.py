"""The items of a JSON array or JSON Lines file: one bad item is quarantined, never fatal.

Locations: `line N` (1-based, physical lines) in a JSON Lines file, `item N` (0-based) in a JSON
array. Record-level rules (a Rejection of that item): `malformed_json` (a JSON Lines line that is
not JSON), `invalid_utf8` (bytes that are not UTF-8 inside the item), and those of json_parse.py
(`invalid_unicode`, `too_deep`, `number_too_long`, `duplicate_key`). An array that orjson reads
whole is checked for repeated keys only; one it refuses (a lone surrogate escape, NaN, too deep,
too long a number, bad bytes) is scanned into its items and each item parsed on its own.

File-level rules (one SourceFileError line naming the file): an empty file; a JSON Lines file no
line of which parses as JSON; a JSON array with a syntax error (line and column: its items cannot
be told apart past it); a file in another encoding (see files.check_encoding).
"""

from __future__ import annotations

import heapq
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import SourceFileError
from .base import LineSpan, Rejection, SourceFile, location
from .files import (
    check_encoding,
    decode_text,
    excerpt,
    file_is_utf8,
    first_content_byte,
    has_invalid_utf8,
    invalid_utf8_rejection,
    is_utf8,
    open_file,
    read_bytes,
)
from .json_parse import ItemProblem, Malformed, array_items, check_keys, few_key_marks, load_item, parse_json

JSON_BATCH = 50_000
"""Items parsed per batch: one batch's Python objects are alive at a time."""

_BOM = b"\xef\xbb\xbf"
_SYNTAX_RULES = frozenset({"malformed_json", "invalid_utf8"})
"""Rejections of lines that are not JSON (the others are JSON refused by a record-level rule)."""

__all__ = ["JSON_BATCH", "ItemProblem", "JsonBatch", "iter_json_batches", "iter_json_items", "parse_json"]


@dataclass(slots=True)
class JsonBatch:
    """Consecutive items of a JSON array or JSON Lines file: the parsed values with their rows, and
    the rejections (malformed or mis-encoded lines) among them."""

    kind: str
    """`line` (JSON Lines: locations are 1-based lines) or `item` (a JSON array: 0-based items)."""
    rows: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def location(self, row: int) -> str:
        return location(self.kind, row)


def iter_json_batches(file: SourceFile, size: int = JSON_BATCH) -> Iterator[JsonBatch]:
    """The items of a JSON array file or a JSON Lines file (detected from the first non-space
    character), `size` rows at a time. A JSON Lines file that is valid UTF-8 is streamed (never held
    whole, as text or bytes) and parsed in one tight loop per batch."""
    if file.span is not None:
        yield from _span_batches(file, file.span, size)
        return
    if first_content_byte(file) != b"[" and file_is_utf8(file):
        with open_file(file) as handle:
            yield from _json_line_batches(file, handle, clean=True, size=size)
        return
    text, clean = decode_text(file, read_bytes(file))
    stripped = text.lstrip()
    if not stripped:
        raise SourceFileError(f"{file.relative}: file is empty")
    if stripped[0] == "[":
        yield from _json_array_batches(file, text, clean, size)
    else:
        if not clean:
            check_encoding(file, text.split("\n"))
        yield from _json_line_batches(file, _lines(text), clean=False, size=size)


def iter_json_items(file: SourceFile) -> Iterator[tuple[int, str, Any] | Rejection]:
    """`iter_json_batches` an item at a time: (row, location, value) or a Rejection, in file order."""
    for batch in iter_json_batches(file):
        items = ((row, batch.location(row), value) for row, value in zip(batch.rows, batch.values, strict=True))
        yield from heapq.merge(batch.rejections, items, key=_row_of)


def _row_of(entry: tuple[int, str, Any] | Rejection) -> int:
    return entry.row if isinstance(entry, Rejection) else entry[0]  # a batch's rejections all have rows


def _span_batches(file: SourceFile, span: LineSpan, size: int) -> Iterator[JsonBatch]:
    """The lines of one span of a JSON Lines file (see `line_spans`). The file-level checks (an empty
    file, no line parsing) are left to whole files: one span of blank or bad lines is no verdict."""
    with open_file(file) as handle:
        handle.seek(span.start)
        data = handle.read(span.stop - span.start)
    if is_utf8(data):
        lines: Iterable[str] | Iterable[bytes] = io.BytesIO(data)
        clean = True
    else:
        text = data.decode("utf-8", errors="surrogateescape")
        check_encoding(file, text.split("\n"))
        lines, clean = _lines(text), False
    yield from _json_line_batches(file, lines, clean, size, first_row=span.first_row, whole_file=False)


# --- JSON arrays ---------------------------------------------------------------------------------


def _syntax_error(file: SourceFile, text: str, position: int, message: str) -> SourceFileError:
    line = text.count("\n", 0, position) + 1
    column = position - text.rfind("\n", 0, position)
    return SourceFileError(f"{file.relative}: invalid JSON at line {line} column {column}: {message}")


def _json_array_batches(file: SourceFile, text: str, clean: bool, size: int) -> Iterator[JsonBatch]:
    """The whole array parsed by orjson, or, where orjson refuses it, item by item (see the rules)."""
    try:
        values = orjson.loads(text) if clean else None
    except orjson.JSONDecodeError:
        values = None
    if isinstance(values, list):
        entries = _checked_values(text, values)
    else:
        _raise_json_syntax_error(file, text, clean)
        entries = _item_by_item(file, text, clean)
    while chunk := list(itertools.islice(entries, size)):
        batch = JsonBatch("item")
        for row, entry in chunk:
            if isinstance(entry, Rejection):
                batch.rejections.append(entry)
            else:
                batch.rows.append(row)
                batch.values.append(entry)
        yield batch


def _checked_values(text: str, values: list[Any]) -> Iterator[tuple[int, Any]]:
    """The values orjson read; the items are scanned for their keys only when one may repeat."""
    keys = sum(len(value) for value in values if type(value) is dict)
    items = None if few_key_marks(text, keys) else array_items(text)
    if items is not None and len(items) != len(values):
        raise RuntimeError("the JSON array scan disagrees with orjson on the number of items")
    for row, value in enumerate(values):
        if items is not None:
            try:
                check_keys(items[row].text, value, items[row].keys)
            except ItemProblem as problem:
                yield row, _rejection(row, problem, items[row].text)
                continue
        yield row, value


def _raise_json_syntax_error(file: SourceFile, text: str, clean: bool) -> None:
    """The file-level error for an array `json` finds a syntax error in (its message and position)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        if not clean:  # GBK trail bytes can be `\`, breaking the JSON syntax: report the encoding
            check_encoding(file, text.split("\n"))
        raise SourceFileError(
            f"{file.relative}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except (RecursionError, ValueError):
        pass  # too deep or too long a number somewhere: judged item by item


def _item_by_item(file: SourceFile, text: str, clean: bool) -> Iterator[tuple[int, Any]]:
    try:
        items = array_items(text)
    except Malformed as exc:
        if not clean:
            check_encoding(file, text.split("\n"))
        raise _syntax_error(file, text, exc.position, exc.message) from None
    if not clean:
        check_encoding(file, [item.text for item in items])
    for row, item in enumerate(items):
        if not clean and has_invalid_utf8(item.text):
            yield row, invalid_utf8_rejection(row, location("item", row), item.text)
            continue
        try:
            yield row, load_item(item.text, item.keys)
        except ItemProblem as problem:
            yield row, _rejection(row, problem, item.text)
        except json.JSONDecodeError as exc:
            raise _syntax_error(file, text, item.start + exc.pos, exc.msg) from None


def _rejection(row: int, problem: ItemProblem, text: str) -> Rejection:
    return Rejection(row, location("item", row), problem.rule, problem.message, excerpt(text))


# --- JSON Lines ----------------------------------------------------------------------------------

_BLANK = object()
_UNPARSED = object()


def _json_line_batches(
    file: SourceFile,
    lines: Iterable[str] | Iterable[bytes],
    clean: bool,
    size: int,
    first_row: int = 0,
    whole_file: bool = True,
) -> Iterator[JsonBatch]:
    """Lines of decoded text, or of bytes from a file known to be UTF-8 (orjson parses bytes).

    The loop tries orjson on each line of a clean file first and keeps what it reads unless a key
    may repeat; only the other lines take the slow path (`_parse_line`: blank lines, `json`'s
    verdict and message, bad bytes, the record-level rules)."""
    lines = iter(lines)
    parsed = failures = 0  # parsed: lines that are JSON (kept or refused by a record-level rule)
    for block_row in itertools.count(first_row, size):
        block = list(itertools.islice(lines, size))
        if not block:
            break
        if block_row == 0:
            block[0] = block[0].removeprefix(_BOM) if isinstance(block[0], bytes) else block[0]
        batch = JsonBatch("line")
        rows, values = batch.rows, batch.values
        for row, line in enumerate(block, block_row):
            value = _UNPARSED
            if clean:
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError:
                    pass
                else:
                    if type(value) is not dict or few_key_marks(line, len(value)):
                        values.append(value)
                        rows.append(row)
                        continue
            value = _parse_line(row, batch.location(row), line, clean, value)
            if isinstance(value, Rejection):
                batch.rejections.append(value)
                failures += 1
                parsed += value.rule not in _SYNTAX_RULES
            elif value is not _BLANK:
                values.append(value)
                rows.append(row)
        parsed += len(rows)
        yield batch
    if not whole_file:
        return
    if parsed == 0 and failures == 0:  # only blank lines (a blank text file is refused before)
        raise SourceFileError(f"{file.relative}: file is empty")
    if parsed == 0:
        raise SourceFileError(f"{file.relative}: not JSON or JSON Lines (no line parses as JSON)")


def _parse_line(row: int, location: str, line: str | bytes, clean: bool, value: Any = _UNPARSED) -> Any:
    """One line's value, a Rejection, or _BLANK. `value`: orjson's parse of the line, if it has one."""
    try:
        if value is not _UNPARSED:
            check_keys(line, value)
            return value
        if not line.strip():
            return _BLANK
        if not clean and has_invalid_utf8(line):
            return invalid_utf8_rejection(row, location, line)
        return load_item(line)
    except ItemProblem as problem:
        return Rejection(row, location, problem.rule, problem.message, excerpt(_line_text(line)))
    except json.JSONDecodeError as exc:
        text = _line_text(line)
        if not text.strip():  # bytes of Unicode-only whitespace: blank, as a text line is
            return _BLANK
        return Rejection(row, location, "malformed_json", f"{exc.msg} at column {exc.colno}", excerpt(text))


def _line_text(line: str | bytes) -> str:
    return line if isinstance(line, str) else line.decode("utf-8").removesuffix("\n")


def _lines(text: str) -> Iterator[str]:
    """The lines of a text one at a time (a list of all of them would double a large file's memory);
    no empty last line after a final newline."""
    start, end = 0, len(text)
    while start < end:
        stop = text.find("\n", start)
        if stop == -1:
            stop = end
        yield text[start:stop]
        start = stop + 1
