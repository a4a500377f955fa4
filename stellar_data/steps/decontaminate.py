"""Decontamination: remove training items that contain evaluation questions.

Eval items come from the Astro-QA held-out split and from eval sets declared in the recipe (CSV such
as `Question,A,B,C,D,Answer`, JSONL, JSON, Parquet, through a column mapping). Texts are folded
(fold.py: NFKC, simplified Chinese, punctuation and whitespace folded), so re-typed punctuation,
spacing or traditional characters do not hide a question, and neither does a template around it.

An item is contaminated by an eval question when its text holds at least `threshold` of the
question's n-grams (8 Han characters, or 8 words). A question shorter than `min_eval_tokens` tokens
would match any text that mentions it (a two-character term, a generic stem such as 以下说法不正确的是),
so the item must also hold `threshold` of the question's extras: its options and answer, each piece
checked on its own (a prompt writes options with labels between them, `A. 木星 B. 土星`).

The work is on hashes. The ingest workers hash each record's n-grams and keep only those found in a
`GramIndex` of the eval questions' n-grams (`_eval_grams`, usually empty); this step counts, per
record and eval item, the shared n-grams. The few records that reach the threshold of a short
question are folded again, to hash the n-grams its extras need; the evidence (the overlapping span)
is written from the eval question's own tokens.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import SourceFileError
from .base import Filter, Removal, StepContext, StepResult, StepStats, per_source_stats
from .fold import Grams, TokenHashes, fold_hashes, fold_texts, prefold

if TYPE_CHECKING:
    from ..recipe import Recipe

EVAL_GRAMS = "_eval_grams"
"""Per record: the hashes of its n-grams that some eval question holds (the GramIndex's hits)."""
FOLD_SEED = 0
SHORT_QUESTION_GRAM = 4
"""n-gram size for a question shorter than its language's n. Every size the workers look up costs a
pass over the corpus, so questions of 4..n-1 tokens share this one; a question of fewer tokens is
not checked (counted as `too_short` in the manifest): its words say too little on their own."""
"""Token-hash seed of decontamination (records and eval items must hash alike)."""


@dataclass(frozen=True)
class EvalSetSpec:
    name: str
    path: str
    """Relative to the sources directory."""
    question: str
    """Column holding the question."""
    id: str | None = None
    """Column holding the item id (default: the row number)."""
    answer: str | None = None
    """Column added to short questions (see min_eval_tokens)."""
    options: tuple[str, ...] = ()
    format: str = "auto"


@dataclass(frozen=True)
class DecontaminateConfig:
    threshold: float = 0.5
    ngram_zh: int = 8
    ngram_en: int = 8
    min_eval_tokens: int = 20
    heldout: bool = True
    """Decontaminate against the held-out benchmark items (when a source holds some out)."""
    eval_sets: tuple[EvalSetSpec, ...] = ()


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
    shorter than n), required as well when the question is short (see above)."""
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


def _is_han(token: str) -> bool:
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
    return config.ngram_zh if sum(1 for t in tokens if _is_han(t)) * 2 >= len(tokens) else config.ngram_en


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
        held["_x_question"].to_list(), extras, held["id"].to_list(), "astro_qa_heldout", config, protected_terms
    )


def declared_eval_items(
    config: DecontaminateConfig, sources_dir: Path, protected_terms: tuple[str, ...] = ()
) -> list[EvalItem]:
    items = []
    for spec in config.eval_sets:
        questions, answers, ids = read_eval_set(spec, sources_dir)
        items += eval_items(questions, answers, ids, spec.name, config, protected_terms)
    return items


def read_eval_set(spec: EvalSetSpec, root: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """(questions, extras, ids) of a declared eval set file: `extras` are each item's option texts and
    answer (required too for short questions). One clear error naming a bad file or column."""
    path = root / spec.path
    extensions = {".csv": "csv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
    fmt = spec.format if spec.format != "auto" else extensions.get(path.suffix.lower())
    where = f"eval set {spec.name}"
    try:
        if fmt == "parquet":
            rows = pq.read_table(path).to_pylist()
        else:
            text = path.read_text(encoding="utf-8-sig")
            if fmt == "csv":
                rows = list(csv.DictReader(io.StringIO(text, newline="")))
            elif fmt == "jsonl":
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            elif fmt == "json":
                rows = json.loads(text)
            else:
                raise SourceFileError(f"{where}: cannot tell the format of {spec.path}; set format")
    except FileNotFoundError:
        raise SourceFileError(f"{where}: file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error, OSError, ValueError) as exc:
        raise SourceFileError(f"{where}: cannot read {spec.path}: {exc}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SourceFileError(f"{where}: {spec.path} is not a list of records")
    wanted = [spec.question, *spec.options, *(c for c in (spec.answer, spec.id) if c)]
    missing = [c for c in wanted if rows and c not in rows[0]]
    if not rows or missing:
        names = ", ".join(map(repr, missing or [spec.question]))
        raise SourceFileError(f"{where}: {spec.path} has no column {names}")
    questions = [str(r.get(spec.question) or "") for r in rows]
    extra_columns = (*spec.options, *([spec.answer] if spec.answer else []))
    extras = [[str(r.get(c) or "") for c in extra_columns] for r in rows]
    ids = [str(r.get(spec.id)) if spec.id else str(i) for i, r in enumerate(rows)]
    return questions, extras, ids


def _span(item: EvalItem, shared: set[int]) -> str:
    """The longest run of the eval item's tokens covered by shared n-grams, as text."""
    covered = [False] * len(item.tokens)
    n = item.gram_length
    for start, gram in enumerate(item.gram_hashes):
        if gram in shared:
            covered[start : start + n] = [True] * n
    best, run_start, best_range = 0, None, (0, 0)
    for position, flag in enumerate([*covered, False]):
        if flag and run_start is None:
            run_start = position
        elif not flag and run_start is not None:
            if position - run_start > best:
                best, best_range = position - run_start, (run_start, position)
            run_start = None
    tokens = item.tokens[best_range[0] : best_range[1]]
    return "".join(t if _is_han(t) else f" {t} " for t in tokens).replace("  ", " ").strip()


RecordTokens = Callable[[list[int]], TokenHashes]
"""rows of the frame -> their folded token hashes (fold_hashes with FOLD_SEED), for the few records
whose shared n-grams reach the threshold of a short question, whose extras must be found as well."""


def decontaminate(
    frame: pl.DataFrame, items: list[EvalItem], config: DecontaminateConfig, record_tokens: RecordTokens
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, StepStats], dict[str, Any]]:
    """frame: id, source, `_eval_grams`. Returns (kept, removed with `eval_set`, `eval_id`, `overlap`,
    `span`; stats per source; counts per eval set and source)."""
    hits = _best_matches(frame, items, config, record_tokens)
    removed_rows = np.zeros(frame.height, dtype=bool)
    removed_rows[sorted(hits)] = True
    mask = pl.Series(removed_rows)
    removed = frame.filter(mask)
    ordered = sorted(hits)
    removed = removed.with_columns(
        pl.Series("eval_set", [hits[r][0] for r in ordered], dtype=pl.String),
        pl.Series("eval_id", [hits[r][1] for r in ordered], dtype=pl.String),
        pl.Series("overlap", [hits[r][2] for r in ordered], dtype=pl.Float64),
        pl.Series("span", [hits[r][3] for r in ordered], dtype=pl.String),
    )
    counts: dict[str, Any] = {}
    for (eval_set, source), n in Counter(
        zip(removed["eval_set"].to_list(), removed["source"].to_list(), strict=True)
    ).items():
        entry = counts.setdefault(eval_set, {"removed": 0, "by_source": {}})
        entry["removed"] += n
        entry["by_source"][source] = n
    for name in {item.eval_set for item in items}:
        counts.setdefault(name, {"removed": 0, "by_source": {}})
    report = {
        name: counts[name]
        | {
            "eval_items": sum(1 for i in items if i.eval_set == name),
            "too_short": sum(1 for i in items if i.eval_set == name and not i.gram_hashes),
        }
        for name in sorted(counts)
    }
    return frame.filter(~mask), removed, per_source_stats("decontaminate", frame, removed, "contaminated"), report


def _extras_found(
    pairs: pl.DataFrame, items: list[EvalItem], record_tokens: RecordTokens
) -> dict[tuple[int, int], int]:
    """(row, item) -> how many of the item's extras grams the row holds, for the pairs whose item has
    extras: those rows are folded again (few: they already hold the question)."""
    checked = pairs.filter(pl.col("item").is_in([i for i, item in enumerate(items) if item.extra_hashes]))
    if checked.height == 0:
        return {}
    rows = checked["row"].unique().sort().to_list()
    grams_of = Grams(record_tokens(rows))
    wanted = pl.DataFrame(
        [(i, length, gram) for i in checked["item"].unique().to_list() for length, gram in items[i].extra_hashes],
        schema={"item": pl.Int64, "length": pl.Int64, "gram": pl.UInt64},
        orient="row",
    )
    held = []
    for length in wanted["length"].unique().to_list():
        grams, owner = grams_of.of(length, whole_short_texts=False)
        sought = np.unique(wanted.filter(pl.col("length") == length)["gram"].to_numpy())
        position = np.minimum(np.searchsorted(sought, grams), len(sought) - 1)
        hit = sought[position] == grams
        held.append(pl.DataFrame({"row": np.array(rows)[owner[hit]], "length": length, "gram": grams[hit]}))
    found = (
        pl.concat(held)
        .unique()
        .join(wanted, on=["length", "gram"])
        .join(checked.select("row", "item"), on=["row", "item"])
    )
    return {(row, item): n for row, item, n in found.group_by("row", "item").len().iter_rows()}


def _best_matches(
    frame: pl.DataFrame, items: list[EvalItem], config: DecontaminateConfig, record_tokens: RecordTokens
) -> dict[int, tuple[str, str, float, str]]:
    """row -> (eval set, eval id, overlap, span) of the best eval item it holds."""
    if not items or frame.height == 0:
        return {}
    item_grams = pl.DataFrame(
        {
            "item": np.repeat(np.arange(len(items)), [len(i.gram_hashes) for i in items]),
            "gram": np.array([g for i in items for g in i.gram_hashes], dtype=np.uint64),
        },
        schema={"item": pl.Int64, "gram": pl.UInt64},
    ).unique()
    sizes = item_grams.group_by("item").len("size")
    # a question shorter than its language's n must be held whole: all of its (SHORT_QUESTION_GRAM) grams
    required = pl.DataFrame(
        {"item": np.arange(len(items)), "required": [1.0 if i.n < i.language_n else config.threshold for i in items]},
        schema={"item": pl.Int64, "required": pl.Float64},
    )
    record_grams = (
        frame.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), pl.col(EVAL_GRAMS).alias("gram"))
        .explode("gram")
        .drop_nulls()
        .unique()
    )
    pairs = (
        record_grams.join(item_grams, on="gram")
        .group_by("row", "item")
        .agg(pl.col("gram"))
        .join(sizes, on="item")
        .join(required, on="item")
        .with_columns((pl.col("gram").list.len() / pl.col("size")).alias("overlap"))
        .filter(pl.col("overlap") >= pl.col("required"))
        .sort("row", pl.col("overlap"), "item", descending=[False, True, False])
    )
    found_extras = _extras_found(pairs, items, record_tokens)
    best: dict[int, tuple[str, str, float, str]] = {}
    for row, item_position, shared, overlap in pairs.select("row", "item", "gram", "overlap").iter_rows():
        if row in best:
            continue
        item = items[item_position]
        if item.extra_hashes and found_extras.get((row, item_position), 0) / len(item.extra_hashes) < config.threshold:
            continue  # a short question without its options / answer is not the eval item
        best[row] = (item.eval_set, item.item_id, overlap, _span(item, set(shared)))
    return best


class Decontaminate(Filter):
    """`[decontaminate]`: items holding a held-out question or a declared eval set's question."""

    name = "decontaminate"
    removes = Removal(
        "contaminated",
        "decontaminated",
        "decontaminated",
        pl.format(
            "holds {} item {} ({}% of its n-grams): «{}»",
            pl.col("eval_set"),
            pl.col("eval_id"),
            (pl.col("overlap") * 100).round(0).cast(pl.Int64).cast(pl.String),
            pl.col("span"),
        ),
    )
    report_key = "decontamination"

    def __init__(self, recipe: Recipe, config: DecontaminateConfig) -> None:
        self.recipe, self.config = recipe, config

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> Decontaminate | None:
        return None if recipe.decontaminate is None else cls(recipe, recipe.decontaminate)

    def run(self, thin: pl.DataFrame, ctx: StepContext) -> StepResult:
        recipe, config = self.recipe, self.config
        items = heldout_eval_items(ctx.held, config, recipe.protected_terms)
        items += declared_eval_items(config, recipe.sources_dir, recipe.protected_terms)
        if EVAL_GRAMS not in thin.columns:  # a build with no records at all
            thin = thin.with_columns(pl.lit([], dtype=pl.List(pl.UInt64)).alias(EVAL_GRAMS))
        convert = {spec.name: spec.opencc == "none" for spec in recipe.sources}

        def record_tokens(rows: list[int]) -> TokenHashes:
            """Rows of `thin` folded as the workers fold them (t2s only for sources not converted)."""
            from ..ingest import record_text

            chosen = thin.select("source", "_table_row")[rows]
            texts = record_text(ctx.table.select(pl.all().gather(chosen["_table_row"])))
            converting = [i for i, source in enumerate(chosen["source"].to_list()) if convert[source]]
            if converting:
                at = pl.Series(converting, dtype=pl.UInt32)
                converted = prefold(texts.gather(at), convert_traditional=True, protected_terms=recipe.protected_terms)
                texts = texts.scatter(at, converted)
            return fold_hashes(texts, convert_traditional=False, protected_terms=recipe.protected_terms, seed=FOLD_SEED)

        kept, removed, _, report = decontaminate(thin, items, config, record_tokens)
        return StepResult(kept.drop(EVAL_GRAMS), removed.drop(EVAL_GRAMS), report=report)
