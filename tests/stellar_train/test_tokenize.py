"""tokenize.encode: joint tokenization, exact prompt masking, one BOS, EOS, and the cutoff policies.

Label tests use the real tiny LLaMA SentencePiece tokenizer; the cutoff policies use a character
tokenizer (one id per character) so every expected length and id is computable by hand.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from stellar_train.data import encode_records
from stellar_train.model import batch_text_tokenizer, load_tokenizer, special_ids, text_tokenizer
from stellar_train.prompt import PromptTemplate
from stellar_train.tokenize import (
    CUTOFF_POLICIES,
    IGNORE_INDEX,
    EncodeStats,
    SpecialIds,
    encode,
    encode_outcome,
    min_instruction_chars,
)

from .conftest import TRIPLES

BOS, EOS, PAD = 1, 2, 0
M = IGNORE_INDEX
CHAR_IDS = SpecialIds(bos=BOS, eos=EOS, pad=PAD)
# Fixed text: "Q:" + "|" + "\nA:" = 6 characters with an input, "Q:" + "\nA:" = 5 without.
SHORT = PromptTemplate("short", "Test template.", "Q:{instruction}|{input}\nA:", "Q:{instruction}\nA:", "A:")


def chars(text: str) -> list[int]:
    return [ord(c) for c in text]


def masked(n: int) -> list[int]:
    return [IGNORE_INDEX] * n


def dropped(stats: EncodeStats) -> int:
    return sum(n for action, n in stats.actions.items() if action.startswith("dropped_"))


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return load_tokenizer(str(tiny_model))


@pytest.fixture(scope="module")
def tok(tokenizer):
    return text_tokenizer(tokenizer)


@pytest.fixture(scope="module")
def ids(tokenizer) -> SpecialIds:
    return special_ids(tokenizer)


@pytest.fixture(scope="module")
def stellar() -> PromptTemplate:
    return PromptTemplate.load("stellarspeak")


# --- the real tokenizer ------------------------------------------------------------------------------


def test_special_ids_are_llama_style_and_pad_differs_from_eos(tokenizer, ids):
    assert ids == SpecialIds(bos=1, eos=2, pad=0)
    assert ids.pad != ids.eos
    assert tokenizer.padding_side == "right"


def test_text_tokenizer_adds_no_special_tokens(tok):
    pieces = tok("A rotating neutron star.")
    assert pieces and BOS not in pieces and EOS not in pieces


@pytest.mark.parametrize("triple", TRIPLES, ids=lambda t: t["instruction"])
def test_labels_mask_exactly_the_prompt(tok, ids, stellar, triple):
    instruction, input_, output = triple["instruction"], triple["input"], triple["output"]
    prompt = stellar.prompt(instruction, input_)
    prompt_ids, full_ids = tok(prompt), tok(prompt + output)
    assert full_ids[: len(prompt_ids)] == prompt_ids  # the prompt is a token prefix of the joint text
    response_ids = full_ids[len(prompt_ids) :]
    assert response_ids  # every response produces tokens

    example = encode(tok, ids, stellar, instruction, input_, output, cutoff_len=512)

    assert example is not None
    assert example.input_ids == [BOS, *prompt_ids, *response_ids, EOS]
    assert example.labels == masked(1 + len(prompt_ids)) + response_ids + [EOS]
    assert len(example) == len(example.input_ids) == len(example.labels)


@pytest.mark.parametrize("triple", TRIPLES, ids=lambda t: t["instruction"])
def test_exactly_one_bos_first_and_eos_last(tok, ids, stellar, triple):
    example = encode(tok, ids, stellar, triple["instruction"], triple["input"], triple["output"], cutoff_len=512)
    assert example is not None
    assert example.input_ids[0] == BOS
    assert example.input_ids.count(BOS) == 1
    assert example.input_ids[-1] == EOS and example.labels[-1] == EOS
    assert example.input_ids.count(EOS) == 1
    assert PAD not in example.input_ids


def test_response_ids_come_from_the_joint_tokenization_not_the_response_alone(tok, ids, stellar):
    output = "A rotating neutron star."
    prompt = stellar.prompt("What is a pulsar?")
    joint_response = tok(prompt + output)[len(tok(prompt)) :]
    alone = tok(output)
    # SentencePiece prefixes a lone text with "▁": tokenized alone the response gains a leading piece.
    assert alone != joint_response
    assert alone[1:] == joint_response

    example = encode(tok, ids, stellar, "What is a pulsar?", "", output, cutoff_len=512)
    assert example is not None
    assert example.labels[-len(joint_response) - 1 :] == [*joint_response, EOS]
    assert [label for label in example.labels if label != IGNORE_INDEX] == [*joint_response, EOS]


def test_train_on_inputs_labels_every_token_but_bos(tok, ids, stellar):
    example = encode(tok, ids, stellar, "Name a planet.", "solar system", "Mars.", cutoff_len=512, train_on_inputs=True)
    assert example is not None
    assert example.labels[0] == IGNORE_INDEX
    assert example.labels[1:] == example.input_ids[1:]


def test_same_ids_with_and_without_train_on_inputs(tok, ids, stellar):
    masked_example = encode(tok, ids, stellar, "Name a planet.", "solar system", "Mars.", cutoff_len=512)
    full_example = encode(
        tok, ids, stellar, "Name a planet.", "solar system", "Mars.", cutoff_len=512, train_on_inputs=True
    )
    assert masked_example is not None and full_example is not None
    assert masked_example.input_ids == full_example.input_ids


def test_stats_count_a_fitting_example_as_kept_with_no_action(tok, ids, stellar):
    stats = EncodeStats()
    encode(tok, ids, stellar, "What is a pulsar?", "", "A rotating neutron star.", cutoff_len=512, stats=stats)
    assert stats.as_dict() == {"total": 1, "kept": 1}


LONG_TRIPLES = [
    *TRIPLES,
    {"instruction": "Name the planets of the solar system: " * 3, "input": "", "output": "Mercury, Venus."},
    {"instruction": "Name a planet.", "input": "solar system " * 20, "output": "Mars."},
    {"instruction": "Why do stars twinkle?", "input": "", "output": "Turbulence in the atmosphere. " * 10},
]


@pytest.mark.parametrize("policy", CUTOFF_POLICIES)
@pytest.mark.parametrize("cutoff_len", [60, 100, 118, 122, 130, 160, 512])
def test_kept_and_dropped_examples_under_every_policy(tok, ids, stellar, policy, cutoff_len):
    stats = EncodeStats()
    kept = 0
    for triple in LONG_TRIPLES:
        instruction, input_, output = triple["instruction"], triple["input"], triple["output"]
        whole = encode(tok, ids, stellar, instruction, input_, output, cutoff_len=10_000)
        assert whole is not None
        example = encode(
            tok, ids, stellar, instruction, input_, output, cutoff_len=cutoff_len, policy=policy, stats=stats
        )
        # Which examples must survive: the shortest allowed prompt plus one response token plus EOS fits.
        if policy == "drop":
            shortest_prompt = len(whole)
        elif policy == "truncate_response":
            shortest_prompt = 1 + len(tok(stellar.prompt(instruction, input_))) + 2
        else:  # at least half the instruction (the default min_instruction_share), no input
            shortest_prompt = 1 + len(tok(stellar.prompt(instruction[: math.ceil(len(instruction) / 2)]))) + 2
        assert (example is not None) == (shortest_prompt <= cutoff_len), triple
        if example is None:
            continue
        kept += 1
        assert len(example) <= cutoff_len
        assert len(example.input_ids) == len(example.labels)
        assert any(label != IGNORE_INDEX for label in example.labels)
        assert example.input_ids[0] == BOS and example.input_ids.count(BOS) == 1
        assert example.input_ids[-1] == EOS and example.labels[-1] == EOS
        if len(whole) <= cutoff_len:
            assert example == whole  # nothing to cut: every policy keeps the example as is
        elif policy == "truncate_response":
            prompt_len = whole.labels.count(IGNORE_INDEX)
            assert example.input_ids[:prompt_len] == whole.input_ids[:prompt_len]
            assert example.input_ids[:-1] == whole.input_ids[: len(example) - 1]
            assert len(example) == cutoff_len
    assert stats.total == len(LONG_TRIPLES)
    assert stats.kept == kept
    assert stats.total == stats.kept + dropped(stats)
    if cutoff_len == 512:
        assert stats.as_dict() == {"total": len(LONG_TRIPLES), "kept": len(LONG_TRIPLES)}


def test_truncate_prompt_on_the_real_tokenizer_keeps_the_template_and_the_response(tok, ids, stellar):
    instruction, input_, output = "Name a planet.", "solar system " * 20, "Mars."
    short_prompt = stellar.prompt(instruction, "solar system")
    cutoff = 1 + len(tok(short_prompt + output)) + 1 + 4  # room for the short input and a few more tokens
    stats = EncodeStats()
    example = encode(tok, ids, stellar, instruction, input_, output, cutoff_len=cutoff, stats=stats)
    assert example is not None
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_input": 1}
    assert len(example) <= cutoff
    # The prompt is the template around the whole instruction and some prefix of the input.
    prompt_ids = example.input_ids[1 : example.labels.count(IGNORE_INDEX)]
    keeps = [k for k in range(len(input_)) if tok(stellar.prompt(instruction, input_[:k])) == prompt_ids]
    assert keeps, "the prompt is not the template with a shortened input"
    assert max(keeps) >= len("solar system")
    # The full response survives, from the joint tokenization of the kept prompt.
    kept_prompt = stellar.prompt(instruction, input_[: max(keeps)])
    response_ids = tok(kept_prompt + output)[len(prompt_ids) :]
    assert example.labels == masked(1 + len(prompt_ids)) + response_ids + [EOS]


# --- cutoff policies, exact, with a character tokenizer ------------------------------------------------


def encode_chars(instruction, input_, output, *, cutoff_len, policy="truncate_prompt", **kwargs):
    stats = EncodeStats()
    example = encode(
        chars, CHAR_IDS, SHORT, instruction, input_, output, cutoff_len=cutoff_len, policy=policy, stats=stats, **kwargs
    )
    return example, stats


@pytest.mark.parametrize("policy", CUTOFF_POLICIES)
def test_an_example_of_exactly_cutoff_len_is_kept_whole(policy):
    # 1 BOS + "Q:abc\nA:" (8) + "xyz" (3) + EOS = 13
    example, stats = encode_chars("abc", "", "xyz", cutoff_len=13, policy=policy)
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:abc\nA:xyz"), EOS]
    assert example.labels == masked(9) + chars("xyz") + [EOS]
    assert stats.as_dict() == {"total": 1, "kept": 1}


def test_truncate_prompt_shortens_the_input_first():
    # Whole: 1 + "Q:abcd|0123456789\nA:" (20) + "xyz" (3) + 1 = 25; a cutoff of 20 leaves 5 input characters.
    example, stats = encode_chars("abcd", "0123456789", "xyz", cutoff_len=20)
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:abcd|01234\nA:xyz"), EOS]
    assert example.labels == masked(16) + chars("xyz") + [EOS]
    assert len(example) == 20
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_input": 1}


def test_truncate_prompt_drops_the_input_entirely_when_that_is_enough():
    # Without input: 1 + "Q:abcd\nA:" (9) + "xyz" + EOS = 14; with one input character: 16.
    example, stats = encode_chars("abcd", "0123456789", "xyz", cutoff_len=15)
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:abcd\nA:xyz"), EOS]  # prompt_no_input once the input is gone
    assert example.labels == masked(10) + chars("xyz") + [EOS]
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_input": 1}


def test_truncate_prompt_then_shortens_the_instruction():
    # Without input: 1 + "Q:abcdefghij\nA:" (15) + "xyz" + EOS = 20; a cutoff of 15 leaves 5 instruction characters.
    example, stats = encode_chars("abcdefghij", "0123", "xyz", cutoff_len=15)
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:abcde\nA:xyz"), EOS]
    assert example.labels == masked(11) + chars("xyz") + [EOS]
    assert len(example) == 15
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_input": 1, "truncated_instruction": 1}


def test_truncate_prompt_without_input_shortens_only_the_instruction():
    example, stats = encode_chars("abcdefghij", "", "xyz", cutoff_len=16)
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:abcdef\nA:xyz"), EOS]
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_instruction": 1}


def test_truncate_prompt_cuts_the_response_when_the_prompt_cannot_shrink_enough():
    # Shortest prompt: 1 + "Q:ab\nA:" (7, half the instruction) = 8; cutoff 11 leaves 3: two response
    # characters plus EOS.
    example, stats = encode_chars("abcd", "", "0123456789", cutoff_len=11)
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:ab\nA:01"), EOS]
    assert example.labels == masked(8) + chars("01") + [EOS]
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_instruction": 1, "truncated_response": 1}


def test_truncate_prompt_keeps_one_response_token_plus_eos_at_the_limit():
    example, stats = encode_chars("abcd", "", "0123456789", cutoff_len=10)
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:ab\nA:0"), EOS]
    assert example.labels == [*masked(8), ord("0"), EOS]
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_instruction": 1, "truncated_response": 1}


def test_truncate_prompt_drops_when_not_even_one_response_token_fits():
    example, stats = encode_chars("abc", "012", "0123456789", cutoff_len=8)
    assert example is None
    assert stats.total == 1 and stats.kept == 0
    assert stats.actions["dropped_prompt_too_long"] == 1
    assert stats.total == stats.kept + dropped(stats)


def test_truncate_response_keeps_the_prompt_whole():
    # Prompt: 1 + "Q:abc\nA:" (8) = 9; cutoff 12 leaves 3: two response characters plus EOS.
    example, stats = encode_chars("abc", "", "0123456789", cutoff_len=12, policy="truncate_response")
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:abc\nA:01"), EOS]
    assert example.labels == masked(9) + chars("01") + [EOS]
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_response": 1}


def test_truncate_response_with_input_keeps_the_input():
    example, stats = encode_chars("ab", "cd", "0123456789", cutoff_len=13, policy="truncate_response")
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:ab|cd\nA:0"), EOS]
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_response": 1}


def test_truncate_response_drops_when_the_prompt_leaves_no_room():
    example, stats = encode_chars("abc", "", "0123456789", cutoff_len=10, policy="truncate_response")
    assert example is None
    assert stats.as_dict() == {"total": 1, "kept": 0, "dropped_prompt_too_long": 1}


def test_drop_policy_drops_anything_longer_than_cutoff():
    example, stats = encode_chars("abc", "", "xyz", cutoff_len=12, policy="drop")  # 13 tokens
    assert example is None
    assert stats.as_dict() == {"total": 1, "kept": 0, "dropped_too_long": 1}


def test_stats_accumulate_over_examples():
    stats = EncodeStats()
    cases = [("abc", "", "xyz"), ("abc", "", "0123456789"), ("abcdefghij", "0123", "xyz"), ("ab", "", "x")]
    results = [encode(chars, CHAR_IDS, SHORT, i, x, o, cutoff_len=13, policy="drop", stats=stats) for i, x, o in cases]
    assert [r is not None for r in results] == [True, False, False, True]
    assert stats.as_dict() == {"total": 4, "kept": 2, "dropped_too_long": 2}
    assert stats.total == stats.kept + dropped(stats)


def test_train_on_inputs_with_truncation():
    example, _ = encode_chars("abcd", "0123456789", "xyz", cutoff_len=20, train_on_inputs=True)
    assert example is not None
    assert example.labels == [IGNORE_INDEX, *chars("Q:abcd|01234\nA:xyz"), EOS]


def test_no_bos_when_the_tokenizer_has_none():
    example = encode(chars, SpecialIds(bos=None, eos=EOS, pad=PAD), SHORT, "ab", "", "xy", cutoff_len=64)
    assert example is not None
    assert example.input_ids == [*chars("Q:ab\nA:xy"), EOS]
    assert example.labels == masked(7) + chars("xy") + [EOS]


def pairs_tokenizer():
    """Two characters per token: the prompt's last token merges with the response's first character
    whenever the prompt has an odd length, so the prompt is not a token prefix of the joint text."""
    vocab: dict[str, int] = {}
    return lambda text: [vocab.setdefault(text[i : i + 2], 10 + len(vocab)) for i in range(0, len(text), 2)]


def test_prompt_not_a_token_prefix_is_dropped_and_counted():
    tokenize = pairs_tokenizer()
    assert len(SHORT.prompt("ab")) == 7  # odd: "Q:ab\nA:" ends in a lone ":" that merges with "x"
    stats = EncodeStats()
    example = encode(tokenize, CHAR_IDS, SHORT, "ab", "", "xy", cutoff_len=64, stats=stats)
    assert example is None
    assert stats.as_dict() == {"total": 1, "kept": 0, "dropped_prompt_not_prefix": 1}


def test_prompt_that_is_a_token_prefix_is_kept_by_the_same_tokenizer():
    tokenize = pairs_tokenizer()
    assert len(SHORT.prompt("abc")) == 8
    stats = EncodeStats()
    example = encode(tokenize, CHAR_IDS, SHORT, "abc", "", "xy", cutoff_len=64, stats=stats)
    assert example is not None
    prompt_ids = tokenize("Q:abc\nA:")
    assert example.input_ids == [BOS, *prompt_ids, *tokenize("xy"), EOS]
    assert example.labels == masked(1 + len(prompt_ids)) + tokenize("xy") + [EOS]
    assert stats.as_dict() == {"total": 1, "kept": 1}


# --- pretokenized ids (batched tokenization) -------------------------------------------------------------


@pytest.mark.parametrize("policy", CUTOFF_POLICIES)
@pytest.mark.parametrize("cutoff_len", [120, 130, 512])
def test_pretokenized_ids_give_the_same_examples_and_stats(tok, ids, stellar, policy, cutoff_len):
    for triple in LONG_TRIPLES:
        instruction, input_, output = triple["instruction"], triple["input"], triple["output"]
        prompt = stellar.prompt(instruction, input_)
        plain_stats, pre_stats = EncodeStats(), EncodeStats()
        plain = encode(
            tok, ids, stellar, instruction, input_, output, cutoff_len=cutoff_len, policy=policy, stats=plain_stats
        )
        pre = encode(
            tok, ids, stellar, instruction, input_, output, cutoff_len=cutoff_len, policy=policy, stats=pre_stats,
            pretokenized=(tok(prompt), tok(prompt + output)),
        )  # fmt: skip
        assert pre == plain, triple
        assert pre_stats.as_dict() == plain_stats.as_dict()


def test_pretokenized_ids_that_are_not_a_prefix_are_dropped():
    stats = EncodeStats()
    example = encode(
        chars, CHAR_IDS, SHORT, "ab", "", "xy", cutoff_len=64, stats=stats, pretokenized=([5, 6, 7], [5, 6, 8, 9])
    )
    assert example is None
    assert stats.as_dict() == {"total": 1, "kept": 0, "dropped_prompt_not_prefix": 1}


def test_pretokenized_ids_are_used_as_given():
    example = encode(chars, CHAR_IDS, SHORT, "ab", "", "xy", cutoff_len=64, pretokenized=([5, 6], [5, 6, 7]))
    assert example is not None
    assert example.input_ids == [BOS, 5, 6, 7, EOS]
    assert example.labels == [M, M, M, 7, EOS]


def test_an_unknown_cutoff_policy_is_an_error_not_a_silent_default() -> None:
    template = PromptTemplate.load("alpaca")
    with pytest.raises(ValueError, match="cutoff policy 'truncate'"):
        encode(
            lambda text: [ord(c) for c in text],
            SpecialIds(1, 2, 0),
            template,
            "q",
            "",
            "a",
            cutoff_len=64,
            policy="truncate",
        )


# --- min_instruction_share and outcome counts --------------------------------------------------------------


def prompt_text(example) -> str:
    """The prompt of an example encoded with the character tokenizer (after BOS, before the response)."""
    return "".join(map(chr, example.input_ids[1 : example.labels.count(IGNORE_INDEX)]))


def test_truncate_prompt_drops_rather_than_cut_the_instruction_below_half():
    # Half of "abcdefghij" gives 1 + "Q:abcde\nA:" (10) = 11 > 10: no room for a response token.
    # (Cutting the instruction to "a" would leave "Q:a\nA:01": a useless prompt.)
    example, stats = encode_chars("abcdefghij", "", "0123456789", cutoff_len=10)
    assert example is None
    assert stats.as_dict() == {"total": 1, "kept": 0, "dropped_prompt_too_long": 1}


def test_truncate_prompt_keeps_half_the_instruction_and_cuts_the_response():
    # No instruction prefix fits the whole response (11 with EOS); half of it leaves 14 - 11 = 3:
    # two response characters plus EOS (not "Q:a\nA:012345").
    example, stats = encode_chars("abcdefghij", "", "0123456789", cutoff_len=14)
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:abcde\nA:01"), EOS]
    assert example.labels == masked(11) + chars("01") + [EOS]
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_instruction": 1, "truncated_response": 1}


@pytest.mark.parametrize(("share", "kept"), [(0, 1), (0.25, 3), (0.5, 5), (0.7, 7), (0.71, 8), (1, 10)])
def test_min_instruction_share_is_the_shortest_instruction_kept(share, kept):
    # A 30-character response never fits whole at cutoff 20: the instruction keeps exactly its minimum,
    # ceil(share * 10) characters (0.7 of 10 is 7, as written), at least one; the response gets the rest.
    assert min_instruction_chars(10, share) == kept
    example, stats = encode_chars("abcdefghij", "", "0" * 30, cutoff_len=20, min_instruction_share=share)
    assert example is not None
    prompt = "Q:" + "abcdefghij"[:kept] + "\nA:"
    assert example.input_ids == [BOS, *chars(prompt), *chars("0" * (20 - 2 - len(prompt))), EOS]
    cut_instruction = {"truncated_instruction": 1} if kept < 10 else {}
    assert stats.as_dict() == {"total": 1, "kept": 1, **cut_instruction, "truncated_response": 1}


def test_min_instruction_share_of_a_one_character_or_empty_instruction():
    assert [min_instruction_chars(n, 0) for n in (0, 1, 2)] == [0, 1, 1]
    assert [min_instruction_chars(n, 0.5) for n in (0, 1, 2, 3)] == [0, 1, 1, 2]
    example, stats = encode_chars("", "0123456789", "xyz", cutoff_len=10)
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:\nA:xyz"), EOS]
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_input": 1}


# (instruction, input, output, cutoff_len, the kept prompt or None when dropped, the counted actions)
OUTCOME_CASES = [
    ("ab", "", "xy", 16, "Q:ab\nA:", []),  # fits
    ("ab", "0123456789", "xy", 16, "Q:ab|0123\nA:", ["truncated_input"]),
    ("abcd", "0123456789", "xyz", 15, "Q:abcd\nA:", ["truncated_input"]),  # the input cut to nothing
    # The input cut to nothing did not suffice: the instruction is cut too, and both count.
    ("abcdefghij", "0123", "xy", 16, "Q:abcdefg\nA:", ["truncated_input", "truncated_instruction"]),
    ("abcdefghij", "", "xy", 16, "Q:abcdefg\nA:", ["truncated_instruction"]),
    # Input gone, instruction at half, and the response cut too: all three count.
    ("abcdefghij", "0123", "0123456789", 16, "Q:abcde\nA:",
     ["truncated_input", "truncated_instruction", "truncated_response"]),
    ("a", "", "0123456789", 10, "Q:a\nA:", ["truncated_response"]),  # one character is never cut
    # Shortening the input and the instruction was tried, but the example is dropped: only the drop counts.
    ("abc", "012", "0123456789", 8, None, ["dropped_prompt_too_long"]),
    ("abcdefghijklmnopqrst", "0123", "xy", 16, None, ["dropped_prompt_too_long"]),
]  # fmt: skip


def test_stats_count_outcomes_and_reconcile():
    stats = EncodeStats()
    for instruction, input_, output, cutoff_len, prompt, actions in OUTCOME_CASES:
        one = EncodeStats()
        example = encode(chars, CHAR_IDS, SHORT, instruction, input_, output, cutoff_len=cutoff_len, stats=one)
        assert (None if example is None else prompt_text(example)) == prompt, instruction
        assert one.as_dict() == {"total": 1, "kept": int(prompt is not None), **Counter(actions)}, instruction
        encode(chars, CHAR_IDS, SHORT, instruction, input_, output, cutoff_len=cutoff_len, stats=stats)
    expected = Counter(action for *_, actions in OUTCOME_CASES for action in actions)
    kept = sum(prompt is not None for *_, prompt, _ in OUTCOME_CASES)
    assert stats.as_dict() == {"total": len(OUTCOME_CASES), "kept": kept, **dict(sorted(expected.items()))}
    assert list(stats.as_dict())[:2] == ["total", "kept"]
    assert stats.total == stats.kept + dropped(stats)


@pytest.mark.parametrize(("instruction", "input_", "output", "cutoff_len", "prompt", "actions"), OUTCOME_CASES)
def test_the_outcome_reports_what_the_example_kept(instruction, input_, output, cutoff_len, prompt, actions):
    outcome = encode_outcome(chars, CHAR_IDS, SHORT, instruction, input_, output, cutoff_len=cutoff_len)
    assert outcome.example == encode(chars, CHAR_IDS, SHORT, instruction, input_, output, cutoff_len=cutoff_len)
    assert list(outcome.actions) == actions
    example = outcome.example
    if prompt is None:
        assert example is None and outcome.dropped == "prompt_too_long"
        return
    assert example is not None and len(example) <= cutoff_len
    assert prompt_text(example) == prompt
    assert prompt == SHORT.prompt(instruction[: outcome.instruction_kept], input_[: outcome.input_kept])
    # An outcome: each part counts iff the encoded example holds it shorter than the original.
    response = example.input_ids[len(prompt) + 1 : -1]
    shorter = {
        "truncated_input": outcome.input_kept < len(input_),
        "truncated_instruction": outcome.instruction_kept < len(instruction),
        "truncated_response": response != chars(output),
    }
    assert [action for action, cut in shorter.items() if cut] == actions


@pytest.mark.parametrize("cutoff_len", range(6, 30))
def test_min_instruction_share_1_never_cuts_the_instruction(cutoff_len):
    stats = EncodeStats()
    for instruction, input_, output, *_ in OUTCOME_CASES:
        example = encode(
            chars, CHAR_IDS, SHORT, instruction, input_, output, cutoff_len=cutoff_len, min_instruction_share=1,
            stats=stats,
        )  # fmt: skip
        # Kept exactly when the whole instruction without the input leaves room for a response token.
        assert (example is not None) == (1 + len(SHORT.prompt(instruction)) + 2 <= cutoff_len)
        if example is not None:
            prompt = prompt_text(example)  # the whole instruction, then the (maybe shortened) input or none
            assert prompt.startswith(f"Q:{instruction}") and prompt[2 + len(instruction)] in "|\n"
    assert "truncated_instruction" not in stats.actions
    assert stats.total == stats.kept + dropped(stats)


@pytest.mark.parametrize("share", [-0.1, 1.01, 2, float("nan")])
@pytest.mark.parametrize("policy", CUTOFF_POLICIES)
def test_an_invalid_min_instruction_share_is_an_error(share, policy):
    with pytest.raises(ValueError, match="min_instruction_share"):
        encode_chars("ab", "", "xy", cutoff_len=64, policy=policy, min_instruction_share=share)  # even when it fits


# --- real instruction data -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alpaca_records(shared_sources) -> list[dict[str, str]]:
    records = json.loads((shared_sources / "LLaMA-Factory" / "data" / "alpaca_en_demo.json").read_text("utf-8"))
    return [{key: r[key] for key in ("instruction", "input", "output")} for r in records[:300]]


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_real_alpaca_records_keep_the_instruction_share_and_counts_reconcile(
    tokenizer, tok, ids, stellar, alpaca_records, share
):
    # The tiny tokenizer knows little English (the template alone is ~106 tokens): at cutoff 144 most of
    # these 300 records must be cut, some dropped.
    cutoff = 144
    examples, stats = encode_records(
        alpaca_records, tok, ids, stellar, cutoff, "truncate_prompt", False, batch_text_tokenizer(tokenizer),
        min_instruction_share=share,
    )  # fmt: skip

    def outcome_of(r: dict[str, str]):
        return encode_outcome(
            tok, ids, stellar, r["instruction"], r["input"], r["output"], cutoff_len=cutoff,
            min_instruction_share=share,
        )  # fmt: skip

    outcomes = [outcome_of(r) for r in alpaca_records]
    assert examples and examples == [o.example for o in outcomes if o.example is not None]
    assert stats.total == len(alpaca_records) == stats.kept + dropped(stats)
    assert stats.kept == len(examples)
    assert stats.actions == Counter(action for o in outcomes for action in o.actions)
    assert stats.actions["dropped_prompt_too_long"] > 0 and stats.actions["truncated_response"] > 0
    assert (stats.actions["truncated_instruction"] > 0) == (share < 1)
    for record, outcome in zip(alpaca_records, outcomes, strict=True):
        example = outcome.example
        instruction, input_, output = record["instruction"], record["input"], record["output"]
        if example is None:  # dropped: even the shortest allowed prompt leaves no room for a response token
            shortest = stellar.prompt(instruction[: max(1, math.ceil(share * len(instruction)))])
            assert 1 + len(tok(shortest)) + 2 > cutoff
            continue
        assert len(example) <= cutoff
        assert outcome.instruction_kept >= share * len(instruction) - 1e-9  # at least the share, always
        # What the outcome reports kept is what the example holds: the template around those prefixes,
        # then the response from their joint tokenization (whole, or cut and ended by EOS).
        prompt = stellar.prompt(instruction[: outcome.instruction_kept], input_[: outcome.input_kept])
        prompt_ids = tok(prompt)
        assert example.input_ids[: 1 + len(prompt_ids)] == [BOS, *prompt_ids]
        response = example.input_ids[1 + len(prompt_ids) : -1]
        whole_response = tok(prompt + output)[len(prompt_ids) :]
        assert whole_response[: len(response)] == response
        assert ("response" in outcome.truncated) == (len(response) < len(whole_response))
        assert ("instruction" in outcome.truncated) == (outcome.instruction_kept < len(instruction))
        assert ("input" in outcome.truncated) == (outcome.input_kept < len(input_))
