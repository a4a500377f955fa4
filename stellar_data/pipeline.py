"""The pipeline: the planned files ingested by the executor (the record-local steps, in workers),
then the global steps, GLOBAL_STEPS in order, on thin columns.

`ingest_all` runs the record-local stages; `compute` checks the quarantine limits and runs the global
steps over every record. Neither writes a corpus: `build` writes the result, `plan` prints it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from .executor import Progress, run_ingest
from .hashing import CONTENT_KEY_DTYPE
from .ingest import IngestResult, IngestTask
from .plan import BuildPlan
from .quarantine_limit import check_quarantine_limits
from .recipe import Recipe
from .record import RECORD_SCHEMA, frame_schema, quarantine_frame
from .similarity.eval_index import EVAL_GRAMS, EvalItem, GramIndex, all_eval_items
from .similarity.fold import Grams
from .similarity.minhash import SIGNATURE
from .similarity.records import fold_records
from .sources import STRATA_COLUMNS
from .steps.assemble import LOCATION_COLUMN
from .steps.base import (
    RECORD_COUNTS,
    RECORD_STEPS,
    SPLITS,
    GlobalStep,
    StepContext,
    StepStats,
    passing_stats,
    per_source_stats,
)
from .steps.decontaminate import Decontaminate
from .steps.dedup import RANK_COLUMNS, ExactDedup
from .steps.expand import Expand
from .steps.holdout import Holdout
from .steps.mix import Mix
from .steps.neardup import NearDedup
from .steps.split import Split


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
        pl.lit(None, dtype=pl.String).alias(LOCATION_COLUMN),
    ).clear()


@dataclass
class Ingested:
    """What the ingest stages produced for the global steps."""

    results: list[IngestResult]
    """Per planned file, in plan order."""
    eval_items: list[EvalItem] | None = None
    """With decontamination: every eval item, from each hold-out candidate and each declared eval set
    (the `eval_index` stage), built once; the decontaminate step keeps those of the items held out."""


def ingest_all(plan: BuildPlan, workdir: Path, workers: int, progress: Progress | None = None) -> Ingested:
    """Ingest every planned file, records to Arrow IPC files in `workdir`.

    Without decontamination one stage reads every file. With it, the workers look each record's
    n-grams up in an index of the eval questions' n-grams, and held-out questions are only known once
    their sources are read, so there are three stages: `read_holding` reads the sources that hold
    items out; `eval_index` builds the eval items of every item they hold (the hold-out step picks
    among them later) and of the declared eval sets, indexes them and looks the first sources'
    records up; `read_rest` reads the other files, looking up as they go.
    """
    recipe = plan.recipe
    config = recipe.decontaminate

    def task(position: int, index: GramIndex | None) -> IngestTask:
        p = plan.files[position]
        path = workdir / f"{position:05d}.arrow"
        return IngestTask(p.spec, p.file, p.index, recipe.seed, recipe.protected_terms, path, recipe.near_dedup, index)

    if config is None:
        return Ingested(run_ingest([task(i, None) for i in range(len(plan.files))], workers, progress))
    holding = [i for i, p in enumerate(plan.files) if config.heldout and p.spec.holdout is not None]
    others = [i for i in range(len(plan.files)) if i not in holding]
    first = run_ingest([task(i, None) for i in holding], workers, _offset(progress, 0, len(plan.files)))
    items, index = _eval_index(recipe, first)
    rest = run_ingest([task(i, index) for i in others], workers, _offset(progress, len(holding), len(plan.files)))
    by_position = dict(zip(holding + others, first + rest, strict=True))
    return Ingested([by_position[i] for i in range(len(plan.files))], items)


def _eval_index(recipe: Recipe, first: list[IngestResult]) -> tuple[list[EvalItem], GramIndex]:
    """The `eval_index` stage: every eval item and their n-gram index; the records already read
    (`first`) are looked up in it here, the others by the workers."""
    assert recipe.decontaminate is not None
    candidates = [pl.read_ipc(r.records_path) for r in first if r.records_path is not None]
    held_candidates = pl.concat(candidates, how="diagonal_relaxed") if candidates else pl.DataFrame()
    items = all_eval_items(held_candidates, recipe.decontaminate, recipe.sources_dir, recipe.protected_terms)
    index = GramIndex.of(items)
    for result, records in zip(first, candidates, strict=True):
        spec = recipe.source(result.source)
        grams = index.hits(Grams(fold_records(records, {spec.name: spec.opencc}, recipe.protected_terms)))
        looked_up = result.records_path.with_suffix(".grams.arrow")  # not over the file polars may have mapped
        records.with_columns(grams).write_ipc(looked_up, compression="uncompressed")
        result.records_path = looked_up
    return items, index


def _offset(progress: Progress | None, done: int, total: int) -> Progress | None:
    """Progress of one phase of the ingest, counted within the whole ingest."""
    if progress is None:
        return None
    return lambda stage, n, _: progress(stage, done + n, total)


GLOBAL_STEPS: tuple[type[GlobalStep], ...] = (ExactDedup, NearDedup, Holdout, Decontaminate, Split, Expand, Mix)
"""The global steps, in order: filters on items (dedup, near-dedup, hold-out, decontamination), the
train / validation split (on items, so an item's variants never straddle the splits), template
expansion, and the mixture of the train split."""

STEPS = (*RECORD_STEPS, *(step.name for step in GLOBAL_STEPS))
"""Every step, in pipeline order (the manifest's `steps` rows per source)."""

SUMMARY_COLUMNS = (
    *RECORD_COUNTS,
    *(column for step in GLOBAL_STEPS for column in step.count_columns()),
    *(f"{split}_records" for split in SPLITS),
)
"""The per-source summary's counts, in pipeline order (`Corpus.stats()`, the CLI, the card)."""


def summary_row(counts: dict[str, Any]) -> dict[str, int]:
    """A source's manifest `counts` as SUMMARY_COLUMNS (rule -> count maps summed)."""
    row = {f"{split}_records": counts["records"][split] for split in SPLITS}
    for name in SUMMARY_COLUMNS:
        if name not in row:
            value = counts[name]
            row[name] = sum(value.values()) if isinstance(value, dict) else value
    return {name: row[name] for name in SUMMARY_COLUMNS}


@dataclass(frozen=True)
class Computed:
    """Everything the global steps produced, for the writers and the manifest."""

    stats: dict[tuple[str, str], StepStats]
    """Per (step, source), every step in STEPS."""
    rejected: pl.DataFrame
    """Quarantine rows from reading and validation (the quarantined / excluded counts)."""
    removed: dict[str, pl.DataFrame]
    """Per filtering step that ran: the rows it removed, with its evidence columns."""
    final: pl.DataFrame
    """Train (mixed) and validation records as thin rows (no text): FINAL_COLUMNS with the strata
    (sources.STRATA_COLUMNS) the records have; `_table_row` is the row of `table` holding the record's columns."""
    table: pl.DataFrame
    """Every record's columns, text included, held once; `final` points into it (see SplitRecords)."""
    held: pl.DataFrame
    """Held-out item records."""
    reports: dict[str, Any]
    """Per step `report_key`: its manifest section (None when the recipe turns the step off)."""
    details: dict[str, Any]
    """Per step name: what it decided, for in-memory readers (`details["mix"]`: MixOutcome)."""
    warnings: tuple[str, ...] = ()
    step_seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds of each global step (`load`: reading the workers' records)."""


def compute(recipe: Recipe, ingested: Ingested) -> Computed:
    """The global steps over every record the workers wrote, in GLOBAL_STEPS order."""
    results = ingested.results
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
    strata = [c for c in STRATA_COLUMNS if c in records.columns]
    similarity = [c for c in (SIGNATURE, EVAL_GRAMS) if c in records.columns]
    thin = records.select(*THIN_COLUMNS, *strata, *similarity)
    table = records.drop(similarity)
    ctx = StepContext(recipe, table=table, held=table.clear(), eval_items=ingested.eval_items)
    del records
    removed: dict[str, pl.DataFrame] = {}
    reports: dict[str, Any] = {}
    details: dict[str, Any] = {}
    warnings: list[str] = []
    for step_class in GLOBAL_STEPS:
        step = step_class.from_recipe(recipe)
        if step_class.report_key is not None:
            reports[step_class.report_key] = None
        if step is None:  # turned off by the recipe: every row passes
            for source, step_stats in passing_stats(step_class.name, thin).items():
                stats[(step_class.name, source)] = step_stats
            continue
        with clock(step_class.name):
            result = step.run(thin, ctx)
        step_stats = result.stats
        if step_stats is None:
            assert step_class.removes is not None and result.removed is not None, step_class.name
            step_stats = per_source_stats(step_class.name, thin, result.removed, step_class.removes.reason)
        for source, one in step_stats.items():
            stats[(step_class.name, source)] = one
        if result.removed is not None:
            removed[step_class.name] = result.removed
        if step_class.report_key is not None:
            reports[step_class.report_key] = result.report
        if result.detail is not None:
            details[step_class.name] = result.detail
        if result.table is not None:
            ctx.table = result.table
        if result.held is not None:
            ctx.held = result.held
        warnings += result.warnings
        thin = result.kept
    return Computed(
        stats=stats,
        rejected=rejected,
        removed=removed,
        final=thin,
        table=ctx.table,
        held=ctx.held,
        reports=reports,
        details=details,
        warnings=tuple(warnings),
        step_seconds=clock.seconds,
    )
