"""GSM8K adapter: steps without calculator annotations, then `The answer is <final>.`"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stellar_data import RecipeError, load_recipe
from stellar_data.config import from_table
from stellar_data.errors import SourceFileError
from stellar_data.sources.base import RawItem, Rejection
from stellar_data.sources.gsm8k import Gsm8kOptions, read_gsm8k
from tests.helpers import source_file, write_jsonl, write_recipe

DATA = "grade-school-math/grade_school_math/data"
THOUSANDS = re.compile(r"^The answer is -?\d{1,3}(,\d{3})+\.$")


def read(path: Path, root: Path, options: dict | None = None) -> list[RawItem | Rejection]:
    return list(read_gsm8k(source_file(path, root), from_table(Gsm8kOptions, options or {}), "en"))


def final_of(answer: str) -> str:
    return answer.rsplit("####", 1)[1].strip()


# --- real data ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count", "with_separators"), [("train", 7473, 79), ("test", 1319, 14), ("test_socratic", 1319, 14)]
)
def test_every_item_ends_with_its_final_answer_sentence(
    shared_sources: Path, name: str, count: int, with_separators: int
) -> None:
    path = shared_sources / DATA / f"{name}.jsonl"
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    items = read(path, shared_sources)

    assert len(items) == count
    assert all(isinstance(i, RawItem) for i in items)
    assert [i.instruction for i in items] == [r["question"] for r in raw]
    assert all(i.input == "" for i in items)
    assert not [i for i in items if "<<" in i.output or ">>" in i.output or "####" in i.output]
    last_lines = [i.output.split("\n")[-1] for i in items]
    assert last_lines == [f"The answer is {final_of(r['answer'])}." for r in raw]
    assert sum(1 for line in last_lines if THOUSANDS.match(line)) == with_separators


def test_socratic_subquestions_are_stripped_by_default(shared_sources: Path) -> None:
    items = read(shared_sources / DATA / "test_socratic.jsonl", shared_sources)

    assert not [i for i in items if " ** " in i.output]
    # The first record, both transformations at once.
    assert items[0].output == (
        "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 every day at the farmer’s market.\nThe answer is 18."
    )


def test_options_keep_subquestions_and_annotations(shared_sources: Path) -> None:
    items = read(
        shared_sources / DATA / "test_socratic.jsonl",
        shared_sources,
        {"strip_subquestions": False, "strip_calculator_annotations": False},
    )

    assert all(" ** " in i.output for i in items)
    assert items[0].output.startswith(
        "How many eggs does Janet sell? ** Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    )
    assert items[0].output.endswith("\nThe answer is 18.")


# --- crafted input -----------------------------------------------------------------------------


def test_final_answer_template_option(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"question": "1+1?", "answer": "1 + 1 = <<1+1=2>>2\n#### 2"}])

    (item,) = read(path, tmp_path, {"final_answer_template": "Final answer: {answer}"})

    assert item.output == "1 + 1 = 2\nFinal answer: 2"


def test_answer_that_is_only_the_final_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"question": "q", "answer": "#### 1,080"}])

    (item,) = read(path, tmp_path)

    assert item.output == "The answer is 1,080."


def test_answer_without_final_marker_is_rejected(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"question": "q1", "answer": "She has 3 apples.\nSo 3."},
            {"question": "q2", "answer": "Steps.\n####   "},
            {"question": "q3", "answer": "3 + 4 = 7\n#### 7"},
        ],
    )

    first, second, third = read(path, tmp_path)

    assert isinstance(first, Rejection) and (first.rule, first.location) == ("no_final_answer", "line 1")
    assert isinstance(second, Rejection) and second.rule == "no_final_answer"
    assert isinstance(third, RawItem) and third.output == "3 + 4 = 7\nThe answer is 7."


def test_malformed_json_line_is_rejected_and_the_others_are_read(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"question": "q1", "answer": "a\n#### 1"},
            '{"question": "q2", "answer": "a\\n#### 2"',
            {"question": "q3", "answer": "a\n#### 3"},
        ],
    )

    entries = read(path, tmp_path)

    assert [type(e) for e in entries] == [RawItem, Rejection, RawItem]
    bad = entries[1]
    assert (bad.rule, bad.row, bad.location) == ("malformed_json", 1, "line 2")
    assert bad.raw is not None and "q2" in bad.raw
    assert [e.instruction for e in entries if isinstance(e, RawItem)] == ["q1", "q3"]
    assert entries[2].location == "line 3"


@pytest.mark.parametrize(
    "record", [{"question": "q", "answer": 42}, {"question": None, "answer": "a\n#### 1"}, {"answer": "a\n#### 1"}]
)
def test_non_string_question_or_answer_is_wrong_type(tmp_path: Path, record: dict) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [record])

    (entry,) = read(path, tmp_path)

    assert isinstance(entry, Rejection) and entry.rule == "wrong_type"


@pytest.mark.parametrize("template", ["答案是{answr}", "{answer", "{{answer}}", "{answer} {answr}"])
def test_a_bad_final_answer_template_is_a_file_error_before_reading(tmp_path: Path, template: str) -> None:
    """Called directly (the recipe loader rejects it earlier, naming the source)."""
    path = write_jsonl(tmp_path / "m.jsonl", [{"question": "1+1?", "answer": "#### 2"}])

    with pytest.raises(SourceFileError, match=r"^m\.jsonl: options\.final_answer_template: ") as caught:
        next(read_gsm8k(source_file(path, tmp_path), Gsm8kOptions(final_answer_template=template), "en"))

    assert repr(template) in str(caught.value)


def test_a_literal_brace_in_the_template_is_written_doubled(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", [{"question": "1+1?", "answer": "#### 2"}])

    (item,) = read(path, tmp_path, {"final_answer_template": "{{answer}} = {answer}"})

    assert item.output == "{answer} = 2"


def test_a_bad_template_in_a_recipe_over_the_real_data_fails_before_reading(
    shared_sources: Path, tmp_path: Path
) -> None:
    recipe = write_recipe(
        tmp_path / "r.toml",
        f"""
        [corpus]
        name = "t"
        [[sources]]
        name = "gsm8k"
        adapter = "gsm8k"
        path = "{DATA}/train.jsonl"
        category = "math"
        lang = "en"
        [sources.options]
        final_answer_template = "答案是{{answer}}{{answr}}"
        """,
    )

    with pytest.raises(
        RecipeError, match=r"\(source 'gsm8k'\)\.options\.final_answer_template: '答案是\{answer\}\{answr\}'"
    ):
        load_recipe(recipe, sources_dir=shared_sources)
