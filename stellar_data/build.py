"""Orchestration: plan files, ingest them in parallel, dedup and split globally, write atomically.

Everything that needs a global view (dedup, split, order) works on thin columns; the full text is
read once more only to write the outputs. The corpus is built in a staging directory beside the
target and renamed into place, so a failed build leaves the previous corpus untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import polars as pl

from .corpus import Corpus
from .errors import CorpusDirError, QuarantineLimitError, RecipeError, SourceFileError
from .ingest import IngestResult, IngestTask, ingest
from .recipe import Recipe, SourceSpec, load_recipe
from .record import QUARANTINE_SCHEMA, RECORD_FIELDS, RECORD_SCHEMA
from .resources import load_schema
from .sources import SourceFile
from .steps.base import StepStats
from .steps.dedup import RANK_COLUMNS, exact_dedup
from .steps.expand import expand, load_templates
from .steps.holdout import hold_out
from .steps.split import assign_splits
from .steps.validate import RecordValidator
from .writers.card import render_card
from .writers.heldout import HELDOUT_DIR, write_heldout
from .writers.manifest import FORMAT_VERSION, MANIFEST_NAME, file_entries, write_manifest
from .writers.parquet import write_shards
from .writers.quarantine import QUARANTINE_NAME, write_quarantine
from .writers.train_json import write_train_json

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called as work advances (the CLI draws bars with it)."""

SPLITS = ("train", "validation")
STEPS = ("read", "normalize", "validate", "dedup", "holdout", "split", "expand")


@dataclass(frozen=True)
class PlannedFile:
    spec: SourceSpec
    file: SourceFile
    index: int


@dataclass(frozen=True)
class BuildPlan:
    recipe: Recipe
    files: tuple[PlannedFile, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    """Optional sources whose files are absent: name -> warning."""


def plan_build(recipe: Recipe) -> BuildPlan:
    """Resolve every source's paths (globs allowed) against the sources directory."""
    root = recipe.sources_dir
    planned: list[PlannedFile] = []
    skipped: dict[str, str] = {}
    for spec in recipe.sources:
        matches: list[Path] = []
        absent: list[str] = []
        for pattern in spec.paths:
            if any(ch in pattern for ch in "*?["):
                found = sorted(p for p in root.glob(pattern) if p.exists())
                matches += found
                if not found:
                    absent.append(pattern)
            elif (root / pattern).exists():  # a file, or a folder for adapters that read one
                matches.append(root / pattern)
            else:
                absent.append(pattern)
        if absent:
            where = ", ".join(absent)
            if spec.optional:
                skipped[spec.name] = f"optional source {spec.name!r} skipped: not found in {root}: {where}"
                continue
            raise SourceFileError(f"source {spec.name!r}: file not found in {root}: {where}")
        for index, path in enumerate(matches):
            planned.append(PlannedFile(spec, SourceFile(path, path.relative_to(root).as_posix()), index))
    return BuildPlan(recipe, tuple(planned), skipped)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def run_ingest(tasks: list[IngestTask], workers: int, progress: Progress | None = None) -> list[IngestResult]:
    """Ingest every file; results in task order whatever the completion order."""
    done = 0
    if progress:
        progress("read", 0, len(tasks))
    if workers <= 1 or len(tasks) <= 1:
        results = []
        for task in tasks:
            results.append(ingest(task))
            done += 1
            if progress:
                progress("read", done, len(tasks))
        return results
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(ingest, task) for task in tasks]
        for future in futures:
            future.result()
            done += 1
            if progress:
                progress("read", done, len(tasks))
        return [f.result() for f in futures]


def merged_stats(results: list[IngestResult]) -> dict[tuple[str, str], StepStats]:
    merged: dict[tuple[str, str], StepStats] = {}
    for result in results:
        for stats in result.stats:
            key = (stats.step, stats.source)
            if key in merged:
                merged[key].merge(stats)
            else:
                merged[key] = StepStats(
                    stats.step, stats.source, stats.total, stats.kept, Counter(stats.dropped), Counter(stats.notes)
                )
    return merged


def rejection_counts(quarantine: pl.DataFrame, source: str, deliberate: bool) -> dict[str, int]:
    rows = quarantine.filter((pl.col("source") == source) & (pl.col("deliberate") == deliberate))
    return dict(sorted(rows.group_by("rule").len().iter_rows()))


def check_quarantine_limits(recipe: Recipe, stats: dict[tuple[str, str], StepStats], quarantine: pl.DataFrame) -> None:
    for spec in recipe.sources:
        read = stats.get(("read", spec.name))
        if read is None or read.total == 0:
            continue
        counts = rejection_counts(quarantine, spec.name, deliberate=False)
        ratio = sum(counts.values()) / read.total
        limit = recipe.quarantine_limit(spec)
        if ratio > limit:
            reasons = ", ".join(f"{rule} {n}" for rule, n in sorted(counts.items(), key=lambda kv: -kv[1]))
            raise QuarantineLimitError(
                f"source {spec.name!r}: {sum(counts.values())} of {read.total} items quarantined ({ratio:.1%}) "
                f"exceeds max_quarantine_ratio {limit:.1%} ({reasons}); see `stellar-data check` for details"
            )


def _empty_records() -> pl.DataFrame:
    frame = pl.from_arrow(RECORD_SCHEMA.empty_table())
    return frame.with_columns(
        pl.lit(None, dtype=pl.Binary).alias("_hash"),
        pl.lit(None, dtype=pl.Float64).alias("_split_u"),
        pl.lit(None, dtype=pl.UInt64).alias("_order"),
        *(pl.lit(None, dtype=pl.Int64).alias(c) for c in ("_rank", "_source_order", "_file_index")),
    ).clear()


def _duplicate_quarantine(duplicates: pl.DataFrame) -> pl.DataFrame:
    rows = duplicates.select(
        "source",
        pl.col("source_file").alias("file"),
        pl.format("record {}", pl.col("source_row")).alias("location"),
        pl.col("source_row").alias("row"),
        pl.lit("duplicate").alias("rule"),
        pl.format("same normalized content as {}", pl.col("kept_id")).alias("message"),
        pl.lit(True).alias("deliberate"),
        "id",
        pl.lit(None, dtype=pl.String).alias("raw"),
    )
    return pl.from_arrow(rows.to_arrow().cast(QUARANTINE_SCHEMA))


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("stellar-speak", "polars", "pyarrow", "opencc", "jsonschema", "openpyxl"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _staging_dir(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    return staging


def _replace_dir(staging: Path, out: Path) -> None:
    """Move the finished corpus into place; the previous one is removed only after that."""
    if out.exists():
        if not (out / MANIFEST_NAME).is_file() and any(out.iterdir()):
            raise CorpusDirError(f"{out}: exists and is not a stellar-data corpus; refusing to replace it")
        previous = out.parent / f".{out.name}.previous-{uuid.uuid4().hex[:8]}"
        out.rename(previous)
        staging.rename(out)
        shutil.rmtree(previous)
    else:
        staging.rename(out)


def build(
    recipe: str | Path | Recipe,
    *,
    out: str | Path = "build/corpus",
    sources: str | Path | None = None,
    seed: int | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> Corpus:
    """Build the corpus a recipe describes into `out` and open it.

    `sources` and `seed` override the recipe's `corpus.sources_dir` and `corpus.seed`.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, sources_dir=sources, seed=seed)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CorpusDirError(f"{out}: exists and is not a directory")
    plan = plan_build(recipe)
    workers = default_workers() if workers is None else workers
    staging = _staging_dir(out)
    try:
        work = staging / "_work"
        work.mkdir()
        tasks = [
            IngestTask(p.spec, p.file, p.index, recipe.seed, recipe.protected_terms, work / f"{i:05d}.arrow")
            for i, p in enumerate(plan.files)
        ]
        results = run_ingest(tasks, workers, progress)
        timings["ingest"] = time.perf_counter() - started
        manifest = _assemble_outputs(recipe, plan, results, staging, progress, timings)
        shutil.rmtree(work)
        manifest["volatile"] = {
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "workers": workers,
            "cpu_count": os.cpu_count(),
            "timings_s": {k: round(v, 3) for k, v in {**timings, "total": time.perf_counter() - started}.items()},
        }
        write_manifest(manifest, staging / MANIFEST_NAME)
        _replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Corpus(out)


@dataclass(frozen=True)
class _Written:
    """What the write phase produced, for the manifest."""

    stats: dict[tuple[str, str], StepStats]
    """Per (step, source), every step: read, normalize, validate, dedup, split."""
    rejected: pl.DataFrame
    """Quarantine rows before dedup (the per-source quarantined / excluded counts)."""
    quarantine: pl.DataFrame
    """Everything written to quarantine.parquet (rejected + duplicates)."""
    final: pl.DataFrame
    """Train and validation records after expansion (with `split` and the `_x_*` fields)."""
    held: pl.DataFrame
    """Held-out item records."""
    splits: dict[str, dict[str, Any]]
    tables: dict[str, dict[str, Any]]
    """Tables outside data/ (astro_qa_heldout), with their records and files."""


def _assemble_outputs(
    recipe: Recipe,
    plan: BuildPlan,
    results: list[IngestResult],
    staging: Path,
    progress: Progress | None,
    timings: dict[str, float],
) -> dict[str, Any]:
    clock = time.perf_counter()
    stats = merged_stats(results)
    empty_quarantine = pl.from_arrow(QUARANTINE_SCHEMA.empty_table())
    rejected = pl.concat([r.quarantine for r in results]) if results else empty_quarantine
    check_quarantine_limits(recipe, stats, rejected)

    paths = [r.records_path for r in results if r.records_path is not None]
    records = pl.concat([pl.read_ipc(p) for p in paths], how="diagonal_relaxed") if paths else _empty_records()
    repeated = records.filter(pl.col("id").is_duplicated())
    if repeated.height:  # ids are unique by construction; a repeat is an adapter bug, never silently merged
        raise AssertionError(
            f"duplicate record ids from source(s) {sorted(set(repeated['source']))}: {repeated['id'][:3].to_list()}"
        )
    strata = [c for c in ("_x_type", "_x_subfield") if c in records.columns]
    thin = records.select("id", "source", "group", "lang", "source_file", "_hash", "_split_u", *RANK_COLUMNS, *strata)
    kept, duplicates, dedup_stats = exact_dedup(thin, enabled=recipe.exact_dedup)
    holdouts = {s.name: s.holdout for s in recipe.sources if s.holdout is not None}
    kept, held, holdout_stats = hold_out(kept, holdouts, recipe.seed)
    assigned, split_stats = assign_splits(kept, {s.name: recipe.validation_fraction_of(s) for s in recipe.sources})
    for step_stats in (*dedup_stats.values(), *holdout_stats.values(), *split_stats.values()):
        stats[(step_stats.step, step_stats.source)] = step_stats
    final = records.join(assigned.select("id", "split"), on="id", how="inner")
    final = _expand(recipe, final, stats)
    timings["dedup_split_expand"] = time.perf_counter() - clock

    clock = time.perf_counter()
    if progress:
        progress("write", 0, 1)
    written: list[Path] = []
    record_counts: dict[Path, int] = {}
    splits: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        part = final.filter(pl.col("split") == split).sort("_order", "id").select(RECORD_FIELDS)
        shards = write_shards(part, RECORD_SCHEMA, staging / "data", split, recipe.shard_records)
        for shard_index, path in enumerate(shards):
            record_counts[path] = min(recipe.shard_records, part.height - shard_index * recipe.shard_records)
        written += shards
        splits[split] = {"records": part.height, "shards": [p.relative_to(staging).as_posix() for p in shards]}
        if split == "train" and recipe.train_json:
            write_train_json(part, staging / "train.json")
            written.append(staging / "train.json")
    tables: dict[str, dict[str, Any]] = {}
    held_records = records.join(held.select("id"), on="id", how="semi")
    heldout_path = write_heldout(held_records, staging / HELDOUT_DIR)
    if heldout_path is not None:
        written.append(heldout_path)
        record_counts[heldout_path] = held_records.height
        tables[HELDOUT_DIR] = {"records": held_records.height, "files": [heldout_path.relative_to(staging).as_posix()]}
    quarantine = pl.concat([rejected, _duplicate_quarantine(duplicates)]) if duplicates.height else rejected
    write_quarantine(quarantine, staging / QUARANTINE_NAME)
    written.append(staging / QUARANTINE_NAME)
    record_counts[staging / QUARANTINE_NAME] = quarantine.height

    manifest = _manifest(
        recipe, plan, results, _Written(stats, rejected, quarantine, final, held_records, splits, tables)
    )
    (staging / "README.md").write_text(render_card(manifest), encoding="utf-8")
    written.append(staging / "README.md")
    manifest["files"] = file_entries(staging, written, record_counts)
    timings["write"] = time.perf_counter() - clock
    if progress:
        progress("write", 1, 1)
    return manifest


def _expand(recipe: Recipe, final: pl.DataFrame, stats: dict[tuple[str, str], StepStats]) -> pl.DataFrame:
    """Template expansion per source (a pass-through step for sources without templates)."""
    validator = RecordValidator(load_schema("record.schema.json"))
    parts = []
    for spec in recipe.sources:
        part = final.filter(pl.col("source") == spec.name)
        if spec.expand is None:
            step_stats = StepStats("expand", spec.name, part.height, part.height)
            step_stats.notes["records"] = part.height
        else:
            part, step_stats = expand(part, spec.expand, load_templates(spec.expand.templates), recipe.seed, spec.name)
            _, failures, _ = validator(part, spec.name)
            if failures:  # templates are ours: a variant that fails the schema is a template bug
                record, rule, message = failures[0]
                raise RecipeError(
                    f"templates {spec.expand.templates}: variant {record['id']} is invalid ({rule}: {message})"
                )
        stats[("expand", spec.name)] = step_stats
        parts.append(part)
    return pl.concat(parts, how="diagonal_relaxed") if parts else final


def _manifest(recipe: Recipe, plan: BuildPlan, results: list[IngestResult], out: _Written) -> dict[str, Any]:
    records_per_split = {(src, split): n for src, split, n in out.final.group_by("source", "split").len().iter_rows()}
    sources: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []
    for spec in recipe.sources:
        chain = {step: out.stats.get((step, spec.name), StepStats(step, spec.name)) for step in STEPS}
        if spec.name not in plan.skipped:
            steps += [chain[step].as_dict() for step in STEPS]
        sources[spec.name] = {
            "adapter": spec.adapter,
            "category": spec.category,
            "lang": spec.lang,
            "opencc": spec.opencc,
            "license": spec.license,
            "url": spec.url,
            "status": "missing_optional" if spec.name in plan.skipped else "ok",
            "files": {name: entry for r in results if r.source == spec.name for name, entry in r.files.items()},
            "counts": {
                "read": chain["read"].total,
                "quarantined": rejection_counts(out.rejected, spec.name, deliberate=False),
                "excluded": rejection_counts(out.rejected, spec.name, deliberate=True),
                "valid": chain["validate"].kept,
                "duplicates": chain["dedup"].dropped.get("duplicate", 0),
                "held_out": chain["holdout"].dropped.get("held_out", 0),
                "kept": chain["holdout"].kept,
                "train": chain["split"].notes.get("train", 0),
                "validation": chain["split"].notes.get("validation", 0),
                "records": {split: records_per_split.get((spec.name, split), 0) for split in SPLITS},
            },
        }
    categories: dict[str, dict[str, int]] = {}
    final = out.final
    for category, split, n in final.group_by("category", "split").len().sort("category", "split").iter_rows():
        categories.setdefault(category, {})[split] = n
    return {
        "format_version": FORMAT_VERSION,
        "corpus": recipe.name,
        "description": recipe.description,
        "recipe": {"path": recipe.path.as_posix(), "sha256": recipe.sha256},
        "seed": recipe.seed,
        "versions": _versions(),
        "sources": sources,
        "steps": steps,
        "splits": out.splits,
        "tables": out.tables,
        "breakdown": _breakdown(out),
        "categories": categories,
        "languages": sorted(final["lang"].unique().to_list()),
        "quarantine": {
            "records": out.quarantine.height,
            "by_rule": dict(sorted(out.quarantine.group_by("rule").len().iter_rows())),
        },
        "files": {},
        "warnings": list(plan.skipped.values()),
    }


def _breakdown(out: _Written) -> dict[str, Any]:
    """Per source with structured items: records by split, language, type and subfield; held-out items."""
    if "_x_type" not in out.final.columns:
        return {}
    keys = ["source", "lang", "_x_type", "_x_subfield"]

    def rows(frame: pl.DataFrame, by: list[str]) -> list[dict[str, Any]]:
        counted = frame.filter(pl.col("_x_type").is_not_null()).group_by(by).len().sort(by)
        return [{k.removeprefix("_x_"): v for k, v in row.items()} for row in counted.iter_rows(named=True)]

    result: dict[str, Any] = {}
    for row in rows(out.final, ["split", *keys]):
        result.setdefault(row.pop("source"), {"records": [], "held_out": []})["records"].append(row)
    if "_x_type" in out.held.columns:
        for row in rows(out.held, keys):
            result.setdefault(row.pop("source"), {"records": [], "held_out": []})["held_out"].append(row)
    return result
