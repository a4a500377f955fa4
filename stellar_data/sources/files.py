"""Reading helpers shared by adapters: decoding with clear file-level errors, JSON / JSONL items."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import orjson

from ..errors import SourceFileError
from ..record import RAW_EXCERPT_CHARS
from .base import Rejection, SourceFile

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


def iter_json_items(file: SourceFile) -> Iterator[tuple[int, str, Any] | Rejection]:
    """Items of a JSON array file or a JSON Lines file, detected from the first non-space character.

    Yields (row, location, value) or a Rejection for malformed / mis-encoded lines. A JSON Lines
    file that is valid UTF-8 is streamed a line at a time (never held whole, as text or bytes).
    """
    if _first_content_byte(file) != b"[" and _is_utf8(file):
        with _open(file) as handle:
            yield from _iter_json_lines(file, _without_bom(handle), clean=True)
        return
    text, clean = decode_text(file, read_bytes(file))
    stripped = text.lstrip()
    if not stripped:
        raise SourceFileError(f"{file.relative}: file is empty")
    if stripped[0] == "[":
        yield from _iter_json_array(file, text, clean)
    else:
        if not clean:
            check_encoding(file, text.split("\n"))
        yield from _iter_json_lines(file, _lines(text), clean)


_BLOCK = 1 << 22
_BOM = b"\xef\xbb\xbf"


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
    """Whether the whole file decodes as UTF-8, a block at a time (the text is not kept)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with _open(file) as handle:
        try:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _without_bom(lines: Iterable[bytes]) -> Iterator[bytes]:
    """A binary file's lines, a BOM removed from the first (as `decode_text` does for text)."""
    for row, line in enumerate(lines):
        yield line.removeprefix(_BOM) if row == 0 else line


def parse_json(text: str | bytes) -> Any:
    """orjson, several times faster than `json`; what it refuses (NaN, lone surrogate escapes) and
    every error message come from `json`, so both the accepted input and the messages stay Python's."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _iter_json_array(file: SourceFile, text: str, clean: bool) -> Iterator[tuple[int, str, Any] | Rejection]:
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
    for row, value in enumerate(values):
        location = f"item {row}"
        if not clean:
            dumped = json.dumps(value, ensure_ascii=False)
            if has_invalid_utf8(dumped):
                yield invalid_utf8_rejection(row, location, dumped)
                continue
        yield row, location, value


def _iter_json_lines(
    file: SourceFile, lines: Iterable[str] | Iterable[bytes], clean: bool
) -> Iterator[tuple[int, str, Any] | Rejection]:
    """Lines of decoded text, or of bytes from a file known to be UTF-8 (orjson parses bytes)."""
    parsed = 0
    failures = 0
    for row, line in enumerate(lines):
        location = f"line {row + 1}"
        if not line.strip():
            continue
        if not clean and has_invalid_utf8(line):
            failures += 1
            yield invalid_utf8_rejection(row, location, line)
            continue
        try:
            value = parse_json(line)
        except json.JSONDecodeError as exc:
            text = line if isinstance(line, str) else line.decode("utf-8").removesuffix("\n")
            if not text.strip():  # bytes of Unicode-only whitespace: blank, as a text line is
                continue
            failures += 1
            yield Rejection(row, location, "malformed_json", f"{exc.msg} at column {exc.colno}", excerpt(text))
            continue
        parsed += 1
        yield row, location, value
    if parsed == 0 and failures == 0:  # only blank lines (a blank text file is refused before)
        raise SourceFileError(f"{file.relative}: file is empty")
    if parsed == 0:
        raise SourceFileError(f"{file.relative}: not JSON or JSON Lines (no line parses as JSON)")


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
            kind = type(value).__name__
            yield Rejection(row, location, "not_an_object", f"expected a JSON object, got {kind}", excerpt(value))


def missing_fields(row: int, location: str, record: dict[str, Any], names: Iterable[str]) -> Rejection | None:
    missing = [name for name in names if name not in record]
    if not missing:
        return None
    return Rejection(row, location, "missing_field", f"missing field(s): {', '.join(missing)}", excerpt(record))
