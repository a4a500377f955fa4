"""Folding for similarity: the form in which near-duplicates and contamination are compared.

NFKC, lower case, and traditional characters converted to simplified where the source was not
(OpenCC t2s, protected terms kept). The text is then a sequence of tokens: each Han character is a
token (character n-grams for Chinese), every other run of letters, marks or digits is one (word
n-grams for English); everything else (punctuation, symbols, whitespace) only separates tokens.
`fold_texts` writes the tokens joined by single spaces (`天 文 学`, `the final answer`).

The steps never keep folded text: `fold_hashes` turns a batch of texts straight into token hashes
in numpy. The texts' code points index two tables (each code point's class and lower-case form,
derived once from the same regex classes and lower-casing that polars applies), tokens are the runs
of those classes, and a token's hash is a polynomial over its code points. `Grams` hashes every
n-gram of consecutive tokens from one prefix sum, shared by every n.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import polars as pl

from ..steps.normalize import ChineseConverter, sensitive_code_points

_HAN_CLASS = r"^\p{Han}$"
_WORD_CLASS = r"^[\p{L}\p{M}\p{N}--\p{Han}]$"
SEPARATOR, HAN, WORD = 0, 1, 2

_TOKEN_BASE = np.uint64(0x9E3779B97F4A7C15)
_GRAM_BASE = np.uint64(0xC2B2AE3D27D4EB4F)  # odd: invertible modulo 2**64
_CHUNK_CHARS = 1 << 23
"""Code points folded per numpy pass: bounds the scratch arrays (~8 bytes x this, a few times)."""


@cache
def code_point_tables() -> tuple[np.ndarray, np.ndarray]:
    """(class of every code point: SEPARATOR / HAN / WORD, its lower-case code point).

    A code point whose lower-case form is several code points (e.g. U+0130) keeps itself.
    """
    every = np.arange(0x110000, dtype=np.uint32)
    every[0xD800:0xE000] = ord(" ")  # surrogates cannot be encoded
    chars = pl.Series([every.tobytes().decode("utf-32-le")], dtype=pl.String).str.split("").explode()
    lowered = chars.str.to_lowercase()
    single = (lowered.str.len_chars() == 1).to_numpy()
    lower = np.arange(0x110000, dtype=np.uint32)
    lower[single] = np.frombuffer(
        "".join(lowered.filter(pl.Series(single)).to_list()).encode("utf-32-le"), dtype=np.uint32
    )
    classes = np.zeros(0x110000, dtype=np.uint8)
    classes[chars.str.contains(_WORD_CLASS).to_numpy()] = WORD
    classes[chars.str.contains(_HAN_CLASS).to_numpy()] = HAN
    return classes, lower


@cache
def nfkc_token_table() -> np.ndarray:
    """Per code point: True where NFKC may change the tokens (a compatibility or combining character
    that is, or becomes, a letter, mark, digit or Han character). Fullwidth punctuation, common in
    Chinese, is NFKC-sensitive but a separator either way: texts holding only that are left alone."""
    classes, _ = code_point_tables()
    table = np.zeros(0x110000, dtype=bool)
    for code in sensitive_code_points(compatibility=True):
        normalized = unicodedata.normalize("NFKC", chr(code))
        table[code] = classes[code] != SEPARATOR or any(classes[ord(c)] != SEPARATOR for c in normalized)
    return table


def prefold(texts: pl.Series, *, convert_traditional: bool, protected_terms: tuple[str, ...] = ()) -> pl.Series:
    """OpenCC t2s (only texts holding Han), after NFKC on those (compatibility ideographs become the
    unified ones OpenCC knows); every other text gets NFKC where it matters when tokenized."""
    texts = texts.fill_null("")
    if convert_traditional:
        han = texts.str.contains(r"\p{Han}")
        if han.any():
            rows = han.arg_true()
            normalized = texts.gather(rows).str.normalize("NFKC").to_list()
            converted = ChineseConverter("t2s", protected_terms).convert(normalized)
            texts = texts.scatter(rows, pl.Series(converted, dtype=pl.String))
    return texts


@dataclass(frozen=True)
class TokenHashes:
    """The tokens of a batch of texts: text i's token hashes are hashes[offsets[i]:offsets[i + 1]]."""

    hashes: np.ndarray
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def owners(self) -> np.ndarray:
        """The text index of every token."""
        return np.repeat(np.arange(len(self.offsets) - 1), self.lengths)


@dataclass(frozen=True)
class _Tokens:
    """Tokens of one chunk as code-point spans: token t is code points [starts[t], ends[t])."""

    code_points: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    offsets: np.ndarray


def _code_points(texts: list[str]) -> np.ndarray:
    """The texts' code points, one separator (U+0000) between texts so no token runs across two."""
    return np.frombuffer("\x00".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


_CLASS_SHIFT = 21  # code points take 21 bits
_NFKC_FLAG = np.uint32(1 << 23)


@cache
def _folding_table() -> np.ndarray:
    """Per code point, in one uint32 so a text costs one lookup: its lower-case code point (bits 0-20),
    the class of that (bits 21-22) and the nfkc_token_table flag (bit 23)."""
    classes, lower = code_point_tables()
    table = lower | (classes[lower].astype(np.uint32) << np.uint32(_CLASS_SHIFT))
    table[nfkc_token_table()] |= _NFKC_FLAG
    return table


def _with_nfkc(texts: list[str], flagged: np.ndarray) -> list[str]:
    """NFKC on the texts holding a flagged code point (one for which NFKC changes the tokens)."""
    owner = np.repeat(np.arange(len(texts)), [len(t) + 1 for t in texts])[: len(flagged)]
    rows = np.unique(owner[flagged]).tolist()
    normalized = pl.Series([texts[i] for i in rows], dtype=pl.String).str.normalize("NFKC").to_list()
    texts = list(texts)
    for row, text in zip(rows, normalized, strict=True):
        texts[row] = text
    return texts


def _tokenize(texts: list[str]) -> _Tokens:
    table = _folding_table()
    folded = table[_code_points(texts)]
    flagged = folded >= _NFKC_FLAG
    if flagged.any():
        texts = _with_nfkc(texts, flagged)
        folded = table[_code_points(texts)]
    if len(folded) == 0:
        none = np.empty(0, dtype=np.int64)
        return _Tokens(np.empty(0, dtype=np.uint32), none, none, np.zeros(len(texts) + 1, dtype=np.int64))
    code_points = folded & np.uint32((1 << _CLASS_SHIFT) - 1)
    kind = (folded >> np.uint32(_CLASS_SHIFT)).astype(np.uint8)
    kind &= np.uint8(3)
    word = kind == WORD
    han = kind == HAN
    previous_word = np.empty_like(word)
    previous_word[0] = False
    previous_word[1:] = word[:-1]
    next_word = np.empty_like(word)
    next_word[-1:] = False
    next_word[:-1] = word[1:]
    starts = np.flatnonzero(han | (word & ~previous_word))
    ends = np.flatnonzero(han | (word & ~next_word)) + 1
    text_starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(t) + 1 for t in texts], out=text_starts[1:])
    return _Tokens(code_points, starts, ends, np.searchsorted(starts, text_starts))


def _token_hashes(tokens: _Tokens, seed: int) -> np.ndarray:
    """B * sum_k (c_k + 1) * B**k over each token's code points c_0, c_1, ... (wrapping uint64), then
    mixed with the seed. One prefix sum over the chunk gives every token's polynomial, whatever its
    length: with P[i] = sum_{j<i} (c_j + 1) * B**j, a token [s, e) is (P[e] - P[s]) * B**-s."""
    count = len(tokens.code_points)
    powers, inverse = _power_tables(_table_size(count), _TOKEN_BASE)
    prefix = np.zeros(count + 1, dtype=np.uint64)
    terms = tokens.code_points.astype(np.uint64)
    terms += np.uint64(1)
    terms *= powers[:count]
    np.cumsum(terms, out=prefix[1:])
    starts = tokens.starts
    sums = prefix[tokens.ends]
    sums -= prefix[starts]
    sums *= inverse[starts]
    sums *= _TOKEN_BASE
    sums ^= np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    return mix(sums, in_place=True)


def fold_hashes(
    texts: pl.Series, *, convert_traditional: bool, protected_terms: tuple[str, ...] = (), seed: int = 0
) -> TokenHashes:
    """Every text's folded tokens, as hashes (see the module docstring)."""
    prepared = prefold(texts, convert_traditional=convert_traditional, protected_terms=protected_terms)
    hashes, offsets = [np.empty(0, dtype=np.uint64)], [np.zeros(1, dtype=np.int64)]
    for batch in _batches(prepared):
        tokens = _tokenize(batch)
        hashes.append(_token_hashes(tokens, seed))
        offsets.append(tokens.offsets[1:] + offsets[-1][-1])
    return TokenHashes(np.concatenate(hashes), np.concatenate(offsets).astype(np.int64))


def fold_texts(texts: pl.Series, *, convert_traditional: bool, protected_terms: tuple[str, ...] = ()) -> pl.Series:
    """Each text folded to its space-joined tokens: the readable form (evidence spans, tests)."""
    prepared = prefold(texts, convert_traditional=convert_traditional, protected_terms=protected_terms)
    folded: list[str] = []
    for batch in _batches(prepared):
        tokens = _tokenize(batch)
        text = tokens.code_points.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
        words = [text[s:e] for s, e in zip(tokens.starts.tolist(), tokens.ends.tolist(), strict=True)]
        bounds = tokens.offsets.tolist()
        folded += [" ".join(words[bounds[i] : bounds[i + 1]]) for i in range(len(batch))]
    return pl.Series(texts.name, folded, dtype=pl.String)


def _batches(texts: pl.Series) -> list[list[str]]:
    lengths = texts.str.len_chars().to_list()
    batches, start, size = [], 0, 0
    for end, length in enumerate(lengths):
        if size and size + length > _CHUNK_CHARS:
            batches.append(texts.slice(start, end - start).to_list())
            start, size = end, 0
        size += length + 1
    if start < len(lengths):
        batches.append(texts.slice(start).to_list())
    return batches


class Grams:
    """The n-gram hashes of a batch of texts' tokens, for any n, from one prefix sum.

    gram(i, n) = sum_t hash[i + t] * B**t: (prefix[i + n] - prefix[i]) * B**-i, so the same tokens
    hash alike wherever they stand, and each n costs a few passes over the batch. The token hashes
    are already mixed (uniform 64-bit values), so their polynomial is too: no final mix.
    """

    def __init__(self, tokens: TokenHashes) -> None:
        self.tokens = tokens
        count = len(tokens.hashes)
        powers, self._inverse = _power_tables(_table_size(count), _GRAM_BASE)
        self._prefix = np.zeros(count + 1, dtype=np.uint64)
        np.cumsum(tokens.hashes * powers[:count], out=self._prefix[1:])
        self._owners = tokens.owners()

    @property
    def texts(self) -> int:
        return len(self.tokens.offsets) - 1

    def of(self, n: int, whole_short_texts: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(hash of every n-gram within each text, the text index of each). With `whole_short_texts`,
        a text shorter than n tokens contributes one gram of all its tokens (the same hash as that
        token sequence inside a longer text); empty texts contribute none."""
        count = len(self.tokens.hashes)
        owners, prefix, inverse = self._owners, self._prefix, self._inverse
        if count >= n:
            starts = np.flatnonzero(owners[: count - n + 1] == owners[n - 1 :])
            grams = (prefix[starts + n] - prefix[starts]) * inverse[starts]
            owner = owners[starts]
        else:
            grams, owner = np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
        if whole_short_texts:
            lengths = self.tokens.lengths
            short = np.flatnonzero((lengths > 0) & (lengths < n))
            if len(short):
                begin, end = self.tokens.offsets[short], self.tokens.offsets[short + 1]
                whole = (prefix[end] - prefix[begin]) * inverse[begin]
                grams, owner = np.concatenate([grams, whole]), np.concatenate([owner, short])
        return grams, owner


def _table_size(count: int) -> int:
    """A power of two >= count, so batches of similar size share a power table."""
    return 1 << max(count - 1, 1).bit_length()


@lru_cache(maxsize=4)
def _power_tables(size: int, base: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """(base**i, base**-i) for i < size (base odd: invertible modulo 2**64)."""
    base_inverse = np.uint64(pow(int(base), -1, 2**64))
    powers = np.cumprod(np.r_[np.uint64(1), np.full(size - 1, base, dtype=np.uint64)])
    inverse = np.cumprod(np.r_[np.uint64(1), np.full(size - 1, base_inverse, dtype=np.uint64)])
    return powers, inverse


def mix(values: np.ndarray, in_place: bool = False) -> np.ndarray:
    """A final avalanche (splitmix64) so every bit of a hash depends on every input bit."""
    if not in_place:
        values = np.array(values, dtype=np.uint64, copy=True)
    scratch = values >> np.uint64(30)
    values ^= scratch
    values *= np.uint64(0xBF58476D1CE4E5B9)
    np.right_shift(values, np.uint64(27), out=scratch)
    values ^= scratch
    values *= np.uint64(0x94D049BB133111EB)
    np.right_shift(values, np.uint64(31), out=scratch)
    values ^= scratch
    return values
