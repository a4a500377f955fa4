"""One prediction scored with Astro-QA's rules (stellar_train.scoring).

Points per item as Astro-QA counts them: single choice and judgment 1, multi-select up to 2
(0.5 per correct letter when no wrong one is chosen), subjective 0-1 (the weighted BLEU-1 /
ROUGE / chrF formula). `max_score` travels with the score so tables can report both the raw
points and a 0-1 normalized score that is comparable across types.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..scoring import score_judgment, score_multi_select, score_single, score_subjective
from .items import EvalItem

MAX_SCORE = {"single_choice": 1.0, "judgment": 1.0, "multi_select": 2.0, "subjective": 1.0}


@dataclass(frozen=True)
class Graded:
    score: float
    max_score: float
    details: dict = field(default_factory=dict)


def grade(item: EvalItem, prediction: str) -> Graded:
    kind = item.kind
    if kind == "single_choice":
        return Graded(score_single(prediction, item.answer), MAX_SCORE[kind])
    if kind == "multi_select":
        return Graded(score_multi_select(prediction, item.answer), MAX_SCORE[kind])
    if kind == "judgment":
        score = score_judgment(prediction == "true", item.answer == "true") if prediction else 0.0
        return Graded(score, MAX_SCORE[kind])
    parts = score_subjective(prediction, item.answer)
    return Graded(parts.total, MAX_SCORE[kind], {"subjective": asdict(parts)})
