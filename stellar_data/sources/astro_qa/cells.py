"""Workbook cells into `SheetItem`s: cached values of formulas, typed cells turned into the text a
reader sees, dates resolved through the reviewed `date_cells` file, header typos read as the
intended names.

It exists because the workbooks cannot be read at face value: Excel turned some EN cells into
dates and left some ZH dates as serial numbers, and no type or range rule tells a serial from a
genuine number. So the date cells are reviewed by hand once (the recipe's `date_cells` file) and
every read checks that list against the workbook. A row that cannot make a correct item carries its
`problem` rather than raising, so that every row still yields exactly one entry.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ...errors import SourceFileError
from ..files import excerpt
from ..xlsx import sheet_rows
from .items import Kind, SheetItem

# Upstream header typos, read as the intended names.
_HEADER_ALIASES = {"Subfiled": "Subfield", "World Count": "Word Count"}
_NO_EXPLANATION = re.compile(r"^(略|omitted|explanation omitted)[。.]?$", re.IGNORECASE)
_VERDICTS = {"对": "true", "错": "false", "正确": "true", "错误": "false", "true": "true", "false": "false"}


@dataclass(frozen=True)
class DateCell:
    stored: str
    text: str | None = None
    quarantine: str | None = None


def load_date_cells(path: Path) -> dict[tuple[str, str, str, str], DateCell]:
    """The reviewed list: (lang, type segment, ID, column) -> restored text or quarantine reason."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceFileError(f"Astro-QA date_cells file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SourceFileError(f"{path}: invalid TOML: {exc}") from None
    cells = {}
    for index, entry in enumerate(document.get("cells", [])):
        keys = ("lang", "type", "id", "column", "stored")
        if any(not isinstance(entry.get(k), str) for k in keys) or ("text" in entry) == ("quarantine" in entry):
            raise SourceFileError(
                f"{path}: cells[{index}] needs string {', '.join(keys)} and exactly one of text / quarantine"
            )
        cells[entry["lang"], entry["type"], entry["id"], entry["column"]] = DateCell(
            entry["stored"], entry.get("text"), entry.get("quarantine")
        )
    return cells


class ItemError(ValueError):
    """A row that cannot make a correct triple; `rule` names the reason in the quarantine."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def stored_value(value: Any) -> str:
    """A cell's stored value as written in the reviewed date-cells file."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def cell_text(value: Any) -> str:
    """The text a reader of the sheet sees for a cached, non-date cell value."""
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
    return str(value)


class _Cells:
    """One row's cells, with date cells resolved through the reviewed list."""

    def __init__(self, values: dict[str, Any], date_cells: dict[tuple[str, str, str, str], DateCell],
                 lang: str, kind: Kind, item_id: str) -> None:  # fmt: skip
        self._values = values
        self._date_cells = date_cells
        self._key = (lang, kind.segment, item_id)

    def text(self, column: str) -> str:
        value = self._values.get(column)
        reviewed = self._date_cells.get((*self._key, column))
        if reviewed is not None:  # its stored value was checked by read_sheet
            if reviewed.quarantine is not None:
                raise ItemError("date_cell_quarantined", f"column {column}: {reviewed.quarantine}")
            return reviewed.text or ""
        if isinstance(value, dt.datetime | dt.date | dt.time):
            raise ItemError(
                "unreviewed_date_cell",
                f"column {column} holds an Excel date/time ({value.isoformat()}) not listed in the reviewed date cells",
            )
        return cell_text(value).strip()


def _workbook_rows(path: Path, relative: str) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    header, rows = sheet_rows(path, relative, _HEADER_ALIASES)
    if "ID" not in header:
        raise SourceFileError(f"{relative}: no `ID` column in the header {header}")
    return header, rows


def explanation_of(parse: str) -> str:
    """`Parse` text, or "" for the placeholders meaning "no explanation" (略, Omitted, ...)."""
    parse = parse.strip()
    return "" if _NO_EXPLANATION.match(parse) else parse


def _fill(item: SheetItem, cells: _Cells) -> SheetItem:
    """Read the item's fields; raises ItemError for a row that cannot make a correct item."""
    kind, lang = item.kind, item.lang
    question = cells.text("Question")
    if lang == "en" and question == "无法回答":
        raise ItemError("untranslated", "EN Question is the untranslated `无法回答`")
    if not question:
        raise ItemError("empty_question", "Question is empty")
    fields: dict[str, Any] = {"question": question, "subfield": cells.text("Subfield")}
    if kind.letters:
        options = {letter: cells.text(letter) for letter in kind.letters}
        empty = [letter for letter, text in options.items() if not text]
        if empty:
            raise ItemError("empty_option", f"option(s) {', '.join(empty)} empty")
        key = cells.text("Answer").upper()
        chosen = [c for c in key if not c.isspace()]
        valid = chosen and all(c in options for c in chosen) and len(set(chosen)) == len(chosen)
        if not valid or (kind.name != "multi_select" and len(chosen) != 1):
            wanted = "options" if kind.name == "multi_select" else "one option"
            raise ItemError("bad_answer_key", f"answer key {key!r} does not name {wanted} among {kind.letters}")
        fields |= {
            "options": options,
            "answer": "".join(sorted(chosen)),
            "explanation": explanation_of(cells.text("Parse")),
        }
    elif kind.name == "judgment":
        raw = cells.text("Answer")
        if raw.lower() not in _VERDICTS:
            raise ItemError("bad_answer_key", f"judgment answer {raw!r} is neither true nor false")
        fields |= {"answer": _VERDICTS[raw.lower()], "explanation": explanation_of(cells.text("Parse"))}
    else:  # subjective
        prompt, answer = cells.text("Prompt"), cells.text("Answer")
        if prompt and question not in prompt:
            raise ItemError("prompt_mismatch", f"Prompt does not contain the Question {question!r}")
        if not answer:
            raise ItemError("empty_answer", "Answer is empty")
        fields |= {
            "prompt": prompt,
            "answer": answer,
            "type_label": cells.text("Type"),
            "word_count": cells.text("Word Count"),
        }
    return replace(item, **fields)


def read_sheet(path: Path, relative: str, kind: Kind, lang: str,
               date_cells: dict[tuple[str, str, str, str], DateCell]) -> list[SheetItem]:  # fmt: skip
    """Every data row of one workbook as a SheetItem (problem set where it cannot make an item)."""
    header, rows = _workbook_rows(path, relative)
    items: list[SheetItem] = []
    seen: set[str] = set()
    reviewed = {key[2:]: cell for key, cell in date_cells.items() if key[:2] == (lang, kind.segment)}
    row = 0
    for excel_row, values in enumerate(rows, start=2):
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            continue
        raw_cells = dict(zip(header, values, strict=False))
        _verify_reviewed(reviewed, raw_cells, relative, lang, kind, seen)
        item_id = cell_text(raw_cells.get("ID")).strip()
        item = SheetItem(kind, lang, item_id, row, f"row {excel_row} (ID {item_id})", relative, raw=excerpt(raw_cells))
        row += 1
        if kind.name == "matching":
            items.append(
                replace(item, problem=("no_answer_key", "matching questions have no answer key"), deliberate=True)
            )
            continue
        if not item_id or item_id in seen:
            problem = (
                ("missing_id", "no ID")
                if not item_id
                else ("duplicate_id", f"ID {item_id} already used by an earlier row")
            )
            items.append(replace(item, problem=problem))
            continue
        seen.add(item_id)
        cells = _Cells(raw_cells, date_cells, lang, kind, item_id)
        try:
            items.append(_fill(item, cells))
        except ItemError as exc:
            # Keep what can be read (the subfield) for the twin; the item itself is rejected.
            subfield = cell_text(raw_cells.get("Subfield")).strip()
            items.append(replace(item, subfield=subfield, problem=(exc.rule, str(exc))))
    if reviewed:
        (item_id, column), cell = next(iter(reviewed.items()))
        raise SourceFileError(
            f"{relative}: reviewed date cell {lang}/{kind.segment}/{item_id}/{column} (stored {cell.stored!r}) "
            "is not in the workbook: review the date_cells file"
        )
    return items


def _verify_reviewed(reviewed: dict[tuple[str, str], DateCell], raw_cells: dict[str, Any], relative: str,
                     lang: str, kind: Kind, seen: set[str]) -> None:  # fmt: skip
    """Check this row's reviewed cells against the workbook and tick them off `reviewed`."""
    item_id = cell_text(raw_cells.get("ID")).strip()
    if item_id in seen:
        return
    for column in [c for (i, c) in reviewed if i == item_id]:
        cell = reviewed.pop((item_id, column))
        found = stored_value(raw_cells.get(column))
        if column not in raw_cells or found != cell.stored:
            raise SourceFileError(
                f"{relative}: reviewed date cell {lang}/{kind.segment}/{item_id}/{column} no longer matches the "
                f"workbook (listed {cell.stored!r}, found {found!r}): review the date_cells file"
            )
