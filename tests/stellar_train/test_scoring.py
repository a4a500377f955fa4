"""Astro-QA's scoring rules, on hand-computed cases."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from stellar_train.scoring import (
    WEIGHTS,
    letters,
    parse_choice,
    score_judgment,
    score_multi_select,
    score_single,
    score_subjective,
)


@pytest.mark.parametrize(
    ("predicted", "answer", "points"),
    [
        ("BD", "BD", 2.0),  # exact: 2 points
        ("DB", "BD", 2.0),  # order does not matter
        ("B", "BD", 0.5),  # one correct letter, none wrong: 0.5 per letter
        ("ACD", "ABCD", 1.5),
        ("BC", "BD", 0.0),  # any wrong letter: 0
        ("ABD", "BD", 0.0),
        ("", "BD", 0.0),  # nothing chosen
    ],
)
def test_multi_select_as_astro_qa_scores_it(predicted: str, answer: str, points: float) -> None:
    assert score_multi_select(predicted, answer) == points


def test_single_choice_and_judgment() -> None:
    assert score_single("C", "C ") == 1.0  # Astro-QA 4-option 765 has the key "C "
    assert score_single("B", "C") == 0.0
    assert score_single("BC", "B") == 0.0  # two letters are not a single answer
    assert score_judgment(True, True) == 1.0 and score_judgment(False, True) == 0.0


@pytest.mark.parametrize(
    ("generated", "parsed"),
    [
        ("答案是：B", "B"),
        ("我认为答案是 A、C", "AC"),
        ("The answer is B and D", "BD"),  # never the A and D of "and"
        ("Answer: BD", "BD"),
        ("C. 木星", "C"),
        ("No idea.", ""),
    ],
)
def test_answers_are_parsed_from_generated_text(generated: str, parsed: str) -> None:
    assert parse_choice(generated) == parsed


def test_letters_are_whole_uppercase_runs() -> None:
    assert letters("B and D") == "BD" and letters("DB") == "BD" and letters("ABANDON") == ""


def test_subjective_terms_on_a_hand_computed_case() -> None:
    # Hypothesis a b c d against reference a b e f (equal lengths: no brevity penalty):
    # BLEU-1 = unigram precision 2/4; ROUGE-1 F = 2/4; ROUGE-2: 1 shared bigram (a b) of 3 -> F 1/3;
    # ROUGE-L: LCS "a b" -> F 2/4.
    score = score_subjective("a b c d", "a b e f")
    assert score.bleu1 == pytest.approx(0.5)
    assert score.rouge1 == pytest.approx(0.5)
    assert score.rouge2 == pytest.approx(1 / 3)
    assert score.rougeL == pytest.approx(0.5)
    expected = 0.3 * 0.5 + 0.1 * 0.5 + 0.15 / 3 + 0.1 * 0.5 + 0.35 * score.chrf
    assert score.total == pytest.approx(expected)
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_known_chrf_values_on_a_zero_to_one_scale() -> None:
    # sacrebleu's chrF (character 6-grams, beta 2) reports 0-100; the formula uses 0-1.
    assert score_subjective("the cat sat", "the cat sat on the mat").chrf == pytest.approx(0.49593484, abs=1e-6)
    assert score_subjective("a b c d", "a b e f").chrf == pytest.approx(0.20833333, abs=1e-6)
    identical = score_subjective("偏振光可以用于3D电影。", "偏振光可以用于3D电影。")
    assert identical.chrf == pytest.approx(1.0) and identical.total == pytest.approx(1.0)


def test_rouge_on_chinese_uses_jieba_words() -> None:
    prediction, reference = "偏振光可以用于电影。", "偏振光的典型应用是电影技术。"
    default = rouge_scorer.RougeScorer(["rouge1"]).score(reference, prediction)["rouge1"].fmeasure
    assert default == 0.0  # rouge-score's own tokenizer keeps ASCII words only: Chinese scores 0
    ours = score_subjective(prediction, reference)
    # jieba words: 偏振光 可以 用于 电影 / 偏振光 的 典型 应用 是 电影 技术: 2 shared, F = 2*2/(4+7)
    assert ours.rouge1 == pytest.approx(4 / 11)
    assert 0 < ours.total < 1
    assert score_subjective("完全不同的回答", reference).total < ours.total
