"""Astro-QA cells: cached values, typed cells as a reader sees them, the reviewed date cells, header
and ID checks, and damaged workbooks.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import openpyxl
import pytest

from stellar_data.errors import SourceFileError
from stellar_data.sources.astro_qa.cells import load_date_cells
from stellar_data.sources.base import RawItem, Rejection
from tests.stellar_data.sources.astro_qa.helpers import (
    CHOICE_HEADER,
    DATE_CELLS,
    DATE_SERIALS,
    EN_CHOICE_HEADER,
    EN_JUDGMENT_HEADER,
    JUDGMENT_HEADER,
    LANGS,
    Entries,
    by_id,
    duplicate_id_folder,
    item,
    raw_items,
    read_folder,
    rejected,
    workbook,
)

# --- dates -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unreviewed(data_dir: Path) -> Entries:
    """The choice types read without a date_cells file."""
    return read_folder(data_dir, types=["single_choice_4", "single_choice_5"])


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


# --- cell values -------------------------------------------------------------------------------


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


def test_answer_key_with_trailing_space_is_read(astro: Entries) -> None:
    entry = item(astro, "single_choice_4", "zh", 765)  # Answer "C "

    assert entry.extra["answer"] == "C"
    assert entry.output.startswith("答案：C. γ射线\n解析：")
    assert entry.input == "A. α射线\nB. X射线\nC. γ射线\nD. β射线"


# --- crafted folders ---------------------------------------------------------------------------


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


def test_duplicate_ids_in_one_sheet(tmp_path: Path) -> None:
    entries = read_folder(duplicate_id_folder(tmp_path), "data")
    zh = [e for e in entries if e.file == "data/ZH/judgment_ZH.xlsx"]

    assert [type(e).__name__ for e in zh] == ["RawItem", "Rejection", "RawItem"]
    assert zh[1].rule == "duplicate_id" and zh[1].location == "row 3 (ID 1)"
    assert zh[0].extra["subfield"] == "天文学史"


# --- a damaged workbook is one file error ------------------------------------------------------


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
