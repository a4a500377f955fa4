"""assign_splits: whole groups go to train or validation; u(seed, group) < fraction -> validation."""

from __future__ import annotations

import polars as pl
import pytest

from stellar_data.hashing import seeded_unit
from stellar_data.steps.split import assign_splits

SEED = 20240229


def thin(rows: list[tuple[str, str, str]], seed: int = SEED) -> pl.DataFrame:
    """rows: (id, source, group); _split_u is drawn per group as ingest does."""
    return pl.DataFrame(
        [(rid, source, group, seeded_unit(seed, "split", group)) for rid, source, group in rows],
        schema={"id": pl.String, "source": pl.String, "group": pl.String, "_split_u": pl.Float64},
        orient="row",
    )


def explicit(rows: list[tuple[str, str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"id": pl.String, "source": pl.String, "group": pl.String, "_split_u": pl.Float64}, orient="row"
    )


def split_of(assigned: pl.DataFrame) -> dict[str, str]:
    return dict(assigned.select("id", "split").iter_rows())


def test_u_below_fraction_goes_to_validation() -> None:
    frame = explicit(
        [("s:0", "s", "g0", 0.05), ("s:1", "s", "g1", 0.1), ("s:2", "s", "g2", 0.5), ("s:3", "s", "g3", 0.0999)]
    )
    assigned, stats = assign_splits(frame, {"s": 0.1})
    assert split_of(assigned) == {"s:0": "validation", "s:1": "train", "s:2": "train", "s:3": "validation"}
    assert (stats["s"].total, stats["s"].kept, dict(stats["s"].notes)) == (4, 4, {"validation": 2, "train": 2})
    assert stats["s"].reconciles and stats["s"].step == "split"


def test_input_columns_are_kept_and_split_added() -> None:
    frame = explicit([("s:0", "s", "g0", 0.5)])
    assigned, _ = assign_splits(frame, {"s": 0.1})
    assert assigned.columns == [*frame.columns, "split"]
    assert assigned.drop("split").equals(frame)


def test_fraction_zero_puts_everything_in_train() -> None:
    frame = thin([(f"s:{i}", "s", f"g{i}") for i in range(500)])
    frame = pl.concat([frame, explicit([("s:u0", "s", "gu0", 0.0)])])  # even u == 0 stays in train
    assigned, stats = assign_splits(frame, {"s": 0.0})
    assert set(assigned["split"].to_list()) == {"train"}
    assert dict(stats["s"].notes) == {"train": 501}


def test_fraction_one_puts_everything_in_validation() -> None:
    assigned, _ = assign_splits(thin([(f"s:{i}", "s", f"g{i}") for i in range(200)]), {"s": 1.0})
    assert set(assigned["split"].to_list()) == {"validation"}


def test_variants_of_one_group_share_a_split() -> None:
    rows = [(f"s:{g}:t{t}", "s", f"item{g}") for g in range(300) for t in range(5)]
    assigned, _ = assign_splits(thin(rows), {"s": 0.3})
    per_group = assigned.group_by("group").agg(pl.col("split").n_unique().alias("n"))
    assert per_group["n"].max() == 1
    assert set(assigned["split"].to_list()) == {"train", "validation"}


def test_group_spanning_sources_with_different_fractions_never_straddles() -> None:
    # zh and en records of an item share a group; zh asks for 0.5, en for 0.05: the smaller wins.
    frame = explicit(
        [
            ("zh:1", "zh", "item1", 0.2),
            ("en:1", "en", "item1", 0.2),  # 0.2 < 0.5 but not < 0.05
            ("zh:2", "zh", "item2", 0.01),
            ("en:2", "en", "item2", 0.01),  # below both
            ("zh:3", "zh", "item3", 0.3),  # zh only: its own fraction
        ]
    )
    assigned, stats = assign_splits(frame, {"zh": 0.5, "en": 0.05})
    assert split_of(assigned) == {
        "zh:1": "train",
        "en:1": "train",
        "zh:2": "validation",
        "en:2": "validation",
        "zh:3": "validation",
    }
    assert dict(stats["zh"].notes) == {"train": 1, "validation": 2}
    assert dict(stats["en"].notes) == {"train": 1, "validation": 1}


def test_many_cross_source_groups_never_straddle() -> None:
    rows = [(f"{src}:{g}", src, f"item{g}") for g in range(2000) for src in ("zh", "en")]
    assigned, _ = assign_splits(thin(rows), {"zh": 0.5, "en": 0.05})
    per_group = assigned.group_by("group").agg(pl.col("split").n_unique().alias("n"))
    assert per_group["n"].max() == 1
    share = assigned.filter(pl.col("split") == "validation")["group"].n_unique() / 2000
    assert 0.03 < share < 0.07  # the smaller fraction governs


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_assignment_does_not_depend_on_row_order(seed: int) -> None:
    rows = [(f"{src}:{g}:{t}", src, f"item{g}") for g in range(400) for src in ("a", "b") for t in range(2)]
    frame = thin(rows)
    fractions = {"a": 0.2, "b": 0.1}
    reference, reference_stats = assign_splits(frame, fractions)
    shuffled, shuffled_stats = assign_splits(frame.sample(fraction=1.0, shuffle=True, seed=seed), fractions)
    assert split_of(shuffled) == split_of(reference)
    assert {s: dict(st.notes) for s, st in shuffled_stats.items()} == {
        s: dict(st.notes) for s, st in reference_stats.items()
    }


def test_assignment_does_not_depend_on_batching() -> None:
    rows = [(f"s:{g}", "s", f"item{g}") for g in range(1000)]
    frame = thin(rows)
    whole, _ = assign_splits(frame, {"s": 0.25})
    halves = pl.concat([assign_splits(frame[:500], {"s": 0.25})[0], assign_splits(frame[500:], {"s": 0.25})[0]])
    assert split_of(halves) == split_of(whole)


def test_validation_share_is_close_to_the_fraction() -> None:
    rows = [(f"s:{g}", "s", f"astro_qa:4opt:{g}") for g in range(10_000)]
    assigned, stats = assign_splits(thin(rows), {"s": 0.1})
    share = (assigned["split"] == "validation").sum() / 10_000
    assert 0.08 <= share <= 0.12
    assert stats["s"].notes["validation"] + stats["s"].notes["train"] == 10_000


def test_seed_changes_the_assignment() -> None:
    rows = [(f"s:{g}", "s", f"item{g}") for g in range(1000)]
    first, _ = assign_splits(thin(rows, seed=1), {"s": 0.2})
    second, _ = assign_splits(thin(rows, seed=2), {"s": 0.2})
    assert split_of(first) != split_of(second)


def test_source_without_a_fraction_is_an_error() -> None:
    with pytest.raises(pl.exceptions.InvalidOperationError):
        assign_splits(explicit([("s:0", "s", "g", 0.5), ("t:0", "t", "h", 0.5)]), {"s": 0.1})
