"""Template expansion: one structured item -> K instruction variants (Astro-QA, after the split).

Templates are data (corpus/templates/astro_qa.toml). A variant is one choice of persona, role,
framing, input wrapper and output prefix; the K choices of an item come from hash(seed, item id, k),
distinct from one another, so expansion does not depend on batching. Variants keep their item's
group (and so its split) and get the id `<item id>:t<k>` and a `template_id` naming the parts.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from ..errors import RecipeError
from ..hashing import seeded_u64
from ..resources import load_schema
from .base import StepContext, StepResult, StepStats
from .validate import RecordValidator

if TYPE_CHECKING:
    from ..recipe import Recipe, SourceSpec

PARTS = ("personas", "roles", "framings", "inputs", "outputs")
TYPE_GROUPS = {
    "single_choice_4": "choice",
    "single_choice_5": "choice",
    "multi_select": "multi_select",
    "judgment": "judgment",
    "subjective": "subjective",
}


@dataclass(frozen=True)
class ExpandConfig:
    templates: Path
    variants: dict[str, int]
    """Variants per question type; a type not listed keeps its one plain triple."""


@dataclass(frozen=True)
class LanguageTemplates:
    personas: tuple[str, ...]
    roles: tuple[str, ...]
    framings: dict[str, tuple[str, ...]]
    inputs: dict[str, tuple[str, ...]]
    outputs: dict[str, tuple[str, ...]]
    type_names: dict[str, str]
    subfields: dict[str, str]
    general_subfield: str
    explanation_label: str
    option_separator: str
    verdicts: dict[str, str]

    def choices(self, group: str) -> tuple[tuple[str, ...], ...]:
        """The five part lists for one type group, in PARTS order."""
        return (self.personas, self.roles, self.framings[group], self.inputs[group], self.outputs[group])


def load_templates(path: Path) -> dict[str, LanguageTemplates]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"templates file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RecipeError(f"templates {path}: invalid TOML: {exc}") from None
    languages = {}
    for lang, table in document.items():
        try:
            by_group = {name: {g: tuple(table[name][g]) for g in set(TYPE_GROUPS.values())} for name in PARTS[2:]}
            languages[lang] = LanguageTemplates(
                personas=tuple(table["personas"]),
                roles=tuple(table["roles"]),
                framings=by_group["framings"],
                inputs=by_group["inputs"],
                outputs=by_group["outputs"],
                type_names=dict(table["type_names"]),
                subfields=dict(table.get("subfields", {})),
                general_subfield=table["general_subfield"],
                explanation_label=table["explanation_label"],
                option_separator=table["option_separator"],
                verdicts=dict(table["verdicts"]),
            )
        except (KeyError, TypeError) as exc:
            raise RecipeError(f"templates {path}: [{lang}] lacks {exc}") from None
        parts = languages[lang]
        empty = [f"{lang}.{name}" for name in ("personas", "roles") if not getattr(parts, name)]
        empty += [
            f"{lang}.{name}.{group}" for name in PARTS[2:] for group, items in getattr(parts, name).items() if not items
        ]
        if empty:
            raise RecipeError(f"templates {path}: {', '.join(empty)} must not be empty")
    return languages


def render(item: dict[str, str], combination: tuple[int, ...], templates: LanguageTemplates) -> tuple[str, str, str]:
    """One variant of a structured item (the `_x_*` fields, without the prefix) as a triple."""
    group = TYPE_GROUPS[item["type"]]
    persona, role, framing, wrapper, prefix = (
        part[i] for part, i in zip(templates.choices(group), combination, strict=True)
    )
    subfield = templates.subfields.get(item["subfield"], item["subfield"]) or templates.general_subfield
    type_name = templates.type_names.get(item["type_label"]) or templates.type_names[item["type"]]
    framing = framing.format(subfield=subfield, type=type_name)
    instruction = " ".join(part for part in (persona, role + framing) if part)
    letters = [c for c in "ABCDE" if item.get(f"option_{c}")]
    options = "\n".join(f"{c}. {item[f'option_{c}']}" for c in letters)
    input_ = wrapper.format(question=item["question"], options=options)
    if group == "subjective":
        body = item["answer"]
    elif group == "judgment":
        body = templates.verdicts[item["answer"]]
    else:
        body = templates.option_separator.join(f"{c}. {item[f'option_{c}']}" for c in item["answer"])
    if item.get("explanation"):
        body = f"{body}\n{templates.explanation_label}{item['explanation']}"
    return instruction, input_, prefix + body


def choose_combinations(seed: int, item_id: str, sizes: tuple[int, ...], k: int) -> list[tuple[int, ...]]:
    """k distinct part choices for one item, each drawn from hash(seed, item id, variant, attempt)."""
    space = 1
    for size in sizes:
        space *= size
    chosen: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    attempt = 0
    while len(chosen) < min(k, space):
        draw = seeded_u64(seed, f"template:{len(chosen)}:{attempt}", item_id)
        combination = []
        for size in sizes:
            draw, index = divmod(draw, size)
            combination.append(index)
        key = tuple(combination)
        attempt += 1
        if key in seen and attempt < 64:
            continue
        if key in seen:  # a crowded space: take the next free combination in enumeration order
            key = next(c for c in _enumerate(sizes) if c not in seen)
        seen.add(key)
        chosen.append(key)
        attempt = 0
    return chosen


def _enumerate(sizes: tuple[int, ...]) -> Any:
    if not sizes:
        yield ()
        return
    for head in range(sizes[0]):
        for tail in _enumerate(sizes[1:]):
            yield (head, *tail)


def template_id(combination: tuple[int, ...]) -> str:
    return ".".join(f"{part[0]}{index}" for part, index in zip(PARTS, combination, strict=True))


def expand(frame: pl.DataFrame, config: ExpandConfig, templates: dict[str, LanguageTemplates], seed: int,
           source: str) -> tuple[pl.DataFrame, StepStats]:  # fmt: skip
    """Replace each item of the listed types by its variants; other records pass unchanged."""
    stats = StepStats("expand", source, total=frame.height, kept=frame.height)
    extra = [c for c in frame.columns if c.startswith("_x_")]
    rows: list[dict[str, Any]] = []
    for record in frame.iter_rows(named=True):
        item = {c[3:]: record[c] for c in extra}
        count = config.variants.get(item.get("type", ""), 0)
        if not count:
            rows.append(record)
            continue
        lang_templates = templates.get(record["lang"])
        if lang_templates is None:
            raise RecipeError(f"templates {config.templates}: no [{record['lang']}] table for {record['id']}")
        sizes = tuple(len(part) for part in lang_templates.choices(TYPE_GROUPS[item["type"]]))
        for k, combination in enumerate(choose_combinations(seed, record["id"], sizes, count)):
            instruction, input_, output = render(item, combination, lang_templates)
            variant_id = f"{record['id']}:t{k}"
            variant = {"id": variant_id, "instruction": instruction, "input": input_, "output": output,
                       "template_id": template_id(combination)}  # fmt: skip
            if "_order" in record:  # variants of one item must not sit together after the shuffle
                variant["_order"] = seeded_u64(seed, "order", variant_id)
            rows.append(record | variant)
    stats.notes["records"] = len(rows)
    return pl.DataFrame(rows, schema=frame.schema), stats


class Expand:
    """Each source's `templates`: its items replaced by their variants (after the split).

    The variants' columns are appended to the record table, and thin rows pointing at them replace
    the items'. A source without templates passes its records through."""

    name = "expand"
    removes = None
    report_key = None

    def __init__(self, sources: tuple[SourceSpec, ...], seed: int) -> None:
        self.sources, self.seed = sources, seed

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> Expand:
        return cls(recipe.sources, recipe.seed)

    def run(self, thin: pl.DataFrame, ctx: StepContext) -> StepResult:
        expanding = [spec for spec in self.sources if spec.expand is not None]
        records = dict(thin.group_by("source").len().iter_rows())
        stats = {}
        for spec in self.sources:
            if spec.expand is None:  # passes its records through
                n = records.get(spec.name, 0)
                stats[spec.name] = StepStats("expand", spec.name, n, n, notes=Counter(records=n))
        if not expanding:  # no copy of the rows (a filter would make one, ~150 MB at 1M records)
            return StepResult(thin, stats=stats)
        table = ctx.table
        validator = RecordValidator(load_schema("record.schema.json"))
        parts = [thin.filter(~pl.col("source").is_in([spec.name for spec in expanding]))]
        for spec in expanding:
            part = thin.filter(pl.col("source") == spec.name)
            items = table.select(pl.all().gather(part["_table_row"])).with_columns(part["split"])
            variants, stats[spec.name] = expand(
                items, spec.expand, load_templates(spec.expand.templates), self.seed, spec.name
            )
            _, failures, _ = validator(variants, spec.name)
            if failures:  # templates are ours: a variant that fails the schema is a template bug
                record, rule, message = failures[0]
                raise RecipeError(
                    f"templates {spec.expand.templates}: variant {record['id']} is invalid ({rule}: {message})"
                )
            rows = pl.int_range(pl.len(), dtype=pl.UInt32) + table.height
            variants = variants.with_columns(rows.alias("_table_row"))
            table = pl.concat([table, variants.select(table.columns)])
            parts.append(variants.select(thin.columns))
        return StepResult(pl.concat(parts), stats=stats, table=table)

    @classmethod
    def count_columns(cls) -> tuple[str, ...]:
        return ()

    @classmethod
    def source_counts(cls, stats: StepStats) -> dict[str, Any]:
        return {}
