"""holdout: whole groups leave (every language), stratified, exact per stratum, seeded."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from stellar_data.sources.astro_qa import AstroQaOptions, read_astro_qa
from stellar_data.sources.base import RawItem, SourceFile
from stellar_data.steps.holdout import HoldoutConfig, holdout, holdout_groups
from tests.conftest import ROOT

SCHEMA = {"id": pl.String, "source": pl.String, "group": pl.String, "lang": pl.String,
          "_x_type": pl.String, "_x_subfield": pl.String}  # fmt: skip


def records(
    strata: dict[tuple[str, str], int], source: str = "astro_qa", langs: tuple[str, ...] = ("zh", "en")
) -> pl.DataFrame:
    """`n` groups per (type, subfield) stratum, one record per group and language."""
    rows = []
    for (kind, subfield), n in strata.items():
        for g in range(n):
            group = f"{source}:{kind}:{subfield}:{g}"
            rows.extend((f"{group}:{lang}", source, group, lang, kind, subfield) for lang in langs)
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


STRATA = {("single_choice_4", "天体物理学"): 10, ("single_choice_4", "天文学史"): 20, ("judgment", "天体物理学"): 5}
FIFTH = HoldoutConfig(fraction=0.2, stratify=("type", "subfield"))


def strata_of(frame: pl.DataFrame) -> dict[str, tuple[str, str]]:
    """group -> its stratum; a group whose records disagree (duplicates filed under two subfields)
    is counted once, under its smallest value."""
    per_group = frame.group_by("group").agg(pl.col("_x_type").min(), pl.col("_x_subfield").min())
    return {g: (t, s) for g, t, s in per_group.iter_rows()}


def per_stratum(frame: pl.DataFrame, groups: set[str]) -> Counter[tuple[str, str]]:
    strata = strata_of(frame)
    return Counter(strata[g] for g in groups)


def test_exact_count_per_stratum() -> None:
    frame = records(STRATA)

    held = holdout_groups(frame, FIFTH, seed=1)

    assert per_stratum(frame, held) == {
        ("single_choice_4", "天体物理学"): 2,
        ("single_choice_4", "天文学史"): 4,
        ("judgment", "天体物理学"): 1,
    }
    assert len(held) == 7


@pytest.mark.parametrize("seed", range(5))
def test_exact_count_does_not_depend_on_the_seed(seed: int) -> None:
    frame = records(STRATA)

    assert sum(per_stratum(frame, holdout_groups(frame, FIFTH, seed)).values()) == 7


def test_stratify_by_type_only() -> None:
    frame = records(STRATA)

    held = holdout_groups(frame, HoldoutConfig(fraction=0.2, stratify=("type",)), seed=1)

    by_type = Counter(t for t, _ in per_stratum(frame, held).elements())
    assert by_type == {"single_choice_4": 6, "judgment": 1}


def test_fraction_zero_and_one() -> None:
    frame = records(STRATA)
    groups = set(frame["group"].to_list())

    assert holdout_groups(frame, HoldoutConfig(fraction=0.0), seed=1) == set()
    assert holdout_groups(frame, HoldoutConfig(fraction=1.0), seed=1) == groups


def test_every_record_of_a_held_group_leaves_in_every_language() -> None:
    frame = records(STRATA)

    kept, held, _ = holdout(frame, {"astro_qa": FIFTH}, seed=1)

    held_groups = set(held["group"].to_list())
    assert len(held_groups) == 7
    assert held.height == 2 * 7
    assert Counter(held["group"].to_list()) == {g: 2 for g in held_groups}  # zh and en
    assert set(held["lang"].to_list()) == {"zh", "en"}
    assert held_groups.isdisjoint(kept["group"].to_list())
    assert kept.height + held.height == frame.height
    assert kept.columns == frame.columns and held.columns == frame.columns


def test_sources_without_a_config_are_untouched() -> None:
    astro = records(STRATA)
    # Another source whose group names even collide with the astro ones.
    other = astro.with_columns(pl.lit("other").alias("source"), ("other:" + pl.col("id")).alias("id"))
    frame = pl.concat([astro, other])

    kept, held, stats = holdout(frame, {"astro_qa": FIFTH}, seed=1)

    assert set(held["source"].to_list()) == {"astro_qa"}
    assert kept.filter(pl.col("source") == "other").equals(other)
    assert stats["other"].total == stats["other"].kept == other.height
    assert not stats["other"].dropped


def test_no_config_keeps_everything() -> None:
    frame = records(STRATA)

    kept, held, stats = holdout(frame, {}, seed=1)

    assert kept.equals(frame) and held.height == 0
    assert stats["astro_qa"].kept == frame.height


def test_stats_reconcile() -> None:
    frame = pl.concat([records(STRATA), records({("judgment", "x"): 3}, source="other")])

    kept, held, stats = holdout(frame, {"astro_qa": FIFTH}, seed=1)

    astro = stats["astro_qa"]
    assert astro.step == "holdout"
    assert astro.total == 2 * 35
    assert astro.total == astro.kept + astro.dropped["held_out"]
    assert astro.dropped["held_out"] == held.height == 14
    assert astro.kept == kept.filter(pl.col("source") == "astro_qa").height
    assert all(s.reconciles for s in stats.values())


def test_deterministic_whatever_the_row_order() -> None:
    frame = records(STRATA)
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=7)
    assert shuffled["id"].to_list() != frame["id"].to_list()

    assert holdout_groups(shuffled, FIFTH, seed=1) == holdout_groups(frame, FIFTH, seed=1)
    _, held_a, _ = holdout(frame, {"astro_qa": FIFTH}, seed=1)
    _, held_b, _ = holdout(shuffled, {"astro_qa": FIFTH}, seed=1)
    assert sorted(held_a["id"].to_list()) == sorted(held_b["id"].to_list())


def test_a_different_seed_holds_out_a_different_set() -> None:
    frame = records(STRATA)

    sets = {frozenset(holdout_groups(frame, FIFTH, seed)) for seed in range(4)}

    assert len(sets) > 1
    assert holdout_groups(frame, FIFTH, 1) != holdout_groups(frame, FIFTH, 2)


def test_a_stratum_is_fixed_per_group_even_across_languages() -> None:
    # A group whose records disagree on a stratum column is counted once, in one stratum.
    frame = records({("judgment", "天体物理学"): 10})
    frame = frame.with_columns(
        pl.when((pl.col("lang") == "en") & (pl.col("group").str.ends_with(":0")))
        .then(pl.lit("天文学史"))
        .otherwise(pl.col("_x_subfield"))
        .alias("_x_subfield")
    )

    held = holdout_groups(frame, HoldoutConfig(fraction=0.5), seed=3)

    # The group takes the smallest value (天体物理学 < 天文学史): still 10 groups, one stratum.
    assert len(held) == 5


def test_real_astro_qa_holdout(shared_sources: Path) -> None:
    entries = read_astro_qa(
        SourceFile(shared_sources / "Astro-QA/data", "Astro-QA/data"),
        AstroQaOptions(date_cells=str(ROOT / "corpus/astro_qa/date_cells.toml")),
        "auto",
    )
    rows = [
        (f"astro_qa:{e.key}", "astro_qa", e.group, e.lang, e.extra["type"], e.extra["subfield"])
        for e in entries
        if isinstance(e, RawItem)
    ]
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    config = HoldoutConfig(fraction=0.1, stratify=("type", "subfield"))

    kept, held, stats = holdout(frame, {"astro_qa": config}, seed=20240229)

    # Some duplicate groups hold items filed under two subfields: the premise of the count rule.
    mixed = frame.group_by("group").agg(pl.col("_x_subfield").n_unique().alias("n")).filter(pl.col("n") > 1)
    assert mixed.height > 0

    sizes = Counter(strata_of(frame).values())
    chosen = per_stratum(frame, set(held["group"].to_list()))
    for stratum, n in sizes.items():
        assert abs(chosen[stratum] - 0.1 * n) <= 0.5, (stratum, chosen[stratum], n)
    # A held group leaves in both languages: no held item's twin stays behind.
    assert set(held["group"].to_list()).isdisjoint(kept["group"].to_list())
    assert set(held["lang"].to_list()) == {"zh", "en"}
    assert 0.08 * frame.height < held.height < 0.12 * frame.height
    assert stats["astro_qa"].reconciles
