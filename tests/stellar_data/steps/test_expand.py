"""Template expansion: one structured Astro-QA item -> K instruction variants."""

from __future__ import annotations

import re
from itertools import product
from pathlib import Path

import polars as pl
import pytest

from stellar_data.errors import RecipeError
from stellar_data.ingest import IngestTask, ingest
from stellar_data.recipe import load_recipe
from stellar_data.sources import SourceFile
from stellar_data.steps.expand import (
    PARTS,
    TYPE_GROUPS,
    ExpandConfig,
    LanguageTemplates,
    choose_combinations,
    expand,
    load_templates,
    render,
    template_id,
)
from tests.conftest import ROOT

TEMPLATES = ROOT / "corpus" / "templates" / "astro_qa.toml"
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")

SAMPLE_ID = "astro_qa:zh:subjective:442"
SAMPLE_INSTRUCTION = (
    "你是一位资深天文学家，请认真分析并回答下列问题。 假设你是一位天文学家。"
    "以下是一道【天文技术与方法】方向的简答题，请简要回答问题，突出重点。"
)
SAMPLE_INPUT = "有人说“偏振光有什么应用场景？”，你怎么看？"


@pytest.fixture(scope="module")
def templates() -> dict[str, LanguageTemplates]:
    return load_templates(TEMPLATES)


@pytest.fixture(scope="module")
def records(shared_sources: Path) -> pl.DataFrame:
    """The real Astro-QA records after read -> assemble -> normalize -> validate, as built."""
    recipe = load_recipe(ROOT / "corpus" / "stellarspeak.toml", sources_dir=shared_sources)
    spec = recipe.source("astro_qa")
    (path,) = spec.paths
    task = IngestTask(spec, SourceFile(shared_sources / path, path), 0, recipe.seed, recipe.protected_terms)
    result = ingest(task)
    assert result.records is not None
    return result.records


def fields(record: dict) -> dict[str, str]:
    return {k[3:]: v for k, v in record.items() if k.startswith("_x_")}


def record_of(records: pl.DataFrame, record_id: str) -> dict:
    (row,) = records.filter(pl.col("id") == record_id).iter_rows(named=True)
    return row


def item(kind: str, answer: str, options: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    base = {"type": kind, "type_label": "", "subfield": "天体物理学", "question": "问题？", "prompt": "",
            "answer": answer, "explanation": ""}  # fmt: skip
    base |= {f"option_{c}": (options or {}).get(c, "") for c in "ABCDE"}
    return base | extra


PLAIN = (0, 0, 0, 0, 0)


# --- templates ---------------------------------------------------------------------------------


def test_load_templates_for_both_languages(templates: dict[str, LanguageTemplates]) -> None:
    assert set(templates) == {"zh", "en"}
    for lang, t in templates.items():
        assert t.personas[0] == "" and t.roles[0] == "", lang  # index 0 is the plain form
        for group in set(TYPE_GROUPS.values()):
            for part in t.choices(group):
                assert part, (lang, group)
        assert set(t.verdicts) == {"true", "false"}
    assert templates["zh"].explanation_label == "解析："
    assert templates["en"].explanation_label == "Explanation: "
    assert templates["zh"].general_subfield == "天文学"
    assert templates["en"].subfields["天体物理学"] == "astrophysics"
    assert templates["zh"].type_names["简答题"] == "简答题"
    assert templates["en"].type_names["short-answer"] == "short-answer question"


def test_load_templates_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not found"):
        load_templates(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[zh]\npersonas = ['']\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"\[zh\] lacks"):
        load_templates(broken)


# --- the StellarSpeak sample, byte for byte ----------------------------------------------------


def test_stellarspeak_sample_record(records: pl.DataFrame, templates: dict[str, LanguageTemplates]) -> None:
    zh = templates["zh"]
    sample = fields(record_of(records, SAMPLE_ID))
    assert sample["question"] == "偏振光有什么应用场景？"
    assert (sample["type"], sample["type_label"], sample["subfield"]) == ("subjective", "简答题", "天文技术与方法")
    combination = (
        zh.personas.index("你是一位资深天文学家，请认真分析并回答下列问题。"),
        zh.roles.index("假设你是一位天文学家。"),
        0,
        zh.inputs["subjective"].index("有人说“{question}”，你怎么看？"),
        zh.outputs["subjective"].index("解释如下："),
    )

    instruction, input_, output = render(sample, combination, zh)

    assert instruction == SAMPLE_INSTRUCTION
    assert input_ == SAMPLE_INPUT
    assert output == "解释如下：" + sample["answer"]
    assert sample["answer"].startswith("偏光式3D技术普遍用于商业影院和其它高端应用")
    assert template_id(combination) == "p1.r1.f0.i1.o1"


def test_structured_fields_are_normalized_like_the_triple(records: pl.DataFrame) -> None:
    row = record_of(records, SAMPLE_ID)
    assert row["_x_answer"] == row["output"]
    assert row["_x_prompt"] == row["instruction"]
    for column in (c for c in records.columns if c.startswith("_x_")):
        texts = records[column].to_list()
        assert all(t == t.strip() for t in texts), column
        assert not any(re.search("[\u2002\u00a0\u3000\u2061\ufeff\ue000-\uf8ff]", t) for t in texts), column


# --- rendering ---------------------------------------------------------------------------------


def test_choice_renders_letter_and_text(templates: dict[str, LanguageTemplates]) -> None:
    choice = item("single_choice_4", "C", {"A": "甲", "B": "乙", "C": "丙星", "D": "丁"})

    instruction, input_, output = render(choice, PLAIN, templates["zh"])

    assert instruction == "以下是一道【天体物理学】方向的单选题，请选出唯一正确的选项。"
    assert input_ == "问题？\nA. 甲\nB. 乙\nC. 丙星\nD. 丁"
    assert output == "答案：C. 丙星"


def test_five_option_choice_lists_e(templates: dict[str, LanguageTemplates]) -> None:
    choice = item("single_choice_5", "E", {c: c.lower() for c in "ABCDE"})

    _, input_, output = render(choice, PLAIN, templates["zh"])

    assert input_.endswith("\nD. d\nE. e")
    assert output == "答案：E. e"


def test_multi_select_renders_each_chosen_option(templates: dict[str, LanguageTemplates]) -> None:
    multi = item("multi_select", "BD", {"A": "w", "B": "x", "C": "z", "D": "y"})

    assert render(multi, PLAIN, templates["zh"])[2] == "答案：B. x；D. y"
    assert render(multi, PLAIN, templates["en"])[2] == "Answer: B. x; D. y"


def test_judgment_renders_the_verdict(templates: dict[str, LanguageTemplates]) -> None:
    for answer, zh, en in (("true", "正确。", "True."), ("false", "错误。", "False.")):
        judgment = item("judgment", answer, question="太阳是恒星")
        assert render(judgment, PLAIN, templates["zh"])[1:] == ("太阳是恒星", zh)
        assert render(judgment, PLAIN, templates["en"])[2] == en


def test_explanation_is_appended(templates: dict[str, LanguageTemplates]) -> None:
    choice = item("single_choice_4", "A", {c: c for c in "ABCD"}, explanation="因为如此。")

    assert render(choice, PLAIN, templates["zh"])[2] == "答案：A. A\n解析：因为如此。"
    choice["explanation"] = "Because."
    assert render(choice, PLAIN, templates["en"])[2] == "Answer: A. A\nExplanation: Because."


def test_en_framing_uses_the_english_subfield_name(templates: dict[str, LanguageTemplates]) -> None:
    en = templates["en"]
    choice = item("single_choice_4", "A", {c: c for c in "ABCD"}, question="Q?")

    instruction = render(choice, PLAIN, en)[0]

    assert instruction == "The following is a single-choice question in astrophysics. Choose the one correct option."
    assert render(choice | {"subfield": ""}, PLAIN, en)[0] == (
        "The following is a single-choice question in astronomy. Choose the one correct option."
    )
    assert render(choice | {"subfield": ""}, PLAIN, templates["zh"])[0].startswith("以下是一道【天文学】方向")
    subjective = item("subjective", "text", type_label="terminology", subfield="天文学史", question="Q")
    assert render(subjective, PLAIN, en)[0] == (
        "The following is a terminology question in history of astronomy. Answer briefly and stick to the key points."
    )


def test_real_en_instructions_are_english_for_every_template(
    records: pl.DataFrame, templates: dict[str, LanguageTemplates]
) -> None:
    en = templates["en"]
    checked = 0
    for record in records.filter(pl.col("lang") == "en").iter_rows(named=True):
        fields_ = fields(record)
        sizes = tuple(len(part) for part in en.choices(TYPE_GROUPS[fields_["type"]]))
        for persona, role, framing in product(range(sizes[0]), range(sizes[1]), range(sizes[2])):
            instruction = render(fields_, (persona, role, framing, 0, 0), en)[0]
            assert not CJK.search(instruction), (record["id"], instruction)
            checked += 1
    assert checked > 2700 * 3


def test_real_zh_framings_name_the_item(records: pl.DataFrame, templates: dict[str, LanguageTemplates]) -> None:
    zh = templates["zh"]
    for record in records.filter(pl.col("lang") == "zh").iter_rows(named=True):
        fields_ = fields(record)
        instruction, input_, output = render(fields_, PLAIN, zh)
        assert (fields_["subfield"] or "天文学") in instruction, record["id"]
        assert fields_["question"] in input_
        if fields_["type"] == "subjective":
            assert output == fields_["answer"]


# --- choosing variants -------------------------------------------------------------------------


def test_choose_combinations_distinct_and_deterministic() -> None:
    sizes = (6, 4, 3, 5, 4)
    chosen = choose_combinations(1, "astro_qa:zh:subjective:442", sizes, 20)

    assert len(chosen) == 20
    assert len(set(chosen)) == 20
    assert all(0 <= i < n for combination in chosen for i, n in zip(combination, sizes, strict=True))
    assert chosen == choose_combinations(1, "astro_qa:zh:subjective:442", sizes, 20)
    assert chosen != choose_combinations(2, "astro_qa:zh:subjective:442", sizes, 20)
    assert chosen != choose_combinations(1, "astro_qa:en:subjective:442", sizes, 20)
    # The first k of a larger draw are the k of a smaller one (a variant does not depend on K).
    assert choose_combinations(1, "astro_qa:zh:subjective:442", sizes, 5) == chosen[:5]


def test_choose_combinations_is_capped_at_the_space_size() -> None:
    sizes = (2, 3, 1, 2, 1)
    chosen = choose_combinations(7, "x", sizes, 50)

    assert len(chosen) == 12
    assert set(chosen) == set(product(*(range(n) for n in sizes)))


def test_template_id_names_the_parts() -> None:
    assert [p[0] for p in PARTS] == ["p", "r", "f", "i", "o"]
    assert template_id((3, 0, 2, 1, 0)) == "p3.r0.f2.i1.o0"


# --- expand ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_frame(records: pl.DataFrame) -> pl.DataFrame:
    ids = [SAMPLE_ID, "astro_qa:en:subjective:442", "astro_qa:zh:4opt:442", "astro_qa:en:4opt:442",
           "astro_qa:zh:judgment:1", "astro_qa:en:multi:1"]  # fmt: skip
    frame = records.filter(pl.col("id").is_in(ids)).with_columns(pl.lit("train").alias("split"))
    assert frame.height == len(ids)
    return frame


def test_expand_gives_k_variants_per_item(sample_frame: pl.DataFrame, templates: dict) -> None:
    config = ExpandConfig(TEMPLATES, {"subjective": 5, "single_choice_4": 3, "multi_select": 2})

    out, stats = expand(sample_frame, config, templates, seed=20240229, source="astro_qa")

    assert out.columns == sample_frame.columns and out.schema == sample_frame.schema
    expected = {SAMPLE_ID: 5, "astro_qa:en:subjective:442": 5, "astro_qa:zh:4opt:442": 3,
                "astro_qa:en:4opt:442": 3, "astro_qa:en:multi:1": 2}  # fmt: skip
    for record in sample_frame.iter_rows(named=True):
        k = expected.get(record["id"])
        if k is None:
            continue
        variants = out.filter(pl.col("id").str.starts_with(record["id"] + ":t"))
        assert variants["id"].to_list() == [f"{record['id']}:t{i}" for i in range(k)]
        assert variants["template_id"].null_count() == 0
        assert variants["template_id"].n_unique() == k
        assert set(variants["group"].to_list()) == {record["group"]}
        assert set(variants["split"].to_list()) == {"train"}
        assert set(variants["lang"].to_list()) == {record["lang"]}
        assert set(variants["original_id"].to_list()) == {record["original_id"]}
        assert variants["_order"].n_unique() == k and record["_order"] not in variants["_order"].to_list()
        assert variants.select(pl.concat_str("instruction", "input", "output")).n_unique() == k
        lang_templates = templates[record["lang"]]
        item_fields = fields(record)
        sizes = tuple(len(p) for p in lang_templates.choices(TYPE_GROUPS[item_fields["type"]]))
        for variant, combination in zip(
            variants.iter_rows(named=True), choose_combinations(20240229, record["id"], sizes, k), strict=True
        ):
            assert variant["template_id"] == template_id(combination)
            assert (variant["instruction"], variant["input"], variant["output"]) == render(
                item_fields, combination, lang_templates
            )
            assert fields(variant) == item_fields  # the structured fields ride along
    assert out.height == 5 + 5 + 3 + 3 + 2 + 1
    assert stats.total == stats.kept == sample_frame.height
    assert stats.notes["records"] == out.height
    assert stats.reconciles


def test_types_not_listed_pass_unchanged(sample_frame: pl.DataFrame, templates: dict) -> None:
    config = ExpandConfig(TEMPLATES, {"subjective": 2})

    out, _ = expand(sample_frame, config, templates, seed=1, source="astro_qa")

    untouched = sample_frame.filter(pl.col("_x_type") != "subjective")
    assert out.filter(pl.col("_x_type") != "subjective").equals(untouched)
    assert out.filter(pl.col("_x_type") != "subjective")["template_id"].null_count() == untouched.height


def test_expand_is_deterministic_and_batch_independent(sample_frame: pl.DataFrame, templates: dict) -> None:
    config = ExpandConfig(TEMPLATES, {"subjective": 4, "single_choice_4": 4, "judgment": 4, "multi_select": 4})

    whole, _ = expand(sample_frame, config, templates, seed=5, source="astro_qa")
    parts = [expand(sample_frame.slice(i, 1), config, templates, seed=5, source="astro_qa")[0] for i in range(6)]

    assert pl.concat(parts).equals(whole)
    assert whole["id"].n_unique() == whole.height == 24


def test_expand_without_templates_for_a_language(sample_frame: pl.DataFrame, templates: dict) -> None:
    config = ExpandConfig(TEMPLATES, {"subjective": 2})

    with pytest.raises(RecipeError, match=r"no \[en\] table"):
        expand(sample_frame, config, {"zh": templates["zh"]}, seed=1, source="astro_qa")


def test_the_stellarspeak_sample_is_among_the_reachable_variants(records: pl.DataFrame, templates: dict) -> None:
    # The sample's parts are one combination of the template space (not a one-off string).
    zh = templates["zh"]
    sample = fields(record_of(records, SAMPLE_ID))
    sizes = tuple(len(p) for p in zh.choices("subjective"))
    rendered = {render(sample, c, zh)[:2] for c in product(*(range(n) for n in sizes))}

    assert (SAMPLE_INSTRUCTION, SAMPLE_INPUT) in rendered
