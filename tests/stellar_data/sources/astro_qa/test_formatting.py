"""Astro-QA formatting: the plain triple in each language's wording, item keys, and the structured
fields templates and the held-out benchmark are made from.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stellar_data.sources.astro_qa.cells import read_sheet
from stellar_data.sources.astro_qa.formatting import plain_triple, structured_fields
from stellar_data.sources.astro_qa.items import KIND_BY_NAME, KINDS
from tests.stellar_data.sources.astro_qa.helpers import (
    ANSWERABLE,
    LANGS,
    ROWS,
    Entries,
    file_of,
    id_of,
    item,
    raw_items,
    zh_subfield,
)


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


def test_subfield_wu_becomes_empty(astro: Entries, data_dir: Path) -> None:
    # README: 3 rows `无` (5-option 5 and 8, judgment 148).
    for kind, item_id in (("single_choice_5", 5), ("single_choice_5", 8), ("judgment", 148)):
        assert zh_subfield(data_dir, kind, item_id) == "无"
        for lang in LANGS:
            assert item(astro, kind, lang, item_id).extra["subfield"] == ""
    subfields = {e.extra["subfield"] for e in raw_items(astro)}
    assert subfields == {"天体物理学", "天体测量学", "天文技术与方法", "天文学史", "天体力学", "地球科学", ""}


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
