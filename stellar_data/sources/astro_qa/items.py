"""The vocabulary the Astro-QA modules share: question types, the item one workbook row becomes,
and the adapter's options.

It sits apart so that reading cells, pairing the languages and formatting triples can each name a
`SheetItem` and a `Kind` without importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Kind:
    name: str
    stem: str
    """File name without `_ZH.xlsx` / `_EN.xlsx`."""
    segment: str
    """Id segment, e.g. `4opt` in `astro_qa:zh:4opt:442`."""
    letters: str = ""


KINDS = (
    Kind("single_choice_4", "single-select multi choice(4)", "4opt", "ABCD"),
    Kind("single_choice_5", "single-select multi choice(5)", "5opt", "ABCDE"),
    Kind("multi_select", "multi-select multi choice", "multi", "ABCD"),
    Kind("judgment", "judgment", "judgment"),
    Kind("subjective", "subjective question", "subjective"),
    Kind("matching", "matching", "matching"),
)
KIND_BY_NAME = {k.name: k for k in KINDS}
LANGS = ("zh", "en")


@dataclass(frozen=True)
class AstroQaOptions:
    date_cells: str | None = None
    """Reviewed date cells (see corpus/astro_qa/date_cells.toml); absolute after recipe loading."""
    en_only_explanations: bool = False
    """Keep an EN explanation whose ZH Parse is a placeholder (it has no ZH source)."""
    languages: tuple[str, ...] | list[str] = LANGS
    types: tuple[str, ...] | list[str] = ()
    """Question types to read (default: every type whose workbooks are present)."""


@dataclass(frozen=True)
class SheetItem:
    kind: Kind
    lang: str
    item_id: str
    row: int
    location: str
    file: str
    subfield: str = ""
    type_label: str = ""
    question: str = ""
    prompt: str = ""
    options: dict[str, str] = field(default_factory=dict)
    answer: str = ""
    explanation: str = ""
    word_count: str = ""
    group: str = ""
    problem: tuple[str, str] | None = None
    """(rule, message) when the row cannot make a correct item."""
    deliberate: bool = False
    raw: str = ""
