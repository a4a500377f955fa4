"""Objective items scored by log-likelihood: no generation, no answer parsing.

For each item, (prompt, continuation) requests; the model's log-probability of each continuation
given its prompt; a decision from those numbers.

- Single choice: prompt = the plain question in the run's template ending with `答案：` /
  `Answer: `; one continuation per option, `C. option text` (how the training outputs write the
  chosen option). The option with the highest score wins.
- Judgment: continuations `正确。` / `错误。` (`True.` / `False.`); the higher one wins.
- Multi-select: each option is put as a judgment of its own (question + that option) and chosen
  when its `true` verdict scores above its `false` verdict, so any subset (`BD`) can come out; when
  none is chosen, the option with the largest true-minus-false margin is (every item has at least
  one correct option).

Score = mean log-probability per continuation token (length-normalized): option texts differ in
length, and a plain sum would favour the shortest one. Tokenization as in training: prompt and
continuation are tokenized jointly after one BOS; the continuation's tokens are those after the
longest common prefix of the prompt's own tokens and the joint tokens (SentencePiece may merge a
piece across the boundary; that piece then counts as continuation, the same for every option
whose text starts alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..prompt import PromptTemplate
from . import formats
from .items import EvalItem


@dataclass(frozen=True)
class Continuation:
    logprob: float
    """Sum of the continuation tokens' log-probabilities."""
    tokens: int

    @property
    def mean(self) -> float:
        return self.logprob / self.tokens


def requests(item: EvalItem, template: PromptTemplate) -> list[tuple[str, str]]:
    """The (prompt, continuation) pairs whose likelihoods decide `item`."""
    if item.kind == "single_choice":
        prompt = formats.answer_prompt(item, template)
        return [(prompt, c) for c in formats.choice_continuations(item)]
    if item.kind == "judgment":
        prompt = formats.answer_prompt(item, template)
        return [(prompt, verdict) for verdict in formats.verdict_continuations(item)]
    if item.kind == "multi_select":
        true, false = formats.verdict_continuations(item)
        pairs = []
        for label, text in item.options:
            prompt = formats.option_judgment_prompt(item, label, text, template)
            pairs += [(prompt, true), (prompt, false)]
        return pairs
    raise ValueError(f"{item.id}: {item.type} items are scored by generation, not likelihood")


def decide(item: EvalItem, scores: Sequence[Continuation]) -> tuple[str, dict]:
    """The prediction (letters, or `true` / `false`) and the per-option numbers behind it."""
    means = [s.mean for s in scores]
    if item.kind == "single_choice":
        labels = [label for label, _ in item.options]
        best = max(range(len(labels)), key=lambda i: (means[i], -i))  # ties: the first option
        return labels[best], {"mean_logprob": dict(zip(labels, means, strict=True))}
    if item.kind == "judgment":
        return ("true" if means[0] > means[1] else "false"), {"mean_logprob": {"true": means[0], "false": means[1]}}
    labels = [label for label, _ in item.options]
    margins = {label: means[2 * i] - means[2 * i + 1] for i, label in enumerate(labels)}
    chosen = "".join(label for label in labels if margins[label] > 0)
    if not chosen:
        chosen = max(labels, key=lambda label: (margins[label], -labels.index(label)))
    return chosen, {"true_minus_false": margins}


def encode_pair(tokenizer, prompt_ids: list[int], full_ids: list[int]) -> tuple[list[int], int]:
    """(ids, start): BOS + the joint ids, and the index of the first continuation token."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    common = 0
    while common < min(len(prompt_ids), len(full_ids)) and prompt_ids[common] == full_ids[common]:
        common += 1
    if common == len(full_ids):
        raise ValueError("empty continuation (no token after the prompt)")
    return bos + full_ids, max(1, len(bos) + common)  # position 0 has no context to be predicted from


def continuation_logprobs(
    model, tokenizer, pairs: Sequence[tuple[str, str]], batch_size: int = 8
) -> list[Continuation]:
    """log p(continuation | prompt) for each pair, `batch_size` rows per forward pass (right-padded,
    longest first so rows of a batch have similar lengths)."""
    import torch

    if not pairs:
        return []
    prompt_ids = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    full_ids = tokenizer([p + c for p, c in pairs], add_special_tokens=False)["input_ids"]
    encoded = [encode_pair(tokenizer, p, f) for p, f in zip(prompt_ids, full_ids, strict=True)]
    order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i][0]), i))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    results: list[Continuation | None] = [None] * len(encoded)
    for begin in range(0, len(order), batch_size):
        chunk = order[begin : begin + batch_size]
        width = max(len(encoded[i][0]) for i in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, index in enumerate(chunk):
            ids = encoded[index][0]
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device), use_cache=False).logits
        for row, index in enumerate(chunk):
            ids, start = encoded[index]
            # logits at position t predict token t + 1
            step = torch.log_softmax(logits[row, start - 1 : len(ids) - 1].float(), dim=-1)
            targets = torch.tensor(ids[start:], device=step.device)
            token_logprobs = step.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            results[index] = Continuation(float(token_logprobs.sum()), len(ids) - start)
    if any(r is None for r in results):  # every pair gets a score: a gap would shift scores onto other items
        raise RuntimeError("a continuation was left unscored")
    return results  # type: ignore[return-value]
