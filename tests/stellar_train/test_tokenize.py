"""tokenize.encode: joint tokenization, exact prompt masking, one BOS, EOS, and the cutoff policies.

Label tests use the real tiny LLaMA SentencePiece tokenizer; the cutoff policies use a character
tokenizer (one id per character) so every expected length and id is computable by hand.
"""

from __future__ import annotations

import pytest

from stellar_train.model import load_tokenizer, special_ids, text_tokenizer
from stellar_train.prompt import PromptTemplate
from stellar_train.tokenize import CUTOFF_POLICIES, IGNORE_INDEX, EncodeStats, SpecialIds, encode

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
        else:
            shortest_prompt = 1 + len(tok(stellar.prompt(instruction[:1]))) + 2
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
    # Shortest prompt: 1 + "Q:a\nA:" (6) = 7; cutoff 10 leaves 3: two response characters plus EOS.
    example, stats = encode_chars("abc", "", "0123456789", cutoff_len=10)
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:a\nA:01"), EOS]
    assert example.labels == masked(7) + chars("01") + [EOS]
    assert stats.as_dict() == {"total": 1, "kept": 1, "truncated_instruction": 1, "truncated_response": 1}


def test_truncate_prompt_keeps_one_response_token_plus_eos_at_the_limit():
    example, stats = encode_chars("abc", "", "0123456789", cutoff_len=9)
    assert example is not None
    assert example.input_ids == [BOS, *chars("Q:a\nA:0"), EOS]
    assert example.labels == [*masked(7), ord("0"), EOS]
    assert stats.actions["truncated_response"] == 1


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
