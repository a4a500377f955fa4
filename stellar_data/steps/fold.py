"""Folding for similarity: the form in which near-duplicates and contamination are compared.

Punctuation, symbols and whitespace become one space, NFKC, lower case; traditional characters are
converted to simplified where the source was not (OpenCC t2s). The text is then a sequence of
tokens: each Han character is a token (character n-grams for Chinese), every other run of letters
or digits is one (word n-grams for English). Folded text is the tokens joined by single spaces, so
an n-gram is a substring of it: `天 文 学` or `the final answer`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .normalize import ChineseConverter, nfkc_sensitive_class

TOKEN = r"\p{Han}|[\p{L}\p{M}\p{N}--\p{Han}]+"
_SEPARATORS = r"[\p{P}\p{S}\s]+"
_HAN = r"\p{Han}"


def fold_tokens(texts: pl.Series, *, convert_traditional: bool, protected_terms: tuple[str, ...] = ()) -> pl.Series:
    """Each text folded to its list of tokens (see the module docstring)."""
    cleaned = texts.fill_null("").str.replace_all(_SEPARATORS, " ")
    needs = cleaned.str.contains(nfkc_sensitive_class())  # only texts NFKC can change pay for it
    if needs.any():
        rows = needs.arg_true()
        cleaned = cleaned.scatter(rows, cleaned.gather(rows).str.normalize("NFKC").str.replace_all(_SEPARATORS, " "))
    cleaned = cleaned.str.to_lowercase()
    if convert_traditional:
        han = cleaned.str.contains(_HAN)
        if han.any():
            rows = han.arg_true()
            converted = ChineseConverter("t2s", protected_terms).convert(cleaned.gather(rows).to_list())
            cleaned = cleaned.scatter(rows, pl.Series(converted, dtype=pl.String))
    return cleaned.str.extract_all(TOKEN)


def fold_texts(texts: pl.Series, *, convert_traditional: bool, protected_terms: tuple[str, ...] = ()) -> pl.Series:
    """Each text folded to its space-joined tokens (see the module docstring)."""
    return fold_tokens(texts, convert_traditional=convert_traditional, protected_terms=protected_terms).list.join(" ")


def token_hashes(folded: pl.Series, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash of every token of every text, offsets: text i's tokens are [offsets[i], offsets[i+1])).

    `folded` holds token lists (fold_tokens) or folded texts (fold_texts): those have single spaces
    between tokens and none at the ends, so a literal split is exact (several times faster than a
    regex); an empty text becomes null, which has no tokens.
    """
    tokens = folded if folded.dtype == pl.List(pl.String) else folded.replace("", None).str.split(" ")
    lengths = tokens.list.len().fill_null(0).to_numpy().astype(np.int64)
    hashes = tokens.explode().drop_nulls().hash(seed=seed).to_numpy().astype(np.uint64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return hashes, offsets


_MULTIPLIERS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                         0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x27D4EB2F165667C5, 0x85EBCA77C2B2AE63,
                         0x94D049BB133111EB, 0xBF58476D1CE4E5B9, 0x2545F4914F6CDD1D, 0x9FB21C651E98DF25,
                         0xD1342543DE82EF95], dtype=np.uint64)  # fmt: skip


def ngram_hashes(hashes: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every n-gram of consecutive tokens within each text, and each one's text index.

    A text shorter than n tokens contributes one n-gram: all its tokens. Empty texts contribute none.
    Computed in place over the whole batch (a few passes of uint64 arithmetic, no per-text loop).
    """
    if n > len(_MULTIPLIERS):
        raise ValueError(f"n-grams up to {len(_MULTIPLIERS)} tokens")
    total = len(hashes)
    lengths = np.diff(offsets)
    texts = np.arange(len(lengths))
    full = np.maximum(lengths - n + 1, 0)  # n-grams per text
    if total >= n and full.any():
        count = total - n + 1
        acc = np.multiply(hashes[:count], _MULTIPLIERS[0])
        scratch = np.empty_like(acc)
        for k in range(1, n):
            np.multiply(hashes[k : k + count], _MULTIPLIERS[k], out=scratch)
            acc += scratch
        del scratch
        # Valid starts: [offsets[t], offsets[t] + full[t]) for each text t, marked by +1 / -1 and summed.
        marks = np.zeros(count + 1, dtype=np.int8)
        has = full > 0
        np.add.at(marks, offsets[:-1][has], 1)
        np.add.at(marks, offsets[:-1][has] + full[has], -1)
        grams = _mix(acc[np.cumsum(marks[:-1], dtype=np.int8) > 0])
        grams_owner = np.repeat(texts, full)
    else:
        grams, grams_owner = np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    nonempty = np.flatnonzero(lengths > 0)
    short = lengths[nonempty] < n
    if short.any():  # a text shorter than n tokens: one n-gram of all its tokens
        sums = np.add.reduceat(hashes * _MULTIPLIERS[0], offsets[nonempty])  # nonempty starts increase strictly
        shorts = nonempty[short]
        grams = np.concatenate([grams, _mix(sums[short] + lengths[shorts].astype(np.uint64))])
        grams_owner = np.concatenate([grams_owner, shorts])
    return grams, grams_owner


def _mix(values: np.ndarray) -> np.ndarray:
    """A final avalanche (splitmix64) so every bit of an n-gram hash depends on every token."""
    values = np.array(values, dtype=np.uint64, copy=True)
    values ^= values >> np.uint64(30)
    values *= np.uint64(0xBF58476D1CE4E5B9)
    values ^= values >> np.uint64(27)
    values *= np.uint64(0x94D049BB133111EB)
    values ^= values >> np.uint64(31)
    return values
