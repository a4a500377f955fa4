"""manifest.json: what was built from what, with counts that reconcile and checksums.

Volatile fields (they may differ between two builds of the same inputs): everything under
`volatile` (build time, durations, host). Everything else is a function of recipe, inputs, seed
and package versions.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import polars as pl

from ..pipeline import GLOBAL_STEPS, STEPS
from ..record import QUARANTINE_SCHEMA
from ..resources import load_schema
from ..sources import STRATA_COLUMNS
from ..steps.assemble import LOCATION_COLUMN
from ..steps.base import RECORD_STEPS, SPLITS, StepStats
from ..steps.quality import QUALITY_STEPS
from .quarantine import REJECTION_KINDS, rejection_counts

if TYPE_CHECKING:
    from ..ingest import IngestResult
    from ..pipeline import Computed
    from ..plan import BuildPlan
    from ..recipe import Recipe

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def file_entries(root: Path, digests: dict[Path, str], records: dict[Path, int]) -> dict[str, dict[str, Any]]:
    """The manifest's `files`: every written file (path -> sha256) with its size and record count."""
    return {
        p.relative_to(root).as_posix(): {
            "sha256": digests[p],
            "bytes": p.stat().st_size,
            **({"records": records[p]} if p in records else {}),
        }
        for p in sorted(digests)
    }


def reconcile_errors(manifest: dict[str, Any]) -> list[str]:
    """Every way the per-source chain fails to add up (empty when the counts reconcile)."""
    problems = []
    for name, source in manifest["sources"].items():
        c = source["counts"]
        rejected = sum(sum(c[kind].values()) for kind in REJECTION_KINDS)
        if c["read"] != c["valid"] + rejected:
            problems.append(f"{name}: read {c['read']} != valid {c['valid']} + rejected {rejected}")
        removals = [step.removes for step in GLOBAL_STEPS if step.removes is not None]
        removed = sum(c[r.count] for r in removals)
        if c["valid"] != c["kept"] + removed:
            parts = f"kept {c['kept']} + {', '.join(r.label for r in removals)} {removed}"
            problems.append(f"{name}: valid {c['valid']} != {parts}")
        mix = c["mix"]
        if c["records"]["train"] != mix["before"] - mix["downsampled"] + mix["copies"]:
            problems.append(
                f"{name}: train records {c['records']['train']} != before mix {mix['before']} - downsampled + copies"
            )
        if c["kept"] != c["train"] + c["validation"]:
            problems.append(f"{name}: kept {c['kept']} != train {c['train']} + validation {c['validation']}")
    for split, info in manifest["splits"].items():
        expected = sum(s["counts"]["records"][split] for s in manifest["sources"].values())
        if info["records"] != expected:
            problems.append(f"{split}: {info['records']} records written, sources account for {expected}")
    return problems


def write_manifest(manifest: dict[str, Any], path: Path) -> None:
    jsonschema.validate(manifest, load_schema("manifest.schema.json"))
    problems = reconcile_errors(manifest)
    if problems:  # a bug in stellar-data, not in the data: never write a manifest that lies
        raise AssertionError("manifest counts do not reconcile: " + "; ".join(problems))
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    staging.replace(path)


def removal_quarantine(removed: pl.DataFrame, rule: str, message: pl.Expr, table: pl.DataFrame) -> pl.DataFrame:
    """Quarantine rows (deliberate) for items a global step removed, with the step's evidence, located
    where their adapter found them (the table's `_location`, as for the records read refused)."""
    locations = table[LOCATION_COLUMN].gather(removed["_table_row"])
    rows = removed.with_columns(locations.alias("_at")).select(
        "source",
        pl.col("source_file").alias("file"),
        pl.col("_at").alias("location"),
        pl.col("source_row").alias("row"),
        pl.lit(rule).alias("rule"),
        message.alias("message"),
        pl.lit(True).alias("deliberate"),
        "id",
        pl.lit(None, dtype=pl.String).alias("raw"),
    )
    return pl.from_arrow(rows.to_arrow().cast(QUARANTINE_SCHEMA))


def removals_quarantine(out: Computed) -> list[pl.DataFrame]:
    """The rows each filtering step removed, in step order, with the message its `removes` declares
    (held-out items are not quarantined: they are the benchmark)."""
    frames = []
    for step in GLOBAL_STEPS:
        removed = out.removed.get(step.name)
        if step.removes is not None and step.removes.message is not None and removed is not None and removed.height:
            frames.append(removal_quarantine(removed, step.removes.reason, step.removes.message, out.table))
    return frames


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("stellar-speak", "polars", "pyarrow", "opencc", "jsonschema", "openpyxl"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def build_manifest(
    recipe: Recipe,
    plan: BuildPlan,
    results: list[IngestResult],
    out: Computed,
    quarantine: pl.DataFrame,
    splits: dict[str, dict[str, Any]],
    tables: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Everything but `files` and `volatile`, which the build adds once the files are written."""
    records_per_split = {(src, split): n for src, split, n in out.final.group_by("source", "split").len().iter_rows()}
    sources: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []
    for spec in recipe.sources:
        chain = {step: out.stats.get((step, spec.name), StepStats(step, spec.name)) for step in STEPS}
        if spec.name not in plan.skipped:
            steps += [chain[step].as_dict() for step in STEPS]
        counts: dict[str, Any] = {
            "read": chain["read"].total,
            **{kind: rejection_counts(out.rejected, spec.name, kind) for kind in REJECTION_KINDS},
            "valid": chain[RECORD_STEPS[-1]].kept,
        }
        for step in GLOBAL_STEPS:
            counts |= step.source_counts(chain[step.name])
        counts["records"] = {split: records_per_split.get((spec.name, split), 0) for split in SPLITS}
        sources[spec.name] = {
            "adapter": spec.adapter,
            "category": spec.category,
            "lang": spec.lang,
            "opencc": spec.opencc,
            "license": spec.license,
            "url": spec.url,
            "status": "missing_optional" if spec.name in plan.skipped else "ok",
            "files": {name: entry for r in results if r.source == spec.name for name, entry in r.files.items()},
            "counts": counts,
        }
    categories: dict[str, dict[str, int]] = {}
    final = out.final
    for category, split, n in final.group_by("category", "split").len().sort("category", "split").iter_rows():
        categories.setdefault(category, {})[split] = n
    return {
        "format_version": FORMAT_VERSION,
        "corpus": recipe.name,
        "description": recipe.description,
        "recipe": {"path": recipe.path.as_posix(), "sha256": recipe.sha256, "text": recipe.text},
        "seed": recipe.seed,
        "versions": _versions(),
        "sources": sources,
        "steps": steps,
        "splits": splits,
        "tables": tables,
        **out.reports,
        "filters": _filter_settings(recipe),
        "breakdown": _breakdown(out),
        "categories": categories,
        "languages": sorted(final["lang"].unique().to_list()),
        "quarantine": {
            "records": quarantine.height,
            "by_rule": dict(sorted(quarantine.group_by("rule").len().iter_rows())),
        },
        "files": {},
        "warnings": list(plan.skipped.values()) + list(out.warnings),
    }


def _filter_settings(recipe: Recipe) -> dict[str, Any]:
    """The quality steps that ran on any source, with their settings (chain order)."""
    configs = dict(recipe.filters)
    for spec in recipe.sources:
        configs |= {name: config for name, config in spec.filters if name not in configs}
    ordered = [name for name in QUALITY_STEPS if name in configs]
    return {name: _jsonable(dataclasses.asdict(configs[name])) for name in ordered}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _breakdown(out: Computed) -> dict[str, Any]:
    """Per source with structured items: records by split, language and the strata its adapter offers
    (sources.STRATA_COLUMNS: type, subfield); held-out items likewise."""
    strata = [c for c in STRATA_COLUMNS if c in out.final.columns]
    if not strata:
        return {}
    keys = ["source", "lang", *strata]

    def rows(frame: pl.DataFrame, by: list[str]) -> list[dict[str, Any]]:
        counted = frame.filter(pl.col(strata[0]).is_not_null()).group_by(by).len().sort(by)
        return [{k.removeprefix("_x_"): v for k, v in row.items()} for row in counted.iter_rows(named=True)]

    result: dict[str, Any] = {}
    for row in rows(out.final, ["split", *keys]):
        result.setdefault(row.pop("source"), {"records": [], "held_out": []})["records"].append(row)
    if set(strata) <= set(out.held.columns):
        for row in rows(out.held, keys):
            result.setdefault(row.pop("source"), {"records": [], "held_out": []})["held_out"].append(row)
    return result
