"""GSM8K-style math: JSON Lines of {question, answer}; the answer is steps, then `#### <final>`."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import SourceFileError
from .base import Entry, RawItem, Rejection, SourceFile
from .files import excerpt, iter_json_items, json_objects

_CALCULATOR = re.compile(r"<<[^<>]*>>")
_FINAL = re.compile(r"\n?####\s*(.*?)\s*$", re.S)


@dataclass(frozen=True)
class Gsm8kOptions:
    strip_calculator_annotations: bool = True
    strip_subquestions: bool = True
    final_answer_template: str = "The answer is {answer}."


def template_problem(template: str) -> str | None:
    """Why `final_answer_template` cannot be filled with the final answer, or None: it may name only
    `{answer}` (no conversion, no format spec); a literal brace is written `{{` / `}}`."""
    try:
        fields = [(name, conversion, spec) for _, name, spec, conversion in string.Formatter().parse(template)]
    except ValueError as exc:  # a stray brace
        return f"{template!r} is not a valid template ({exc}; write a literal brace as {{{{ or }}}})"
    unknown = [name for name, _, _ in fields if name is not None and name != "answer"]
    if unknown:
        return f"{template!r} names unknown field {{{unknown[0]}}} (only {{answer}} is filled in)"
    if any(name is not None and (conversion or spec) for name, conversion, spec in fields):
        return f"{template!r}: write {{answer}} plainly (no conversion or format spec)"
    if not any(name == "answer" for name, _, _ in fields):
        return f"{template!r} has no {{answer}} field"
    return None


def check_gsm8k_options(options: Gsm8kOptions) -> str | None:
    """What the schema cannot say: whether `final_answer_template` can be filled (AdapterInfo.check)."""
    problem = template_problem(options.final_answer_template)
    return None if problem is None else f"final_answer_template: {problem}"


def format_solution(answer: str, options: Gsm8kOptions) -> str | None:
    """Reasoning steps followed by a sentence stating the final answer; None without `####`."""
    match = _FINAL.search(answer)
    if match is None or not match.group(1):
        return None
    steps = answer[: match.start()]
    if options.strip_calculator_annotations:
        steps = _CALCULATOR.sub("", steps)
    if options.strip_subquestions:
        # test_socratic: "How many eggs does Janet sell? ** Janet sells ..." -> "Janet sells ..."
        steps = "\n".join(line.split(" ** ", 1)[-1] for line in steps.split("\n"))
    final = options.final_answer_template.format(answer=match.group(1))
    return f"{steps.rstrip()}\n{final}" if steps.strip() else final


def read_gsm8k(file: SourceFile, options: Gsm8kOptions, lang: str) -> Iterator[Entry]:
    if problem := check_gsm8k_options(options):
        raise SourceFileError(f"{file.relative}: options.{problem}")
    for entry in json_objects(iter_json_items(file)):
        if isinstance(entry, Rejection):
            yield entry
            continue
        row, location, record = entry
        question, answer = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not isinstance(answer, str):
            yield Rejection(row, location, "wrong_type", "question and answer must be strings", excerpt(record))
            continue
        solution = format_solution(answer, options)
        if solution is None:
            yield Rejection(row, location, "no_final_answer", "answer has no '#### <final>' line", excerpt(record))
            continue
        yield RawItem(row=row, location=location, instruction=question, input="", output=solution)
