"""Tokenize one example for SFT: joint tokenization, exact prompt masking, EOS, one BOS, cutoff.

The prompt and the full text (prompt + response) are tokenized with the same call; the prompt's ids
must be a prefix of the full ids (SentencePiece can merge across the boundary; such an example is
dropped and counted rather than masked wrongly). Labels are the ids with the prompt masked by -100;
EOS is appended so the model learns to stop; exactly one BOS starts the sequence.

Cutoff policies, for an example longer than `cutoff_len` tokens:
- `truncate_prompt` (default): shorten the input text (down to nothing), then the instruction text
  (the template stays whole), each by the longest prefix with which the whole response fits; the
  instruction keeps at least `ceil(min_instruction_share * len(instruction))` characters (default
  share 0.5: at least half; 0: at least one character; 1: the instruction is never cut). If even
  that shortest prompt leaves no room for the whole response, cut the response, keeping at least
  one response token plus EOS; if it leaves no room for that, drop the example.
- `truncate_response`: keep the prompt, cut the response (at least one token plus EOS); else drop.
- `drop`: drop every example that does not fit.

`EncodeStats` counts outcomes, not attempts: a kept example counts `truncated_input`,
`truncated_instruction` and `truncated_response` once each for the parts it holds shorter than the
original; a dropped example counts only its `dropped_<reason>`, so total == kept + all drops.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from .prompt import PromptTemplate

IGNORE_INDEX = -100
CUTOFF_POLICIES = ("truncate_prompt", "truncate_response", "drop")


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class Outcome:
    """What encoding did to one example: the kept example, or None and the reason it was dropped.

    For a kept example, `instruction_kept` / `input_kept` are the characters of each text its prompt
    holds (prefixes of the originals) and `truncated` names the parts it holds shorter than the
    original, in the order input, instruction, response (`response`: response tokens were cut)."""

    example: Encoded | None
    dropped: str | None = None
    instruction_kept: int = 0
    input_kept: int = 0
    truncated: tuple[str, ...] = ()

    @property
    def actions(self) -> tuple[str, ...]:
        """The stats actions this outcome counts: its drop reason, or one per truncated part."""
        if self.example is None:
            return (f"dropped_{self.dropped}",)
        return tuple(f"truncated_{part}" for part in self.truncated)


@dataclass
class EncodeStats:
    """What tokenization did, as outcomes; saved with the training outputs."""

    total: int = 0
    kept: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    """truncated_input, truncated_instruction, truncated_response (kept examples), dropped_<reason>."""

    def add(self, outcome: Outcome) -> None:
        self.total += 1
        self.kept += outcome.example is not None
        self.actions.update(outcome.actions)

    def as_dict(self) -> dict[str, int]:
        """total, kept, then the actions sorted by name (total == kept + the dropped_* counts)."""
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


def min_instruction_chars(length: int, min_instruction_share: float) -> int:
    """The fewest characters `truncate_prompt` keeps of an instruction of `length` characters:
    ceil(share * length) (the share as written: 0.7 of 10 is 7), and at least one when non-empty."""
    if not 0 <= min_instruction_share <= 1:  # also refuses NaN
        raise ValueError(f"min_instruction_share must be between 0 and 1, got {min_instruction_share!r}")
    return min(length, max(1, math.ceil(Fraction(str(float(min_instruction_share))) * length)))


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
    min_instruction_share: float = 0.5,
    train_on_inputs: bool = False,
    stats: EncodeStats | None = None,
    pretokenized: tuple[list[int], list[int]] | None = None,
) -> Encoded | None:
    """One training example, or None when it is dropped (the outcome is counted in `stats`).

    `pretokenized`: the ids of the prompt and of prompt + output when already known (batched
    tokenization); the texts are re-tokenized only to shorten an over-long prompt.
    """
    outcome = encode_outcome(
        tokenize, ids, template, instruction, input, output, cutoff_len=cutoff_len, policy=policy,
        min_instruction_share=min_instruction_share, train_on_inputs=train_on_inputs, pretokenized=pretokenized,
    )  # fmt: skip
    if stats is not None:
        stats.add(outcome)
    return outcome.example


def encode_outcome(
    tokenize: Tokenize,
    ids: SpecialIds,
    template: PromptTemplate,
    instruction: str,
    input: str,
    output: str,
    *,
    cutoff_len: int,
    policy: str = "truncate_prompt",
    min_instruction_share: float = 0.5,
    train_on_inputs: bool = False,
    pretokenized: tuple[list[int], list[int]] | None = None,
) -> Outcome:
    """As `encode`, returning the whole outcome: the example (or the drop reason) and what it kept."""
    if policy not in CUTOFF_POLICIES:
        raise ValueError(f"cutoff policy {policy!r} is not one of {', '.join(CUTOFF_POLICIES)}")
    floor = min_instruction_chars(len(instruction), min_instruction_share)
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
        return Outcome(None, "prompt_not_prefix")
    prompt_ids, response_ids = parts
    instruction_kept, input_kept, response_cut = len(instruction), len(input), False
    if len(prompt_ids) + len(response_ids) > cutoff_len:
        if policy == "drop":
            return Outcome(None, "too_long")
        if policy == "truncate_prompt":
            fitted = _fit_prompt(joint, instruction, input, floor, len(response_ids), cutoff_len)
            if fitted is None:
                return Outcome(None, "prompt_not_prefix")
            (prompt_ids, response_ids), instruction_kept, input_kept = fitted
        room = cutoff_len - len(prompt_ids)
        if len(prompt_ids) + len(response_ids) > cutoff_len:
            if room < 2:  # not even one response token plus EOS
                return Outcome(None, "prompt_too_long")
            response_ids, response_cut = [*response_ids[: room - 1], ids.eos], True
    labels = list(prompt_ids) if train_on_inputs else [IGNORE_INDEX] * len(prompt_ids)
    if head:
        labels[0] = IGNORE_INDEX  # BOS is never predicted (nor, when packed, by the previous example)
    cuts = (("input", input_kept < len(input)), ("instruction", instruction_kept < len(instruction)),
            ("response", response_cut))  # fmt: skip
    truncated = tuple(part for part, cut in cuts if cut)
    example = Encoded(prompt_ids + response_ids, labels + response_ids)
    return Outcome(example, None, instruction_kept, input_kept, truncated)


def _fit_prompt(
    joint: Callable[[str, str], Parts | None],
    instruction: str,
    input: str,
    floor: int,
    response_len: int,
    cutoff_len: int,
) -> tuple[Parts, int, int] | None:
    """Shorten the input (down to nothing), then the instruction (down to `floor` characters), each by
    the longest prefix with which the whole response fits. Returns the parts with the instruction and
    input characters kept: the shortest allowed prompt when nothing fits (the caller then cuts the
    response or drops), or None when that prompt is not a token prefix of its full text."""

    def fits(parts: Parts | None) -> bool:
        return parts is not None and len(parts[0]) + response_len <= cutoff_len

    if input:
        found = _longest_fitting(lambda keep: joint(instruction, input[:keep]), 0, len(input) - 1, fits)
        if found is not None:
            return found[1], len(instruction), found[0]
    found = _longest_fitting(lambda keep: joint(instruction[:keep], ""), floor, len(instruction) - 1, fits)
    if found is not None:
        return found[1], found[0], 0
    parts = joint(instruction[:floor], "")
    return (parts, floor, 0) if parts is not None else None


def _longest_fitting(
    make: Callable[[int], Parts | None], low: int, high: int, fits: Callable[[Parts | None], bool]
) -> tuple[int, Parts] | None:
    """The largest `keep` in [low, high] whose parts fit, with those parts (binary search; longer never
    fits better), or None."""
    best = None
    while low <= high:
        middle = (low + high) // 2
        parts = make(middle)
        if fits(parts):
            best, low = (middle, parts), middle + 1
        else:
            high = middle - 1
    return best
