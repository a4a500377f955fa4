"""fold.py: the form in which near-duplicates and contamination are compared. NFKC, lower case,
OpenCC t2s (protected terms kept), punctuation / symbols / whitespace folded to one space; each Han
character is a token, every other run of letters or digits is one. fold_hashes / Grams: the
n-grams of consecutive tokens within each text (a short text is one gram, an empty one none)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from stellar_data.similarity import fold as fold_module
from stellar_data.similarity.fold import Grams, TokenHashes, fold_hashes, fold_texts


def fold(*texts: str | None, convert_traditional: bool = True, protected: tuple[str, ...] = ()) -> list[str]:
    series = pl.Series(list(texts), dtype=pl.String)
    return fold_texts(series, convert_traditional=convert_traditional, protected_terms=protected).to_list()


def one(text: str | None, **kwargs: object) -> str:
    return fold(text, **kwargs)[0]  # type: ignore[arg-type]


# --- NFKC, case -----------------------------------------------------------------------------------


def test_fullwidth_letters_and_digits_become_ascii_lower_case() -> None:
    assert one("ＡＢＣ　１２３") == "abc 123"  # fullwidth letters, an ideographic space, fullwidth digits
    assert one("ＡＢＣ１２３") == "abc123"  # one run of letters and digits: one token
    assert one("ＡＢＣ１２３") == one("abc123") == one("ABC123")


@pytest.mark.parametrize(
    ("compat", "plain"),
    [
        ("ﬁnal", "final"),  # ligature
        ("①②", "12"),  # circled digits
        ("𝐀𝐁", "ab"),  # mathematical bold
        ("Ⅻ", "xii"),  # roman numeral
        ("e=mc²", "e mc2"),  # superscript
        ("ｶﾞｲﾄﾞ", one("ガイド")),  # halfwidth katakana
        ("Ｈｅｌｌｏ，　Ｗｏｒｌｄ！", "hello world"),  # fullwidth punctuation folds too
    ],
)
def test_compatibility_characters_fold_like_their_nfkc_form(compat: str, plain: str) -> None:
    assert one(compat) == plain


def test_decomposed_accents_fold_like_precomposed() -> None:
    """NFKC composes `e` + U+0301 into `é`: both spellings of a word are one token (eval-set files are
    read as written, without the normalize step's NFC)."""
    assert one("Schro\u0308dinger cafe\u0301") == one("Schrödinger café") == "schrödinger café"


# --- traditional -> simplified ----------------------------------------------------------------------


def test_traditional_characters_become_simplified() -> None:
    assert one("天文學與觀測") == "天 文 学 与 观 测"
    assert one("天文學與觀測") == one("天文学与观测")


def test_traditional_is_left_alone_when_the_source_was_already_converted() -> None:
    assert one("天文學", convert_traditional=False) == "天 文 學"


def test_protected_term_is_kept_as_written() -> None:
    assert one("蒭藁型變星", protected=("蒭藁",)) == "蒭 藁 型 变 星"
    # without the protection OpenCC t2s writes 𫇴藁: the protection is what keeps the term
    assert one("蒭藁型變星") != "蒭 藁 型 变 星"


# --- punctuation, whitespace, tokens ----------------------------------------------------------------


def test_punctuation_and_whitespace_fold_to_single_spaces() -> None:
    variants = [
        "What is a black hole?",
        "  what   is a BLACK hole ",
        "What, is a black-hole?!",
        "What\tis\na\u3000black «hole»",
        "what is a black hole",
    ]
    assert fold(*variants) == ["what is a black hole"] * len(variants)


def test_chinese_punctuation_and_spacing_fold_away() -> None:
    variants = [
        "太阳系中最大的行星是？",
        "太阳系中 最大的 行星是",
        "“太阳系中，最大的行星是……”",
        "太 阳 系 中 最 大 的 行 星 是",
    ]
    assert fold(*variants) == ["太 阳 系 中 最 大 的 行 星 是"] * len(variants)


def test_each_han_character_is_a_token_and_words_are_tokens() -> None:
    assert one("银河系Milky Way有2000亿颗恒星") == "银 河 系 milky way 有 2000 亿 颗 恒 星"
    assert one("x_y don't 3.14") == "x y don t 3 14"


def test_folded_text_has_no_punctuation_symbols_or_double_spaces() -> None:
    texts = ["A+B=C; 1/2 -> 0.5 #tag @user $5 (ok) [x] {y}", "《红楼梦》：“好了歌”——【注】", "\n\n\t  ", "!!!"]
    for folded in fold(*texts):
        assert folded == folded.strip()
        assert "  " not in folded
        assert all(ch.isalnum() or ch == " " for ch in folded), folded


def test_empty_and_null_texts_fold_to_empty() -> None:
    assert fold(None, "", "  ", "。，！") == ["", "", "", ""]


# --- fold_hashes ----------------------------------------------------------------------------------


def hashes_of(*texts: str | None, seed: int = 7, convert_traditional: bool = True) -> TokenHashes:
    return fold_hashes(pl.Series(list(texts), dtype=pl.String), convert_traditional=convert_traditional, seed=seed)


def test_token_hashes_offsets_delimit_each_text() -> None:
    tokens = hashes_of("a, b c", "", "天文", None, "x")
    assert tokens.offsets.tolist() == [0, 3, 3, 5, 5, 6]
    assert tokens.hashes.dtype == np.uint64 and len(tokens.hashes) == 6
    assert tokens.owners().tolist() == [0, 0, 0, 2, 2, 4]
    # the same token hashes the same wherever it is; the seed changes the hashes
    again = hashes_of("X! b")
    assert again.hashes[0] == tokens.hashes[5] and again.hashes[1] == tokens.hashes[1]
    assert not np.array_equal(hashes_of("a, b c", "", "天文", None, "x", seed=8).hashes, tokens.hashes)


def test_texts_that_fold_alike_hash_alike() -> None:
    variants = [
        "What is a black hole?",
        "  what   is a BLACK hole ",
        "Ｗｈａｔ　ｉｓ ａ ｂｌａｃｋ－ｈｏｌｅ？",
        "什麼是黑洞",
        "什么是 黑洞！",
    ]
    tokens = hashes_of(*variants)
    per_text = [tokens.hashes[a:b].tolist() for a, b in zip(tokens.offsets[:-1], tokens.offsets[1:], strict=True)]
    assert per_text[0] == per_text[1] == per_text[2]
    assert per_text[3] == per_text[4]
    assert len(set(per_text[0])) == 5  # five distinct words, five distinct hashes


def test_hashes_follow_the_folded_tokens_exactly() -> None:
    """fold_hashes and fold_texts tokenize alike: a text's token hashes are those of its folded tokens."""
    texts = ["银河系Milky Way有2000亿颗恒星", "x_y don't 3.14", "ﬁnal ①② e=mc²", "Schro\u0308dinger İstanbul ǅ"]
    for text in texts:
        words = one(text).split()
        tokens = hashes_of(text)
        assert len(tokens.hashes) == len(words), text
        assert tokens.hashes.tolist() == [hashes_of(w).hashes[0] for w in words], text


def test_a_token_hash_is_the_seeded_mix_of_its_code_point_polynomial() -> None:
    """hash(token) = mix((B * sum_k (c_k + 1) * B**k mod 2**64) ^ seed), whatever its length or place."""
    base, mask = int(fold_module._TOKEN_BASE), 2**64 - 1

    def expected(token: str) -> int:
        value = sum((ord(c) + 1) * pow(base, k + 1, 2**64) for k, c in enumerate(token)) & mask
        return int(fold_module.mix(np.array([value ^ 7], dtype=np.uint64))[0])  # hashes_of seeds with 7

    text = "天 astronomy a 星系 supercalifragilistic x"
    assert hashes_of(text).hashes.tolist() == [expected(t) for t in one(text).split()]


def test_chunks_do_not_change_the_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [f"第{i}个问题 question number {i}" for i in range(50)]
    whole = hashes_of(*texts)
    monkeypatch.setattr(fold_module, "_CHUNK_CHARS", 64)  # several texts per chunk, many chunks
    chunked = hashes_of(*texts)
    assert np.array_equal(whole.hashes, chunked.hashes) and np.array_equal(whole.offsets, chunked.offsets)


def test_token_hashes_of_nothing() -> None:
    tokens = hashes_of()
    assert len(tokens.hashes) == 0 and tokens.offsets.tolist() == [0]


# --- Grams ----------------------------------------------------------------------------------------


def grams_of(texts: list[str], n: int, whole_short_texts: bool = True) -> list[set[int]]:
    tokens = hashes_of(*texts, seed=3)
    grams, owner = Grams(tokens).of(n, whole_short_texts)
    assert len(grams) == len(owner)
    return [set(grams[owner == i].tolist()) for i in range(len(texts))]


def test_ngrams_are_consecutive_tokens_within_one_text() -> None:
    tokens = hashes_of("the quick brown fox jumps over the lazy dog", "one two", "天文学是研究天体的科学")
    grams, owner = Grams(tokens).of(3)
    # 9 tokens -> 7 trigrams; 2 tokens (short) -> 1; 11 Han characters -> 9: none spans two texts
    assert np.bincount(owner).tolist() == [7, 1, 9]
    assert grams.dtype == np.uint64
    _, owner = Grams(tokens).of(3, whole_short_texts=False)
    assert np.bincount(owner).tolist() == [7, 0, 9]


def test_ngram_set_of_a_text_is_a_subset_of_the_text_wrapped_in_other_words() -> None:
    question = "a plane travels 1200 miles in 3 hours at the same rate how many hours"
    zh = "太阳系中体积最大的行星是哪一颗"
    for n in (1, 3, 5, 8):
        plain, wrapped, unrelated = grams_of(
            [question, f"Please answer this: {question} Think step by step.", "an unrelated sentence about cats"], n
        )
        assert plain and plain <= wrapped, n
        assert not plain & unrelated, n
        zh_plain, zh_wrapped = grams_of([zh, f"你是一位资深天文学家。有人说“{zh}”，你怎么看？"], n)
        assert zh_plain and zh_plain <= zh_wrapped, n


def test_a_short_text_is_one_gram_that_longer_texts_hold_too() -> None:
    """The gram of a text shorter than n is the same hash as its tokens' gram inside a longer text."""
    short, longer = grams_of(["black hole", "what is a black hole anyway"], 5)
    (whole,) = short
    (inside,) = grams_of(["what is a black hole anyway"], 2)[0] & grams_of(["black hole"], 2)[0]
    assert whole == inside
    assert not short & longer  # the 5-grams of the longer text are other grams


def test_word_order_matters_within_an_ngram() -> None:
    forward, backward = grams_of(["a b c d", "d c b a"], 4)
    assert forward and backward and not forward & backward


def test_a_short_text_gives_one_gram_and_an_empty_one_none() -> None:
    sets = grams_of(["a b", "", "a b c d e f", "b", "a b"], 5)
    assert [len(s) for s in sets] == [1, 0, 2, 1, 1]
    assert sets[0] == sets[4]  # the same short text: the same gram
    assert sets[0] != sets[3]


def test_gram_hashes_with_no_text_at_all() -> None:
    grams, owner = Grams(TokenHashes(np.empty(0, dtype=np.uint64), np.zeros(1, dtype=np.int64))).of(5)
    assert len(grams) == len(owner) == 0
    grams, owner = Grams(TokenHashes(np.empty(0, dtype=np.uint64), np.zeros(3, dtype=np.int64))).of(5)
    assert len(grams) == 0


def test_gram_hashes_are_deterministic_and_spread() -> None:
    text = " ".join(f"w{i}" for i in range(400))
    first, second = grams_of([text], 5), grams_of([text], 5)
    assert first == second
    assert len(first[0]) == 396  # distinct tokens: every 5-gram hash distinct (no collisions)
    top_bits = {g >> 58 for g in first[0]}
    assert len(top_bits) > 50  # the high bits (MinHash bins) are spread over most of the 64 bins
