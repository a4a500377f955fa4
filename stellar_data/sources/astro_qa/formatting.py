"""A paired item as an entry: one plain triple (instruction, input, output) in its language's
wording, plus the structured fields (`RawItem.extra`, the `_x_*` columns) that template expansion
and the held-out benchmark are made from; an item with a problem becomes its Rejection.
"""

from __future__ import annotations

from ..base import Entry, RawItem, Rejection
from .items import SheetItem

_NO_SUBFIELD = {"", "无"}
_WORDING = {
    "zh": {"answer": "答案：", "explanation": "解析：", "sep": "；", "true": "正确。", "false": "错误。",
           "judge": "判断下列说法是否正确。"},
    "en": {"answer": "Answer: ", "explanation": "Explanation: ", "sep": "; ", "true": "True.", "false": "False.",
           "judge": "Decide whether the following statement is true or false."},
}  # fmt: skip


def plain_triple(item: SheetItem) -> tuple[str, str, str]:
    """The item as one triple without templates: question (+ options), a self-contained answer."""
    words = _WORDING[item.lang]
    if item.kind.name == "subjective":
        return item.prompt or item.question, "", item.answer
    if item.kind.name == "judgment":
        body = words[item.answer]
        instruction, input_ = words["judge"], item.question
    else:
        body = words["answer"] + words["sep"].join(f"{c}. {item.options[c]}" for c in item.answer)
        instruction, input_ = item.question, "\n".join(f"{c}. {t}" for c, t in item.options.items())
    output = f"{body}\n{words['explanation']}{item.explanation}" if item.explanation else body
    return instruction, input_, output


def structured_fields(item: SheetItem) -> dict[str, str]:
    """The fields template expansion and the held-out benchmark are made from (`_x_*` columns)."""
    fields = {
        "type": item.kind.name,
        "type_label": item.type_label,
        "subfield": "" if item.subfield in _NO_SUBFIELD else item.subfield,
        "question": item.question,
        "prompt": item.prompt,
        "answer": item.answer,
        "explanation": item.explanation,
    }
    fields |= {f"option_{c}": item.options.get(c, "") for c in "ABCDE"}
    return fields


def entry_of(item: SheetItem) -> Entry:
    """The item's Rejection when it has a problem, else its RawItem (triple, key, group, fields)."""
    if item.problem is not None:
        rule, message = item.problem
        return Rejection(item.row, item.location, rule, message, item.raw, file=item.file, deliberate=item.deliberate)
    instruction, input_, output = plain_triple(item)
    return RawItem(
        row=item.row,
        location=item.location,
        instruction=instruction,
        input=input_,
        output=output,
        key=f"{item.lang}:{item.kind.segment}:{item.item_id}",
        group=item.group,
        original_id=item.item_id,
        lang=item.lang,
        file=item.file,
        extra=structured_fields(item),
    )
