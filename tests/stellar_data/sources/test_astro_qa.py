"""Astro-QA adapter: one triple per answerable XLSX row, a reasoned Rejection for every other row."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

from stellar_data.errors import SourceFileError
from stellar_data.recipe import load_recipe
from stellar_data.sources.astro_qa import read_astro_qa
from stellar_data.sources.base import RawItem, Rejection
from tests.conftest import ROOT
from tests.helpers import source_file

FOUR, FIVE, MULTI, JUDGMENT, SUBJECTIVE, MATCHING = (
    "single-select multi choice(4)",
    "single-select multi choice(5)",
    "multi-select multi choice",
    "judgment",
    "subjective question",
    "matching",
)
ROWS = {FOUR: 1297, FIVE: 402, MULTI: 157, JUDGMENT: 317, SUBJECTIVE: 554, MATCHING: 355}
SEGMENTS = {FOUR: "4opt", FIVE: "5opt", MULTI: "multi", JUDGMENT: "judgment", SUBJECTIVE: "subjective"}
LANGS = ("ZH", "EN")

Entries = list[RawItem | Rejection]
Loader = Callable[[str, str], Entries]


def id_of(entry: RawItem | Rejection) -> int:
    match = re.search(r"\(ID (\d+)\)", entry.location)
    assert match, entry.location
    return int(match.group(1))


def by_id(entries: Entries) -> dict[int, RawItem | Rejection]:
    return {id_of(e): e for e in entries}


def rejected(entries: Entries, rule: str) -> set[int]:
    return {id_of(e) for e in entries if isinstance(e, Rejection) and e.rule == rule}


def raw_items(entries: Entries) -> list[RawItem]:
    return [e for e in entries if isinstance(e, RawItem)]


@pytest.fixture(scope="module")
def astro(shared_sources: Path) -> Loader:
    cache: dict[tuple[str, str], Entries] = {}

    def load(kind: str, lang: str) -> Entries:
        if (kind, lang) not in cache:
            path = shared_sources / "Astro-QA/data" / lang / f"{kind}_{lang}.xlsx"
            cache[kind, lang] = list(read_astro_qa(source_file(path, shared_sources), {}, lang.lower()))
        return cache[kind, lang]

    return load


# --- every row accounted for -------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("kind", list(ROWS))
def test_every_row_yields_exactly_one_entry(astro: Loader, kind: str, lang: str) -> None:
    entries = astro(kind, lang)

    assert len(entries) == ROWS[kind]
    assert [e.row for e in entries] == list(range(ROWS[kind]))
    assert sorted(id_of(e) for e in entries) == sorted(set(id_of(e) for e in entries))


@pytest.mark.parametrize("lang", LANGS)
def test_matching_rows_are_all_deliberately_excluded(astro: Loader, lang: str) -> None:
    entries = astro(MATCHING, lang)

    assert all(isinstance(e, Rejection) and e.rule == "no_answer_key" and e.deliberate for e in entries)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("kind", list(SEGMENTS))
def test_item_keys_and_groups_follow_the_id(astro: Loader, kind: str, lang: str) -> None:
    segment = SEGMENTS[kind]
    for item in raw_items(astro(kind, lang)):
        assert item.original_id == str(id_of(item))
        assert item.key == f"{segment}:{item.original_id}"
        assert item.group == f"astro_qa:{segment}:{item.original_id}"


@pytest.mark.parametrize("kind", list(SEGMENTS))
def test_zh_and_en_items_with_the_same_id_share_a_group(astro: Loader, kind: str) -> None:
    zh = {i.original_id: i.group for i in raw_items(astro(kind, "ZH"))}
    en = {i.original_id: i.group for i in raw_items(astro(kind, "EN"))}

    common = zh.keys() & en.keys()
    assert len(common) > 0.95 * min(len(zh), len(en))
    assert all(zh[i] == en[i] for i in common)


def test_sample_item_442_has_the_same_group_in_both_languages(astro: Loader) -> None:
    zh, en = by_id(astro(FOUR, "ZH"))[442], by_id(astro(FOUR, "EN"))[442]

    assert isinstance(zh, RawItem) and isinstance(en, RawItem)
    assert zh.group == en.group == "astro_qa:4opt:442"


# --- rejections with a reason ------------------------------------------------------------------


def test_zh_four_option_empty_options(astro: Loader) -> None:
    entries = astro(FOUR, "ZH")

    assert rejected(entries, "empty_option") == {41, 69, 863, 864, 869, 876, 936}
    ids = by_id(entries)
    assert ids[69].location == "row 70 (ID 69)"
    assert "B" in ids[69].message
    assert not isinstance(ids[69], RawItem)


def test_en_options_that_excel_turned_into_dates(astro: Loader) -> None:
    assert rejected(astro(FOUR, "EN"), "date_typed_cell") == {7, 22, 144, 204, 401, 430, 508, 935}
    assert rejected(astro(FIVE, "EN"), "date_typed_cell") == {247, 281, 282, 346}
    for lang in LANGS:
        for kind in SEGMENTS:
            if (kind, lang) not in {(FOUR, "EN"), (FIVE, "EN")}:
                assert rejected(astro(kind, lang), "date_typed_cell") == set()


def test_en_five_option_untranslated_items(astro: Loader) -> None:
    assert rejected(astro(FIVE, "EN"), "untranslated") == {25, 336}
    assert rejected(astro(FIVE, "ZH"), "untranslated") == set()


def test_zh_subjective_105_prompt_mismatch(astro: Loader) -> None:
    entries = astro(SUBJECTIVE, "ZH")

    assert rejected(entries, "prompt_mismatch") == {105}
    assert [e.rule for e in entries if isinstance(e, Rejection)] == ["prompt_mismatch"]


@pytest.mark.parametrize(
    ("kind", "lang", "ids"), [(FOUR, "ZH", {77, 508}), (FIVE, "ZH", {202, 247}), (FIVE, "EN", {202})]
)
def test_options_stored_as_date_serials_are_quarantined_from_the_reviewed_list(
    shared_sources: Path, kind: str, lang: str, ids: set[int]
) -> None:
    # README: ZH 4-option 77 (all four options) and 508 A/C/D, ZH 5-option 202 E and 247 E and
    # EN 5-option 202 B hold Excel date serials stored as integers (e.g. EN 202 B `45449` for
    # June 6, 2012, which is the keyed answer). No type or range rule tells them from numbers, so
    # the real recipe lists them (reviewed) and the adapter quarantines exactly those.
    recipe = load_recipe(ROOT / "corpus" / "stellarspeak.toml")
    options = recipe.source(f"astro_qa_{lang.lower()}").options
    path = shared_sources / "Astro-QA/data" / lang / f"{kind}_{lang}.xlsx"
    entries = list(read_astro_qa(source_file(path, shared_sources), options, lang.lower()))

    assert rejected(entries, "date_serial_cell") == ids
    without_list = by_id(list(read_astro_qa(source_file(path, shared_sources), {}, lang.lower())))
    assert all(isinstance(without_list[i], RawItem) for i in ids)  # unlisted, they would pass as numbers


def test_genuine_numbers_in_the_serial_range_stay_items(astro: Loader) -> None:
    # ZH/EN 5-option 254: 1 Julian century is 36525 days; options 36500..36526 are real numbers.
    for lang in LANGS:
        item = by_id(astro(FIVE, lang))[254]
        assert isinstance(item, RawItem)
        assert item.input == "A. 36500\nB. 36524\nC. 36524.22\nD. 36525\nE. 36526"
        assert item.output.split("\n")[0] in {"答案：D. 36525", "Answer: D. 36525"}


# --- triples -----------------------------------------------------------------------------------


def test_zh_subjective_formulas_read_as_cached_prompts(astro: Loader, shared_sources: Path) -> None:
    path = shared_sources / "Astro-QA/data/ZH/subjective question_ZH.xlsx"
    sheet = openpyxl.load_workbook(path, read_only=True).worksheets[0]
    formulas = {
        row[0] for row in sheet.iter_rows(min_row=2, max_col=5, values_only=True) if str(row[4]).startswith("=")
    }
    assert formulas == set(range(106, 184))  # the premise: these Prompt cells are formulas

    items = by_id(astro(SUBJECTIVE, "ZH"))
    template = re.compile(r"以下是天文学科目的术语：(.+)，请解释其含义，把回复控制在\d+个汉字左右。")
    for item_id in range(106, 184):
        item = items[item_id]
        assert isinstance(item, RawItem), item_id
        assert template.fullmatch(item.instruction), (item_id, item.instruction)
        assert item.input == ""
        assert item.output and not item.output.startswith("=")


def test_subjective_instruction_is_the_prompt_and_output_the_answer(astro: Loader) -> None:
    items = by_id(astro(SUBJECTIVE, "ZH"))

    assert items[106].instruction == "以下是天文学科目的术语：量子退相干，请解释其含义，把回复控制在268个汉字左右。"
    assert items[324].instruction.startswith("以下是天文学科目的问题，请解答并把回复控制在140个汉字左右。 问题为：")
    assert items[324].output.startswith("1.中国古代为了认识星辰和观测天象")


def test_answer_key_with_trailing_space_is_read(astro: Loader) -> None:
    item = by_id(astro(FOUR, "ZH"))[765]

    assert isinstance(item, RawItem)
    assert item.output.startswith("答案：C. γ射线\n解析：")
    assert item.input == "A. α射线\nB. X射线\nC. γ射线\nD. β射线"


def test_choice_triple_layout(astro: Loader) -> None:
    zh, en = by_id(astro(FOUR, "ZH"))[442], by_id(astro(FOUR, "EN"))[442]

    assert zh.instruction == "2022年3月从天宫空间站返回的3名航天员不包括"
    assert zh.input == "A. 翟志刚\nB. 聂海胜\nC. 王亚平\nD. 叶光富"
    assert zh.output.startswith("答案：B. 聂海胜\n解析：2022年3月并没有航天员从天宫空间站返回。")
    assert en.output.startswith("Answer: B. ")


def test_multi_select_answers_list_each_chosen_option(astro: Loader) -> None:
    for lang, answer, sep in (("ZH", "答案：", "；"), ("EN", "Answer: ", "; ")):
        for item in raw_items(astro(MULTI, lang)):
            first = item.output.split("\n")[0]
            assert re.fullmatch(re.escape(answer) + rf"[A-D]\. .+({re.escape(sep)}[A-D]\. .+)*", first), first
        assert sum(sep in i.output.split("\n")[0] for i in raw_items(astro(MULTI, lang))) > 100


def test_judgment_verdicts(astro: Loader) -> None:
    zh, en = raw_items(astro(JUDGMENT, "ZH")), raw_items(astro(JUDGMENT, "EN"))

    assert len(zh) == len(en) == 317
    assert {i.output.split("\n")[0] for i in zh} == {"正确。", "错误。"}
    assert {i.output.split("\n")[0] for i in en} == {"True.", "False."}
    assert {i.instruction for i in zh} == {"判断下列说法是否正确。"}
    assert {i.instruction for i in en} == {"Decide whether the following statement is true or false."}
    # The answer keys agree except on ID 4 (a README-documented disagreement).
    zh_true = {i.original_id: i.output.startswith("正确。") for i in zh}
    en_true = {i.original_id: i.output.startswith("True.") for i in en}
    assert {k for k in zh_true if zh_true[k] != en_true[k]} == {"4"}


def test_no_explanation_placeholders_and_no_date_text_in_any_item(astro: Loader) -> None:
    placeholder = re.compile(r"\n(解析：|Explanation: )(略|Omitted|Explanation omitted)[。.]?$", re.IGNORECASE)
    for lang in LANGS:
        for kind in SEGMENTS:
            for item in raw_items(astro(kind, lang)):
                text = "\n".join((item.instruction, item.input, item.output))
                assert not placeholder.search(item.output), (kind, lang, item.location)
                assert "解析：略" not in text and "Explanation: Omitted" not in text
                assert "00:00:00" not in text, (kind, lang, item.location)


def test_items_whose_parse_is_a_placeholder_keep_the_bare_answer(astro: Loader) -> None:
    item = by_id(astro(FOUR, "EN"))[41]

    assert isinstance(item, RawItem)
    assert item.output == "Answer: A. Increase"


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


def read(path: Path, root: Path, options: dict | None = None, lang: str = "zh") -> Entries:
    return list(read_astro_qa(source_file(path, root), options or {}, lang))


def test_crafted_choice_rows(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "multi-select multi choice_ZH.xlsx",
        CHOICE_HEADER,
        [
            [1, "天体物理学", "  哪些是行星？ ", "火星", "月球", 3, "金星\u3000", "db", "略。"],
            [2, "天体物理学", "哪个是恒星？", "太阳", "月球", "地球", "火星", "E", ""],
            [3, "天体物理学", "哪个是恒星？", "太阳", "月球", "地球", "火星", "AA", ""],
            [None, None, None, None, None, None, None, None, None],
            [4, "天体物理学", "哪个是卫星？", "太阳", "月球", "地球", "火星", "B", "月球绕地球转。"],
        ],
    )

    entries = read(path, tmp_path)

    assert len(entries) == 4  # the empty row is skipped
    first, second, third, fourth = entries
    assert first == RawItem(
        row=0,
        location="row 2 (ID 1)",
        instruction="哪些是行星？",
        input="A. 火星\nB. 月球\nC. 3\nD. 金星",
        output="答案：B. 月球；D. 金星",
        key="multi:1",
        group="astro_qa:multi:1",
        original_id="1",
    )
    assert isinstance(second, Rejection) and second.rule == "bad_answer_key"
    assert isinstance(third, Rejection) and third.rule == "bad_answer_key"
    assert isinstance(fourth, RawItem) and (fourth.location, fourth.output) == (
        "row 6 (ID 4)",
        "答案：B. 月球\n解析：月球绕地球转。",
    )


def test_non_xlsx_file_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "ZH" / "judgment_ZH.xlsx"
    path.parent.mkdir()
    path.write_text("ID,Question,Answer\n1,q,对\n", encoding="utf-8")

    with pytest.raises(SourceFileError, match=r"^ZH/judgment_ZH\.xlsx: "):
        read(path, tmp_path)


def test_kind_comes_from_the_file_name_or_the_options(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "astro" / "questions.xlsx",
        ["ID", "Subfield", "Question", "Answer", "Parse"],
        [[1, "天文学史", "太阳是恒星", "对", "略"]],
    )

    with pytest.raises(SourceFileError, match=r"^astro/questions\.xlsx: .*kind"):
        read(path, tmp_path)

    (item,) = read(path, tmp_path, {"kind": "judgment"})
    assert (item.instruction, item.input, item.output, item.key) == (
        "判断下列说法是否正确。",
        "太阳是恒星",
        "正确。",
        "judgment:1",
    )


def test_workbook_without_an_id_column_is_a_file_error(tmp_path: Path) -> None:
    path = workbook(tmp_path / "judgment_EN.xlsx", ["No.", "Question", "Answer"], [[1, "q", True]])

    with pytest.raises(SourceFileError, match=r"^judgment_EN\.xlsx: .*ID"):
        read(path, tmp_path, lang="en")
