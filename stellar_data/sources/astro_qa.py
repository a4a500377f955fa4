"""Astro-QA (ACMISLab/Astro-QA): the ZH and EN workbooks of one `data/` folder, paired by type and ID.

The source path is the folder holding `ZH/` and `EN/`, with one workbook per question type and
language (`ZH/single-select multi choice(4)_ZH.xlsx`, ...). EN files are row-aligned translations:
the same ID is the same item. Reading works in two stages:

1. `read_sheet` turns each row into a `SheetItem`: cached values of formulas, typed cells turned
   into the text a reader sees, dates resolved through the reviewed `date_cells` file, header typos
   read as the intended names; a row that cannot make a correct item carries its `problem`.
2. `pair_items` joins the languages: EN takes its subfield from ZH, ZH/EN answer keys must agree
   (else the whole group goes, both languages), an EN option filled in where ZH has none goes too,
   an EN explanation whose ZH says `略` is kept only if the recipe says so, and items that are the
   same question (ZH question + unordered options, punctuation and whitespace folded) share a group.

Each answerable item becomes one plain triple plus its structured fields (`RawItem.extra`), from
which template expansion and the held-out benchmark are made. Matching questions have no answer key
and are excluded deliberately.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import SourceFileError
from .base import Entry, RawItem, Rejection, SourceFile
from .files import excerpt
from .xlsx import sheet_rows


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

# Upstream header typos, read as the intended names.
_HEADER_ALIASES = {"Subfiled": "Subfield", "World Count": "Word Count"}
_NO_EXPLANATION = re.compile(r"^(略|omitted|explanation omitted)[。.]?$", re.IGNORECASE)
_VERDICTS = {"对": "true", "错": "false", "正确": "true", "错误": "false", "true": "true", "false": "false"}
_NO_SUBFIELD = {"", "无"}
_WORDING = {
    "zh": {"answer": "答案：", "explanation": "解析：", "sep": "；", "true": "正确。", "false": "错误。",
           "judge": "判断下列说法是否正确。"},
    "en": {"answer": "Answer: ", "explanation": "Explanation: ", "sep": "; ", "true": "True.", "false": "False.",
           "judge": "Decide whether the following statement is true or false."},
}  # fmt: skip
# Item problems in the ZH original that make its EN translation wrong too.
_PROPAGATE_TO_EN = {"empty_option", "bad_answer_key", "date_cell_quarantined", "unreviewed_date_cell"}


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


def _fold(text: str) -> str:
    """NFKC, lower case, without punctuation, whitespace and control characters: the duplicate key."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PZC")


def _duplicate_key(item: SheetItem) -> tuple[str, ...]:
    return (item.kind.name, _fold(item.question), *sorted(_fold(t) for t in item.options.values()))


def _id_order(item_id: str) -> tuple[int, str]:
    return (int(item_id), "") if item_id.isdigit() else (1 << 62, item_id)


_ID_PROBLEMS = {"missing_id", "duplicate_id"}


def _is_id_problem(item: SheetItem) -> bool:
    return item.problem is not None and item.problem[0] in _ID_PROBLEMS


def _accepted_by_id(items: list[SheetItem]) -> dict[str, SheetItem]:
    """ID -> the row that owns it (a repeated ID's later rows are rejected and never paired)."""
    return {i.item_id: i for i in items if i.item_id and not i.deliberate and not _is_id_problem(i)}


def pair_items(zh: list[SheetItem], en: list[SheetItem], options: AstroQaOptions) -> list[SheetItem]:
    """Join one type's ZH and EN items by ID (see the module docstring); returns both, updated."""
    zh_by_id, en_by_id = _accepted_by_id(zh), _accepted_by_id(en)
    out_zh, out_en = [], []
    for item in zh:
        twin = en_by_id.get(item.item_id)
        if (
            item.problem is None
            and twin is not None
            and twin.problem is None
            and twin.answer != item.answer
            and item.kind.name != "subjective"
        ):
            item = replace(
                item, problem=("answer_key_mismatch", f"ZH answer {item.answer!r} != EN answer {twin.answer!r}")
            )
        out_zh.append(item)
    out_zh = _assign_groups(out_zh)
    zh_final = _accepted_by_id(out_zh)
    zh_groups = {item_id: item.group for item_id, item in zh_final.items()}
    for item in en:
        if item.deliberate or not item.item_id or _is_id_problem(item):
            out_en.append(item)
            continue
        twin = zh_by_id.get(item.item_id)
        if twin is None:
            item = replace(
                item,
                problem=item.problem or ("missing_zh_item", f"no ZH item with ID {item.item_id} (subfield unknown)"),
            )
        else:
            item = replace(item, subfield=twin.subfield, group=zh_groups[item.item_id])
            zh_problem = zh_final[item.item_id].problem
            if item.problem is None and zh_problem is not None:
                rule = zh_problem[0]
                if rule == "answer_key_mismatch":
                    item = replace(item, problem=zh_problem)
                elif rule in _PROPAGATE_TO_EN:
                    item = replace(item, problem=(f"{rule}_in_zh", f"the ZH original is rejected ({zh_problem[1]})"))
            if (
                item.problem is None
                and twin.problem is None
                and not twin.explanation
                and item.explanation
                and not options.en_only_explanations
            ):
                item = replace(item, explanation="")
        out_en.append(item)
    return out_zh + out_en


def _assign_groups(zh: list[SheetItem]) -> list[SheetItem]:
    """Group ZH items that are the same question; the group is named by its smallest ID."""
    first_id: dict[tuple[str, ...], str] = {}
    for item in sorted((i for i in zh if i.problem is None), key=lambda i: _id_order(i.item_id)):
        first_id.setdefault(_duplicate_key(item), item.item_id)
    return [
        replace(
            item, group=group_name(item.kind, first_id[_duplicate_key(item)] if item.problem is None else item.item_id)
        )
        for item in zh
    ]


def group_name(kind: Kind, item_id: str) -> str:
    return f"astro_qa:{kind.segment}:{item_id}"


def plain_triple(item: SheetItem) -> tuple[str, str, str]:
    """The item as one triple without templates: question (+ options), a self-contained answer."""
    words = _WORDING[item.lang]
    if item.kind.name == "subjective":
        return item.prompt or item.question, "", item.answer
    if item.kind.name == "judgment":
        body = words[item.answer]
        instruction, input_ = words["judge"], item.question
    else:
        body = words["answer"] + words["sep"].join(f"{c}. {item.options[c]}" for c in item.answer)
        instruction, input_ = item.question, "\n".join(f"{c}. {t}" for c, t in item.options.items())
    output = f"{body}\n{words['explanation']}{item.explanation}" if item.explanation else body
    return instruction, input_, output


def structured_fields(item: SheetItem) -> dict[str, str]:
    """The fields template expansion and the held-out benchmark are made from (`_x_*` columns)."""
    fields = {
        "type": item.kind.name,
        "type_label": item.type_label,
        "subfield": "" if item.subfield in _NO_SUBFIELD else item.subfield,
        "question": item.question,
        "prompt": item.prompt,
        "answer": item.answer,
        "explanation": item.explanation,
    }
    fields |= {f"option_{c}": item.options.get(c, "") for c in "ABCDE"}
    return fields


def _entry(item: SheetItem) -> Entry:
    if item.problem is not None:
        rule, message = item.problem
        return Rejection(item.row, item.location, rule, message, item.raw, file=item.file, deliberate=item.deliberate)
    instruction, input_, output = plain_triple(item)
    return RawItem(
        row=item.row,
        location=item.location,
        instruction=instruction,
        input=input_,
        output=output,
        key=f"{item.lang}:{item.kind.segment}:{item.item_id}",
        group=item.group,
        original_id=item.item_id,
        lang=item.lang,
        file=item.file,
        extra=structured_fields(item),
    )


def workbook_path(folder: SourceFile, kind: Kind, lang: str) -> tuple[Path, str]:
    name = f"{lang.upper()}/{kind.stem}_{lang.upper()}.xlsx"
    return folder.path / name, f"{folder.relative}/{name}"


def read_astro_qa(folder: SourceFile, options: AstroQaOptions, lang: str) -> Iterator[Entry]:
    """Read an Astro-QA `data/` folder (both languages; the recipe's `lang` is not used)."""
    if not folder.path.is_dir():
        raise SourceFileError(f"{folder.relative}: the astro_qa adapter reads a folder holding ZH/ and EN/, not a file")
    date_cells = load_date_cells(Path(options.date_cells)) if options.date_cells else {}
    kinds = [KIND_BY_NAME[name] for name in options.types] if options.types else list(KINDS)
    present = 0
    for kind in kinds:
        paths = {language: workbook_path(folder, kind, language) for language in options.languages}
        found = {language for language, (path, _) in paths.items() if path.is_file()}
        if not found and not options.types:
            continue  # a type absent in every language is simply not part of this folder
        missing = [paths[language][1] for language in options.languages if language not in found]
        if missing:
            raise SourceFileError(f"{missing[0]}: file not found (its other-language twin is present)")
        present += 1
        sheets = {language: read_sheet(*paths[language], kind, language, date_cells) for language in options.languages}
        items = (
            pair_items(sheets.get("zh", []), sheets.get("en", []), options)
            if "zh" in sheets
            else _unpaired(sheets["en"])
        )
        yield from (_entry(item) for item in items)
    if present == 0:
        raise SourceFileError(f"{folder.relative}: no Astro-QA workbooks found (expected e.g. ZH/judgment_ZH.xlsx)")


def _unpaired(en: list[SheetItem]) -> list[SheetItem]:
    """EN read alone: no subfield to take from ZH, no key to compare; groups by ID."""
    return [replace(item, group=group_name(item.kind, item.item_id)) for item in en]
