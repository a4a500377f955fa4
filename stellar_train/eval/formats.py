"""How an item is put to the model: the plain (variant 0) form of the corpus's Astro-QA templates.

The training corpus renders every Astro-QA item with instruction templates
(corpus/templates/astro_qa.toml); index 0 of each list is the plain form. Evaluation asks in that
plain form, inside the run's prompt template, so the model sees what it was trained on:

    instruction  the type's plain framing, e.g. `以下是一道【天体物理学】方向的单选题，请选出唯一正确的选项。`
    input        `{question}` plus one `A. text` line per option
    answer       choice: `答案：` / `Answer: ` then `C. option text`; judgment: `正确。` / `错误。`
                 (`True.` / `False.`)

(tests/stellar_train/eval/test_formats.py checks these strings against the templates file.)
Subjective items use the benchmark's own prompt when the item has one (Astro-QA's prompts carry
the length target the reference was written to), else the plain form. Languages other than zh
use the English strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..prompt import PromptTemplate
from .items import EvalItem

GROUPS = {"single_choice": "choice", "multi_select": "multi_select", "judgment": "judgment", "subjective": "subjective"}


@dataclass(frozen=True)
class LanguageFormat:
    framings: dict[str, str]
    answer_prefix: dict[str, str]
    verdicts: dict[str, str]
    type_names: dict[str, str]
    subfields: dict[str, str]
    general_subfield: str
    generate_hint: dict[str, str]
    """Appended to the instruction in generate mode: the answer format parse_choice reads."""


ZH = LanguageFormat(
    framings={
        "choice": "以下是一道【{subfield}】方向的{type}，请选出唯一正确的选项。",
        "multi_select": "以下是一道【{subfield}】方向的{type}，请选出所有正确的选项。",
        "judgment": "以下是一道【{subfield}】方向的{type}，请判断说法是否正确。",
        "subjective": "以下是一道【{subfield}】方向的{type}，请简要回答问题，突出重点。",
    },
    answer_prefix={"choice": "答案：", "multi_select": "答案：", "judgment": "", "subjective": ""},
    verdicts={"true": "正确。", "false": "错误。"},
    type_names={
        "choice": "单选题",
        "multi_select": "多选题",
        "judgment": "判断题",
        "subjective": "简答题",
        "名词解释": "名词解释题",
        "简答题": "简答题",
    },
    subfields={},
    general_subfield="天文学",
    generate_hint={
        "choice": "请在回答的最后一行写“答案是：X”（X 为选项字母）。",
        "multi_select": "请在回答的最后一行写“答案是：XY”（列出所有正确选项的字母）。",
        "judgment": "请先回答“正确”或“错误”。",
    },
)
EN = LanguageFormat(
    framings={
        "choice": "The following is a {type} in {subfield}. Choose the one correct option.",
        "multi_select": "The following is a {type} in {subfield}. Choose every correct option.",
        "judgment": "The following is a {type} in {subfield}. Decide whether the statement is correct.",
        "subjective": "The following is a {type} in {subfield}. Answer briefly and stick to the key points.",
    },
    answer_prefix={"choice": "Answer: ", "multi_select": "Answer: ", "judgment": "", "subjective": ""},
    verdicts={"true": "True.", "false": "False."},
    type_names={
        "choice": "single-choice question",
        "multi_select": "multiple-select question",
        "judgment": "true-or-false question",
        "subjective": "short-answer question",
        "terminology": "terminology question",
        "short-answer": "short-answer question",
    },
    subfields={
        "天体物理学": "astrophysics",
        "天体测量学": "astrometry",
        "天文技术与方法": "astronomical techniques and methods",
        "天文学史": "history of astronomy",
        "天体力学": "celestial mechanics",
        "地球科学": "earth science",
    },
    general_subfield="astronomy",
    generate_hint={
        "choice": 'End your reply with a line "The answer is X" (X: the option letter).',
        "multi_select": 'End your reply with a line "The answer is XY" (the letters of every correct option).',
        "judgment": "Start your reply with True or False.",
    },
)


def language(item: EvalItem) -> LanguageFormat:
    return ZH if item.lang == "zh" else EN


def group(item: EvalItem) -> str:
    return GROUPS[item.kind]


def options_text(options: tuple[tuple[str, str], ...]) -> str:
    return "\n".join(f"{label}. {text}" for label, text in options)


def instruction(item: EvalItem, kind_group: str | None = None) -> str:
    fmt, kind_group = language(item), kind_group or group(item)
    subfield = fmt.subfields.get(item.subfield, item.subfield) or fmt.general_subfield
    type_name = fmt.type_names.get(item.type_label) or fmt.type_names[kind_group]
    return fmt.framings[kind_group].format(subfield=subfield, type=type_name)


def question_input(item: EvalItem) -> str:
    return f"{item.question}\n{options_text(item.options)}" if item.options else item.question


def answer_prompt(item: EvalItem, template: PromptTemplate) -> str:
    """The prompt whose continuation is the answer (choice and judgment), ending with the answer prefix."""
    return template.prompt(instruction(item), question_input(item)) + language(item).answer_prefix[group(item)]


def choice_continuations(item: EvalItem) -> list[str]:
    """`C. option text` per option, as the training outputs write a chosen option."""
    return [f"{label}. {text}" for label, text in item.options]


def verdict_continuations(item: EvalItem) -> tuple[str, str]:
    """(true, false) verdict strings."""
    verdicts = language(item).verdicts
    return verdicts["true"], verdicts["false"]


def option_judgment_prompt(item: EvalItem, label: str, text: str, template: PromptTemplate) -> str:
    """A multi-select option put as a judgment: the question and this one option, to be judged
    true or false (the judgment prefix is empty, so the verdict follows the template directly)."""
    statement = f"{item.question}\n{label}. {text}"
    return template.prompt(instruction(item, "judgment"), statement)


def generation_prompt(item: EvalItem, template: PromptTemplate) -> str:
    """The prompt for generate mode: objective items ask for the answer format parse_choice reads;
    subjective items use the benchmark's prompt when there is one."""
    kind_group = group(item)
    if kind_group == "subjective":
        if item.prompt:
            return template.prompt(item.prompt)
        return template.prompt(instruction(item), item.question)
    hint = language(item).generate_hint[kind_group]
    return template.prompt(f"{instruction(item)}{'' if item.lang == 'zh' else ' '}{hint}", question_input(item))
