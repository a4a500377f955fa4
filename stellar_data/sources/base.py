"""The adapter contract.

An adapter reads one file of one source format and yields, for every item in it, either a
`RawItem` (the triple still untyped: the assemble step checks the types) or a `Rejection`
(a record-level problem, with its location). File-level problems raise `SourceFileError`.
An adapter of a large line-based format may yield an `ItemBatch` instead: many plain items as
columns, which saves a Python object per item.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(slots=True)
class RawItem:
    """One item as the adapter read it. Not frozen: a frozen dataclass costs three times as much to
    create, and one is created per item of the corpus; nothing mutates it after the adapter."""

    row: int
    """0-based index of the item in its file."""
    location: str
    """Human-readable position, e.g. `line 17` or `row 5 (ID 41)`."""
    instruction: Any
    input: Any
    output: Any
    key: str | None = None
    """Id suffix after `<source>:`; default: the row."""
    group: str | None = None
    """Split unit; default: the record id."""
    original_id: str | None = None
    lang: str | None = None
    """Set by adapters that know the language better than the recipe (e.g. identity names)."""
    file: str | None = None
    """Path relative to the sources directory, for adapters that read a folder; default: the task's file."""
    extra: dict[str, str] | None = None
    """Structured fields (e.g. an Astro-QA item's question, options, answer) for the steps that need
    them (hold-out, template expansion). Carried as `_x_<name>` columns, normalized like the triple,
    never written to the record shards."""


@dataclass(slots=True)
class ItemBatch:
    """Many items at once, as columns: item i is (rows[i], instruction[i], input[i], output[i]), with
    every optional field of RawItem at its default."""

    kind: str
    """`line` (locations are 1-based lines) or `item` (0-based items)."""
    rows: list[int]
    instruction: list[Any]
    input: list[Any]
    output: list[Any]

    def __len__(self) -> int:
        return len(self.rows)

    def location(self, row: int) -> str:
        return location(self.kind, row)


def location(kind: str, row: int) -> str:
    """The location of a row of a line-based file (`line`, 1-based) or a JSON array (`item`)."""
    return f"line {row + 1}" if kind == "line" else f"item {row}"


@dataclass(frozen=True)
class Rejection:
    row: int | None
    location: str
    rule: str
    message: str
    raw: str | None = None
    file: str | None = None
    deliberate: bool = False
    """True for intended exclusions (e.g. items without an answer key): counted apart, not toward
    the quarantine limit."""


Entry = RawItem | ItemBatch | Rejection


def each_item(entries: Iterable[Entry]) -> Iterator[RawItem | Rejection]:
    """An adapter's entries one item at a time, in file order: each ItemBatch becomes RawItems,
    merged by row with the rejections yielded before it (for tests and tools, not the hot path)."""
    pending: list[Rejection] = []
    for entry in entries:
        if isinstance(entry, Rejection):
            pending.append(entry)
            continue
        if isinstance(entry, ItemBatch):
            items = (
                RawItem(row, entry.location(row), a, b, c)
                for row, a, b, c in zip(entry.rows, entry.instruction, entry.input, entry.output, strict=True)
            )
            pending.sort(key=_row)
            yield from heapq.merge(pending, items, key=_row)
        else:
            yield from pending
            yield entry
        pending = []
    yield from pending


def _row(entry: RawItem | Rejection) -> int:
    return -1 if entry.row is None else entry.row


@dataclass(frozen=True)
class SourceFile:
    path: Path
    """Path on disk: a file, or a folder for adapters that read one (Astro-QA)."""
    relative: str
    """Path relative to the sources directory, as written in lineage and quarantine."""
    span: LineSpan | None = None
    """Only these whole lines of a JSON Lines file (a large file is read as several tasks)."""


@dataclass(frozen=True)
class LineSpan:
    """Bytes [start, stop) of a file, starting at a line start; `first_row` is that line's 0-based index."""

    start: int
    stop: int
    first_row: int


class Adapter(Protocol):
    """`options` is the adapter's own options dataclass (AdapterInfo.options)."""

    def __call__(self, file: SourceFile, options: Any, lang: str) -> Iterator[Entry]: ...
