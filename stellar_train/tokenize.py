"""Tokenize one example for SFT: joint tokenization, exact prompt masking, EOS, one BOS, cutoff.

The prompt and the full text (prompt + response) are tokenized with the same call; the prompt's ids
must be a prefix of the full ids (SentencePiece can merge across the boundary; such an example is
dropped and counted rather than masked wrongly). Labels are the ids with the prompt masked by -100;
EOS is appended so the model learns to stop; exactly one BOS starts the sequence.

Cutoff policies, for an example longer than `cutoff_len` tokens:
- `truncate_prompt` (default): shorten the input text, then the instruction text (the template stays
  whole), until it fits; if even the shortest prompt leaves no room, cut the response, keeping at
  least one response token plus EOS; else drop.
- `truncate_response`: keep the prompt, cut the response (at least one token plus EOS); else drop.
- `drop`: drop every example that does not fit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .prompt import PromptTemplate

IGNORE_INDEX = -100
CUTOFF_POLICIES = ("truncate_prompt", "truncate_response", "drop")


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class EncodeStats:
    """What tokenization did; saved with the training outputs."""

    total: int = 0
    kept: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    """truncated_input, truncated_instruction, truncated_response, dropped_<reason>."""

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "kept": self.kept, **dict(sorted(self.actions.items()))}


@dataclass(frozen=True)
class SpecialIds:
    bos: int | None
    eos: int
    pad: int


Parts = tuple[list[int], list[int]]
"""(prompt ids with BOS, response ids with EOS)."""

Tokenize = Callable[[str], list[int]]
"""Text -> ids without special tokens (e.g. `lambda t: tok(t, add_special_tokens=False)["input_ids"]`)."""


def encode(
    tokenize: Tokenize,
    ids: SpecialIds,
    template: PromptTemplate,
    instruction: str,
    input: str,
    output: str,
    *,
    cutoff_len: int,
    policy: str = "truncate_prompt",
    train_on_inputs: bool = False,
    stats: EncodeStats | None = None,
    pretokenized: tuple[list[int], list[int]] | None = None,
) -> Encoded | None:
    """One training example, or None when it is dropped (the reason is counted in `stats`).

    `pretokenized`: the ids of the prompt and of prompt + output when already known (batched
    tokenization); the texts are re-tokenized only to shorten an over-long prompt.
    """
    if policy not in CUTOFF_POLICIES:
        raise ValueError(f"cutoff policy {policy!r} is not one of {', '.join(CUTOFF_POLICIES)}")
    stats = stats if stats is not None else EncodeStats()
    stats.total += 1
    head = [ids.bos] if ids.bos is not None else []

    def split(prompt_ids: list[int], full_ids: list[int]) -> Parts | None:
        if full_ids[: len(prompt_ids)] != prompt_ids:
            return None
        return head + prompt_ids, [*full_ids[len(prompt_ids) :], ids.eos]

    def joint(instruction_text: str, input_text: str) -> Parts | None:
        prompt = template.prompt(instruction_text, input_text)
        return split(tokenize(prompt), tokenize(prompt + output))

    parts = split(*pretokenized) if pretokenized is not None else joint(instruction, input)
    if parts is None:
        stats.actions["dropped_prompt_not_prefix"] += 1
        return None
    prompt_ids, response_ids = parts
    if len(prompt_ids) + len(response_ids) > cutoff_len:
        if policy == "drop":
            stats.actions["dropped_too_long"] += 1
            return None
        if policy == "truncate_prompt":
            parts = _fit_prompt(joint, instruction, input, len(response_ids), cutoff_len, stats)
            if parts is None:
                stats.actions["dropped_prompt_not_prefix"] += 1
                return None
            prompt_ids, response_ids = parts
        room = cutoff_len - len(prompt_ids)
        if len(prompt_ids) + len(response_ids) > cutoff_len:
            if room < 2:  # not even one response token plus EOS
                stats.actions["dropped_prompt_too_long"] += 1
                return None
            response_ids = [*response_ids[: room - 1], ids.eos]
            stats.actions["truncated_response"] += 1
    labels = list(prompt_ids) if train_on_inputs else [IGNORE_INDEX] * len(prompt_ids)
    if head:
        labels[0] = IGNORE_INDEX  # BOS is never predicted (nor, when packed, by the previous example)
    stats.kept += 1
    return Encoded(prompt_ids + response_ids, labels + response_ids)


def _fit_prompt(
    joint: Callable[[str, str], Parts | None],
    instruction: str,
    input: str,
    response_len: int,
    cutoff_len: int,
    stats: EncodeStats,
) -> Parts | None:
    """Shorten the input (down to nothing), then the instruction (down to one character), each by the
    longest prefix that fits; returns the shortest prompt when nothing fits (the caller then cuts the
    response or drops), or None when a prompt is not a token prefix of its full text."""

    def fits(parts: Parts | None) -> bool:
        return parts is not None and len(parts[0]) + response_len <= cutoff_len

    if input:
        stats.actions["truncated_input"] += 1
        parts = _longest_fitting(lambda keep: joint(instruction, input[:keep]), 0, len(input) - 1, fits)
        if parts is not None:
            return parts
        input = ""
    if len(instruction) > 1:
        stats.actions["truncated_instruction"] += 1
        parts = _longest_fitting(lambda keep: joint(instruction[:keep], input), 1, len(instruction) - 1, fits)
        if parts is not None:
            return parts
    return joint(instruction[:1], input)


def _longest_fitting(
    make: Callable[[int], Parts | None], low: int, high: int, fits: Callable[[Parts | None], bool]
) -> Parts | None:
    """The parts for the largest `keep` in [low, high] that fit (binary search; longer never fits better)."""
    best = None
    while low <= high:
        middle = (low + high) // 2
        parts = make(middle)
        if fits(parts):
            best, low = parts, middle + 1
        else:
            high = middle - 1
    return best
