"""Build a corpus: run the pipeline, write every output into a staging directory, swap it into place.

The corpus is built in a staging directory beside `--out` and swapped in atomically under a lock
(outdir.py), so a failed, interrupted or killed build leaves the previous corpus untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl

from .corpus import Corpus
from .errors import CorpusDirError
from .executor import Progress, worker_count
from .faults import disk_full, signals_held, terminate_raises
from .hashing import file_sha256
from .outdir import build_lock, check_out, recover, remove_staging, staging_name, swap_in
from .pipeline import Computed, compute, ingest_all
from .plan import BuildPlan, plan_build
from .recipe import Recipe, load_recipe
from .steps.base import SPLITS
from .writers.card import render_card
from .writers.heldout import HELDOUT_DIR, write_heldout
from .writers.manifest import MANIFEST_NAME, build_manifest, file_entries, removals_quarantine, write_manifest
from .writers.ordered import SplitRecords
from .writers.parquet import WrittenSplit
from .writers.quarantine import QUARANTINE_NAME, write_quarantine
from .writers.report import char_counts, write_report
from .writers.splits import write_split


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

    `sources` and `seed` override the recipe's `corpus.sources_dir` and `corpus.seed`. `out` is
    replaced only when it is provably a corpus, under a lock, by one atomic swap (outdir.py).
    """
    started = time.perf_counter()
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, sources_dir=sources, seed=seed)
    out = Path(out)
    read, kept = {"the sources folder": recipe.sources_dir}, {"the recipe's folder": recipe.path.parent}
    check_out(out, read, kept)
    plan = plan_build(recipe)
    workers = worker_count(workers, recipe.run)
    with build_lock(out), terminate_raises():
        recovered = recover(out)
        check_out(out, read, kept)
        staging = _staging_dir(out)
        try:
            manifest = _build_into(staging, recipe, plan, workers, progress, started)
            manifest["volatile"]["recovered"] = recovered
            write_manifest(manifest, staging / MANIFEST_NAME)
            check_out(out, read, kept)  # nothing of the user's crept in meanwhile
            with signals_held():
                swap_in(staging, out)
        except BaseException as exc:
            full = disk_full(exc, staging, out) if isinstance(exc, Exception) else None
            remove_staging(staging)
            if full is not None:
                raise full from None
            raise
    return Corpus(out)


def _staging_dir(out: Path) -> Path:
    staging = out.parent / staging_name(out)
    try:
        staging.mkdir()
    except OSError as exc:
        raise CorpusDirError(f"--out {out}: cannot create a folder beside it ({exc.strerror})") from None
    return staging


def _build_into(
    staging: Path, recipe: Recipe, plan: BuildPlan, workers: int, progress: Progress | None, started: float
) -> dict[str, Any]:
    """Run the pipeline and write every output into `staging`; the manifest, not yet written."""
    work = staging / "_work"
    work.mkdir()
    ingested = ingest_all(plan, work, workers, progress)
    timings = {"ingest": time.perf_counter() - started}
    clock = time.perf_counter()
    computed = compute(recipe, ingested)
    timings["global_steps"] = time.perf_counter() - clock
    clock = time.perf_counter()
    if progress:
        progress("write", 0, 1)
    manifest = _write_outputs(recipe, plan, ingested.results, computed, staging)
    shutil.rmtree(work)
    if progress:
        progress("write", 1, 1)
    timings["write"] = time.perf_counter() - clock
    manifest["volatile"] = {
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "workers": workers,
        "executor": recipe.run.executor,
        "cpu_count": os.cpu_count(),
        "timings_s": {k: round(v, 3) for k, v in {**timings, "total": time.perf_counter() - started}.items()},
        "global_steps_s": computed.step_seconds,
    }
    return manifest


def _split_entry(staging: Path, records: int, written: WrittenSplit) -> dict[str, Any]:
    return {
        "records": records,
        "shards": [p.relative_to(staging).as_posix() for p in written.paths],
        "num_bytes": written.num_bytes,
        "download_size": sum(p.stat().st_size for p in written.paths),
    }


def _write_outputs(
    recipe: Recipe, plan: BuildPlan, results: list[Any], computed: Computed, staging: Path
) -> dict[str, Any]:
    """Write shards, train.json, the held-out table, the quarantine and the card; return the manifest.

    Each split is written in one pass (writers/splits.py); the small tables are written beside it.
    """
    parts = {split: SplitRecords.of(computed.table, computed.final, split) for split in SPLITS}
    with ThreadPoolExecutor(max_workers=2) as pool:  # the small tables, beside the splits
        heldout_job = pool.submit(write_heldout, computed.held, staging / HELDOUT_DIR)
        quarantine = pl.concat([computed.rejected, *removals_quarantine(computed)])
        quarantine_job = pool.submit(write_quarantine, quarantine, staging / QUARANTINE_NAME)
        written: list[Path] = []
        record_counts: dict[Path, int] = {}
        splits: dict[str, dict[str, Any]] = {}
        for split, part in parts.items():
            train_json = staging / "train.json" if split == "train" and recipe.train_json else None
            shards = write_split(part, staging / "data", split, recipe.shard_records, train_json)
            for shard_index, path in enumerate(shards.paths):
                record_counts[path] = min(recipe.shard_records, part.height - shard_index * recipe.shard_records)
            written += shards.paths
            splits[split] = _split_entry(staging, part.height, shards)
            if train_json is not None:
                written.append(train_json)
        tables: dict[str, dict[str, Any]] = {}
        heldout = heldout_job.result()
        quarantine_job.result()
    if heldout.paths:
        written += heldout.paths
        record_counts[heldout.paths[0]] = computed.held.height
        tables[HELDOUT_DIR] = _split_entry(staging, computed.held.height, heldout)
    written.append(staging / QUARANTINE_NAME)
    record_counts[staging / QUARANTINE_NAME] = quarantine.height

    with ThreadPoolExecutor(max_workers=2) as hashing:  # hashlib releases the GIL: hash while the report renders
        digests = {path: hashing.submit(file_sha256, path) for path in written}
        manifest = build_manifest(recipe, plan, results, computed, quarantine, splits, tables)
        card = staging / "README.md"
        card.write_text(render_card(manifest), encoding="utf-8")
        train_chars = char_counts(computed.table).gather(parts["train"].order["_table_row"])
        report = write_report(staging, manifest, train_chars=train_chars)
        digests |= {path: hashing.submit(file_sha256, path) for path in (card, report)}
        manifest["files"] = file_entries(staging, {p: d.result() for p, d in digests.items()}, record_counts)
    return manifest
