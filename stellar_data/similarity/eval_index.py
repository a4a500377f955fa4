"""Eval questions as n-gram hashes: the items decontamination compares records with, and the
`GramIndex` of their n-grams the ingest workers look each record up in.

Eval items come from the held-out benchmark records (their question; extras: the options of a
choice item, the reference answer of a subjective one) and from the eval sets declared in the
recipe (eval_sets.py reads them). Questions are folded as records are (fold.py, FOLD_SEED), with
t2s always: an eval set's traditional characters must not hide a question.

A question's n is its language's (`ngram_zh` Han characters or `ngram_en` words); a shorter one
uses SHORT_QUESTION_GRAM, and one shorter than `min_eval_tokens` keeps the n-grams of its extras,
which a record must hold as well (see steps/decontaminate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa

from .eval_sets import read_eval_set
from .fold import Grams, TokenHashes, fold_hashes, fold_texts
from .records import FOLD_SEED

if TYPE_CHECKING:  # steps/decontaminate.py imports this module: at run time only the config's fields are read
    from ..steps.decontaminate import DecontaminateConfig

EVAL_GRAMS = "_eval_grams"
"""Per record: the hashes of its n-grams that some eval question holds (the GramIndex's hits)."""
SHORT_QUESTION_GRAM = 4
"""n-gram size for a question shorter than its language's n. Every size the workers look up costs a
pass over the corpus, so questions of 4..n-1 tokens share this one; a question of fewer tokens is
not checked (counted as `too_short` in the manifest): its words say too little on their own."""
HELDOUT_EVAL_SET = "astro_qa_heldout"
"""The eval set name of the held-out benchmark's items."""


@dataclass(frozen=True)
class EvalItem:
    eval_set: str
    item_id: str
    tokens: tuple[str, ...]
    """The folded question (the evidence span is written from these)."""
    n: int
    gram_hashes: tuple[int, ...] = ()
    """The hash of the n-gram starting at each token (one gram of all tokens when shorter than n)."""
    extra_hashes: tuple[tuple[int, int], ...] = ()
    """(gram length, hash) of every distinct n-gram of the options / answer pieces (one gram for a piece
    shorter than n), required as well when the question is short (see the module docstring)."""
    language_n: int = 0
    """n for the question's language; `n` is SHORT_QUESTION_GRAM when the question is shorter."""

    @property
    def gram_length(self) -> int:
        return min(self.n, len(self.tokens))


@dataclass(frozen=True)
class GramIndex:
    """The eval questions' n-gram hashes by gram length, for the ingest workers to look records up in."""

    by_length: dict[int, np.ndarray]
    """gram length -> sorted unique gram hashes."""

    @classmethod
    def of(cls, items: list[EvalItem]) -> GramIndex:
        grams: dict[int, list[int]] = {}
        for item in items:
            if item.gram_hashes:
                grams.setdefault(item.gram_length, []).extend(item.gram_hashes)
        return cls({n: np.unique(np.array(g, dtype=np.uint64)) for n, g in sorted(grams.items())})

    @cached_property
    def _filters(self) -> dict[int, np.ndarray]:
        """A bitmap per length over the top bits of the hashes: one cheap probe rules out nearly every
        gram before the exact (binary search) lookup."""
        filters = {}
        for n, hashes in self.by_length.items():
            bits = np.zeros(1 << (_FILTER_BITS - 3), dtype=np.uint8)
            byte, bit = _filter_slot(hashes)
            np.bitwise_or.at(bits, byte, np.left_shift(np.uint8(1), bit))
            filters[n] = bits
        return filters

    def hits(self, grams_of: Grams) -> pl.Series:
        """Per text: the sorted distinct hashes of its n-grams found in the index (List[UInt64])."""
        texts = grams_of.texts
        found_grams, found_owner = [np.empty(0, dtype=np.uint64)], [np.empty(0, dtype=np.int64)]
        for n, hashes in self.by_length.items():
            grams, owner = grams_of.of(n, whole_short_texts=False)
            byte, bit = _filter_slot(grams)
            maybe = ((self._filters[n][byte] >> bit) & 1).astype(bool)
            grams, owner = grams[maybe], owner[maybe]
            position = np.minimum(np.searchsorted(hashes, grams), len(hashes) - 1)
            exact = hashes[position] == grams
            found_grams.append(grams[exact])
            found_owner.append(owner[exact])
        owners, grams = np.concatenate(found_owner), np.concatenate(found_grams)
        order = np.lexsort((grams, owners))
        owners, grams = owners[order], grams[order]
        distinct = np.ones(len(grams), dtype=bool)
        distinct[1:] = (owners[1:] != owners[:-1]) | (grams[1:] != grams[:-1])
        owners, grams = owners[distinct], grams[distinct]
        offsets = np.zeros(texts + 1, dtype=np.int64)
        np.cumsum(np.bincount(owners, minlength=texts), out=offsets[1:])
        lists = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(grams, type=pa.uint64()))
        return pl.Series(EVAL_GRAMS, lists, dtype=pl.List(pl.UInt64))


def _filter_slot(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(byte, bit) of each hash's top _FILTER_BITS bits in a filter bitmap."""
    top = hashes >> np.uint64(64 - _FILTER_BITS)
    return (top >> np.uint64(3)).astype(np.int64), (top & np.uint64(7)).astype(np.uint8)


_FILTER_BITS = 27


def is_han(token: str) -> bool:
    """A token that is one Han character (the folded tokens of Chinese)."""
    return len(token) == 1 and ("\u3400" <= token <= "\u9fff" or "\uf900" <= token <= "\ufaff" or token >= "\U00020000")


def eval_items(
    questions: list[str],
    extras: list[list[str]],
    ids: list[str],
    eval_set: str,
    config: DecontaminateConfig,
    protected_terms: tuple[str, ...] = (),
) -> list[EvalItem]:
    """Folded eval questions with their gram hashes; the gram hashes of `extras` (options, answer) are
    kept for the short ones."""
    folded = fold_texts(
        pl.Series(questions, dtype=pl.String), convert_traditional=True, protected_terms=protected_terms
    ).to_list()
    tokens = fold_hashes(
        pl.Series(questions, dtype=pl.String), convert_traditional=True, protected_terms=protected_terms, seed=FOLD_SEED
    )
    piece_tokens = fold_hashes(
        pl.Series([piece for item in extras for piece in item], dtype=pl.String),
        convert_traditional=True,
        protected_terms=protected_terms,
        seed=FOLD_SEED,
    )
    first_piece = np.cumsum([0, *(len(item) for item in extras)]).tolist()
    language_n = [_language_n(q.split(), config) for q in folded]
    sizes = [n if len(q.split()) >= n else SHORT_QUESTION_GRAM for n, q in zip(language_n, folded, strict=True)]
    question_grams = _grams_per_text(tokens, sizes)
    piece_grams = _grams_per_text(piece_tokens, [n for n, item in zip(sizes, extras, strict=True) for _ in item])
    items = []
    for position, (item_id, question) in enumerate(zip(ids, folded, strict=True)):
        words = tuple(question.split())
        if not words:
            continue
        pieces = piece_grams[first_piece[position] : first_piece[position + 1]]
        extra_hashes = {(length, g) for length, grams in pieces for g in grams}
        items.append(
            EvalItem(
                eval_set,
                item_id,
                words,
                sizes[position],
                question_grams[position][1] if len(words) >= SHORT_QUESTION_GRAM else (),
                tuple(sorted(extra_hashes)) if len(words) < config.min_eval_tokens else (),
                language_n[position],
            )
        )
    return items


def _language_n(tokens: list[str], config: DecontaminateConfig) -> int:
    """n for the question's language: Han characters or words."""
    return config.ngram_zh if sum(1 for t in tokens if is_han(t)) * 2 >= len(tokens) else config.ngram_en


def _grams_per_text(tokens: TokenHashes, sizes: list[int]) -> list[tuple[int, tuple[int, ...]]]:
    """Per text of a batch: (gram length, its `sizes[i]`-gram hashes in order of their first token);
    a text shorter than its size is one gram."""
    grams_of = Grams(tokens)
    lengths = tokens.lengths.tolist()
    result: list[tuple[int, tuple[int, ...]]] = [(0, ())] * len(sizes)
    for n in sorted(set(sizes)):
        grams, owner = grams_of.of(n)
        order = np.argsort(owner, kind="stable")  # regular grams come in position order, short texts after
        hashes = grams[order].tolist()
        bounds = np.searchsorted(owner[order], np.arange(len(sizes) + 1)).tolist()
        for text, size in enumerate(sizes):
            if size == n:
                result[text] = (min(n, lengths[text]), tuple(hashes[bounds[text] : bounds[text + 1]]))
    return result


def heldout_eval_items(
    held: pl.DataFrame, config: DecontaminateConfig, protected_terms: tuple[str, ...] = ()
) -> list[EvalItem]:
    """Eval items of held-out benchmark records (their `_x_question`; extras: the option texts of
    choice items, the reference answer of subjective ones)."""
    if not config.heldout or held.height == 0 or "_x_question" not in held.columns:
        return []
    held = held.filter(pl.col("_x_question") != "")
    options = held.select(pl.concat_list([f"_x_option_{c}" for c in "ABCDE"])).to_series().to_list()
    extras = [
        [o for o in opts if o] or ([answer] if kind == "subjective" else [])
        for opts, answer, kind in zip(options, held["_x_answer"].to_list(), held["_x_type"].to_list(), strict=True)
    ]
    return eval_items(
        held["_x_question"].to_list(), extras, held["id"].to_list(), HELDOUT_EVAL_SET, config, protected_terms
    )


def declared_eval_items(
    config: DecontaminateConfig, sources_dir: Path, protected_terms: tuple[str, ...] = ()
) -> list[EvalItem]:
    """Eval items of every eval set the recipe declares (files under `sources_dir`)."""
    items = []
    for spec in config.eval_sets:
        questions, answers, ids = read_eval_set(spec, sources_dir)
        items += eval_items(questions, answers, ids, spec.name, config, protected_terms)
    return items


def all_eval_items(
    held: pl.DataFrame, config: DecontaminateConfig, sources_dir: Path, protected_terms: tuple[str, ...] = ()
) -> list[EvalItem]:
    """Every eval item: the held-out benchmark records' (`held`), then the declared eval sets'."""
    return heldout_eval_items(held, config, protected_terms) + declared_eval_items(config, sources_dir, protected_terms)


def heldout_items(items: list[EvalItem], held_ids: set[str]) -> list[EvalItem]:
    """Of `all_eval_items` built from every hold-out candidate: the items of the records the hold-out
    step held out, and every declared set's. An item depends on its own question only, so these are
    the items built from the held records alone (in the candidates' order). A candidate left in
    training must not be compared with its own question: decontamination takes these."""
    return [item for item in items if item.eval_set != HELDOUT_EVAL_SET or item.item_id in held_ids]
