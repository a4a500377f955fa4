"""Alpaca-format instruction data: a JSON array (or JSON Lines) of {instruction, input, output}."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .base import Entry, ItemBatch, SourceFile
from .files import missing_fields, not_an_object
from .json_items import iter_json_batches

# Some Chinese Alpaca translations carry the English field labels over into the text.
_INPUT_PREFIX = re.compile(r"^\s*输入\s*[：:]\s*")
_OUTPUT_PREFIX = re.compile(r"^\s*输出\s*[：:]\s*")


@dataclass(frozen=True)
class AlpacaOptions:
    strip_io_prefixes: bool = True


def strip_io_prefix(text: Any, pattern: re.Pattern[str], label: str) -> Any:
    if not isinstance(text, str) or label not in text[:64]:  # a cheap prefilter: most texts have no label
        return text
    return pattern.sub("", text, count=1)


def read_alpaca(file: SourceFile, options: AlpacaOptions, lang: str) -> Iterator[Entry]:
    """Items in column batches (the bulk of a corpus is Alpaca-shaped): types are checked by assemble."""
    for batch in iter_json_batches(file):
        yield from batch.rejections
        items = ItemBatch(batch.kind, [], [], [], [])
        for row, value in zip(batch.rows, batch.values, strict=True):
            if type(value) is not dict:
                yield not_an_object(row, batch.location(row), value)
            elif "instruction" not in value or "output" not in value:
                yield missing_fields(row, batch.location(row), value, ("instruction", "output"))
            else:
                items.rows.append(row)
                items.instruction.append(value["instruction"])
                items.input.append(value.get("input", ""))
                items.output.append(value["output"])
        if options.strip_io_prefixes:
            items.input = [strip_io_prefix(text, _INPUT_PREFIX, "输入") for text in items.input]
            items.output = [strip_io_prefix(text, _OUTPUT_PREFIX, "输出") for text in items.output]
        yield items
