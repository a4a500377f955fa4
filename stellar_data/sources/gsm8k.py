"""GSM8K-style math: JSON Lines of {question, answer}; the answer is steps, then `#### <final>`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .base import Entry, RawItem, Rejection, SourceFile
from .files import excerpt, iter_json_items, json_objects

_CALCULATOR = re.compile(r"<<[^<>]*>>")
_FINAL = re.compile(r"\n?####\s*(.*?)\s*$", re.S)


@dataclass(frozen=True)
class Gsm8kOptions:
    strip_calculator_annotations: bool = True
    strip_subquestions: bool = True
    final_answer_template: str = "The answer is {answer}."


def format_solution(answer: str, config: Gsm8kOptions) -> str | None:
    """Reasoning steps followed by a sentence stating the final answer; None without `####`."""
    match = _FINAL.search(answer)
    if match is None or not match.group(1):
        return None
    steps = answer[: match.start()]
    if config.strip_calculator_annotations:
        steps = _CALCULATOR.sub("", steps)
    if config.strip_subquestions:
        # test_socratic: "How many eggs does Janet sell? ** Janet sells ..." -> "Janet sells ..."
        steps = "\n".join(line.split(" ** ", 1)[-1] for line in steps.split("\n"))
    final = config.final_answer_template.format(answer=match.group(1))
    return f"{steps.rstrip()}\n{final}" if steps.strip() else final


def read_gsm8k(file: SourceFile, options: dict[str, Any], lang: str) -> Iterator[Entry]:
    config = Gsm8kOptions(**options)
    for entry in json_objects(iter_json_items(file)):
        if isinstance(entry, Rejection):
            yield entry
            continue
        row, location, record = entry
        question, answer = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not isinstance(answer, str):
            yield Rejection(row, location, "wrong_type", "question and answer must be strings", excerpt(record))
            continue
        solution = format_solution(answer, config)
        if solution is None:
            yield Rejection(row, location, "no_final_answer", "answer has no '#### <final>' line", excerpt(record))
            continue
        yield RawItem(row=row, location=location, instruction=question, input="", output=solution)
