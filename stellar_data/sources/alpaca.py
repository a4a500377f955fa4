"""Alpaca-format instruction data: a JSON array (or JSON Lines) of {instruction, input, output}."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .base import Entry, RawItem, Rejection, SourceFile
from .files import iter_json_items, json_objects, missing_fields

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


def read_alpaca(file: SourceFile, options: dict[str, Any], lang: str) -> Iterator[Entry]:
    config = AlpacaOptions(**options)
    for entry in json_objects(iter_json_items(file)):
        if isinstance(entry, Rejection):
            yield entry
            continue
        row, location, record = entry
        if problem := missing_fields(row, location, record, ("instruction", "output")):
            yield problem
            continue
        input_, output = record.get("input", ""), record["output"]
        if config.strip_io_prefixes:
            input_ = strip_io_prefix(input_, _INPUT_PREFIX, "输入")
            output = strip_io_prefix(output, _OUTPUT_PREFIX, "输出")
        yield RawItem(row=row, location=location, instruction=record["instruction"], input=input_, output=output)
