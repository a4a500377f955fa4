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
record and eval item, the shared n-grams. Only the few records that reach the threshold are folded
again as text, to check a short question's extras and to write the evidence.
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
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from ..errors import SourceFileError
from .base import StepStats
from .dedup import per_source_stats
from .fold import Grams, TokenHashes, fold_hashes, fold_texts, gram_hashes

EVAL_GRAMS = "_eval_grams"
"""Per record: the hashes of its n-grams that some eval question holds (the GramIndex's hits)."""
FOLD_SEED = 0
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


def _grams(tokens: tuple[str, ...], n: int) -> list[str]:
    if len(tokens) < n:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


@dataclass(frozen=True)
class EvalItem:
    eval_set: str
    item_id: str
    tokens: tuple[str, ...]
    n: int
    extras: tuple[tuple[str, ...], ...] = ()
    """Folded options / answer pieces, required as well when the question is short (see above)."""
    gram_hashes: tuple[int, ...] = ()
    """The hash of the n-gram starting at each token (one gram of all tokens when shorter than n)."""

    @property
    def gram_length(self) -> int:
        return min(self.n, len(self.tokens))

    def grams(self) -> list[str]:
        return _grams(self.tokens, self.n)

    def extra_grams(self) -> list[str]:
        return [gram for piece in self.extras for gram in _grams(piece, self.n)]


@dataclass(frozen=True)
class GramIndex:
    """The eval questions' n-gram hashes by gram length, for the ingest workers to look records up in."""

    by_length: dict[int, np.ndarray]
    """gram length -> sorted unique gram hashes."""

    @classmethod
    def of(cls, items: list[EvalItem]) -> GramIndex:
        grams: dict[int, list[int]] = {}
        for item in items:
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
        found = pl.DataFrame(
            {"owner": np.concatenate(found_owner), "gram": np.concatenate(found_grams)},
            schema={"owner": pl.Int64, "gram": pl.UInt64},
        )
        lists = found.unique().sort("owner", "gram").group_by("owner", maintain_order=True).agg("gram")
        every = pl.DataFrame({"owner": np.arange(texts, dtype=np.int64)})
        joined = every.join(lists, on="owner", how="left", maintain_order="left")["gram"]
        return joined.fill_null(pl.lit([], dtype=pl.List(pl.UInt64))).alias(EVAL_GRAMS)


def _filter_slot(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(byte, bit) of each hash's top _FILTER_BITS bits in a filter bitmap."""
    top = hashes >> np.uint64(64 - _FILTER_BITS)
    return (top >> np.uint64(3)).astype(np.int64), (top & np.uint64(7)).astype(np.uint8)


_FILTER_BITS = 27


def record_grams(texts: pl.Series, index: GramIndex, *, convert_traditional: bool, protected_terms=()) -> pl.Series:
    """`_eval_grams` of texts: folded, hashed and looked up in the index."""
    tokens = fold_hashes(
        texts, convert_traditional=convert_traditional, protected_terms=protected_terms, seed=FOLD_SEED
    )
    return index.hits(Grams(tokens))


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
    """Folded eval questions with their gram hashes; `extras` (options, answer) kept for the short ones."""

    def fold(texts: list[str]) -> list[str]:
        return fold_texts(
            pl.Series(texts, dtype=pl.String), convert_traditional=True, protected_terms=protected_terms
        ).to_list()

    flat = fold([piece for item in extras for piece in item])  # one call for every piece
    pieces, start = [], 0
    for item in extras:
        pieces.append(flat[start : start + len(item)])
        start += len(item)
    folded = fold(questions)
    tokens = fold_hashes(
        pl.Series(questions, dtype=pl.String), convert_traditional=True, protected_terms=protected_terms, seed=FOLD_SEED
    )
    drafts = []
    for position, (item_id, question, extra) in enumerate(zip(ids, folded, pieces, strict=True)):
        words = tuple(question.split())
        if not words:
            continue
        han = sum(1 for t in words if _is_han(t))
        n = config.ngram_zh if han * 2 >= len(words) else config.ngram_en
        short = len(words) < config.min_eval_tokens
        kept_extras = tuple(tuple(p.split()) for p in extra if p.split()) if short else ()
        drafts.append((position, EvalItem(eval_set, item_id, words, n, kept_extras)))
    return [_with_gram_hashes(item, tokens, position) for position, item in drafts]


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


def _with_gram_hashes(item: EvalItem, tokens: TokenHashes, position: int) -> EvalItem:
    start, end = tokens.offsets[position], tokens.offsets[position + 1]
    own = TokenHashes(tokens.hashes[start:end], np.array([0, end - start], dtype=np.int64))
    grams, _ = gram_hashes(own, item.n)
    return EvalItem(item.eval_set, item.item_id, item.tokens, item.n, item.extras, tuple(int(g) for g in grams))


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


FoldRows = Callable[[list[int]], list[str]]
"""rows of the frame -> their folded texts (for the few records that reach the threshold)."""


def decontaminate(
    frame: pl.DataFrame, items: list[EvalItem], config: DecontaminateConfig, fold_rows: FoldRows
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, StepStats], dict[str, Any]]:
    """frame: id, source, `_eval_grams`. Returns (kept, removed with `eval_set`, `eval_id`, `overlap`,
    `span`; stats per source; counts per eval set and source)."""
    hits = _best_matches(frame, items, config, fold_rows)
    mask = pl.Series([row in hits for row in range(frame.height)], dtype=pl.Boolean)
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
        name: counts[name] | {"eval_items": sum(1 for i in items if i.eval_set == name)} for name in sorted(counts)
    }
    return frame.filter(~mask), removed, per_source_stats("decontaminate", frame, removed, "contaminated"), report


def _best_matches(
    frame: pl.DataFrame, items: list[EvalItem], config: DecontaminateConfig, fold_rows: FoldRows
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
        .with_columns((pl.col("gram").list.len() / pl.col("size")).alias("overlap"))
        .filter(pl.col("overlap") >= config.threshold)
        .sort("row", pl.col("overlap"), "item", descending=[False, True, False])
    )
    needs_extras = sorted({row for row, item in zip(pairs["row"], pairs["item"], strict=True) if items[item].extras})
    folded = dict(zip(needs_extras, fold_rows(needs_extras), strict=True))
    best: dict[int, tuple[str, str, float, str]] = {}
    for row, item_position, shared, overlap in pairs.select("row", "item", "gram", "overlap").iter_rows():
        if row in best:
            continue
        item = items[item_position]
        extras = item.extra_grams()
        if extras:
            text = f" {folded[row]} "
            if sum(1 for g in extras if f" {g} " in text) / len(extras) < config.threshold:
                continue  # a short question without its options / answer is not the eval item
        best[row] = (item.eval_set, item.item_id, overlap, _span(item, set(shared)))
    return best
