"""Evaluation asks in the corpus's plain template form: the instruction, input and answer text of
stellar_train.eval.formats equal what stellar_data renders with variant 0 of corpus/templates/astro_qa.toml."""

from __future__ import annotations

import pytest

from stellar_data.steps.expand import load_templates, render
from stellar_train.eval import formats
from stellar_train.eval.items import EvalItem
from stellar_train.prompt import PromptTemplate
from tests.conftest import ROOT

TEMPLATES = load_templates(ROOT / "corpus" / "templates" / "astro_qa.toml")
OPTIONS = {"zh": (("A", "行星"), ("B", "恒星"), ("C", "卫星"), ("D", "彗星")),
           "en": (("A", "a planet"), ("B", "a star"), ("C", "a moon"), ("D", "a comet"))}  # fmt: skip


def item(lang: str, type_: str, answer: str, type_label: str = "", subfield: str = "天体物理学") -> EvalItem:
    options = () if type_ in ("judgment", "subjective") else OPTIONS[lang]
    return EvalItem(id="x", group="x", type=type_, subfield=subfield, lang=lang, question="太阳是什么？",
                    options=options, answer=answer, type_label=type_label)  # fmt: skip


def rendered(it: EvalItem) -> tuple[str, str, str]:
    fields = {"type": it.type, "type_label": it.type_label, "subfield": it.subfield, "question": it.question,
              "answer": it.answer, "explanation": ""} | {f"option_{label}": text for label, text in it.options}  # fmt: skip
    return render(fields, (0, 0, 0, 0, 0), TEMPLATES[it.lang])


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(
    ("type_", "answer", "type_label", "subfield"),
    [
        ("single_choice_4", "B", "", "天体物理学"),
        ("single_choice_5", "C", "", "天文学史"),
        ("multi_select", "BD", "", "天体力学"),
        ("judgment", "true", "", "天体测量学"),
        ("judgment", "false", "", ""),
    ],
)
def test_plain_form_equals_the_corpus_templates(
    lang: str, type_: str, answer: str, type_label: str, subfield: str
) -> None:
    it = item(lang, type_, answer, type_label, subfield)
    instruction, input_, output = rendered(it)
    assert formats.instruction(it) == instruction
    assert formats.question_input(it) == input_
    prefix = formats.language(it).answer_prefix[formats.group(it)]
    if it.kind == "single_choice":
        (correct,) = [c for c in formats.choice_continuations(it) if c.startswith(answer)]
        assert output == prefix + correct
    elif it.kind == "judgment":
        true, false = formats.verdict_continuations(it)
        assert output == prefix + (true if answer == "true" else false)
    else:
        assert output.startswith(prefix)


@pytest.mark.parametrize(
    ("lang", "label"), [("zh", "名词解释"), ("zh", "简答题"), ("en", "terminology"), ("en", "short-answer")]
)
def test_subjective_type_labels(lang: str, label: str) -> None:
    it = item(lang, "subjective", "A reference.", label, "天文技术与方法")
    assert (formats.instruction(it), formats.question_input(it), "A reference.") == rendered(it)


def test_answer_prompt_ends_with_the_answer_prefix_and_generation_asks_for_the_format() -> None:
    template = PromptTemplate.load("alpaca")
    it = item("zh", "single_choice_4", "B")
    prompt = formats.answer_prompt(it, template)
    assert prompt == template.prompt(formats.instruction(it), formats.question_input(it)) + "答案："
    assert "答案是：X" in formats.generation_prompt(it, template)
    subjective = EvalItem(id="s", group="s", type="subjective", subfield="", lang="en", question="Pulsar",
                          options=(), answer="ref", prompt="Explain the term: Pulsar.")  # fmt: skip
    assert formats.generation_prompt(subjective, template) == template.prompt("Explain the term: Pulsar.")
