"""Greedy generation for a batch of prompts, and reading a prediction out of the generated text.

Subjective items are always generated; objective items only in `--mode generate`, where the
prompt asks for `答案是：X` / `The answer is X` (read by scoring.parse_choice) or a verdict first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..scoring import parse_choice
from .items import EvalItem

_VERDICT_WORDS = (
    r"不正确|不对|错误|正确|对(?![于称比应话])|错|\bnot correct\b|\bincorrect\b|\bfalse\b|\bwrong\b|\btrue\b"
    r"|\bcorrect\b"
)  # no bare `right`: "right ascension" is everywhere in astronomy; `对于` is not a verdict
_VERDICT = re.compile(_VERDICT_WORDS, re.IGNORECASE)
_STATED = re.compile(rf"(?:答案是|答案为|\banswer is)\s*[:：]?\s*({_VERDICT_WORDS})", re.IGNORECASE)
_OPENING = re.compile(r"^[^。！？!?\n]*")
_FALSE_WORDS = {"不正确", "不对", "错误", "错", "not correct", "incorrect", "false", "wrong"}
_NEXT_TURN = re.compile(r"\n+###")


def generate_batch(model, tokenizer, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
    """Greedy continuations of `prompts` (one left-padded batch), cut where the model starts a new
    template turn (`### ...`)."""
    import torch

    if not prompts:
        return []
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    encoded = [bos + ids for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    width = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded])
    attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded])
    device = next(model.parameters()).device
    with torch.inference_mode():
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
    texts = tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
    return [_NEXT_TURN.split(text, maxsplit=1)[0].strip() for text in texts]


def parse_verdict(text: str) -> str:
    """`true`, `false`, or "" when the text commits to neither.

    A stated answer (`答案是：错误`, `The answer is False`) wins; else the first verdict word of the
    opening sentence, where the prompt asks for the verdict."""
    stated = _STATED.search(text)
    match = stated.group(1) if stated else None
    if match is None:
        first = _VERDICT.search(_OPENING.match(text.strip()).group(0))  # type: ignore[union-attr]
        match = first.group(0) if first else None
    if match is None:
        return ""
    return "false" if match.lower() in _FALSE_WORDS else "true"


def prediction_from_text(item: EvalItem, text: str) -> str:
    """What a generated answer commits to: option letters, a verdict, or the text itself."""
    if item.kind == "subjective":
        return text
    if item.kind == "judgment":
        return parse_verdict(text)
    labels = {label for label, _ in item.options}
    return "".join(c for c in parse_choice(text) if c in labels)
