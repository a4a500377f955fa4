"""Astro-QA adapter: a `data/` folder (ZH/ + EN/) read whole, items paired by type and ID.

Every row of every workbook yields exactly one entry: a RawItem (plain triple + structured fields)
or a Rejection with its reason. The facts checked against the real data come from
../shared/sources/README.md.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
import zipfile
from collections import defaultdict
from pathlib import Path

import openpyxl
import pytest

from stellar_data.errors import SourceFileError
from stellar_data.sources import options_from
from stellar_data.sources.astro_qa import (
    KIND_BY_NAME,
    KINDS,
    AstroQaOptions,
    load_date_cells,
    pair_items,
    plain_triple,
    read_astro_qa,
    read_sheet,
    structured_fields,
)
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
    return list(read_astro_qa(SourceFile(folder, relative), options_from(AstroQaOptions, options), "auto"))


@pytest.fixture(scope="module")
def data_dir(shared_sources: Path) -> Path:
    return shared_sources / DATA


@pytest.fixture(scope="module")
def astro(data_dir: Path) -> Entries:
    """The real folder read as the StellarSpeak recipe reads it (reviewed date cells)."""
    return read_folder(data_dir, date_cells=str(DATE_CELLS))


@pytest.fixture(scope="module")
def unreviewed(data_dir: Path) -> Entries:
    """The choice types read without a date_cells file."""
    return read_folder(data_dir, types=["single_choice_4", "single_choice_5"])


@pytest.fixture(scope="module")
def zh_parse(data_dir: Path) -> dict[tuple[str, int], str]:
    """(type, ID) -> the raw ZH `Parse` cell, read straight from the workbooks."""
    parse = {}
    for kind in ("single_choice_4", "single_choice_5", "multi_select", "judgment"):
        sheet = openpyxl.load_workbook(data_dir / "ZH" / f"{KIND_BY_NAME[kind].stem}_ZH.xlsx", read_only=True)
        rows = sheet.worksheets[0].iter_rows(values_only=True)
        header = next(rows)
        for row in rows:
            if row[header.index("ID")] is not None:
                parse[kind, int(row[header.index("ID")])] = str(row[header.index("Parse")] or "").strip()
    return parse


# --- every row accounted for -------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("kind", list(ROWS))
def test_every_row_yields_exactly_one_entry(astro: Entries, kind: str, lang: str) -> None:
    entries = of(astro, kind, lang)

    assert len(entries) == ROWS[kind]
    assert [e.row for e in entries] == list(range(ROWS[kind]))
    ids = [id_of(e) for e in entries]
    assert len(set(ids)) == len(ids)


def test_only_the_twelve_workbooks_are_read(astro: Entries) -> None:
    assert {e.file for e in astro} == {file_of(kind, lang) for kind in ROWS for lang in LANGS}
    assert len(astro) == 2 * sum(ROWS.values())


@pytest.mark.parametrize("lang", LANGS)
def test_matching_rows_are_all_deliberately_excluded(astro: Entries, lang: str) -> None:
    entries = of(astro, "matching", lang)

    assert len(entries) == 355
    assert all(isinstance(e, Rejection) and e.rule == "no_answer_key" and e.deliberate for e in entries)
    # No other rejection is deliberate: defects count toward the quarantine limit.
    assert all(e.rule == "no_answer_key" for e in astro if isinstance(e, Rejection) and e.deliberate)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("kind", ANSWERABLE)
def test_item_keys_follow_language_type_and_id(astro: Entries, kind: str, lang: str) -> None:
    segment = KIND_BY_NAME[kind].segment
    items = raw_items(astro, kind, lang)
    assert items
    for entry in items:
        assert entry.original_id == str(id_of(entry))
        assert entry.key == f"{lang}:{segment}:{entry.original_id}"
        assert entry.lang == lang
        assert entry.file == file_of(kind, lang)
        assert entry.group.startswith(f"astro_qa:{segment}:")
        assert entry.extra["type"] == kind


# --- quarantine, with reasons ------------------------------------------------------------------

# Every non-deliberate rejection of the real data, by (type, language, rule).
EXPECTED_REJECTIONS = {
    ("single_choice_4", "zh", "empty_option"): {41, 69, 863, 864, 869, 876, 936},
    ("single_choice_4", "en", "empty_option_in_zh"): {41, 69, 863, 864, 869, 936},
    ("single_choice_4", "en", "empty_option"): {876},  # EN 876 has an empty D of its own
    ("single_choice_4", "en", "date_cell_quarantined"): {430},
    ("single_choice_5", "zh", "answer_key_mismatch"): {290, 308, 382},
    ("single_choice_5", "en", "answer_key_mismatch"): {290, 308, 382},
    ("single_choice_5", "en", "untranslated"): {25, 336},
    ("single_choice_5", "en", "date_cell_quarantined"): {346},
    ("multi_select", "en", "empty_option"): {86, 95, 143},
    ("judgment", "zh", "answer_key_mismatch"): {4},
    ("judgment", "en", "answer_key_mismatch"): {4},
    ("subjective", "zh", "prompt_mismatch"): {105},
}


def test_every_quarantined_item_with_its_reason(astro: Entries) -> None:
    found: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    for kind in ANSWERABLE:
        for lang in LANGS:
            for entry in of(astro, kind, lang):
                if isinstance(entry, Rejection):
                    assert not entry.deliberate
                    found[kind, lang, entry.rule].add(id_of(entry))

    assert dict(found) == EXPECTED_REJECTIONS


@pytest.mark.parametrize(("kind", "lang", "rule"), list(EXPECTED_REJECTIONS))
def test_quarantine_reason(astro: Entries, kind: str, lang: str, rule: str) -> None:
    assert rejected(astro, kind, lang, rule) == EXPECTED_REJECTIONS[kind, lang, rule]


def test_zh_69_has_b_merged_into_a(astro: Entries) -> None:
    zh, en = by_id(astro, "single_choice_4", "zh")[69], by_id(astro, "single_choice_4", "en")[69]

    assert isinstance(zh, Rejection) and zh.location == "row 70 (ID 69)" and "B" in zh.message
    # EN 69 B reads "Of course, I will comply with your request.": it goes with its ZH original.
    assert isinstance(en, Rejection) and en.rule == "empty_option_in_zh"
    assert en.file == file_of("single_choice_4", "en")


def test_answer_key_mismatch_removes_both_languages(astro: Entries) -> None:
    for kind, ids in (("judgment", {4}), ("single_choice_5", {290, 308, 382})):
        for lang in LANGS:
            items = by_id(astro, kind, lang)
            assert all(isinstance(items[i], Rejection) for i in ids)
    # Elsewhere the keys agree.
    for kind in ("single_choice_4", "single_choice_5", "multi_select", "judgment"):
        zh = {i.original_id: i.extra["answer"] for i in raw_items(astro, kind, "zh")}
        en = {i.original_id: i.extra["answer"] for i in raw_items(astro, kind, "en")}
        assert all(zh[k] == en[k] for k in zh.keys() & en.keys()), kind


def test_en_subjective_105_stays_an_item(astro: Entries) -> None:
    # Only the ZH Prompt (about 柯伊泊带, for the Question 月海) is wrong.
    en = item(astro, "subjective", "en", 105)

    assert en.extra["type"] == "subjective"
    assert en.output


# --- dates -------------------------------------------------------------------------------------


def test_no_date_text_or_serial_survives_with_the_reviewed_list(astro: Entries) -> None:
    for entry in raw_items(astro):
        texts = [entry.instruction, entry.input, entry.output, *entry.extra.values()]
        for text in texts:
            assert "00:00:00" not in text, entry.key
            assert "2024-" not in text, entry.key
            for serial in DATE_SERIALS:
                assert serial not in text, (entry.key, serial)


def test_zh_serials_restored_to_dates(astro: Entries) -> None:
    zh77 = item(astro, "single_choice_4", "zh", 77)

    assert [zh77.extra[f"option_{c}"] for c in "ABCD"] == ["3月3日", "5月19日", "8月15日", "10月30日"]
    assert zh77.input == "A. 3月3日\nB. 5月19日\nC. 8月15日\nD. 10月30日"
    assert item(astro, "single_choice_4", "zh", 508).extra["option_A"] == "2019年12月26日"
    assert item(astro, "single_choice_5", "zh", 202).extra["option_E"] == "1月12日"
    assert item(astro, "single_choice_5", "zh", 247).extra["option_E"] == "2013年11月16日"
    assert item(astro, "single_choice_5", "en", 202).extra["option_B"] == "June 6th"


def test_en_date_typed_cells_restored_to_their_wording(astro: Entries) -> None:
    en7 = item(astro, "single_choice_4", "en", 7)
    assert en7.extra["option_C"] == "December 2004"
    assert "\nC. December 2004\n" in en7.input

    en282 = item(astro, "single_choice_5", "en", 282)  # a 2017 eclipse Excel dated 2024-08-21
    assert en282.extra["option_B"] == "August 21st"
    assert en282.output.startswith("Answer: B. August 21st")

    assert item(astro, "single_choice_4", "en", 22).extra["option_A"] == "8 o'clock"


def test_genuine_numbers_in_the_serial_range_stay_numbers(astro: Entries) -> None:
    # 5-option 254: 1 Julian century is 36525 days; options 36500..36526 are real numbers.
    for lang in LANGS:
        entry = item(astro, "single_choice_5", lang, 254)
        assert entry.input == "A. 36500\nB. 36524\nC. 36524.22\nD. 36525\nE. 36526"
        assert [entry.extra[f"option_{c}"] for c in "ABCDE"] == ["36500", "36524", "36524.22", "36525", "36526"]
        assert entry.output.split("\n")[0] in {"答案：D. 36525", "Answer: D. 36525"}


def test_without_the_reviewed_list_date_typed_cells_are_quarantined(unreviewed: Entries) -> None:
    # README: the EN cells Excel auto-converted to dates/times.
    assert rejected(unreviewed, "single_choice_4", "en", "unreviewed_date_cell") == {
        7, 22, 144, 204, 401, 430, 508, 935,
    }  # fmt: skip
    assert rejected(unreviewed, "single_choice_5", "en", "unreviewed_date_cell") == {247, 281, 282, 346}
    for kind in ("single_choice_4", "single_choice_5"):
        assert rejected(unreviewed, kind, "zh", "unreviewed_date_cell") == set()
    en7 = by_id(unreviewed, "single_choice_4", "en")[7]
    assert "2004-12-01" in en7.message


def test_without_the_reviewed_list_serials_pass_as_numbers(unreviewed: Entries) -> None:
    # Why the list is needed: no type or range rule tells a serial from a number.
    zh77 = item(unreviewed, "single_choice_4", "zh", 77)

    assert [zh77.extra[f"option_{c}"] for c in "ABCD"] == ["45354", "45431", "45519", "45595"]
    assert item(unreviewed, "single_choice_5", "zh", 254).extra["option_C"] == "36524.22"


def test_a_reviewed_cell_that_no_longer_matches_the_workbook_is_a_file_error(data_dir: Path, tmp_path: Path) -> None:
    text = DATE_CELLS.read_text(encoding="utf-8")
    assert text.count('stored = "2004-12-01T00:00:00"') == 1
    stale = tmp_path / "date_cells.toml"
    stale.write_text(text.replace('stored = "2004-12-01T00:00:00"', 'stored = "2004-12-02T00:00:00"'), "utf-8")

    with pytest.raises(SourceFileError, match=r"en/4opt/7/C.*no longer matches"):
        read_folder(data_dir, date_cells=str(stale), types=["single_choice_4"])


def test_a_reviewed_cell_that_names_no_cell_in_the_workbook_is_a_file_error(data_dir: Path, tmp_path: Path) -> None:
    # A typo in the reviewed file (a wrong ID) must not pass silently.
    text = DATE_CELLS.read_text(encoding="utf-8")
    typo = tmp_path / "date_cells.toml"
    typo.write_text(text.replace('id = "935"', 'id = "99935"'), "utf-8")

    with pytest.raises(SourceFileError, match=r"en/4opt/99935/A .*is not in the workbook"):
        read_folder(data_dir, date_cells=str(typo), types=["single_choice_4"])


def test_date_cells_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceFileError, match="not found"):
        load_date_cells(tmp_path / "missing.toml")
    both = tmp_path / "both.toml"
    both.write_text(
        '[[cells]]\nlang = "en"\ntype = "4opt"\nid = "7"\ncolumn = "C"\nstored = "x"\ntext = "a"\nquarantine = "b"\n',
        encoding="utf-8",
    )
    with pytest.raises(SourceFileError, match="exactly one of text / quarantine"):
        load_date_cells(both)
    cells = load_date_cells(DATE_CELLS)
    assert cells["en", "4opt", "7", "C"].text == "December 2004"
    assert cells["en", "4opt", "430", "A"].quarantine


# --- pairing: subfields, groups, explanations --------------------------------------------------


def test_en_takes_its_subfield_from_the_zh_twin(astro: Entries, data_dir: Path) -> None:
    checked = 0
    for kind in ANSWERABLE:
        stem = KIND_BY_NAME[kind].stem
        zh = {
            int(i.item_id): i.subfield
            for i in read_sheet(data_dir / "ZH" / f"{stem}_ZH.xlsx", "zh", KIND_BY_NAME[kind], "zh", {})
        }
        for entry in raw_items(astro, kind, "en"):
            expected = zh[int(entry.original_id)]
            assert entry.extra["subfield"] == ("" if expected == "无" else expected), entry.key
            checked += 1
        en_by_id = by_id(astro, kind, "en")
        for entry in raw_items(astro, kind, "zh"):
            twin = en_by_id.get(int(entry.original_id))
            if isinstance(twin, RawItem):
                assert twin.extra["subfield"] == entry.extra["subfield"]
    assert checked > 2600
    # EN 105's ZH twin is rejected (prompt_mismatch), yet its subfield is still taken.
    assert item(astro, "subjective", "en", 105).extra["subfield"] == zh_subfield(data_dir, "subjective", 105)


def zh_subfield(data_dir: Path, kind: str, item_id: int) -> str:
    stem = KIND_BY_NAME[kind].stem
    rows = read_sheet(data_dir / "ZH" / f"{stem}_ZH.xlsx", "zh", KIND_BY_NAME[kind], "zh", {})
    return next(i.subfield for i in rows if i.item_id == str(item_id))


def test_subfield_wu_becomes_empty(astro: Entries, data_dir: Path) -> None:
    # README: 3 rows `无` (5-option 5 and 8, judgment 148).
    for kind, item_id in (("single_choice_5", 5), ("single_choice_5", 8), ("judgment", 148)):
        assert zh_subfield(data_dir, kind, item_id) == "无"
        for lang in LANGS:
            assert item(astro, kind, lang, item_id).extra["subfield"] == ""
    subfields = {e.extra["subfield"] for e in raw_items(astro)}
    assert subfields == {"天体物理学", "天体测量学", "天文技术与方法", "天文学史", "天体力学", "地球科学", ""}


@pytest.mark.parametrize("kind", ANSWERABLE)
def test_zh_and_en_items_with_the_same_id_share_a_group(astro: Entries, kind: str) -> None:
    zh = {i.original_id: i.group for i in raw_items(astro, kind, "zh")}
    en = {i.original_id: i.group for i in raw_items(astro, kind, "en")}

    common = zh.keys() & en.keys()
    assert len(common) > 0.95 * min(len(zh), len(en))
    assert all(zh[i] == en[i] for i in common)


def test_sample_item_442_has_the_same_group_in_both_languages(astro: Entries) -> None:
    zh, en = item(astro, "single_choice_4", "zh", 442), item(astro, "single_choice_4", "en", 442)

    assert zh.group == en.group == "astro_qa:4opt:442"


def test_duplicate_zh_four_option_questions_share_a_group(astro: Entries) -> None:
    # README: 44 extra rows when keyed by question + unordered options (punctuation/whitespace folded).
    zh4 = raw_items(astro, "single_choice_4", "zh")
    groups = {i.group for i in zh4}

    assert len(zh4) - len(groups) == 44
    members: dict[str, list[RawItem]] = defaultdict(list)
    for entry in zh4:
        members[entry.group].append(entry)
    for group, entries in members.items():
        # A group is named by its smallest ID.
        assert group == f"astro_qa:4opt:{min(int(e.original_id) for e in entries)}"
        if len(entries) > 1:  # the same options, perhaps in another order
            option_sets = {frozenset(folded(e.extra[f"option_{c}"]) for c in "ABCD") for e in entries}
            assert len(option_sets) == 1, group


def folded(text: str) -> str:
    return re.sub(r"\W", "", unicodedata.normalize("NFKC", text).lower())


def test_generic_stems_are_not_merged(astro: Entries) -> None:
    zh4 = raw_items(astro, "single_choice_4", "zh")
    generic = [e for e in zh4 if e.extra["question"] == "以下说法不正确的是"]

    assert len({e.group for e in generic}) >= 3
    folded = [e for e in zh4 if e.extra["question"].startswith("以下说法不正确的是")]
    assert len({e.group for e in folded}) > len({e.group for e in generic})


def test_en_explanation_without_a_zh_source_is_dropped_by_default(astro: Entries, zh_parse: dict) -> None:
    placeholder = re.compile(r"^略。?$")
    no_zh = {key for key, parse in zh_parse.items() if placeholder.match(parse)}
    en = [e for e in raw_items(astro, lang="en") if (e.extra["type"], int(e.original_id)) in no_zh]

    assert len(en) > 250
    assert all(e.extra["explanation"] == "" for e in en)
    assert not any("\nExplanation: " in e.output for e in en)


def test_en_only_explanations_kept_when_the_recipe_says_so(data_dir: Path, zh_parse: dict) -> None:
    placeholder = re.compile(r"^略。?$")
    no_zh = {key for key, parse in zh_parse.items() if placeholder.match(parse)}
    entries = read_folder(
        data_dir,
        date_cells=str(DATE_CELLS),
        en_only_explanations=True,
        types=["single_choice_4", "single_choice_5", "multi_select", "judgment"],
    )
    en = [e for e in raw_items(entries, lang="en") if (e.extra["type"], int(e.original_id)) in no_zh]
    kept = [e for e in en if e.extra["explanation"]]

    assert len(kept) >= 150  # README: 186 EN explanations whose ZH Parse is 略
    assert all(f"\nExplanation: {e.extra['explanation']}" in e.output for e in kept)
    # ZH never gets one.
    assert all(
        e.extra["explanation"] == ""
        for e in raw_items(entries, lang="zh")
        if (e.extra["type"], int(e.original_id)) in no_zh
    )


def test_parse_placeholders_never_become_explanations(astro: Entries) -> None:
    placeholder = re.compile(r"^(略|omitted|explanation omitted)[。.]?$", re.IGNORECASE)
    in_output = re.compile(r"\n(解析：|Explanation: )(略|Omitted|Explanation omitted)[。.]?$", re.IGNORECASE)
    for entry in raw_items(astro):
        assert not placeholder.match(entry.extra["explanation"]), entry.key
        assert not in_output.search(entry.output), entry.key


def test_items_whose_parse_is_a_placeholder_keep_the_bare_answer(astro: Entries) -> None:
    entry = item(astro, "single_choice_4", "en", 20)  # Parse "Explanation omitted"

    assert entry.output == "Answer: A. A day or two"
    assert entry.extra["explanation"] == ""


# --- triples and structured fields -------------------------------------------------------------


def test_zh_subjective_formulas_read_as_cached_prompts(astro: Entries, data_dir: Path) -> None:
    sheet = openpyxl.load_workbook(data_dir / "ZH/subjective question_ZH.xlsx", read_only=True).worksheets[0]
    formulas = {
        row[0] for row in sheet.iter_rows(min_row=2, max_col=5, values_only=True) if str(row[4]).startswith("=")
    }
    assert formulas == set(range(106, 184))  # the premise: these Prompt cells are formulas

    template = re.compile(r"以下是天文学科目的术语：(.+)，请解释其含义，把回复控制在\d+个汉字左右。")
    for item_id in range(106, 184):
        entry = item(astro, "subjective", "zh", item_id)
        assert entry.instruction == entry.extra["prompt"]
        assert not entry.instruction.startswith("=")
        match = template.fullmatch(entry.instruction)
        assert match and match.group(1) == entry.extra["question"], (item_id, entry.instruction)
        assert entry.input == ""
        assert entry.output and not entry.output.startswith("=")
        assert entry.output == entry.extra["answer"]


def test_subjective_instruction_is_the_prompt_and_output_the_answer(astro: Entries) -> None:
    assert item(astro, "subjective", "zh", 106).instruction == (
        "以下是天文学科目的术语：量子退相干，请解释其含义，把回复控制在268个汉字左右。"
    )
    zh324 = item(astro, "subjective", "zh", 324)
    assert zh324.instruction.startswith("以下是天文学科目的问题，请解答并把回复控制在140个汉字左右。 问题为：")
    assert zh324.output.startswith("1.中国古代为了认识星辰和观测天象")
    for entry in raw_items(astro, "subjective"):
        assert entry.extra["question"] in entry.instruction, entry.key


def test_subjective_442_structured_fields(astro: Entries) -> None:
    zh = item(astro, "subjective", "zh", 442)

    assert zh.extra["type"] == "subjective"
    assert zh.extra["type_label"] == "简答题"
    assert zh.extra["subfield"] == "天文技术与方法"
    assert zh.extra["question"] == "偏振光有什么应用场景？"
    assert zh.extra["answer"] == zh.output
    assert all(zh.extra[f"option_{c}"] == "" for c in "ABCDE")
    en = item(astro, "subjective", "en", 442)
    assert en.extra["type_label"] == "short-answer"
    assert en.extra["subfield"] == "天文技术与方法"
    assert {e.extra["type_label"] for e in raw_items(astro, "subjective", "zh")} == {"名词解释", "简答题"}
    assert {e.extra["type_label"] for e in raw_items(astro, "subjective", "en")} == {"terminology", "short-answer"}


def test_answer_key_with_trailing_space_is_read(astro: Entries) -> None:
    entry = item(astro, "single_choice_4", "zh", 765)  # Answer "C "

    assert entry.extra["answer"] == "C"
    assert entry.output.startswith("答案：C. γ射线\n解析：")
    assert entry.input == "A. α射线\nB. X射线\nC. γ射线\nD. β射线"


def test_choice_triple_layout(astro: Entries) -> None:
    zh, en = item(astro, "single_choice_4", "zh", 442), item(astro, "single_choice_4", "en", 442)

    assert zh.instruction == "2022年3月从天宫空间站返回的3名航天员不包括"
    assert zh.input == "A. 翟志刚\nB. 聂海胜\nC. 王亚平\nD. 叶光富"
    assert zh.output.startswith("答案：B. 聂海胜\n解析：2022年3月并没有航天员从天宫空间站返回。")
    assert zh.extra["answer"] == "B" and zh.extra["option_E"] == ""
    assert en.output.startswith("Answer: B. Ni Haisheng\nExplanation: ")


def test_multi_select_answers_list_each_chosen_option(astro: Entries) -> None:
    for lang, answer, sep in (("zh", "答案：", "；"), ("en", "Answer: ", "; ")):
        items = raw_items(astro, "multi_select", lang)
        for entry in items:
            first = entry.output.split("\n")[0]
            assert re.fullmatch(re.escape(answer) + rf"[A-D]\. .+({re.escape(sep)}[A-D]\. .+)*", first), first
            assert entry.extra["answer"] == "".join(sorted(entry.extra["answer"]))
        assert sum(len(e.extra["answer"]) > 1 for e in items) > 100


def test_judgment_verdicts(astro: Entries) -> None:
    zh, en = raw_items(astro, "judgment", "zh"), raw_items(astro, "judgment", "en")

    assert len(zh) == len(en) == 316  # 317 rows less ID 4 (keys disagree)
    assert {i.output.split("\n")[0] for i in zh} == {"正确。", "错误。"}
    assert {i.output.split("\n")[0] for i in en} == {"True.", "False."}
    assert all(i.output.startswith(("True.", "False.")) for i in en)
    assert {i.instruction for i in zh} == {"判断下列说法是否正确。"}
    assert {i.instruction for i in en} == {"Decide whether the following statement is true or false."}
    assert {i.extra["answer"] for i in zh + en} == {"true", "false"}
    for entry in zh + en:
        assert entry.output.startswith(
            {"true": ("正确。", "True."), "false": ("错误。", "False.")}[entry.extra["answer"]]
        )


def test_plain_triple_and_structured_fields_of_a_sheet_item(data_dir: Path) -> None:
    kind = KIND_BY_NAME["single_choice_4"]
    rows = read_sheet(data_dir / "ZH" / f"{kind.stem}_ZH.xlsx", "zh4", kind, "zh", {})
    sheet_item = next(i for i in rows if i.item_id == "442")

    instruction, input_, output = plain_triple(sheet_item)
    assert (instruction, input_) == (
        "2022年3月从天宫空间站返回的3名航天员不包括",
        "A. 翟志刚\nB. 聂海胜\nC. 王亚平\nD. 叶光富",
    )
    assert output.startswith("答案：B. 聂海胜\n解析：")
    fields = structured_fields(sheet_item)
    assert set(fields) == {
        "type", "type_label", "subfield", "question", "prompt", "answer", "explanation",
        "option_A", "option_B", "option_C", "option_D", "option_E",
    }  # fmt: skip
    assert (fields["type"], fields["answer"], fields["option_B"]) == ("single_choice_4", "B", "聂海胜")
    assert [k.name for k in KINDS] == list(ROWS)


# --- crafted folders ---------------------------------------------------------------------------


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


def test_crafted_choice_rows(tmp_path: Path) -> None:
    workbook(
        tmp_path / "data/ZH/multi-select multi choice_ZH.xlsx",
        CHOICE_HEADER,
        [
            [1, "天体物理学", "  哪些是行星？ ", "火星", "月球", 3, "金星\u3000", "db", "略。"],
            [2, "天体物理学", "哪个是恒星？", "太阳", "月球", "地球", "火星", "E", ""],
            [3, "天体物理学", "哪个是恒星？", "太阳", "月球", "地球", "火星", "AA", ""],
            [None, None, None, None, None, None, None, None, None],
            [4, "天体物理学", "哪个是卫星？", "太阳", "月球", "地球", "火星", "B", "月球绕地球转。"],
        ],
    )
    workbook(
        tmp_path / "data/EN/multi-select multi choice_EN.xlsx",
        EN_CHOICE_HEADER,
        [
            [1, "Which are planets?", "Mars", "Moon", 3, "Venus", "BD", "Mars and Venus orbit the Sun."],
            [2, "Which is a star?", "Sun", "Moon", "Earth", "Mars", "A", ""],
            [3, "Which is a star?", "Sun", "Moon", "Earth", "Mars", "A", ""],
            [4, "Which is a satellite?", "Sun", "Moon", "Earth", "Mars", "B", "The Moon orbits the Earth."],
        ],
    )

    entries = read_folder(tmp_path / "data", "data")

    zh = [e for e in entries if e.file == "data/ZH/multi-select multi choice_ZH.xlsx"]
    en = [e for e in entries if e.file == "data/EN/multi-select multi choice_EN.xlsx"]
    assert len(zh) == 4 and len(en) == 4  # the empty row is skipped
    first, second, third, fourth = zh
    assert isinstance(first, RawItem)
    assert (first.row, first.location, first.instruction, first.input, first.output) == (
        0,
        "row 2 (ID 1)",
        "哪些是行星？",
        "A. 火星\nB. 月球\nC. 3\nD. 金星",
        "答案：B. 月球；D. 金星",
    )
    assert (first.key, first.group, first.original_id, first.lang) == ("zh:multi:1", "astro_qa:multi:1", "1", "zh")
    assert first.extra["answer"] == "BD" and first.extra["explanation"] == ""
    assert isinstance(second, Rejection) and second.rule == "bad_answer_key"
    assert isinstance(third, Rejection) and third.rule == "bad_answer_key"
    assert isinstance(fourth, RawItem) and (fourth.location, fourth.output) == (
        "row 6 (ID 4)",
        "答案：B. 月球\n解析：月球绕地球转。",
    )
    en1, en2, en3, en4 = en
    # EN 1's explanation has no ZH source (ZH Parse 略。): dropped by default.
    assert isinstance(en1, RawItem) and en1.output == "Answer: B. Moon; D. Venus"
    assert en1.extra["subfield"] == "天体物理学" and en1.group == first.group
    # EN 2/3 go with their rejected ZH originals.
    assert isinstance(en2, Rejection) and en2.rule == "bad_answer_key_in_zh"
    assert isinstance(en3, Rejection) and en3.rule == "bad_answer_key_in_zh"
    assert isinstance(en4, RawItem) and en4.output == "Answer: B. Moon\nExplanation: The Moon orbits the Earth."

    kept = read_folder(tmp_path / "data", "data", en_only_explanations=True)
    assert next(e for e in kept if getattr(e, "key", None) == "en:multi:1").output == (
        "Answer: B. Moon; D. Venus\nExplanation: Mars and Venus orbit the Sun."
    )


def test_missing_twin_workbook_is_a_file_error(tmp_path: Path) -> None:
    workbook(tmp_path / "data/ZH/judgment_ZH.xlsx", JUDGMENT_HEADER, [[1, "天文学史", "太阳是恒星", "对", "略"]])

    with pytest.raises(SourceFileError, match=r"data/EN/judgment_EN\.xlsx"):
        read_folder(tmp_path / "data", "data")


def test_a_file_instead_of_a_folder_is_a_file_error(tmp_path: Path) -> None:
    path = workbook(tmp_path / "judgment_ZH.xlsx", JUDGMENT_HEADER, [[1, "天文学史", "太阳是恒星", "对", "略"]])

    with pytest.raises(SourceFileError, match=r"^judgment_ZH\.xlsx: .*folder"):
        read_folder(path, "judgment_ZH.xlsx")


def test_an_empty_folder_is_a_file_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()

    with pytest.raises(SourceFileError, match=r"^data: no Astro-QA workbooks"):
        read_folder(tmp_path / "data", "data")


def test_workbook_without_an_id_column_is_a_file_error(tmp_path: Path) -> None:
    workbook(
        tmp_path / "data/ZH/judgment_ZH.xlsx", ["No.", "Subfield", "Question", "Answer"], [[1, "天文学史", "q", "对"]]
    )
    workbook(tmp_path / "data/EN/judgment_EN.xlsx", EN_JUDGMENT_HEADER, [[1, "q", True, ""]])

    with pytest.raises(SourceFileError, match=r"^data/ZH/judgment_ZH\.xlsx: .*ID"):
        read_folder(tmp_path / "data", "data")


def test_non_xlsx_file_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "data/ZH/judgment_ZH.xlsx"
    path.parent.mkdir(parents=True)
    path.write_text("ID,Question,Answer\n1,q,对\n", encoding="utf-8")
    workbook(tmp_path / "data/EN/judgment_EN.xlsx", EN_JUDGMENT_HEADER, [[1, "q", True, ""]])

    with pytest.raises(SourceFileError, match=r"^data/ZH/judgment_ZH\.xlsx: "):
        read_folder(tmp_path / "data", "data")


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


def test_duplicate_ids_in_one_sheet(tmp_path: Path) -> None:
    entries = read_folder(duplicate_id_folder(tmp_path), "data")
    zh = [e for e in entries if e.file == "data/ZH/judgment_ZH.xlsx"]

    assert [type(e).__name__ for e in zh] == ["RawItem", "Rejection", "RawItem"]
    assert zh[1].rule == "duplicate_id" and zh[1].location == "row 3 (ID 1)"
    assert zh[0].extra["subfield"] == "天文学史"


def test_en_twin_of_a_duplicated_id_pairs_with_the_accepted_zh_row(tmp_path: Path) -> None:
    # The first row with an ID is the item; a later row with the same ID is the rejected duplicate.
    # The EN twin must take its subfield (and explanation rule) from the accepted first row.
    entries = read_folder(duplicate_id_folder(tmp_path), "data")
    en = {e.key: e for e in entries if isinstance(e, RawItem) and e.lang == "en"}

    assert en["en:judgment:1"].extra["subfield"] == "天文学史"
    assert en["en:judgment:1"].group == "astro_qa:judgment:1"
    assert en["en:judgment:2"].extra["subfield"] == "天体力学"
    assert en["en:judgment:2"].extra["explanation"] == ""  # ZH Parse 略


def test_languages_option_reads_zh_only(tmp_path: Path) -> None:
    workbook(tmp_path / "data/ZH/judgment_ZH.xlsx", JUDGMENT_HEADER, [[1, "天文学史", "太阳是恒星", "对", "略"]])

    (entry,) = read_folder(tmp_path / "data", "data", languages=["zh"])
    assert isinstance(entry, RawItem)
    assert (entry.instruction, entry.input, entry.output, entry.key, entry.lang) == (
        "判断下列说法是否正确。",
        "太阳是恒星",
        "正确。",
        "zh:judgment:1",
        "zh",
    )


def test_languages_option_on_the_real_folder(data_dir: Path) -> None:
    entries = read_folder(data_dir, date_cells=str(DATE_CELLS), languages=["zh"], types=["judgment"])

    assert {e.file for e in entries} == {file_of("judgment", "zh")}
    # Without EN there is no key to compare: ZH 4 stays an item.
    assert isinstance(by_id(entries, "judgment", "zh")[4], RawItem)


def test_pair_items_directly(data_dir: Path) -> None:
    kind = KIND_BY_NAME["judgment"]
    zh = read_sheet(data_dir / "ZH/judgment_ZH.xlsx", "zh", kind, "zh", {})
    en = read_sheet(data_dir / "EN/judgment_EN.xlsx", "en", kind, "en", {})
    paired = pair_items(zh, en, AstroQaOptions())

    assert len(paired) == len(zh) + len(en) == 2 * 317
    mismatched = {(i.lang, i.item_id) for i in paired if i.problem and i.problem[0] == "answer_key_mismatch"}
    assert mismatched == {("zh", "4"), ("en", "4")}
    # A rejected item keeps a group of its own; EN shares its ZH twin's group.
    assert all(i.group == f"astro_qa:judgment:{i.item_id}" for i in paired if i.problem)
    zh_groups = {i.item_id: i.group for i in paired if i.lang == "zh"}
    assert all(i.group == zh_groups[i.item_id] for i in paired if i.lang == "en")


def test_answer_keys_are_compared_with_the_accepted_en_row_of_a_duplicated_id(tmp_path: Path) -> None:
    # EN row 2 is the item with ID 1 (False); row 3 repeats the ID (rejected). ZH says 对: the keys
    # disagree, so both languages must go, whatever the rejected duplicate holds.
    workbook(tmp_path / "data/ZH/judgment_ZH.xlsx", JUDGMENT_HEADER, [[1, "天文学史", "太阳是恒星", "对", "略"]])
    workbook(
        tmp_path / "data/EN/judgment_EN.xlsx",
        EN_JUDGMENT_HEADER,
        [[1, "The Sun is a star", False, ""], [1, "The Sun is a star", True, ""]],
    )

    entries = read_folder(tmp_path / "data", "data")

    assert [(e.file.split("/")[1], getattr(e, "rule", None)) for e in entries] == [
        ("ZH", "answer_key_mismatch"),
        ("EN", "answer_key_mismatch"),
        ("EN", "duplicate_id"),
    ]


# --- #29: a damaged workbook is one file error ---------------------------------------------------


def corrupt_sheet_xml(path: Path, garble: bytes = b"<<not xml") -> Path:
    """Rewrite a workbook with its first sheet's XML broken half-way (the zip itself stays valid)."""
    with zipfile.ZipFile(path) as archive:
        members = {info: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members.items():
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2] + garble + data[len(data) // 2 :]
            archive.writestr(info, data)
    return path


def test_malformed_sheet_xml_is_one_file_error(tmp_path: Path) -> None:
    rows = [[i, "天文学史", f"太阳是恒星{i}", "对", "略"] for i in range(1, 60)]
    corrupt_sheet_xml(workbook(tmp_path / "data/ZH/judgment_ZH.xlsx", JUDGMENT_HEADER, rows))
    workbook(tmp_path / "data/EN/judgment_EN.xlsx", EN_JUDGMENT_HEADER, [[i, "q", True, ""] for i in range(1, 60)])

    with pytest.raises(SourceFileError) as caught:
        read_folder(tmp_path / "data", "data")

    message = str(caught.value)
    assert message.startswith("data/ZH/judgment_ZH.xlsx: damaged XLSX workbook, sheet unreadable after row ")
    assert "not well-formed" in message and "\n" not in message


def test_malformed_header_xml_is_one_file_error(tmp_path: Path) -> None:
    path = workbook(tmp_path / "data/ZH/judgment_ZH.xlsx", JUDGMENT_HEADER, [])
    corrupt_sheet_xml(path)
    workbook(tmp_path / "data/EN/judgment_EN.xlsx", EN_JUDGMENT_HEADER, [])

    with pytest.raises(SourceFileError, match=r"^data/ZH/judgment_ZH\.xlsx: damaged XLSX workbook"):
        read_folder(tmp_path / "data", "data")


def test_a_real_workbook_with_malformed_sheet_xml_is_one_file_error(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    for lang in ("ZH", "EN"):
        (folder / lang).mkdir(parents=True)
        shutil.copy(data_dir / lang / f"judgment_{lang}.xlsx", folder / lang)
    corrupt_sheet_xml(folder / "ZH" / "judgment_ZH.xlsx")

    with pytest.raises(SourceFileError, match=r"^data/ZH/judgment_ZH\.xlsx: damaged XLSX workbook, sheet unreadable"):
        read_folder(folder, "data", types=["judgment"])
