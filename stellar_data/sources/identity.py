"""Self-cognition data: Alpaca-format records whose text holds `{{name}}` / `{{author}}` placeholders."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..text import detect_lang, is_cjk
from .base import Entry, RawItem, Rejection, SourceFile
from .files import excerpt, json_objects
from .json_items import iter_json_items

PLACEHOLDERS = {"name": "{{name}}", "author": "{{author}}"}
DEFAULT_NAMES = {
    "zh": {"name": "星语者", "author": "星语调校局"},
    "en": {"name": "StellarSpeak", "author": "星语调校局"},
}


@dataclass(frozen=True)
class IdentityOptions:
    placeholders: dict[str, str] = field(default_factory=lambda: dict(PLACEHOLDERS))
    names: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per language; what is not given is DEFAULT_NAMES."""

    def values_for(self, lang: str) -> dict[str, str]:
        """Placeholder text -> replacement for one language."""
        names = {**DEFAULT_NAMES[lang], **self.names.get(lang, {})}
        placeholders = {**PLACEHOLDERS, **self.placeholders}
        return {placeholders[key]: names[key] for key in ("name", "author")}


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    """Substitute placeholders; drop a space beside one only where both neighbours are CJK.

    `我是 {{name}}，` -> `我是星语者，`, but `developed by {{author}}.` keeps its space.
    """
    pattern = re.compile("( *)(" + "|".join(re.escape(p) for p in sorted(values, key=len, reverse=True)) + ")( *)")

    def substitute(match: re.Match[str]) -> str:
        value = values[match.group(2)]
        if not value:
            return match.group(0).replace(match.group(2), "")
        before = text[match.start() - 1] if match.start() > 0 else ""
        after = text[match.end()] if match.end() < len(text) else ""
        lead = "" if is_cjk(before) and is_cjk(value[0]) else match.group(1)
        trail = "" if is_cjk(value[-1]) and is_cjk(after) else match.group(3)
        return f"{lead}{value}{trail}"

    return pattern.sub(substitute, text)


def read_identity(file: SourceFile, options: IdentityOptions, lang: str) -> Iterator[Entry]:
    for entry in json_objects(iter_json_items(file)):
        if isinstance(entry, Rejection):
            yield entry
            continue
        row, location, record = entry
        fields = [record.get("instruction"), record.get("input", ""), record.get("output")]
        if not all(isinstance(f, str) for f in fields):
            yield Rejection(
                row, location, "wrong_type", "instruction, input and output must be strings", excerpt(record)
            )
            continue
        record_lang = detect_lang(*fields) if lang == "auto" else lang
        values = options.values_for(record_lang)
        instruction, input_, output = (fill_placeholders(f, values) for f in fields)
        yield RawItem(
            row=row, location=location, instruction=instruction, input=input_, output=output, lang=record_lang
        )
