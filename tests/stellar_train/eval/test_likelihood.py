"""Option log-likelihoods on the tiny LLaMA: equal to the per-token log-probs summed by hand from the logits,
the same in any batch size, and a model trained to know one answer picks it (single choice and a
multi-select subset)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from stellar_train.eval.items import EvalItem
from stellar_train.eval.likelihood import Continuation, continuation_logprobs, decide, encode_pair, requests
from stellar_train.model import load_tokenizer
from stellar_train.prompt import PromptTemplate

TEMPLATE = PromptTemplate.load("stellarspeak")
SINGLE = EvalItem(id="s", group="s", type="single_choice_4", subfield="天体物理学", lang="en",
                  question="What is a pulsar?", answer="C",
                  options=(("A", "A comet."), ("B", "A planet of the solar system."), ("C", "A rotating neutron star."),
                           ("D", "Mars.")))  # fmt: skip
MULTI = EvalItem(id="m", group="m", type="multi_select", subfield="天体物理学", lang="zh", question="哪些是脉冲星的性质？",
                 answer="BD", options=(("A", "核聚变"), ("B", "快速自转"), ("C", "长周期变星"), ("D", "中子星")))  # fmt: skip
JUDGMENT = EvalItem(id="j", group="j", type="judgment", subfield="", lang="zh", question="太阳的能量来自核心的氢核聚变。",
                    options=(), answer="true")  # fmt: skip


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model: Path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    return model, load_tokenizer(str(tiny_model))


def test_log_likelihood_is_the_sum_of_the_continuation_token_log_probs(model_and_tokenizer) -> None:
    """The continuation's tokens are the joint tokens after the prompt's own: the English prompt ends with
    `Answer: `, whose trailing space SentencePiece may merge into the next piece (`▁A`), so there the
    split is one token earlier; the Chinese `答案：` and the judgment prompt end on a token boundary."""
    model, tokenizer = model_and_tokenizer
    zh_single = EvalItem(**{**SINGLE.__dict__, "lang": "zh"})
    pairs = requests(SINGLE, TEMPLATE) + requests(zh_single, TEMPLATE) + requests(JUDGMENT, TEMPLATE)
    got = continuation_logprobs(model, tokenizer, pairs, batch_size=1)
    merged = 0
    for (prompt, continuation), result in zip(pairs, got, strict=True):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = [tokenizer.bos_token_id, *tokenizer(prompt + continuation, add_special_tokens=False)["input_ids"]]
        start = 1 + len(prompt_ids)
        if ids[1:start] != prompt_ids:
            assert ids[1 : start - 1] == prompt_ids[:-1] and prompt.endswith(" ")
            start -= 1
            merged += 1
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], dim=-1)
        expected = sum(logprobs[t - 1, ids[t]].item() for t in range(start, len(ids)))
        assert result.tokens == len(ids) - start > 0
        assert result.logprob == pytest.approx(expected, abs=1e-4)
        assert result.mean == pytest.approx(expected / result.tokens, abs=1e-5)
    assert merged >= 1  # the case is exercised (this tokenizer has `▁A`-like pieces for some letters)


def test_batched_equals_unbatched(model_and_tokenizer) -> None:
    model, tokenizer = model_and_tokenizer
    pairs = requests(SINGLE, TEMPLATE) + requests(MULTI, TEMPLATE) + requests(JUDGMENT, TEMPLATE)
    one = continuation_logprobs(model, tokenizer, pairs, batch_size=1)
    for batch_size in (3, 16):
        many = continuation_logprobs(model, tokenizer, pairs, batch_size=batch_size)
        assert [m.tokens for m in many] == [o.tokens for o in one]
        torch.testing.assert_close(
            torch.tensor([m.logprob for m in many]), torch.tensor([o.logprob for o in one]), atol=1e-4, rtol=0
        )


def test_continuation_starts_after_the_longest_common_prefix() -> None:
    tokenizer = SimpleNamespace(bos_token_id=1)
    assert encode_pair(tokenizer, [5, 6, 7], [5, 6, 7, 8]) == ([1, 5, 6, 7, 8], 4)
    # the last prompt piece merged with the continuation: the merged piece belongs to the continuation
    assert encode_pair(tokenizer, [5, 6, 7], [5, 6, 9, 10]) == ([1, 5, 6, 9, 10], 3)
    assert encode_pair(SimpleNamespace(bos_token_id=None), [], [4, 5]) == ([4, 5], 1)
    with pytest.raises(ValueError, match="empty continuation"):
        encode_pair(tokenizer, [5, 6], [5, 6])


def scores(*means: float) -> list[Continuation]:
    return [Continuation(m * 2, 2) for m in means]


def test_decisions() -> None:
    assert decide(SINGLE, scores(-3, -1, -2, -1))[0] == "B"  # a tie goes to the first option
    prediction, details = decide(JUDGMENT, scores(-1.5, -1.0))
    assert prediction == "false" and details == {"mean_logprob": {"true": -1.5, "false": -1.0}}
    # multi-select: (true, false) per option; chosen where true > false
    assert decide(MULTI, scores(-2, -1, -1, -2, -3, -1, -0.5, -0.7))[0] == "BD"
    # none above its false verdict: the option with the largest margin
    prediction, details = decide(MULTI, scores(-2, -1, -1.2, -1, -3, -1, -5, -1))
    assert prediction == "B"
    assert details["true_minus_false"] == {"A": -1.0, "B": pytest.approx(-0.2), "C": -2.0, "D": -4.0}


def test_requests_per_type() -> None:
    assert [c for _, c in requests(SINGLE, TEMPLATE)] == [
        "A. A comet.", "B. A planet of the solar system.", "C. A rotating neutron star.", "D. Mars.",
    ]  # fmt: skip
    assert requests(SINGLE, TEMPLATE)[0][0].endswith("### Response:\nAnswer: ")
    multi = requests(MULTI, TEMPLATE)
    assert [c for _, c in multi] == ["正确。", "错误。"] * 4
    assert "哪些是脉冲星的性质？\nB. 快速自转" in multi[2][0] and multi[2][0] == multi[3][0]
    with pytest.raises(ValueError, match="scored by generation"):
        requests(EvalItem("x", "x", "subjective", "", "en", "q", (), "ref"), TEMPLATE)


SHORT = PromptTemplate("short", "", "{instruction}\n{input}\n", "{instruction}\n", "")
PULSARS = EvalItem(id="p", group="p", type="multi_select", subfield="", lang="en", question="Which are pulsars?",
                   answer="BD", options=(("A", "Mars"), ("B", "A rotating neutron star"), ("C", "Jupiter and Saturn"),
                                         ("D", "The answer is 42")))  # fmt: skip


def test_a_model_trained_on_the_answers_picks_them(tiny_model: Path) -> None:
    """Trains the whole tiny model (a short template, one padded batch, 60 Adam steps: seconds on CPU) on
    the right continuations only; the untrained model must pick differently, else the test proves nothing."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()

    def predictions() -> tuple[str, str]:
        return tuple(
            decide(it, continuation_logprobs(model, tokenizer, requests(it, SHORT)))[0] for it in (SINGLE, PULSARS)
        )

    assert predictions() != ("C", "BD")
    verdicts = requests(PULSARS, SHORT)
    targets = [requests(SINGLE, SHORT)[2]] + [verdicts[2 * i + (label not in "BD")] for i, label in enumerate("ABCD")]
    ids, attention, labels = training_batch(tokenizer, targets)
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        optimizer.zero_grad()
        model(input_ids=ids, attention_mask=attention, labels=labels).loss.backward()
        optimizer.step()
    model.eval()
    assert predictions() == ("C", "BD")


def training_batch(tokenizer, pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (BOS + prompt + continuation) rows, labels only on the continuation tokens."""
    rows = []
    for prompt, continuation in pairs:
        prompt_len = 1 + len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        rows.append(
            (
                [tokenizer.bos_token_id, *tokenizer(prompt + continuation, add_special_tokens=False)["input_ids"]],
                prompt_len,
            )
        )
    width = max(len(row) for row, _ in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention, labels = torch.zeros_like(ids), torch.full_like(ids, -100)
    for r, (row, prompt_len) in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row)
        attention[r, : len(row)] = 1
        labels[r, prompt_len - 1 : len(row)] = torch.tensor(row[prompt_len - 1 :])  # one early: a merged boundary piece
    return ids, attention, labels
