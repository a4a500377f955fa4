"""The numbers report.html shows, as plain values: per-category mix, per-source counts, rejection
rules, duplicate rates, the breakdown of structured items, and the train records' lengths.

Kept apart from the charts and the HTML so each table or series can be computed and tested from a
manifest alone (a dict, no corpus on disk), and so the page and the charts draw the same numbers.
Nothing here formats text or draws; the one thing read from disk is the train shards (and a
tokenizer), for the length distributions, which the manifest does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ...errors import CorpusDirError, StellarDataError
from ...pipeline import SUMMARY_COLUMNS, summary_row
from ...steps.quality import QUALITY_STEPS

if TYPE_CHECKING:
    from tokenizers import Tokenizer

_LABELS = {"train": "train items", "validation": "validation items"}
SOURCE_COUNTS: tuple[tuple[str, str], ...] = tuple(
    (column, _LABELS.get(column, column.replace("_", " ")))
    for column in SUMMARY_COLUMNS
    if column not in ("valid", "kept")  # each is a sum of its neighbours
)
"""The per-source counts the report's source table shows, as (summary column, label), in pipeline
order: derived from the step list (pipeline.SUMMARY_COLUMNS); a count that is a table of rules
(quarantined, excluded) is shown as its sum."""

TOKEN_CUTOFFS = (256, 512)
"""Training cutoffs worth knowing about: the share of records longer than each is reported."""
TOKENIZE_BATCH = 4096
TRAIN_COLUMNS = ("category", "instruction", "input", "output")


@dataclass(frozen=True)
class CategoryMix:
    category: str
    before: int
    """Train records before mixing (after template expansion)."""
    after: int
    """Train records written."""
    plan: dict[str, Any] | None
    """The manifest's `mix.categories` entry, None without a [mix] section."""


@dataclass(frozen=True)
class SourceRow:
    name: str
    category: str
    status: str
    counts: dict[str, int]
    """Per SOURCE_COUNTS key, its value."""
    reasons: dict[str, int]
    """Items rejected per rule (quarantined, excluded and filtered), by rule name."""
    quarantine_ratio: float | None
    """Quarantined items over items read; None when nothing was read."""


@dataclass(frozen=True)
class RuleCount:
    rule: str
    quarantined: int
    deliberate: int
    """Excluded on purpose (no answer key, duplicates, ...): not counted toward the quarantine limit."""


@dataclass(frozen=True)
class Breakdown:
    """One source's structured items (those with a type and subfield), from the manifest's `breakdown`."""

    source: str
    records: dict[tuple[str, str, str], int]
    """(type, language, split): records."""
    held_out: dict[tuple[str, str, str], int]
    """(type, language, "held out"): held-out items."""
    columns: list[tuple[str, str]]
    """(split or "held out", language), in split order: the columns of `rows`."""
    rows: list[tuple[str, str, list[int]]]
    """(type, subfield, one count per column), sorted."""


@dataclass(frozen=True)
class Lengths:
    """Per category (sorted): the length of instruction+input (`prompt`) and of output, one value per train record."""

    unit: str
    prompt: dict[str, np.ndarray]
    output: dict[str, np.ndarray]


@dataclass(frozen=True)
class LengthRow:
    category: str
    records: int
    stats: list[int]
    """Median, p90, p99 and max of instruction+input, then the same of output."""
    longer: list[float]
    """Per cutoff asked for, the share (0-1) of records whose two parts together are longer."""


# --- from the manifest -------------------------------------------------------------------------


def category_mix(manifest: dict[str, Any]) -> list[CategoryMix]:
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    for source in manifest["sources"].values():
        category = source["category"]
        before[category] = before.get(category, 0) + source["counts"]["mix"]["before"]
        after[category] = after.get(category, 0) + source["counts"]["records"]["train"]
    plans = (manifest.get("mix") or {}).get("categories", {})
    return [
        CategoryMix(category, before.get(category, 0), after.get(category, 0), plans.get(category))
        for category in sorted(set(before) | set(plans))
    ]


def source_rows(manifest: dict[str, Any]) -> list[SourceRow]:
    """One row per source, in recipe order."""
    rows = []
    for name, source in manifest["sources"].items():
        c = source["counts"]
        summary = summary_row(c)
        counts = {key: summary[key] for key, _ in SOURCE_COUNTS}
        quarantined = summary["quarantined"]
        reasons = dict(sorted({**c["quarantined"], **c["excluded"], **c["filtered"]}.items()))
        ratio = quarantined / c["read"] if c["read"] else None
        rows.append(SourceRow(name, source["category"], source["status"], counts, reasons, ratio))
    return rows


def quarantine_rules(manifest: dict[str, Any]) -> list[RuleCount]:
    """quarantine.by_rule split by kind; what the sources do not count as quarantined was deliberate."""
    quarantined: dict[str, int] = {}
    for source in manifest["sources"].values():
        for rule, n in source["counts"]["quarantined"].items():
            quarantined[rule] = quarantined.get(rule, 0) + n
    rows = [
        RuleCount(rule, quarantined.get(rule, 0), total - quarantined.get(rule, 0))
        for rule, total in manifest["quarantine"]["by_rule"].items()
    ]
    return sorted(rows, key=lambda r: (-(r.quarantined + r.deliberate), r.rule))


def duplicate_counts(manifest: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(source, exact duplicates dropped, valid items) per source that was built, in recipe order."""
    return [
        (name, s["counts"]["duplicates"], s["counts"]["valid"])
        for name, s in manifest["sources"].items()
        if s["status"] == "ok"
    ]


@dataclass(frozen=True)
class QualityCounts:
    """One quality step on one source, from the manifest's `steps` rows."""

    source: str
    judged: int
    removed: dict[str, int]
    """Items refused, per rule."""
    notes: dict[str, int]
    """Counts that are not removals (e.g. `repaired`)."""


_STEP_ROW_KEYS = ("step", "source", "total", "kept")


def quality_counts(manifest: dict[str, Any]) -> dict[str, list[QualityCounts]]:
    """Per quality step the recipe turns on (the manifest's `filters`, chain order): its counts per source."""
    on = manifest.get("filters") or {}
    found: dict[str, list[QualityCounts]] = {}
    for step in QUALITY_STEPS:
        if step not in on:
            continue
        rows = [row for row in manifest["steps"] if row["step"] == step]
        found[step] = [
            QualityCounts(
                row["source"],
                row["total"],
                {k.removeprefix("dropped_"): v for k, v in row.items() if k.startswith("dropped_")},
                {k: v for k, v in row.items() if k not in _STEP_ROW_KEYS and not k.startswith("dropped_")},
            )
            for row in rows
        ]
    return found


_SPLIT_ORDER = {"train": 0, "validation": 1, "held out": 2}


def breakdowns(manifest: dict[str, Any]) -> list[Breakdown]:
    """Per source in the manifest's `breakdown` (sorted by name); empty when no source has structured items."""
    result = []
    for source, info in sorted((manifest.get("breakdown") or {}).items()):
        records: dict[tuple[str, str, str], int] = {}
        for row in info["records"]:
            key = (row["type"], row["lang"], row["split"])
            records[key] = records.get(key, 0) + row["len"]
        held: dict[tuple[str, str, str], int] = {}
        for row in info["held_out"]:
            key = (row["type"], row["lang"], "held out")
            held[key] = held.get(key, 0) + row["len"]
        result.append(Breakdown(source, records, held, *_breakdown_table(info)))
    return result


def _breakdown_table(info: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str, list[int]]]]:
    """One row per (type, subfield): records per split and language, held-out items per language."""
    rows = [(r["type"], r["subfield"], r["split"], r["lang"], r["len"]) for r in info["records"]]
    rows += [(r["type"], r["subfield"], "held out", r["lang"], r["len"]) for r in info["held_out"]]
    columns = sorted({(split, lang) for _, _, split, lang, _ in rows}, key=lambda c: (_SPLIT_ORDER.get(c[0], 9), c))
    cells: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
    for type_, subfield, split, lang, n in rows:
        cell = cells.setdefault((type_, subfield), {})
        cell[(split, lang)] = cell.get((split, lang), 0) + n
    body = [
        (type_, subfield, [cell.get(column, 0) for column in columns])
        for (type_, subfield), cell in sorted(cells.items())
    ]
    return columns, body


# --- from the train shards ---------------------------------------------------------------------


def read_train(corpus_dir: Path, manifest: dict[str, Any]) -> pl.DataFrame:
    """category, instruction, input and output of each train record."""
    paths = [corpus_dir / shard for shard in manifest["splits"].get("train", {}).get("shards", [])]
    for path in paths:
        if not path.is_file():
            raise CorpusDirError(f"{corpus_dir}: train shard {path.relative_to(corpus_dir).as_posix()} is missing")
    if not paths:
        return pl.DataFrame(schema=dict.fromkeys(TRAIN_COLUMNS, pl.String))
    return pl.read_parquet([str(p) for p in paths], columns=list(TRAIN_COLUMNS))


# The prompt is the instruction, and the input after a newline if any.
_PROMPT = (
    pl.when(pl.col("input") == "")
    .then(pl.col("instruction"))
    .otherwise(pl.concat_str("instruction", pl.lit("\n"), "input"))
    .alias("prompt")
)


def char_counts(records: pl.DataFrame) -> pl.DataFrame:
    """category, and the characters of the prompt and of the output of each record; counted from
    the columns, since building the prompt texts would copy them."""
    input_chars = pl.when(pl.col("input") == "").then(0).otherwise(pl.col("input").str.len_chars() + 1)
    return records.select(
        "category",
        (pl.col("instruction").str.len_chars() + input_chars).alias("prompt"),
        pl.col("output").str.len_chars(),
    )


def token_lengths(train: pl.DataFrame, tokenizer: Tokenizer) -> Lengths:
    prompts = train.select(_PROMPT).to_series()
    counted = train.select(
        "category", _count_tokens(tokenizer, prompts).alias("prompt"), _count_tokens(tokenizer, train["output"])
    )
    return by_category("tokens", counted)


def _count_tokens(tokenizer: Tokenizer, texts: pl.Series) -> pl.Series:
    """Tokens per text; each distinct text is encoded once (copies and template variants repeat texts)."""
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # _fast (no offsets) since 0.20
    unique = texts.unique(maintain_order=True)
    counts: list[int] = []
    for start in range(0, len(unique), TOKENIZE_BATCH):
        batch = unique.slice(start, TOKENIZE_BATCH).to_list()
        counts += [len(e.ids) for e in encode(batch, add_special_tokens=False)]
    return texts.replace_strict(unique, pl.Series(counts, dtype=pl.Int64), return_dtype=pl.Int64)


def by_category(unit: str, counted: pl.DataFrame) -> Lengths:
    """Lengths from a frame of category, prompt and output lengths (as `char_counts` makes)."""
    prompt, output = {}, {}
    for (category,), part in sorted(counted.partition_by("category", as_dict=True).items()):
        prompt[category] = part["prompt"].to_numpy()
        output[category] = part["output"].to_numpy()
    return Lengths(unit, prompt, output)


def load_tokenizer(path: Path) -> Tokenizer:
    """A `tokenizers` tokenizer from a tokenizer.json file or a folder holding one."""
    from tokenizers import Tokenizer

    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        where = "no tokenizer.json in the folder" if path.is_dir() else "no such file"
        raise StellarDataError(f"tokenizer {path}: {where}")
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises a bare Exception for unreadable or malformed JSON
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StellarDataError(f"tokenizer {path}: not a tokenizers JSON file ({reason})") from None


def percentile(values: np.ndarray, q: float) -> int:
    return int(np.percentile(values, q)) if len(values) else 0


def length_rows(lengths: Lengths, cutoffs: tuple[int, ...] = ()) -> list[LengthRow]:
    rows = []
    for category, prompt in lengths.prompt.items():
        output = lengths.output[category]
        stats = [
            stat
            for values in (prompt, output)
            for stat in (percentile(values, 50), percentile(values, 90), percentile(values, 99), int(values.max()))
        ]
        total = prompt + output
        rows.append(LengthRow(category, len(prompt), stats, [float(np.mean(total > cutoff)) for cutoff in cutoffs]))
    return rows
