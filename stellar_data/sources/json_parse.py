"""One JSON item: its parse and the record-level rules that refuse it (json_items.py reads files).

Each rule is a quarantine rule of that item (an ItemProblem, which the readers turn into a Rejection):
- `invalid_unicode`: a `\\uXXXX` escape that encodes a lone surrogate (half of a UTF-16 pair): no
  character, and no text column can hold it.
- `too_deep`: nested deeper than the parser's limit: orjson's 1,024 levels; an item orjson refuses
  for another reason is parsed by `json`, whose limit is Python's recursion limit (about 1,000).
- `number_too_long`: an integer longer than Python's int-string limit (4,300 digits by default).
- `duplicate_key`: an item's object writes one of its own (top-level) keys more than once; keys of
  nested objects are not read by any adapter and are not checked. Exact: every key written ends
  with `":` or `"<spaces>:`, so when those marks are no more than the parsed object's keys no key
  repeats; otherwise a scan of the text lists the keys.

The scans here (an object's keys, a JSON array's items) look only at strings, brackets, colons and
commas, without recursion: no nesting is too deep for them.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

_ANY_SURROGATE = re.compile("[\ud800-\udfff]")
_WS_COLON = re.compile(r'"[ \t\r\n]+:')
_WS_COLON_BYTES = re.compile(rb'"[ \t\r\n]+:')
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:,]', re.S)
"""What a scan of JSON text looks at: whole strings, brackets, colons and commas."""
_JSON_SPACE = " \t\r\n"


class ItemProblem(Exception):
    """An item that cannot be kept, though it is (or may be) JSON: a rule and a one-line message."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def parse_json(text: str | bytes) -> Any:
    """orjson, several times faster than `json`; what it refuses (NaN, lone surrogate escapes) and
    every error message come from `json`, so both the accepted input and the messages stay Python's."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def load_item(text: str | bytes, keys: list[str] | None = None) -> Any:
    """One item's value, as `parse_json` reads it. Raises json.JSONDecodeError for text that is not
    JSON, ItemProblem for the record-level rules. `keys`: the item's key tokens, if already scanned."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = _json_loads(text)
    check_keys(text, value, keys)
    return value


def _json_loads(text: str | bytes) -> Any:
    try:
        value = json.loads(text)
    except RecursionError:
        raise ItemProblem("too_deep", "nested deeper than the JSON parser's limit (about 1,000 levels)") from None
    except json.JSONDecodeError:
        raise
    except ValueError:  # Python's int-string conversion limit
        limit = sys.get_int_max_str_digits()
        raise ItemProblem("number_too_long", f"an integer longer than {limit} digits") from None
    if (surrogate := _first_surrogate(value)) is not None:
        raise ItemProblem("invalid_unicode", f"\\u{ord(surrogate):04x} is a lone surrogate escape, not a character")
    return value


def _first_surrogate(value: Any) -> str | None:
    """The first lone surrogate in any string (key or value) of a parsed value; no recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if match := _ANY_SURROGATE.search(item):
                return match.group()
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def check_keys(text: str | bytes, value: Any, keys: list[str] | None = None) -> None:
    """Raise `duplicate_key` when the object `text` holds writes a top-level key twice (`value`: its
    parse; `keys`: its top-level key tokens when already scanned)."""
    if type(value) is not dict:
        return
    if keys is None:
        if few_key_marks(text, len(value)):
            return
        keys = object_keys(text.decode("utf-8") if isinstance(text, bytes) else text)
    if len(keys) <= len(value):
        return
    counts = Counter(json.loads(token) for token in keys)
    repeated = [repr(key[:40]) for key, n in counts.items() if n > 1]
    if repeated:
        raise ItemProblem("duplicate_key", f"key(s) written more than once: {', '.join(repeated[:5])}")


def few_key_marks(text: str | bytes, keys: int) -> bool:
    """Whether the text's key marks (`":` and `"<spaces>:`) are no more than `keys`: then, as every
    key written ends with one, no key is written twice. Its colons are counted first (one fast
    pass): when they are few enough, so are the marks."""
    if isinstance(text, bytes):
        return text.count(b":") <= keys or text.count(b'":') + len(_WS_COLON_BYTES.findall(text)) <= keys
    return text.count(":") <= keys or text.count('":') + len(_WS_COLON.findall(text)) <= keys


def object_keys(text: str) -> list[str]:
    """The key tokens (still JSON-escaped) an object's text writes at its top level, in order,
    repeats kept. A scan of strings and brackets: no nesting limit."""
    keys: list[str] = []
    depth, string = 0, None
    for match in _TOKEN.finditer(text):
        char = text[match.start()]
        if char == '"':
            string = match.group() if depth == 1 else None
            continue
        if char == ":" and string is not None:
            keys.append(string)
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        string = None
    return keys


@dataclass(frozen=True, slots=True)
class ArrayItem:
    start: int
    text: str
    keys: list[str]
    """Its top-level key tokens (when it is an object)."""


class Malformed(Exception):
    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


def array_items(text: str) -> list[ArrayItem]:
    """The items of a JSON array's text (which starts with `[`), found by a scan: no nesting limit.
    Raises Malformed where the brackets do not balance; each item's own syntax is left to its parse."""
    items: list[ArrayItem] = []
    closers: list[str] = []
    start, keys, string = 0, [], None
    for match in _TOKEN.finditer(text):
        at = match.start()
        char = text[at]
        if char == '"':
            string = match.group() if len(closers) == 2 else None
            continue
        if char == ":" and string is not None:
            keys.append(string)
        elif char in "[{":
            closers.append("]" if char == "[" else "}")
            if len(closers) == 1:
                start = match.end()
        elif char in "]}":
            if not closers or closers.pop() != char:
                raise Malformed(at, f"unbalanced '{char}'")
            if not closers:
                if items or text[start:at].strip(_JSON_SPACE):
                    items.append(_item(text, start, at, keys))
                return _closed(text, match.end(), items)
        elif char == "," and len(closers) == 1:
            items.append(_item(text, start, at, keys))
            start, keys = match.end(), []
        string = None
    raise Malformed(len(text), "the array is not closed")


def _item(text: str, start: int, stop: int, keys: list[str]) -> ArrayItem:
    raw = text[start:stop]
    body = raw.lstrip(_JSON_SPACE)
    return ArrayItem(start + len(raw) - len(body), body.rstrip(_JSON_SPACE), keys)


def _closed(text: str, end: int, items: list[ArrayItem]) -> list[ArrayItem]:
    rest = text[end:]
    if rest.strip(_JSON_SPACE):
        raise Malformed(end + len(rest) - len(rest.lstrip(_JSON_SPACE)), "extra data after the array")
    return items
