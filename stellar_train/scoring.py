"""Astro-QA's scoring rules, for evaluating a model on the held-out benchmark items.

- Single choice and judgment: 1 point for the right answer.
- Multi-select, as Astro-QA scores it: 2 points for an exact match, 0.5 per correct letter when
  only correct letters were chosen, 0 as soon as any chosen letter is wrong.
- Subjective answers, with Astro-QA's formula, every term on a 0-1 scale:
  0.3 x BLEU-1 + 0.1 x ROUGE-1 + 0.15 x ROUGE-2 + 0.1 x ROUGE-L + 0.35 x chrF.
  BLEU-1 and the ROUGE scores are computed over jieba tokens (ROUGE's own tokenizer keeps only
  ASCII words and would score Chinese 0); chrF over characters. The metrics come from maintained
  libraries (sacrebleu for BLEU and chrF, rouge-score for ROUGE), which report 0-100 or 0-1.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache

import jieba
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

jieba.setLogLevel(logging.WARNING)

WEIGHTS = {"bleu1": 0.3, "rouge1": 0.1, "rouge2": 0.15, "rougeL": 0.1, "chrf": 0.35}
_LETTERS = re.compile(r"(?<![A-Za-z])[A-E]+(?![A-Za-z])")  # `BD`, `B`, never the A of "and"
_ANSWER = re.compile(
    r"(?:正确答案是|答案是|答案为|答案|answer is|answer)\s*[:：]?\s*([A-E](?:\s*(?:,|，|、|和|and)?\s*[A-E])*)",
    re.IGNORECASE,
)


def letters(text: str) -> str:
    """The option letters in an answer such as `BD`, `B, D` or `B和D`, sorted, once each."""
    return "".join(sorted(set("".join(_LETTERS.findall(text)))))


def parse_choice(generated: str) -> str:
    """The letters a generated answer commits to: after `答案是：` / `The answer is` when present,
    else a bare leading letter; "" when none can be found."""
    match = _ANSWER.search(generated)
    if match:
        return letters(match.group(1))
    lead = re.match(r"\s*\(?([A-E])\b", generated)
    return lead.group(1) if lead else ""


def score_single(predicted: str, answer: str) -> float:
    return 1.0 if letters(predicted) == letters(answer) and len(letters(answer)) == 1 else 0.0


def score_judgment(predicted: bool, answer: bool) -> float:
    return 1.0 if predicted == answer else 0.0


def score_multi_select(predicted: str, answer: str) -> float:
    """2 for the exact set, 0.5 per letter when every chosen letter is correct, else 0."""
    chosen, correct = set(letters(predicted)), set(letters(answer))
    if not chosen or chosen - correct:
        return 0.0
    return 2.0 if chosen == correct else 0.5 * len(chosen)


class _JiebaTokenizer:
    """rouge-score's tokenizer interface over jieba words (punctuation and spaces dropped)."""

    def tokenize(self, text: str) -> list[str]:
        return words(text)


def words(text: str) -> list[str]:
    return [w for w in jieba.lcut(text) if w.strip() and not re.fullmatch(r"[\W_]+", w)]


@cache
def _metrics() -> tuple[BLEU, CHRF, rouge_scorer.RougeScorer]:
    bleu1 = BLEU(max_ngram_order=1, tokenize="none", effective_order=True)
    rouge = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_JiebaTokenizer())
    return bleu1, CHRF(), rouge


@dataclass(frozen=True)
class SubjectiveScore:
    bleu1: float
    rouge1: float
    rouge2: float
    rougeL: float
    chrf: float

    @property
    def total(self) -> float:
        return sum(weight * getattr(self, name) for name, weight in WEIGHTS.items())


def score_subjective(prediction: str, reference: str) -> SubjectiveScore:
    bleu1, chrf, rouge = _metrics()
    hypothesis, ref = " ".join(words(prediction)), " ".join(words(reference))
    rouges = rouge.score(reference, prediction)
    return SubjectiveScore(
        bleu1=bleu1.sentence_score(hypothesis, [ref]).score / 100 if hypothesis and ref else 0.0,
        rouge1=rouges["rouge1"].fmeasure,
        rouge2=rouges["rouge2"].fmeasure,
        rougeL=rouges["rougeL"].fmeasure,
        chrf=chrf.sentence_score(prediction, [reference]).score / 100,
    )
