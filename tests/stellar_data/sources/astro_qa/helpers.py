"""What the Astro-QA tests share: the real folder's layout and row counts, entry look-ups, and
crafted workbooks. The facts checked against the real data come from ../shared/sources/README.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import openpyxl

from stellar_data.config import from_table
from stellar_data.sources.astro_qa import read_astro_qa
from stellar_data.sources.astro_qa.cells import read_sheet
from stellar_data.sources.astro_qa.items import KIND_BY_NAME, AstroQaOptions
from stellar_data.sources.base import RawItem, Rejection, SourceFile
from tests.conftest import ROOT

DATE_CELLS = ROOT / "corpus" / "astro_qa" / "date_cells.toml"

DATA = "Astro-QA/data"

# README: rows per file (the same in ZH and EN).
ROWS = {
    "single_choice_4": 1297,
    "single_choice_5": 402,
    "multi_select": 157,
    "judgment": 317,
    "subjective": 554,
    "matching": 355,
}

ANSWERABLE = [name for name in ROWS if name != "matching"]

LANGS = ("zh", "en")

DATE_SERIALS = ("45354", "45431", "45519", "45595", "43825", "43323", "43649", "45303", "45449", "41594")

Entries = list[RawItem | Rejection]


def file_of(kind: str, lang: str) -> str:
    return f"{DATA}/{lang.upper()}/{KIND_BY_NAME[kind].stem}_{lang.upper()}.xlsx"


def id_of(entry: RawItem | Rejection) -> int:
    match = re.search(r"\(ID (\d+)\)", entry.location)
    assert match, entry.location
    return int(match.group(1))


def of(entries: Entries, kind: str, lang: str) -> Entries:
    wanted = file_of(kind, lang)
    return [e for e in entries if e.file == wanted]


def by_id(entries: Entries, kind: str, lang: str) -> dict[int, RawItem | Rejection]:
    return {id_of(e): e for e in of(entries, kind, lang)}


def rejected(entries: Entries, kind: str, lang: str, rule: str) -> set[int]:
    return {id_of(e) for e in of(entries, kind, lang) if isinstance(e, Rejection) and e.rule == rule}


def raw_items(entries: Entries, kind: str | None = None, lang: str | None = None) -> list[RawItem]:
    return [
        e
        for e in entries
        if isinstance(e, RawItem) and (kind is None or e.extra["type"] == kind) and (lang is None or e.lang == lang)
    ]


def item(entries: Entries, kind: str, lang: str, item_id: int) -> RawItem:
    entry = by_id(entries, kind, lang)[item_id]
    assert isinstance(entry, RawItem), entry
    return entry


def read_folder(folder: Path, relative: str = DATA, **options: object) -> Entries:
    return list(read_astro_qa(SourceFile(folder, relative), from_table(AstroQaOptions, options), "auto"))


def zh_subfield(data_dir: Path, kind: str, item_id: int) -> str:
    stem = KIND_BY_NAME[kind].stem
    rows = read_sheet(data_dir / "ZH" / f"{stem}_ZH.xlsx", "zh", KIND_BY_NAME[kind], "zh", {})
    return next(i.subfield for i in rows if i.item_id == str(item_id))


# --- crafted workbooks -------------------------------------------------------------------------


def workbook(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


CHOICE_HEADER = ["ID", "Subfield", "Question", "A", "B", "C", "D", "Answer", "Parse"]

EN_CHOICE_HEADER = ["ID", "Question", "A", "B", "C", "D", "Answer", "Parse"]

JUDGMENT_HEADER = ["ID", "Subfield", "Question", "Answer", "Parse"]

EN_JUDGMENT_HEADER = ["ID", "Question", "Answer", "Parse"]


def duplicate_id_folder(tmp_path: Path) -> Path:
    workbook(
        tmp_path / "data/ZH/judgment_ZH.xlsx",
        JUDGMENT_HEADER,
        [
            [1, "天文学史", "太阳是恒星", "对", "太阳是恒星。"],
            [1, "天体力学", "月亮是行星", "错", "略"],
            [2, "天体力学", "月亮是卫星", "对", "略"],
        ],
    )
    workbook(
        tmp_path / "data/EN/judgment_EN.xlsx",
        EN_JUDGMENT_HEADER,
        [[1, "The Sun is a star", True, "Yes."], [2, "The Moon is a satellite", True, "It orbits the Earth."]],
    )
    return tmp_path / "data"
