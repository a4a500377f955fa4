"""Aggregation: mean score with a 95% confidence interval per type, subfield and language, for each
model, and the adapter-minus-base difference when two models were scored.

Every item's score is normalized to 0-1 (score / max_score) so that types with different point
scales (multi-select counts 2) can be averaged together; the raw Astro-QA points are kept beside.
Confidence intervals: percentile bootstrap of the mean, 2,000 resamples from a fixed seed over the
sorted values (deterministic, and independent of item order). The difference is a paired bootstrap
over the items both models scored. With one item the interval is that item's value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .items import EvalItem

RESAMPLES = 2000
SEED = 20240229
LEVEL = 0.95
DIMENSIONS = ("overall", "type", "subfield", "lang")
CI_METHOD = f"percentile bootstrap of the mean, {RESAMPLES} resamples, seed {SEED}, {LEVEL:.0%}"


@dataclass(frozen=True)
class Scored:
    score: float
    max_score: float

    @property
    def normalized(self) -> float:
        return self.score / self.max_score


def bootstrap_ci(values: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """(low, high) of a percentile bootstrap of the mean."""
    data = np.sort(np.asarray(values, dtype=np.float64))
    if data.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    block = max(1, min(resamples, 2_000_000 // data.size))  # bounded memory for large eval sets
    means = np.concatenate([
        data[rng.integers(0, data.size, size=(min(block, resamples - start), data.size))].mean(axis=1)
        for start in range(0, resamples, block)
    ])  # fmt: skip
    alpha = (1 - LEVEL) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def cell(values: Sequence[Scored]) -> dict[str, float | int]:
    normalized = [v.normalized for v in values]
    low, high = bootstrap_ci(normalized)
    return {
        "n": len(values),
        "mean": _round(float(np.mean(normalized))),
        "ci_low": _round(low),
        "ci_high": _round(high),
        "points": _round(sum(v.score for v in values)),
        "max_points": _round(sum(v.max_score for v in values)),
    }


def delta_cell(base: Sequence[Scored], other: Sequence[Scored]) -> dict[str, float | int]:
    """other - base over paired items (same order), normalized scores."""
    differences = [o.normalized - b.normalized for b, o in zip(base, other, strict=True)]
    low, high = bootstrap_ci(differences)
    return {"n": len(differences), "mean": _round(float(np.mean(differences))), "ci_low": _round(low),
            "ci_high": _round(high)}  # fmt: skip


def _round(value: float) -> float:
    return round(value, 6)


def _key(item: EvalItem, dimension: str) -> str:
    return {"overall": "all", "type": item.type, "subfield": item.subfield or "-", "lang": item.lang}[dimension]


def summarize(items: Sequence[EvalItem], results: Mapping[str, Mapping[str, Scored]]) -> dict:
    """{dimension: {group: {model: cell, ..., "delta": cell}}} over the items each model scored;
    `results` maps model label -> item id -> score, its first label being the reference model."""
    labels = list(results)
    tables: dict[str, dict[str, dict]] = {}
    for dimension in DIMENSIONS:
        groups: dict[str, list[EvalItem]] = {}
        for item in items:
            groups.setdefault(_key(item, dimension), []).append(item)
        table = {}
        for name in sorted(groups):
            members = groups[name]
            row = {}
            for label in labels:
                scored = [results[label][i.id] for i in members if i.id in results[label]]
                if scored:
                    row[label] = cell(scored)
            if len(labels) == 2:
                base, other = (results[label] for label in labels)
                paired = [i.id for i in members if i.id in base and i.id in other]
                if paired:
                    row["delta"] = delta_cell([base[i] for i in paired], [other[i] for i in paired])
            table[name] = row
        tables[dimension] = table
    return tables


def render(tables: dict, labels: Sequence[str], console) -> None:
    """One rich table per dimension: mean % [95% CI] per model, and the difference."""
    from rich.table import Table

    for dimension in DIMENSIONS:
        table = Table(title=f"by {dimension}" if dimension != "overall" else "overall", title_justify="left")
        table.add_column(dimension if dimension != "overall" else "")
        table.add_column("n", justify="right")
        for label in labels:
            table.add_column(f"{label} % [95% CI]", justify="right")
        if len(labels) == 2:
            table.add_column(f"{labels[1]} - {labels[0]}", justify="right")
        for name, row in tables[dimension].items():
            n = max((c["n"] for c in row.values()), default=0)
            cells = [_format(row.get(label)) for label in labels]
            if len(labels) == 2:
                cells.append(_format(row.get("delta"), signed=True))
            table.add_row(name, str(n), *cells)
        console.print(table)


def _format(values: dict | None, signed: bool = False) -> str:
    if not values:
        return "-"
    sign = "+" if signed else ""
    return f"{100 * values['mean']:{sign}.1f} [{100 * values['ci_low']:{sign}.1f}, {100 * values['ci_high']:{sign}.1f}]"
