"""Decontamination: remove training items that contain evaluation questions.

Eval items (similarity/eval_index.py) come from the Astro-QA held-out split and from eval sets
declared in the recipe (CSV such as `Question,A,B,C,D,Answer`, JSONL, JSON, Parquet, through a
column mapping). Texts are folded (similarity/fold.py: NFKC, simplified Chinese, punctuation and
whitespace folded), so re-typed punctuation, spacing or traditional characters do not hide a
question, and neither does a template around it.

An item is contaminated by an eval question when its text holds at least `threshold` of the
question's n-grams (8 Han characters, or 8 words). A question shorter than `min_eval_tokens` tokens
would match any text that mentions it (a two-character term, a generic stem such as 以下说法不正确的是),
so the item must also hold `threshold` of the question's extras: its options and answer, each piece
checked on its own (a prompt writes options with labels between them, `A. 木星 B. 土星`).

The work is on hashes. The ingest workers hash each record's n-grams and keep only those found in a
`GramIndex` of the eval questions' n-grams (`_eval_grams`, usually empty); this step counts, per
record and eval item, the shared n-grams. The few records that reach the threshold of a short
question are folded again (similarity/records.py, as the workers fold them), to hash the n-grams its
extras need; the evidence (the overlapping span) is written from the eval question's own tokens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..similarity.eval_index import EVAL_GRAMS, EvalItem, heldout_items, is_han
from ..similarity.fold import Grams, TokenHashes
from ..similarity.records import fold_records
from .base import Filter, Removal, StepContext, StepResult, StepStats, per_source_stats

if TYPE_CHECKING:
    from ..recipe import Recipe


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
    return "".join(t if is_han(t) else f" {t} " for t in tokens).replace("  ", " ").strip()


RecordTokens = Callable[[list[int]], TokenHashes]
"""rows of the frame -> their folded token hashes (similarity.records.fold_records), for the few records
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
        assert ctx.eval_items is not None, "the ingest's eval_index stage builds the eval items"
        # Of the hold-out candidates' items, those held out: a candidate left in training is never
        # compared with its own question.
        items = heldout_items(ctx.eval_items, set(ctx.held["id"].to_list()))
        if EVAL_GRAMS not in thin.columns:  # a build with no records at all
            thin = thin.with_columns(pl.lit([], dtype=pl.List(pl.UInt64)).alias(EVAL_GRAMS))
        opencc = {spec.name: spec.opencc for spec in recipe.sources}

        def record_tokens(rows: list[int]) -> TokenHashes:
            """Rows of `thin` folded as the workers fold them."""
            chosen = thin.select("_table_row")[rows]
            return fold_records(ctx.table.select(pl.all().gather(chosen["_table_row"])), opencc, recipe.protected_terms)

        kept, removed, _, report = decontaminate(thin, items, config, record_tokens)
        return StepResult(kept.drop(EVAL_GRAMS), removed.drop(EVAL_GRAMS), report=report)
