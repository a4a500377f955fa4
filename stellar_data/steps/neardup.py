"""Near-duplicates: LSH clustering of the MinHash signatures the ingest workers computed (global).

Signatures and their bands: similarity/minhash.py. Items whose signatures agree on a whole band
become candidates, each is checked against its bucket's first item (estimated Jaccard >= threshold),
and accepted pairs are joined into clusters (union-find). Each cluster keeps one item by the same
priority as exact dedup (source priority, recipe order, file, row); the others are dropped with
evidence.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ..similarity.minhash import SIGNATURE, band_keys, empty_signatures
from .base import Filter, Removal, StepContext, StepResult, StepStats, per_source_stats
from .dedup import RANK_COLUMNS

if TYPE_CHECKING:
    from ..recipe import Recipe


@dataclass(frozen=True)
class NearDedupConfig:
    enabled: bool = True
    """False: the recipe keeps its settings but the step is off."""
    threshold: float = 0.8
    """Estimated Jaccard similarity at or above which two items are near-duplicates."""
    num_perm: int = 64
    """Signature size K (a power of two)."""
    bands: int = 16
    ngram: int = 5
    exclude_sources: tuple[str, ...] = ()
    """Sources left out (e.g. self-cognition prompts whose answers are identical on purpose)."""

    @property
    def rows(self) -> int:
        return self.num_perm // self.bands


class _Clusters:
    """Union-find over item positions."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # the root is the smallest position: the priority order


def near_dedup(
    thin: pl.DataFrame, config: NearDedupConfig
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, StepStats], dict[str, Any]]:
    """thin: id, source, SIGNATURE and RANK_COLUMNS. Returns (kept, dropped with `kept_id` and
    `similarity`, stats per source, a cluster report)."""
    ranked = thin.sort(list(RANK_COLUMNS))
    sig = ranked[SIGNATURE].to_numpy()
    valid = ~empty_signatures(sig) & ~ranked["source"].is_in(list(config.exclude_sources)).to_numpy()
    keys = band_keys(sig, config)
    clusters = _Clusters(len(ranked))
    similarity: dict[int, float] = {}
    positions = np.flatnonzero(valid)
    for band in range(config.bands):
        column = keys[positions, band]
        order = np.argsort(column, kind="stable")
        sorted_keys = column[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
            members = positions[order[start : start + size]]
            first = members.min()
            agree = (sig[members] == sig[first]).mean(axis=1)
            for member, score in zip(members, agree, strict=True):
                if member != first and score >= config.threshold:
                    clusters.join(first, member)
                    similarity[member] = max(similarity.get(member, 0.0), float(score))
    roots = np.array([clusters.find(i) for i in range(len(ranked))], dtype=np.int64)
    is_kept = roots == np.arange(len(ranked))
    ids = ranked["id"].to_list()
    dropped = ranked.filter(~pl.Series(is_kept)).with_columns(
        pl.Series("kept_id", [ids[r] for r in roots[~is_kept]], dtype=pl.String),
        pl.Series(
            "similarity", [similarity.get(int(i), config.threshold) for i in np.flatnonzero(~is_kept)], dtype=pl.Float64
        ),
    )
    kept = ranked.filter(pl.Series(is_kept))
    report = _report(roots, ids, dropped)
    return kept, dropped, per_source_stats("neardup", thin, dropped, "near_duplicate"), report


def _report(roots: np.ndarray, ids: list[str], dropped: pl.DataFrame) -> dict[str, Any]:
    sizes = Counter(Counter(roots.tolist()).values())
    multi = {size: n for size, n in sizes.items() if size > 1}
    biggest = (
        dropped.group_by("kept_id")
        .agg(pl.col("id").sort(), pl.col("similarity").min())
        .sort(pl.col("id").list.len(), "kept_id", descending=[True, False])
        .head(10)
    )
    return {
        "clusters": sum(multi.values()),
        "dropped": dropped.height,
        "cluster_sizes": {str(size): n for size, n in sorted(multi.items())},
        "largest": [{"kept": k, "dropped": d, "min_similarity": round(s, 3)} for k, d, s in biggest.iter_rows()],
    }


class NearDedup(Filter):
    """`[near_dedup]`: one item per cluster of near-duplicates (signatures from the workers)."""

    name = "neardup"
    removes = Removal(
        "near_duplicate",
        "near_duplicates",
        pl.format(
            "near-duplicate of {} (estimated Jaccard {})",
            pl.col("kept_id"),
            pl.col("similarity").round(3).cast(pl.String),
        ),
    )
    report_key = "near_duplicates"

    def __init__(self, config: NearDedupConfig) -> None:
        self.config = config

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> NearDedup | None:
        return None if recipe.near_dedup is None else cls(recipe.near_dedup)

    def run(self, thin: pl.DataFrame, ctx: StepContext) -> StepResult:
        kept, dropped, _, report = near_dedup(thin, self.config)
        return StepResult(kept.drop(SIGNATURE), dropped, report=report)
