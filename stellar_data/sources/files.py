"""Reading helpers shared by adapters: decoding with clear file-level errors, JSON / JSONL items."""

from __future__ import annotations

import heapq
import io
import itertools
import json
import mmap
import os
import re
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pyarrow as pa

from ..errors import SourceFileError
from ..record import RAW_EXCERPT_CHARS
from .base import LineSpan, Rejection, SourceFile, location

_SURROGATE = re.compile("[\udc80-\udcff]")
_NON_ASCII = re.compile("[^\x00-\x7f]")


def excerpt(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:RAW_EXCERPT_CHARS]


def read_bytes(file: SourceFile) -> bytes:
    try:
        return file.path.read_bytes()
    except FileNotFoundError:
        raise SourceFileError(f"{file.relative}: file not found ({file.path})") from None
    except IsADirectoryError:
        raise SourceFileError(f"{file.relative}: is a directory, not a file") from None
    except OSError as exc:
        raise SourceFileError(f"{file.relative}: cannot read: {exc.strerror}") from None


def decode_text(file: SourceFile, data: bytes) -> tuple[str, bool]:
    """Decode UTF-8 (a BOM is allowed). Returns (text, clean).

    Invalid bytes become lone surrogates (surrogateescape) so the affected items can be
    quarantined one by one; `check_encoding` turns a wholly mis-encoded file into one error.
    """
    try:
        return data.decode("utf-8-sig"), True
    except UnicodeDecodeError:
        return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape"), False


def has_invalid_utf8(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _decodes_as_gb18030(text: str) -> bool:
    try:
        text.encode("utf-8", "surrogateescape").decode("gb18030")
    except UnicodeDecodeError:
        return False
    return True


def check_encoding(file: SourceFile, units: list[str]) -> None:
    """Raise when the file as a whole is in another encoding; stray bad bytes stay record-level.

    The file is judged mis-encoded when most of its non-ASCII units fail to decode and either the
    whole file decodes as GB18030 (GBK and GB2312 are subsets: the usual legacy Chinese encodings)
    or at least three units fail.
    """
    non_ascii = [u for u in units if _NON_ASCII.search(u)]
    bad = sum(1 for u in non_ascii if has_invalid_utf8(u))
    if not non_ascii or bad * 2 <= len(non_ascii):
        return
    if _decodes_as_gb18030("\n".join(non_ascii)):
        raise SourceFileError(
            f"{file.relative}: not UTF-8 text; it decodes as GBK/GB18030 ({bad} of {len(non_ascii)} non-ASCII items "
            "fail as UTF-8): convert it with `iconv -f GB18030 -t UTF-8`"
        )
    if bad >= 3:
        raise SourceFileError(
            f"{file.relative}: not UTF-8 text ({bad} of {len(non_ascii)} non-ASCII items fail to decode)"
        )


def invalid_utf8_rejection(row: int, location: str, raw: str) -> Rejection:
    return Rejection(
        row,
        location,
        "invalid_utf8",
        "invalid UTF-8 bytes",
        excerpt(raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")),
    )


JSON_BATCH = 50_000
"""Items parsed per batch: one batch's Python objects are alive at a time."""


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
    if _first_content_byte(file) != b"[" and _is_utf8(file):
        with _open(file) as handle:
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


_BLOCK = 1 << 22
_BOM = b"\xef\xbb\xbf"
_NEWLINE = ord("\n")


@contextmanager
def _open(file: SourceFile) -> Iterator[BinaryIO]:
    """The file opened for reading, with read_bytes' file-level errors."""
    try:
        handle = file.path.open("rb")
    except OSError:
        read_bytes(file)  # raises the error that names the file
        raise
    with handle:
        yield handle


def _first_content_byte(file: SourceFile) -> bytes | None:
    """The first byte that is not ASCII whitespace (after a BOM); None for a blank file."""
    with _open(file) as handle:
        block = handle.read(_BLOCK).removeprefix(_BOM)
        while block:
            if stripped := block.lstrip():
                return stripped[:1]
            block = handle.read(_BLOCK)
    return None


def _is_utf8(file: SourceFile) -> bool:
    """Whether the whole file is valid UTF-8, checked in place in a memory map."""
    with _open(file) as handle:
        if not os.fstat(handle.fileno()).st_size:
            return True
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return is_utf8(data)


def is_utf8(data: bytes | mmap.mmap) -> bool:
    """Whether the bytes are valid UTF-8. Arrow checks them in place as one string value: 3x faster
    than decoding them (which builds a str of every character only to drop it)."""
    offsets = pa.py_buffer(struct.pack("<qq", 0, len(data)))
    value = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        value.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def line_spans(path: Path, target_bytes: int) -> list[LineSpan]:
    """The file cut into spans of about `target_bytes`, each ending at a line end (a line is never
    cut), with the index of each span's first line. The file is memory-mapped and its line ends
    counted by numpy: no copy of it is read into the process."""
    size = path.stat().st_size
    spans: list[LineSpan] = []
    start = first_row = 0
    if size:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            while start + target_bytes < size:  # a cut is due
                at = data.find(b"\n", start + target_bytes)
                if at == -1:
                    break
                spans.append(LineSpan(start, at + 1, first_row))
                first_row += _count_line_ends(data, start, at + 1)
                start = at + 1
    if start < size or not spans:
        spans.append(LineSpan(start, size, first_row))
    return spans


def _count_line_ends(data: mmap.mmap, start: int, stop: int) -> int:
    count = 0
    for offset in range(start, stop, _BLOCK):  # a block at a time: the comparison's array stays small
        block = np.frombuffer(data, dtype=np.uint8, count=min(_BLOCK, stop - offset), offset=offset)
        count += int(np.count_nonzero(block == _NEWLINE))
        del block  # the map cannot close while an array points into it
    return count


def is_json_lines(file: SourceFile) -> bool:
    """A file whose first non-space character is not `[` (read as JSON Lines)."""
    first = _first_content_byte(file)
    return first is not None and first != b"["


def _span_batches(file: SourceFile, span: LineSpan, size: int) -> Iterator[JsonBatch]:
    """The lines of one span of a JSON Lines file (see `line_spans`). The file-level checks (an empty
    file, no line parsing) are left to whole files: one span of blank or bad lines is no verdict."""
    with _open(file) as handle:
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


def parse_json(text: str | bytes) -> Any:
    """orjson, several times faster than `json`; what it refuses (NaN, lone surrogate escapes) and
    every error message come from `json`, so both the accepted input and the messages stay Python's."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _json_array_batches(file: SourceFile, text: str, clean: bool, size: int) -> Iterator[JsonBatch]:
    try:
        values = parse_json(text)
    except json.JSONDecodeError as exc:
        if not clean:  # GBK trail bytes can be `\`, breaking the JSON syntax: report the encoding
            check_encoding(file, text.split("\n"))
        raise SourceFileError(
            f"{file.relative}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(values, list):
        raise SourceFileError(f"{file.relative}: expected a JSON array of records")
    if not clean:
        check_encoding(file, [json.dumps(v, ensure_ascii=False) for v in values])
    for start in range(0, len(values), size):
        batch = JsonBatch("item")
        for row, value in enumerate(values[start : start + size], start):
            if not clean:
                dumped = json.dumps(value, ensure_ascii=False)
                if has_invalid_utf8(dumped):
                    batch.rejections.append(invalid_utf8_rejection(row, batch.location(row), dumped))
                    continue
            batch.rows.append(row)
            batch.values.append(value)
        yield batch


_BLANK = object()


def _json_line_batches(
    file: SourceFile,
    lines: Iterable[str] | Iterable[bytes],
    clean: bool,
    size: int,
    first_row: int = 0,
    whole_file: bool = True,
) -> Iterator[JsonBatch]:
    """Lines of decoded text, or of bytes from a file known to be UTF-8 (orjson parses bytes).

    The loop tries orjson on each line of a clean file first; only a line it refuses takes the slow
    path (`_parse_line`: blank lines, `json`'s verdict and message, bad bytes)."""
    lines = iter(lines)
    parsed = failures = 0
    for block_row in itertools.count(first_row, size):
        block = list(itertools.islice(lines, size))
        if not block:
            break
        if block_row == 0:
            block[0] = block[0].removeprefix(_BOM) if isinstance(block[0], bytes) else block[0]
        batch = JsonBatch("line")
        rows, values = batch.rows, batch.values
        for row, line in enumerate(block, block_row):
            if clean:
                try:
                    values.append(orjson.loads(line))
                    rows.append(row)
                    continue
                except orjson.JSONDecodeError:
                    pass
            value = _parse_line(row, batch.location(row), line, clean)
            if isinstance(value, Rejection):
                batch.rejections.append(value)
            elif value is not _BLANK:
                values.append(value)
                rows.append(row)
        parsed += len(rows)
        failures += len(batch.rejections)
        yield batch
    if not whole_file:
        return
    if parsed == 0 and failures == 0:  # only blank lines (a blank text file is refused before)
        raise SourceFileError(f"{file.relative}: file is empty")
    if parsed == 0:
        raise SourceFileError(f"{file.relative}: not JSON or JSON Lines (no line parses as JSON)")


def _parse_line(row: int, location: str, line: str | bytes, clean: bool) -> Any:
    """One line's value, a Rejection, or _BLANK."""
    if not line.strip():
        return _BLANK
    if not clean and has_invalid_utf8(line):
        return invalid_utf8_rejection(row, location, line)
    try:
        return parse_json(line)
    except json.JSONDecodeError as exc:
        text = line if isinstance(line, str) else line.decode("utf-8").removesuffix("\n")
        if not text.strip():  # bytes of Unicode-only whitespace: blank, as a text line is
            return _BLANK
        return Rejection(row, location, "malformed_json", f"{exc.msg} at column {exc.colno}", excerpt(text))


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


def json_objects(
    items: Iterable[tuple[int, str, Any] | Rejection],
) -> Iterator[tuple[int, str, dict[str, Any]] | Rejection]:
    """Rejections pass through; an item that is not an object becomes a `not_an_object` rejection."""
    for entry in items:
        if isinstance(entry, Rejection):
            yield entry
            continue
        row, location, value = entry
        if isinstance(value, dict):
            yield row, location, value
        else:
            yield not_an_object(row, location, value)


def not_an_object(row: int, location: str, value: Any) -> Rejection:
    kind = type(value).__name__
    return Rejection(row, location, "not_an_object", f"expected a JSON object, got {kind}", excerpt(value))


def missing_fields(row: int, location: str, record: dict[str, Any], names: Iterable[str]) -> Rejection | None:
    missing = [name for name in names if name not in record]
    if not missing:
        return None
    return Rejection(row, location, "missing_field", f"missing field(s): {', '.join(missing)}", excerpt(record))
