"""The pipeline: plan the files, ingest them in parallel, then the global steps on thin columns.

`compute` runs everything that needs a view of the whole corpus, in DESIGN.md's order: quarantine
limits, exact dedup, hold-out, train / validation split (all on items), template expansion, and the
mixture of the train split. It writes nothing: `build` writes its result, `plan` prints it.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import polars as pl
import pyarrow as pa

from .errors import QuarantineLimitError, RecipeError, SourceFileError
from .faults import die_with_parent, signals_held
from .hashing import CONTENT_KEY_DTYPE
from .ingest import IngestResult, IngestTask, ingest
from .memory import keep_freed_memory, started_keeping_freed_memory
from .paths import check_eval_set_paths, check_one_source_per_file, source_files
from .recipe import Recipe, SourceSpec
from .record import RECORD_SCHEMA, frame_schema, quarantine_frame
from .resources import load_schema
from .similarity.eval_index import EVAL_GRAMS, GramIndex, all_eval_items
from .similarity.fold import Grams, TokenHashes
from .similarity.minhash import SIGNATURE
from .similarity.records import fold_records
from .sources import LINE_SPLITTABLE, SourceFile
from .sources.files import is_json_lines, line_spans
from .steps.base import StepStats
from .steps.decontaminate import decontaminate
from .steps.dedup import RANK_COLUMNS, exact_dedup, per_source_stats
from .steps.expand import expand, load_templates
from .steps.holdout import hold_out
from .steps.mix import MixPlan, apply_mix, plan_mix
from .steps.neardup import near_dedup
from .steps.split import assign_splits
from .steps.validate import RecordValidator
from .writers.quarantine import rejection_counts


@dataclass
class StepClock:
    """Wall seconds per named step (reported in the manifest's `volatile`, never in the data)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = round(self.seconds.get(step, 0.0) + time.perf_counter() - started, 3)


THIN_COLUMNS = (
    "id", "source", "category", "group", "lang", "source_file", "copy_index",
    "_hash", "_split_u", "_order", *RANK_COLUMNS, "_table_row",
)  # fmt: skip
"""The columns the global steps decide on: no text."""

FINAL_COLUMNS = ("id", "source", "category", "lang", "split", "copy_index", "_order", "_table_row")
"""The columns of `Computed.final` (with the `_x_*` strata when the records have them)."""

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called as work advances (the CLI draws bars with it)."""


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
    """Resolve every source's paths (globs allowed) against the sources directory; the paths of
    sources and eval sets are checked up front (paths.py)."""
    root = recipe.sources_dir
    read: dict[str, list[SourceFile]] = {}
    skipped: dict[str, str] = {}
    for spec in recipe.sources:
        files, absent = source_files(recipe, spec)
        if absent:
            where = ", ".join(absent)
            if spec.optional:
                skipped[spec.name] = f"optional source {spec.name!r} skipped: not found in {root}: {where}"
                continue
            raise SourceFileError(f"source {spec.name!r}: file not found in {root}: {where}")
        read[spec.name] = files
    check_one_source_per_file(recipe, read)
    check_eval_set_paths(recipe)
    planned = [
        PlannedFile(spec, part, index)
        for spec in recipe.sources
        for index, file in enumerate(read.get(spec.name, ()))
        for part in file_parts(spec, file)
    ]
    return BuildPlan(recipe, tuple(planned), skipped)


SPAN_BYTES = 64 << 20
"""A JSON Lines file larger than this is read as spans of about this size, one task each: the
workers stay evenly busy and each holds one span's records, not a whole file's."""


def file_parts(spec: SourceSpec, file: SourceFile, span_bytes: int = SPAN_BYTES) -> list[SourceFile]:
    """The file as one task, or a large JSON Lines file as line spans (adapters in LINE_SPLITTABLE)."""
    if spec.adapter not in LINE_SPLITTABLE or not file.path.is_file() or file.path.stat().st_size <= span_bytes:
        return [file]
    if not is_json_lines(file):
        return [file]
    spans = line_spans(file.path, span_bytes)
    return [replace(file, span=span) for span in spans] if len(spans) > 1 else [file]


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
    with ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)), mp_context=get_context("spawn"), initializer=_start_worker
    ) as pool:
        # The largest tasks first: the last to finish is a small one, so no worker idles long at the end.
        largest_first = sorted(range(len(tasks)), key=lambda i: -_bytes_to_read(tasks[i].file))
        # The pool starts its processes as tasks are submitted: a signal then would leave a half-started
        # worker behind, so signals wait until all are submitted.
        with started_keeping_freed_memory(), signals_held():
            submitted = {i: pool.submit(ingest, tasks[i]) for i in largest_first}
        futures = [submitted[i] for i in range(len(tasks))]
        try:
            for future in futures:
                future.result()
                done += 1
                if progress:
                    progress("read", done, len(tasks))
        except BaseException:  # a failed file or a signal: start no more tasks, wait for the running ones
            pool.shutdown(wait=True, cancel_futures=True)  # (and the workers: none is left half-started)
            raise
        return [f.result() for f in futures]


def _start_worker() -> None:
    die_with_parent()
    keep_freed_memory()


def _bytes_to_read(file: SourceFile) -> int:
    if file.span is not None:
        return file.span.stop - file.span.start
    if file.path.is_dir():
        return sum(p.stat().st_size for p in file.path.rglob("*") if p.is_file())
    return file.path.stat().st_size if file.path.is_file() else 0


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


def read_records(path: Path) -> pl.DataFrame:
    """A worker's records, memory-mapped: the text is read in place from the page cache, never copied
    into the process (polars' read_ipc copies it, ~2 s and 1 GB at 1M records)."""
    return pl.from_arrow(pa.ipc.open_file(pa.memory_map(str(path))).read_all())


def _empty_records() -> pl.DataFrame:
    frame = pl.DataFrame(schema=frame_schema(RECORD_SCHEMA))
    return frame.with_columns(
        pl.lit(None, dtype=CONTENT_KEY_DTYPE).alias("_hash"),
        pl.lit(None, dtype=pl.Float64).alias("_split_u"),
        pl.lit(None, dtype=pl.UInt64).alias("_order"),
        *(pl.lit(None, dtype=pl.Int64).alias(c) for c in ("_rank", "_source_order", "_file_index")),
    ).clear()


def ingest_all(plan: BuildPlan, workdir: Path, workers: int, progress: Progress | None = None) -> list[IngestResult]:
    """Ingest every planned file, records to Arrow IPC files in `workdir`.

    With decontamination, the workers look each record's n-grams up in an index of the eval
    questions' n-grams. Held-out questions are only known once their sources are read, so those
    sources are ingested first: every item they hold is indexed (the hold-out step picks among them
    later), and their own records are looked up here.
    """
    recipe = plan.recipe
    config = recipe.decontaminate

    def task(position: int, index: GramIndex | None) -> IngestTask:
        p = plan.files[position]
        path = workdir / f"{position:05d}.arrow"
        return IngestTask(p.spec, p.file, p.index, recipe.seed, recipe.protected_terms, path, recipe.near_dedup, index)

    if config is None:
        return run_ingest([task(i, None) for i in range(len(plan.files))], workers, progress)
    holding = [i for i, p in enumerate(plan.files) if config.heldout and p.spec.holdout is not None]
    others = [i for i in range(len(plan.files)) if i not in holding]
    first = run_ingest([task(i, None) for i in holding], workers, _offset(progress, 0, len(plan.files)))
    candidates = [pl.read_ipc(r.records_path) for r in first if r.records_path is not None]
    held_candidates = pl.concat(candidates, how="diagonal_relaxed") if candidates else pl.DataFrame()
    index = GramIndex.of(all_eval_items(held_candidates, config, recipe.sources_dir, recipe.protected_terms))
    for result, records in zip(first, candidates, strict=True):
        spec = recipe.source(result.source)
        grams = index.hits(Grams(fold_records(records, {spec.name: spec.opencc}, recipe.protected_terms)))
        looked_up = result.records_path.with_suffix(".grams.arrow")  # not over the file polars may have mapped
        records.with_columns(grams).write_ipc(looked_up, compression="uncompressed")
        result.records_path = looked_up
    rest = run_ingest([task(i, index) for i in others], workers, _offset(progress, len(holding), len(plan.files)))
    by_position = dict(zip(holding + others, first + rest, strict=True))
    return [by_position[i] for i in range(len(plan.files))]


def _offset(progress: Progress | None, done: int, total: int) -> Progress | None:
    """Progress of one phase of the ingest, counted within the whole ingest."""
    if progress is None:
        return None
    return lambda stage, n, _: progress(stage, done + n, total)


@dataclass(frozen=True)
class Computed:
    """Everything the global steps produced, for the writers and the manifest."""

    stats: dict[tuple[str, str], StepStats]
    """Per (step, source), every step in STEPS."""
    rejected: pl.DataFrame
    """Quarantine rows from reading and validation (the quarantined / excluded counts)."""
    duplicates: pl.DataFrame
    """Exact duplicates dropped by dedup, with the id of the record kept (`kept_id`)."""
    near_duplicates: pl.DataFrame
    """Near-duplicates dropped, with `kept_id` and `similarity`."""
    contaminated: pl.DataFrame
    """Items removed by decontamination, with `eval_set`, `eval_id`, `overlap`, `span`."""
    final: pl.DataFrame
    """Train (mixed) and validation records as thin rows (no text): id, source, category, lang,
    `split`, `copy_index`, `_order`, the `_x_type` / `_x_subfield` strata, and `_table_row`, the row of
    `table` holding the record's columns."""
    table: pl.DataFrame
    """Every record's columns, text included, held once; `final` points into it (see SplitRecords)."""
    held: pl.DataFrame
    """Held-out item records."""
    mix: MixPlan | None = None
    copy_factors: dict[str, dict[int, int]] = field(default_factory=dict)
    """Per category: {times a record appears in train: records}."""
    before_mix: dict[str, int] = field(default_factory=dict)
    """Train records per category before mixing."""
    near_dup_report: dict | None = None
    decontamination_report: dict | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds of each global step (`load`: reading the workers' records)."""


def compute(recipe: Recipe, results: list[IngestResult]) -> Computed:
    stats = merged_stats(results)
    rejected = pl.concat([r.quarantine for r in results]) if results else quarantine_frame([])
    check_quarantine_limits(recipe, stats, rejected)

    paths = [r.records_path for r in results if r.records_path is not None]
    clock = StepClock()
    with clock("load"):
        records = pl.concat([read_records(p) for p in paths], how="diagonal_relaxed") if paths else _empty_records()
    records = records.with_row_index("_table_row")
    repeated = records.filter(pl.col("id").is_duplicated())
    if repeated.height:  # ids are unique by construction; a repeat is an adapter bug, never silently merged
        raise AssertionError(
            f"duplicate record ids from source(s) {sorted(set(repeated['source']))}: {repeated['id'][:3].to_list()}"
        )
    strata = [c for c in ("_x_type", "_x_subfield") if c in records.columns]
    signature = [SIGNATURE] if SIGNATURE in records.columns else []
    eval_grams = [EVAL_GRAMS] if EVAL_GRAMS in records.columns else []
    thin = records.select(*THIN_COLUMNS, *strata, *signature, *eval_grams)
    with clock("dedup"):
        kept, duplicates, dedup_stats = exact_dedup(thin, enabled=recipe.exact_dedup)
    near_report = None
    if recipe.near_dedup is not None:
        with clock("neardup"):
            kept, near, near_stats, near_report = near_dedup(kept, recipe.near_dedup)
    else:
        near, near_stats = kept.clear(), per_source_stats("neardup", kept, kept.clear(), "near_duplicate")
    kept = kept.drop(signature)
    holdouts = {s.name: s.holdout for s in recipe.sources if s.holdout is not None}
    with clock("holdout"):
        kept, held, holdout_stats = hold_out(kept, holdouts, recipe.seed)
    held_records = records.join(held.select("id"), on="id", how="semi")
    with clock("decontaminate"):
        kept, contaminated, decon_stats, decon_report = _decontaminate(recipe, records, kept, held_records)
    table = records.drop(signature + eval_grams)  # not needed any more
    with clock("split"):
        assigned, split_stats = assign_splits(kept, {s.name: recipe.validation_fraction_of(s) for s in recipe.sources})
    for step_stats in (
        *dedup_stats.values(),
        *near_stats.values(),
        *holdout_stats.values(),
        *decon_stats.values(),
        *split_stats.values(),
    ):
        stats[(step_stats.step, step_stats.source)] = step_stats
    with clock("expand"):
        final, table = _expand(recipe, assigned, table, stats)

    # From here on only what mixing, the writers and the manifest read: the keys the steps decided on
    # (hashes, draws, ranks) would be copied by the filters below and kept through the write phase.
    final = final.select(*FINAL_COLUMNS, *strata)
    train, validation = final.filter(pl.col("split") == "train"), final.filter(pl.col("split") == "validation")
    # Every category a source declares, with 0 where no record reached train (an empty category).
    before_mix = {spec.category: 0 for spec in recipe.sources} | dict(train.group_by("category").len().iter_rows())
    before_mix = dict(sorted(before_mix.items()))
    mix_plan, factors = None, {}
    if recipe.mix is not None:
        mix_plan = plan_mix(before_mix, recipe.mix)
        with clock("mix"):
            train, mix_stats, factors = apply_mix(train, mix_plan, recipe.seed)
    else:
        mix_stats = {}
    for spec in recipe.sources:
        step_stats = mix_stats.get(spec.name)
        if step_stats is None:  # no mix (or no train records): a pass-through step
            n = train.filter(pl.col("source") == spec.name).height
            step_stats = StepStats("mix", spec.name, n, n)
            step_stats.notes.update({"copies": 0, "records": n})
        stats[("mix", spec.name)] = step_stats
    final = pl.concat([train, validation], how="diagonal_relaxed")
    return Computed(
        stats=stats,
        rejected=rejected,
        duplicates=duplicates,
        near_duplicates=near,
        contaminated=contaminated,
        final=final,
        table=table,
        held=held_records,
        mix=mix_plan,
        copy_factors=factors,
        before_mix=before_mix,
        near_dup_report=near_report,
        decontamination_report=decon_report,
        step_seconds=clock.seconds,
    )


def _decontaminate(
    recipe: Recipe, records: pl.DataFrame, kept: pl.DataFrame, held: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, StepStats], dict | None]:
    """Remove kept items holding a held-out question or a declared eval set's question."""
    config = recipe.decontaminate
    if config is None:
        return kept, kept.clear(), per_source_stats("decontaminate", kept, kept.clear(), "contaminated"), None
    items = all_eval_items(held, config, recipe.sources_dir, recipe.protected_terms)
    if EVAL_GRAMS not in kept.columns:  # a build with no records at all
        kept = kept.with_columns(pl.lit([], dtype=pl.List(pl.UInt64)).alias(EVAL_GRAMS))
    opencc = {spec.name: spec.opencc for spec in recipe.sources}

    def record_tokens(rows: list[int]) -> TokenHashes:
        """Rows of `kept` folded as the workers fold them."""
        chosen = kept.select("_table_row")[rows]
        return fold_records(records.select(pl.all().gather(chosen["_table_row"])), opencc, recipe.protected_terms)

    kept, removed, stats, report = decontaminate(kept, items, config, record_tokens)
    return kept.drop(EVAL_GRAMS), removed.drop(EVAL_GRAMS), stats, report


def _expand(
    recipe: Recipe, assigned: pl.DataFrame, table: pl.DataFrame, stats: dict[tuple[str, str], StepStats]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Template expansion per source (a pass-through step for sources without templates).

    A source with templates has its items replaced by their variants: the variants' columns are
    appended to the record table, and thin rows pointing at them replace the items'.
    """
    expanding = [spec for spec in recipe.sources if spec.expand is not None]
    records = dict(assigned.group_by("source").len().iter_rows())
    for spec in recipe.sources:
        if spec.expand is None:
            n = records.get(spec.name, 0)
            stats[("expand", spec.name)] = StepStats("expand", spec.name, n, n, notes=Counter(records=n))
    if not expanding:  # no copy of the rows (a filter would make one, ~150 MB at 1M records)
        return assigned, table
    validator = RecordValidator(load_schema("record.schema.json"))
    parts = [assigned.filter(~pl.col("source").is_in([spec.name for spec in expanding]))]
    for spec in expanding:
        part = assigned.filter(pl.col("source") == spec.name)
        items = table.select(pl.all().gather(part["_table_row"])).with_columns(part["split"])
        variants, step_stats = expand(items, spec.expand, load_templates(spec.expand.templates), recipe.seed, spec.name)
        _, failures, _ = validator(variants, spec.name)
        if failures:  # templates are ours: a variant that fails the schema is a template bug
            record, rule, message = failures[0]
            raise RecipeError(
                f"templates {spec.expand.templates}: variant {record['id']} is invalid ({rule}: {message})"
            )
        variants = variants.with_columns((pl.int_range(pl.len(), dtype=pl.UInt32) + table.height).alias("_table_row"))
        table = pl.concat([table, variants.select(table.columns)])
        parts.append(variants.select(assigned.columns))
        stats[("expand", spec.name)] = step_stats
    return pl.concat(parts), table
