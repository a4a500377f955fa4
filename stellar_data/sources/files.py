"""Reading helpers shared by adapters: file access, decoding with clear file-level errors, the shape
of JSON items. The JSON and JSON Lines parsers themselves are in json_items.py.

Rules:
- Files are read with plain block reads (4 MiB at a time), never memory-mapped: a file truncated
  while it is read gives short reads, not a SIGBUS that kills the process.
- UTF-8 validity is checked a block at a time, exactly: an incomplete sequence at the end of a
  block is carried over to the next one; one left incomplete at the end of the file is invalid.
- A quarantine excerpt is at most RAW_EXCERPT_CHARS characters and always encodable: a value too
  deeply nested to serialize is described, not shown; lone surrogates become U+FFFD.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from ..errors import SourceFileError
from ..record import RAW_EXCERPT_CHARS
from .base import LineSpan, Rejection, SourceFile

_SURROGATE = re.compile("[\udc80-\udcff]")
"""What surrogateescape makes of an invalid byte."""
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")
_NON_ASCII = re.compile("[^\x00-\x7f]")

BLOCK = 1 << 22
"""Bytes read at a time."""
_BOM = b"\xef\xbb\xbf"
_NEWLINE = b"\n"


def excerpt(value: Any) -> str:
    """The value as quarantine text: a string as it is, anything else as JSON (see the rules)."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (RecursionError, ValueError):
            text = f"<{type(value).__name__} too deeply nested to show>"
    return _ANY_SURROGATE.sub("\ufffd", text[:RAW_EXCERPT_CHARS])


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
        return data.removeprefix(_BOM).decode("utf-8", errors="surrogateescape"), False


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


# --- block reads --------------------------------------------------------------------------------


@contextmanager
def open_file(file: SourceFile) -> Iterator[BinaryIO]:
    """The file opened for reading, with read_bytes' file-level errors."""
    try:
        handle = file.path.open("rb")
    except OSError:
        read_bytes(file)  # raises the error that names the file
        raise
    with handle:
        yield handle


def first_content_byte(file: SourceFile) -> bytes | None:
    """The first byte that is not ASCII whitespace (after a BOM); None for a blank file."""
    with open_file(file) as handle:
        block = handle.read(BLOCK).removeprefix(_BOM)
        while block:
            if stripped := block.lstrip():
                return stripped[:1]
            block = handle.read(BLOCK)
    return None


def is_json_lines(file: SourceFile) -> bool:
    """A file whose first non-space character is not `[` (read as JSON Lines)."""
    first = first_content_byte(file)
    return first is not None and first != b"["


def file_is_utf8(file: SourceFile) -> bool:
    """Whether the whole file is valid UTF-8, checked a block at a time (see the rules)."""
    carry = b""
    with open_file(file) as handle:
        while block := handle.read(BLOCK):
            data = carry + block if carry else block
            cut = complete_prefix(data)
            if not is_utf8(memoryview(data)[:cut]):
                return False
            carry = data[cut:]
    return is_utf8(carry)


def complete_prefix(data: bytes) -> int:
    """The length of `data` without the UTF-8 sequence its last bytes start but do not finish."""
    for back in range(1, min(3, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            break
        if byte >= 0xC0:  # a lead byte: its sequence needs 2, 3 or 4 bytes (0xF8 and above: invalid alone)
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4 if byte < 0xF8 else 1
            return len(data) - back if need > back else len(data)
    return len(data)


def is_utf8(data: bytes | memoryview) -> bool:
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
    cut), with the index of each span's first line. Read a block at a time up to the last cut, line
    ends counted by `bytes.count`; a file cut short while it is read ends where the reads end."""
    size = path.stat().st_size
    spans: list[LineSpan] = []
    start = first_row = 0
    lines = offset = 0  # the line ends before `offset + counted`
    with path.open("rb") as handle:
        while start + target_bytes < size:  # a cut is due
            block = handle.read(min(BLOCK, size - offset))
            if not block:
                size = offset
                break
            counted = 0
            while (cut_from := start + target_bytes - offset) < len(block):
                at = block.find(_NEWLINE, max(cut_from, counted))
                if at == -1:
                    break
                lines += block.count(_NEWLINE, counted, at + 1)
                counted = at + 1
                spans.append(LineSpan(start, offset + counted, first_row))
                start, first_row = offset + counted, lines
            lines += block.count(_NEWLINE, counted)
            offset += len(block)
    if start < size or not spans:
        spans.append(LineSpan(start, size, first_row))
    return spans


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


_MOVED = frozenset({"JSON_BATCH", "JsonBatch", "iter_json_batches", "iter_json_items", "parse_json"})
"""The JSON readers, now in json_items.py, still importable from here (`from .files import ...`)."""


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from . import json_items  # json_items imports this module: a top-level import would be circular

        return getattr(json_items, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
