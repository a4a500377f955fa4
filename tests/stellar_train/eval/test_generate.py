"""Greedy generation in a left-padded batch gives what one prompt at a time gives; predictions are read out
of generated text as Astro-QA answers them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stellar_train.eval.generate import generate_batch, parse_verdict, prediction_from_text
from stellar_train.eval.items import EvalItem
from stellar_train.model import load_tokenizer

PROMPTS = ["What is a pulsar?", "太阳的能量来自哪里？请回答。", "Name the planets of the solar system, one by one:"]


def test_batched_generation_equals_one_prompt_at_a_time(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    tokenizer = load_tokenizer(str(tiny_model))
    batched = generate_batch(model, tokenizer, PROMPTS, max_new_tokens=10)
    assert all(batched)  # the random model does write something
    assert batched == [generate_batch(model, tokenizer, [p], max_new_tokens=10)[0] for p in PROMPTS]
    assert generate_batch(model, tokenizer, [], max_new_tokens=10) == []


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("正确。解析：……", "true"),
        ("这个说法不正确，因为……", "false"),
        ("错误。", "false"),
        ("判断结果：对", "true"),
        ("False. The Sun fuses hydrogen.", "false"),
        ("The statement is incorrect.", "false"),
        ("That is correct: true.", "true"),
        ("I cannot say.", ""),
        # the first verdict-looking word is not always the verdict
        ("对于这个说法，它是错误的。", "false"),
        ("The right ascension given is wrong.", "false"),
        ("The correct answer is False.", "false"),
        ("答案是：正确", "true"),
    ],
)
def test_parse_verdict(text: str, verdict: str) -> None:
    assert parse_verdict(text) == verdict


def test_prediction_from_text_per_type() -> None:
    options = (("A", "a"), ("B", "b"), ("C", "c"), ("D", "d"))
    single = EvalItem("s", "s", "single_choice_4", "", "zh", "q", options, "C")
    multi = EvalItem("m", "m", "multi_select", "", "en", "q", options, "BD")
    judgment = EvalItem("j", "j", "judgment", "", "zh", "q", (), "true")
    subjective = EvalItem("t", "t", "subjective", "", "zh", "q", (), "ref")
    assert prediction_from_text(single, "分析……\n答案是：C") == "C"
    assert prediction_from_text(multi, "The answer is B and D.") == "BD"
    assert prediction_from_text(single, "The answer is E") == ""  # not an option of this item
    assert prediction_from_text(judgment, "错误") == "false"
    assert prediction_from_text(subjective, "脉冲星是中子星。") == "脉冲星是中子星。"
