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
A prefilter finds the items holding any eval n-gram at all (Aho-Corasick over the folded text, in
polars); only those are scored.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from ..errors import SourceFileError
from .base import StepStats
from .dedup import per_source_stats
from .fold import fold_texts


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

    def grams(self) -> list[str]:
        return _grams(self.tokens, self.n)

    def extra_grams(self) -> list[str]:
        return [gram for piece in self.extras for gram in _grams(piece, self.n)]


@dataclass
class _Index:
    """n-gram -> eval items holding it; each item's n-gram count."""

    items: list[EvalItem]
    by_gram: dict[str, set[int]] = field(default_factory=dict)
    sizes: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, items: list[EvalItem]) -> _Index:
        index = cls(items)
        for position, item in enumerate(items):
            grams = set(item.grams())
            index.sizes.append(len(grams))
            for gram in grams:
                index.by_gram.setdefault(gram, set()).add(position)
        return index


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
    """Folded eval questions; `extras` (options, answer) are kept for the short ones."""

    def fold(texts: list[str]) -> list[str]:
        return fold_texts(
            pl.Series(texts, dtype=pl.String), convert_traditional=True, protected_terms=protected_terms
        ).to_list()

    flat = fold([piece for item in extras for piece in item])  # one call for every piece
    pieces, start = [], 0
    for item in extras:
        pieces.append(flat[start : start + len(item)])
        start += len(item)
    items = []
    for item_id, question, extra in zip(ids, fold(questions), pieces, strict=True):
        tokens = tuple(question.split())
        if not tokens:
            continue
        han = sum(1 for t in tokens if _is_han(t))
        n = config.ngram_zh if han * 2 >= len(tokens) else config.ngram_en
        short = len(tokens) < config.min_eval_tokens
        kept_extras = tuple(tuple(p.split()) for p in extra if p.split()) if short else ()
        items.append(EvalItem(eval_set, item_id, tokens, n, kept_extras))
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


def _span(item: EvalItem, shared: set[str]) -> str:
    """The longest run of the eval item's tokens covered by shared n-grams, as text."""
    covered = [False] * len(item.tokens)
    n = min(item.n, len(item.tokens))
    for start in range(len(item.tokens) - n + 1):
        if " ".join(item.tokens[start : start + n]) in shared:
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


def decontaminate(
    frame: pl.DataFrame, folded: pl.Series, items: list[EvalItem], config: DecontaminateConfig
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, StepStats], dict[str, Any]]:
    """frame: id, source, ...; folded: each row's folded text. Returns (kept, removed with `eval_set`,
    `eval_id`, `overlap`, `span`; stats per source; counts per eval set and source)."""
    index = _Index.build(items)
    padded = " " + folded + " "
    patterns = [f" {gram} " for gram in index.by_gram]
    candidates = padded.str.contains_any(patterns) if patterns else pl.Series([False] * len(folded))
    hits: dict[int, tuple[str, str, float, str]] = {}
    # Gram lengths to look for: each item's n, and the whole length of questions shorter than their n.
    lengths = {min(item.n, len(item.tokens)) for item in items}
    for row in candidates.arg_true().to_list():
        tokens = folded[row].split()
        grams = set()
        for n in lengths:
            grams.update(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        shared_by: dict[int, set[str]] = {}
        for gram in grams:
            for position in index.by_gram.get(gram, ()):
                shared_by.setdefault(position, set()).add(gram)
        text = padded[row]
        scored = []
        for position, shared in shared_by.items():
            overlap = len(shared) / index.sizes[position]
            extras = items[position].extra_grams()
            if extras and sum(1 for g in extras if f" {g} " in text) / len(extras) < config.threshold:
                continue  # a short question without its options / answer is not the eval item
            scored.append((overlap, -position, shared))
        if not scored:
            continue
        overlap, negative_position, shared = max(scored, key=lambda s: (s[0], s[1]))
        if overlap >= config.threshold:
            item = items[-negative_position]
            hits[row] = (item.eval_set, item.item_id, overlap, _span(item, shared))
    mask = pl.Series([row in hits for row in range(frame.height)])
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
