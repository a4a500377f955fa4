"""Astro-QA pairing: ZH/EN twins by ID, answer-key comparison, subfields, groups and explanations."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from pathlib import Path

import openpyxl
import pytest

from stellar_data.sources.astro_qa.cells import read_sheet
from stellar_data.sources.astro_qa.items import KIND_BY_NAME, AstroQaOptions
from stellar_data.sources.astro_qa.pairing import pair_items
from stellar_data.sources.base import RawItem, Rejection
from tests.stellar_data.sources.astro_qa.helpers import (
    ANSWERABLE,
    DATE_CELLS,
    EN_JUDGMENT_HEADER,
    JUDGMENT_HEADER,
    LANGS,
    Entries,
    by_id,
    duplicate_id_folder,
    file_of,
    item,
    raw_items,
    read_folder,
    workbook,
    zh_subfield,
)


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


# --- a rejection in one language and its twin --------------------------------------------------


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


# --- subfields, groups, explanations -----------------------------------------------------------


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


# --- crafted folders and direct calls ----------------------------------------------------------


def test_en_twin_of_a_duplicated_id_pairs_with_the_accepted_zh_row(tmp_path: Path) -> None:
    # The first row with an ID is the item; a later row with the same ID is the rejected duplicate.
    # The EN twin must take its subfield (and explanation rule) from the accepted first row.
    entries = read_folder(duplicate_id_folder(tmp_path), "data")
    en = {e.key: e for e in entries if isinstance(e, RawItem) and e.lang == "en"}

    assert en["en:judgment:1"].extra["subfield"] == "天文学史"
    assert en["en:judgment:1"].group == "astro_qa:judgment:1"
    assert en["en:judgment:2"].extra["subfield"] == "天体力学"
    assert en["en:judgment:2"].extra["explanation"] == ""  # ZH Parse 略


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
