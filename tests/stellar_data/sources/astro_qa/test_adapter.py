"""Astro-QA adapter: a `data/` folder (ZH/ + EN/) read whole, items paired by type and ID.

Every row of every workbook yields exactly one entry: a RawItem (plain triple + structured fields)
or a Rejection with its reason. The facts checked against the real data come from
../shared/sources/README.md.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from stellar_data.errors import SourceFileError
from stellar_data.sources.base import RawItem, Rejection
from tests.stellar_data.sources.astro_qa.helpers import (
    ANSWERABLE,
    DATE_CELLS,
    JUDGMENT_HEADER,
    LANGS,
    ROWS,
    Entries,
    by_id,
    file_of,
    id_of,
    of,
    read_folder,
    rejected,
    workbook,
)

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


# --- crafted folders ---------------------------------------------------------------------------


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
