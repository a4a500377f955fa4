"""Astro-QA XLSX (ACMISLab/Astro-QA): one plain triple per answerable item.

Each file holds one question type (`single-select multi choice(4)_ZH.xlsx`, `judgment_EN.xlsx`,
...), header in row 1, one item per row. Cells are read as Excel stored them (cached values of
formulas, typed numbers, booleans, dates) and turned into the text a reader sees. Items that
cannot make a correct triple are rejected with a reason: empty options, answer keys that name no
option, options Excel turned into dates, untranslated items; the matching questions have no answer
key and are excluded deliberately. Template expansion and the held-out split are separate steps.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from ..errors import SourceFileError
from .base import Entry, RawItem, Rejection, SourceFile
from .files import excerpt

KINDS = {
    # kind: (id segment, option letters)
    "single_choice_4": ("4opt", "ABCD"),
    "single_choice_5": ("5opt", "ABCDE"),
    "multi_select": ("multi", "ABCD"),
    "judgment": ("judgment", ""),
    "subjective": ("subjective", ""),
    "matching": ("matching", ""),
}
_FILE_KINDS = (
    ("single-select multi choice(4)", "single_choice_4"),
    ("single-select multi choice(5)", "single_choice_5"),
    ("multi-select", "multi_select"),
    ("judgment", "judgment"),
    ("subjective", "subjective"),
    ("matching", "matching"),
)
# Upstream header typos, read as the intended names.
_HEADER_ALIASES = {"Subfiled": "Subfield", "World Count": "Word Count"}
_NO_EXPLANATION = re.compile(r"^(略|omitted|explanation omitted)[。.]?$", re.IGNORECASE)
_JUDGMENT = {"对": True, "错": False, "正确": True, "错误": False, "true": True, "false": False}

_WORDING = {
    "zh": {
        "answer": "答案：",
        "explanation": "解析：",
        "sep": "；",
        "true": "正确。",
        "false": "错误。",
        "judge": "判断下列说法是否正确。",
    },
    "en": {
        "answer": "Answer: ",
        "explanation": "Explanation: ",
        "sep": "; ",
        "true": "True.",
        "false": "False.",
        "judge": "Decide whether the following statement is true or false.",
    },
}


@dataclass(frozen=True)
class AstroQaOptions:
    kind: str = "auto"
    date_serial_items: tuple[str, ...] | list[str] = ()
    """Items (`4opt:77`) where Excel stored a date as a plain serial number. No type or range rule
    tells such serials from genuine numbers, so they are listed by a reviewer in the recipe."""

    def kind_of(self, file: SourceFile) -> str:
        if self.kind != "auto":
            return self.kind
        for marker, kind in _FILE_KINDS:
            if marker in file.path.name:
                return kind
        raise SourceFileError(
            f"{file.relative}: cannot tell the Astro-QA question type from the file name; set options.kind"
        )


class ItemError(ValueError):
    """An item that cannot make a correct triple; `rule` names the reason in the quarantine."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def cell_text(value: Any) -> str:
    """The text a reader of the sheet sees for a cached cell value."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        raise ItemError(
            "date_typed_cell", f"Excel stored it as a date/time ({value.isoformat()}); the original wording is lost"
        )
    return str(value)


def _open_rows(file: SourceFile) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    try:
        workbook = openpyxl.load_workbook(file.path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise SourceFileError(f"{file.relative}: file not found ({file.path})") from None
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise SourceFileError(f"{file.relative}: not a readable XLSX workbook ({exc})") from None
    sheet = workbook.worksheets[0]
    first = next(sheet.iter_rows(min_row=1, max_row=1, values_only=True), ())
    header = [_HEADER_ALIASES.get(str(h).strip(), str(h).strip()) if h is not None else "" for h in first]
    while header and not header[-1]:
        header.pop()  # some files declare thousands of empty columns
    return header, sheet.iter_rows(min_row=2, max_col=max(len(header), 1), values_only=True)


def _explanation(parse: str) -> str:
    parse = parse.strip()
    return "" if _NO_EXPLANATION.match(parse) else parse


def _with_explanation(answer: str, parse: str, words: dict[str, str]) -> str:
    explanation = _explanation(parse)
    return f"{answer}\n{words['explanation']}{explanation}" if explanation else answer


def _choice_triple(cells: dict[str, Any], letters: str, multi: bool, words: dict[str, str]) -> tuple[str, str, str]:
    options = {letter: cell_text(cells.get(letter)).strip() for letter in letters}
    empty = [letter for letter, text in options.items() if not text]
    if empty:
        raise ItemError("empty_option", f"option(s) {', '.join(empty)} empty")
    key = cell_text(cells.get("Answer")).strip().upper()
    chosen = [c for c in key if not c.isspace()]
    if not chosen or any(c not in options for c in chosen) or len(set(chosen)) != len(chosen):
        raise ItemError("bad_answer_key", f"answer key {key!r} does not name options among {letters}")
    if not multi and len(chosen) != 1:
        raise ItemError("bad_answer_key", f"single-choice answer key {key!r} names {len(chosen)} options")
    answer = words["answer"] + words["sep"].join(f"{c}. {options[c]}" for c in sorted(chosen))
    question = cell_text(cells.get("Question")).strip()
    input_ = "\n".join(f"{letter}. {text}" for letter, text in options.items())
    return question, input_, _with_explanation(answer, cell_text(cells.get("Parse")), words)


def _judgment_triple(cells: dict[str, Any], words: dict[str, str]) -> tuple[str, str, str]:
    raw = cell_text(cells.get("Answer")).strip()
    verdict = _JUDGMENT.get(raw.lower())
    if verdict is None:
        raise ItemError("bad_answer_key", f"judgment answer {raw!r} is neither true nor false")
    answer = words["true"] if verdict else words["false"]
    question = cell_text(cells.get("Question")).strip()
    return words["judge"], question, _with_explanation(answer, cell_text(cells.get("Parse")), words)


def _subjective_triple(cells: dict[str, Any]) -> tuple[str, str, str]:
    question = cell_text(cells.get("Question")).strip()
    prompt = cell_text(cells.get("Prompt")).strip()
    if prompt and question and question not in prompt:
        raise ItemError("prompt_mismatch", f"Prompt does not contain the Question {question!r}")
    return prompt or question, "", cell_text(cells.get("Answer")).strip()


def read_astro_qa(file: SourceFile, options: dict[str, Any], lang: str) -> Iterator[Entry]:
    config = AstroQaOptions(**options)
    kind = config.kind_of(file)
    segment, letters = KINDS[kind]
    words = _WORDING["zh" if lang == "zh" else "en"]
    header, rows = _open_rows(file)
    if "ID" not in header:
        raise SourceFileError(f"{file.relative}: no `ID` column in the header {header}")
    row = 0
    seen: set[str] = set()
    for excel_row, values in enumerate(rows, start=2):
        if all(v is None for v in values):
            continue
        cells = dict(zip(header, values, strict=False))
        item_id = cell_text(cells.get("ID")).strip()
        location = f"row {excel_row} (ID {item_id})"
        if kind != "matching" and (not item_id or item_id in seen):
            problem = "no ID" if not item_id else f"ID {item_id} already used by an earlier row"
            yield Rejection(row, location, "duplicate_id" if item_id else "missing_id", problem, excerpt(cells))
            row += 1
            continue
        seen.add(item_id)
        if kind == "matching":
            yield Rejection(
                row, location, "no_answer_key", "matching questions have no answer key", excerpt(cells), deliberate=True
            )
            row += 1
            continue
        try:
            if f"{segment}:{item_id}" in config.date_serial_items:
                raise ItemError(
                    "date_serial_cell",
                    "a cell holds an Excel date serial (listed in the recipe); the original wording is lost",
                )
            question = cell_text(cells.get("Question")).strip()
            if lang == "en" and question == "无法回答":
                raise ItemError("untranslated", "EN Question is the untranslated `无法回答`")
            if kind == "judgment":
                triple = _judgment_triple(cells, words)
            elif kind == "subjective":
                triple = _subjective_triple(cells)
            else:
                triple = _choice_triple(cells, letters, kind == "multi_select", words)
        except ItemError as exc:
            yield Rejection(row, location, exc.rule, str(exc), excerpt(cells))
        else:
            yield RawItem(
                row=row,
                location=location,
                instruction=triple[0],
                input=triple[1],
                output=triple[2],
                key=f"{segment}:{item_id}",
                group=f"astro_qa:{segment}:{item_id}",
                original_id=item_id,
            )
        row += 1
