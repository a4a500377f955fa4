"""mix: exact targets (counts first, shares over the remainder, anchor), seeded up/downsampling
with a per-record copy factor of floor(r) or ceil(r), caps that are reported, recipe errors, and
decisions that depend on hash(seed, id) only (not on row order or batching)."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

import stellar_data as sd
from stellar_data.errors import RecipeError
from stellar_data.hashing import seeded_u64
from stellar_data.steps.mix import (
    CategoryPlan,
    CategoryTarget,
    MixConfig,
    MixPlan,
    apply_mix,
    copies_per_record,
    plan_mix,
)
from tests.helpers import write_recipe

SEED = 11


def records(sizes: dict[tuple[str, str], int], seed: int = SEED) -> pl.DataFrame:
    """`n` train records per (category, source), with the columns mixing reads and carries."""
    rows = []
    for (category, source), n in sizes.items():
        for i in range(n):
            record_id = f"{source}:{i}"
            rows.append((record_id, f"q {record_id}", "", f"a {record_id}", category, source, 0,
                         seeded_u64(seed, "order", record_id)))  # fmt: skip
    schema = {"id": pl.String, "instruction": pl.String, "input": pl.String, "output": pl.String,
              "category": pl.String, "source": pl.String, "copy_index": pl.Int32, "_order": pl.UInt64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row")


def by_name(plan: MixPlan) -> dict[str, CategoryPlan]:
    return {c.category: c for c in plan.categories}


def base_id(record_id: str) -> str:
    return re.sub(r":c\d+$", "", record_id)


def appearances(mixed: pl.DataFrame) -> Counter[str]:
    return Counter(base_id(i) for i in mixed["id"])


def canonical(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.select(sorted(frame.columns)).iter_rows())


# --- plan_mix: sizes -------------------------------------------------------------------------


def test_targets_are_whole_numbers_by_largest_remainder() -> None:
    config = MixConfig({n: CategoryTarget(share=1 / 3, max_copies=100) for n in ("a", "b", "c")}, total=100)
    plan = plan_mix({"a": 10, "b": 10, "c": 10}, config)
    assert {c.category: c.target for c in plan.categories} == {"a": 34, "b": 33, "c": 33}
    assert plan.total_target == 100 == plan.total_achieved


@pytest.mark.parametrize("total", [1, 2, 7, 99, 100, 101, 1001, 12345])
@pytest.mark.parametrize("shares", [(0.1, 0.2, 0.7), (0.37, 0.33, 0.3), (0.29, 0.29, 0.42), (0.05, 0.05, 0.9)])
def test_targets_add_up_to_the_total_exactly(total: int, shares: tuple[float, float, float]) -> None:
    names = ("a", "b", "c")
    config = MixConfig(
        {n: CategoryTarget(share=s, max_copies=1e6) for n, s in zip(names, shares, strict=True)}, total=total
    )
    plan = plan_mix(dict.fromkeys(names, 5), config)
    targets = {c.category: c.target for c in plan.categories}
    assert sum(targets.values()) == total == plan.total_target
    for name, share in zip(names, shares, strict=True):
        assert abs(targets[name] - share * total) < 1, (name, targets)


def test_counts_come_first_and_shares_divide_the_remainder() -> None:
    config = MixConfig(
        {
            "a": CategoryTarget(count=10, max_copies=5),
            "b": CategoryTarget(share=0.75, max_copies=5),
            "c": CategoryTarget(share=0.25, max_copies=5),
        },
        total=50,
    )
    plan = by_name(plan_mix({"a": 4, "b": 40, "c": 40}, config))
    assert {n: p.target for n, p in plan.items()} == {"a": 10, "b": 30, "c": 10}
    assert {n: p.achieved for n, p in plan.items()} == {"a": 10, "b": 30, "c": 10}
    assert plan["a"].target_share == pytest.approx(0.2)
    assert plan["b"].target_share == pytest.approx(0.6)


def test_a_total_equal_to_the_counts_needs_no_shares() -> None:
    config = MixConfig({"a": CategoryTarget(count=3), "b": CategoryTarget(count=7, max_copies=2)}, total=10)
    plan = by_name(plan_mix({"a": 5, "b": 5}, config))
    assert {n: p.achieved for n, p in plan.items()} == {"a": 3, "b": 7}


def test_the_anchor_keeps_its_size_and_sizes_the_others() -> None:
    config = MixConfig(
        {
            "a": CategoryTarget(share=0.6),
            "b": CategoryTarget(share=0.4, max_copies=10),
            "c": CategoryTarget(count=5, max_copies=10),
        },
        anchor="a",
    )
    plan = plan_mix({"a": 90, "b": 7, "c": 2}, config)
    assert {c.category: c.target for c in plan.categories} == {"a": 90, "b": 60, "c": 5}
    assert plan.total_target == 155 and plan.warnings == ()


@pytest.mark.parametrize("shares", [(0.6, 0.2, 0.2), (0.3, 0.3, 0.4), (0.05, 0.5, 0.45), (0.7, 0.15, 0.15)])
def test_the_anchor_is_kept_exactly_whatever_its_size(shares: tuple[float, float, float]) -> None:
    names = ("a", "b", "c")
    config = MixConfig(
        {n: CategoryTarget(share=s, max_copies=1e6) for n, s in zip(names, shares, strict=True)}, anchor="a"
    )
    for size in range(1, 300):
        plan = by_name(plan_mix({"a": size, "b": 3, "c": 3}, config))
        assert plan["a"].target == plan["a"].achieved == size, (shares, size)
        assert not plan["a"].capped


# --- copies_per_record -----------------------------------------------------------------------


def times_of(ids: list[str], target: int, seed: int) -> dict[str, int]:
    """copies_per_record as {id: times}."""
    times = copies_per_record(pl.Series(ids, dtype=pl.String), target, seed)
    assert times.dtype == pl.Int64 and times.len() == len(ids)
    return dict(zip(ids, times.to_list(), strict=True))


def test_upsampling_gives_every_record_floor_or_ceil_of_the_ratio() -> None:
    ids = [f"r{i}" for i in range(10)]
    times = times_of(ids, 25, SEED)  # ratio 2.5
    assert set(times) == set(ids)
    assert set(times.values()) == {2, 3}
    assert sum(times.values()) == 25
    assert Counter(times.values()) == {2: 5, 3: 5}


def test_a_whole_ratio_gives_every_record_the_same_copies() -> None:
    ids = [f"r{i}" for i in range(7)]
    assert times_of(ids, 21, SEED) == dict.fromkeys(ids, 3)
    assert times_of(ids, 7, SEED) == dict.fromkeys(ids, 1)
    assert times_of([], 5, SEED) == {}


def test_downsampling_draws_without_replacement() -> None:
    ids = [f"r{i}" for i in range(100)]
    times = times_of(ids, 37, SEED)
    assert set(times.values()) == {0, 1}
    assert sum(times.values()) == 37


def test_draws_do_not_depend_on_the_order_of_the_ids() -> None:
    ids = [f"r{i}" for i in range(100)]
    shuffled = ids[:]
    random.Random(3).shuffle(shuffled)
    for target in (13, 100, 250):
        assert times_of(shuffled, target, SEED) == times_of(ids, target, SEED)


def test_draws_are_nested_as_the_target_grows() -> None:
    """The draw ranks records by hash(seed, id): a larger target keeps every record a smaller one drew."""
    ids = [f"r{i}" for i in range(50)]
    previous: set[str] = set()
    for target in range(0, 51, 5):
        drawn = {i for i, n in times_of(ids, target, SEED).items() if n}
        assert previous <= drawn and len(drawn) == target
        previous = drawn


def test_another_seed_draws_other_records() -> None:
    ids = [f"r{i}" for i in range(100)]
    assert times_of(ids, 150, 1) != times_of(ids, 150, 2)
    assert times_of(ids, 30, 1) != times_of(ids, 30, 2)
    assert times_of(ids, 150, 1) == times_of(ids, 150, 1)


# --- caps, skips -----------------------------------------------------------------------------


def test_a_cap_is_reported_not_silently_violated() -> None:
    config = MixConfig({"a": CategoryTarget(share=0.5), "b": CategoryTarget(share=0.5, max_copies=2.5)}, total=80)
    plan = plan_mix({"a": 60, "b": 7}, config)
    b = by_name(plan)["b"]
    assert (b.target, b.achieved) == (40, 17)  # floor(7 x 2.5)
    assert b.capped and not by_name(plan)["a"].capped
    assert by_name(plan)["a"].achieved == 40  # the others keep their targets
    assert plan.total_target == 80 and plan.total_achieved == 57
    assert len(plan.warnings) == 1
    assert "'b'" in plan.warnings[0] and "40" in plan.warnings[0] and "17" in plan.warnings[0]
    assert plan.achieved_share("b") == pytest.approx(17 / 57)

    mixed, _, distribution = apply_mix(records({("a", "sa"): 60, ("b", "sb"): 7}), plan, SEED)
    assert mixed.filter(pl.col("category") == "b").height == 17
    assert set(appearances(mixed.filter(pl.col("category") == "b")).values()) == {2, 3}  # at most ceil(2.5)
    assert distribution["b"] == {2: 4, 3: 3}  # 7 x 2 + 3 drawn


def test_max_copies_one_never_upsamples() -> None:
    config = MixConfig({"a": CategoryTarget(share=0.5), "b": CategoryTarget(share=0.5)}, total=100)
    plan = by_name(plan_mix({"a": 80, "b": 20}, config))
    assert plan["b"].achieved == 20 and plan["b"].capped
    assert plan["a"].achieved == 50 and not plan["a"].capped


def test_an_empty_category_can_be_skipped_and_the_shares_are_rescaled() -> None:
    config = MixConfig(
        {
            "a": CategoryTarget(share=0.5),
            "b": CategoryTarget(share=0.3),
            "c": CategoryTarget(share=0.2, skip_if_empty=True),
        },
        total=80,
    )
    plan = plan_mix({"a": 100, "b": 100, "c": 0}, config)
    categories = by_name(plan)
    assert (categories["a"].target, categories["b"].target) == (50, 30)
    assert categories["c"].skipped and categories["c"].achieved == 0
    assert plan.total_achieved == 80
    assert any("'c'" in w and "skipped" in w for w in plan.warnings)

    mixed, _, distribution = apply_mix(records({("a", "sa"): 100, ("b", "sb"): 100}), plan, SEED)
    assert mixed.height == 80 and set(mixed["category"]) == {"a", "b"}
    assert "c" not in distribution


def test_an_empty_counted_category_can_be_skipped() -> None:
    config = MixConfig({"a": CategoryTarget(share=1.0), "c": CategoryTarget(count=5, skip_if_empty=True)}, total=20)
    plan = by_name(plan_mix({"a": 30, "c": 0}, config))
    assert plan["c"].skipped and plan["a"].achieved == 20  # the total stays; only the shares are rescaled


# --- recipe errors ---------------------------------------------------------------------------


def _two(a: CategoryTarget, b: CategoryTarget, **sizing: object) -> MixConfig:
    return MixConfig({"a": a, "b": b}, **sizing)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("available", "config", "message"),
    [
        pytest.param(
            {"a": 10, "b": 10},
            _two(CategoryTarget(share=0.5), CategoryTarget(share=0.4), total=10),
            r"sum to 0\.9",
            id="shares-not-summing-to-1",
        ),
        pytest.param(
            {"a": 10, "b": 10},
            _two(CategoryTarget(share=0.6), CategoryTarget(share=0.6), total=10),
            r"sum to 1\.2",
            id="shares-over-1",
        ),
        pytest.param(
            {"a": 10},
            _two(CategoryTarget(share=0.5), CategoryTarget(share=0.5), total=10),
            r"'b'.*not produced",
            id="unknown-category",
        ),
        pytest.param(
            {"a": 10, "b": 10, "z": 3},
            _two(CategoryTarget(share=0.5), CategoryTarget(share=0.5), total=10),
            r"'z'.*no target",
            id="category-without-target",
        ),
        pytest.param(
            {"a": 10, "b": 0},
            _two(CategoryTarget(share=0.5), CategoryTarget(share=0.5), total=10),
            r"\bb\b.*empty.*skip_if_empty",
            id="empty-category-without-skip",
        ),
        pytest.param(
            {"a": 10, "b": 0},
            _two(CategoryTarget(share=1.0), CategoryTarget(count=3), total=10),
            r"\bb\b.*empty",
            id="empty-counted-category-without-skip",
        ),
        pytest.param(
            {"a": 10, "b": 10},
            _two(CategoryTarget(share=1.0), CategoryTarget(count=3), anchor="b"),
            r"anchor.*'b'.*share",
            id="anchor-without-share",
        ),
        pytest.param(
            {"a": 10, "b": 10},
            _two(CategoryTarget(share=1.0), CategoryTarget(count=3), anchor="nowhere"),
            r"anchor",
            id="anchor-not-a-category",
        ),
        pytest.param(
            {"a": 10, "b": 10},
            _two(CategoryTarget(count=8), CategoryTarget(count=8), total=10),
            r"total 10",
            id="total-smaller-than-the-counts",
        ),
        pytest.param(
            {"a": 10, "b": 10},
            _two(CategoryTarget(share=1.0), CategoryTarget(count=8), total=5),
            r"total 5",
            id="total-smaller-than-a-count",
        ),
        pytest.param(
            {"a": 10, "b": 10},
            _two(CategoryTarget(count=2), CategoryTarget(count=3), total=10),
            r"total 10",
            id="total-larger-than-the-counts-without-shares",
        ),
        pytest.param(
            {"a": 10, "b": 10},
            _two(CategoryTarget(share=0.5), CategoryTarget(share=0.5)),
            r"total.*anchor",
            id="neither-total-nor-anchor",
        ),
    ],
)
def test_recipe_errors(available: dict[str, int], config: MixConfig, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        plan_mix(available, config)


def test_shares_that_do_not_sum_to_1_are_an_error_even_when_a_category_is_skipped() -> None:
    """Skipping rescales shares that sum to 1; it must not turn an invalid recipe (0.5 + 0.3 + 0.1)
    into a valid one only because a category happens to be empty."""
    config = MixConfig(
        {
            "a": CategoryTarget(share=0.5),
            "b": CategoryTarget(share=0.3),
            "c": CategoryTarget(share=0.1, skip_if_empty=True),
        },
        total=80,
    )
    with pytest.raises(RecipeError, match=r"sum to 0\.9"):
        plan_mix({"a": 100, "b": 100, "c": 0}, config)


# --- apply_mix -------------------------------------------------------------------------------

SIZES = {("a", "sa1"): 30, ("a", "sa2"): 20, ("b", "sb1"): 6, ("b", "sb2"): 4, ("c", "sc"): 12}
CONFIG = MixConfig(
    {
        "a": CategoryTarget(share=0.5),  # 50 -> 33: downsampled
        "b": CategoryTarget(share=0.5, max_copies=4),  # 10 -> 33: ratio 3.3
        "c": CategoryTarget(count=30, max_copies=3),  # 12 -> 30: ratio 2.5
    },
    total=96,
)


@pytest.fixture(scope="module")
def mixed_frame() -> tuple[pl.DataFrame, tuple[pl.DataFrame, dict, dict], MixPlan]:
    """(train, apply_mix's (mixed, stats per source, copy factors), plan)."""
    train = records(SIZES)
    plan = plan_mix(dict(Counter(train["category"])), CONFIG)
    return train, apply_mix(train, plan, SEED), plan


def test_apply_mix_reaches_every_target_exactly(mixed_frame) -> None:
    train, (mixed, _, _), plan = mixed_frame
    assert {c.category: c.achieved for c in plan.categories} == {"a": 33, "b": 33, "c": 30}
    assert mixed.height == 96 == plan.total_achieved
    assert dict(Counter(mixed["category"])) == {"a": 33, "b": 33, "c": 30}
    per_category = {
        category: Counter(appearances(mixed.filter(pl.col("category") == category)).values())
        for category in ("a", "b", "c")
    }
    assert per_category["a"] == {1: 33}  # a subset, no repeats
    assert per_category["b"] == {3: 7, 4: 3}  # floor / ceil of 3.3
    assert per_category["c"] == {2: 6, 3: 6}  # floor / ceil of 2.5
    kept_a = set(appearances(mixed.filter(pl.col("category") == "a")))
    assert kept_a <= set(train.filter(pl.col("category") == "a")["id"])


def test_the_copy_factor_distribution_matches_the_records(mixed_frame) -> None:
    train, (mixed, _, distribution), _ = mixed_frame
    seen = appearances(mixed)
    for category in ("a", "b", "c"):
        ids = train.filter(pl.col("category") == category)["id"]
        assert distribution[category] == dict(Counter(seen.get(i, 0) for i in ids)), category
    assert distribution["a"] == {0: 17, 1: 33}
    assert sum(times * n for times, n in distribution["b"].items()) == 33


def test_copies_are_named_and_numbered(mixed_frame) -> None:
    train, (mixed, _, _), _ = mixed_frame
    originals = {row["id"]: row for row in train.iter_rows(named=True)}
    assert mixed["id"].n_unique() == mixed.height
    for row in mixed.iter_rows(named=True):
        k = row["copy_index"]
        original = originals[base_id(row["id"])]
        assert row["id"] == (original["id"] if k == 0 else f"{original['id']}:c{k}")
        for column in ("instruction", "input", "output", "category", "source"):
            assert row[column] == original[column]
    assert mixed["copy_index"].dtype == pl.Int32
    # every record that appears n times has copy_index 0 .. n-1
    per_record: dict[str, list[int]] = {}
    for record_id, k in mixed.select("id", "copy_index").iter_rows():
        per_record.setdefault(base_id(record_id), []).append(k)
    assert all(sorted(ks) == list(range(len(ks))) for ks in per_record.values())


def test_copies_get_their_own_order_and_are_not_adjacent(mixed_frame) -> None:
    train, (mixed, _, _), _ = mixed_frame
    assert mixed["_order"].n_unique() == mixed.height
    originals = mixed.filter(pl.col("copy_index") == 0)
    before = dict(train.select("id", "_order").iter_rows())
    assert all(before[i] == o for i, o in originals.select("id", "_order").iter_rows())  # the same hash of the id

    many = records({("x", "sx"): 300})
    plan = plan_mix({"x": 300}, MixConfig({"x": CategoryTarget(share=1.0, max_copies=3)}, total=900))
    shuffled, _, _ = apply_mix(many, plan, SEED)
    order = [base_id(i) for i in shuffled.sort("_order", "id")["id"]]
    adjacent = sum(a == b for a, b in itertools.pairwise(order))
    # sorted by id every copy would sit beside its original (600 pairs); a random order gives ~2
    assert adjacent <= 10, adjacent


def test_stats_per_source_reconcile(mixed_frame) -> None:
    _, (mixed, stats, _), _ = mixed_frame
    assert set(stats) == {"sa1", "sa2", "sb1", "sb2", "sc"}
    for (_, source), n in SIZES.items():
        step = stats[source]
        out = mixed.filter(pl.col("source") == source)
        assert step.step == "mix" and step.source == source
        assert step.total == n
        assert step.total == step.kept + step.dropped.get("downsampled", 0)
        assert step.reconciles
        assert step.notes["records"] == step.kept + step.notes["copies"] == out.height
        assert step.kept == out.filter(pl.col("copy_index") == 0).height
        assert step.notes["copies"] == out.filter(pl.col("copy_index") > 0).height
    assert stats["sa1"].dropped["downsampled"] + stats["sa2"].dropped["downsampled"] == 17
    assert sum(s.notes["records"] for s in stats.values()) == mixed.height


def test_apply_mix_does_not_depend_on_row_order_or_batches(mixed_frame) -> None:
    train, (mixed, stats, distribution), plan = mixed_frame
    shuffled = train.sample(fraction=1.0, shuffle=True, seed=5)
    assert shuffled["id"].to_list() != train["id"].to_list()
    batches = [train.slice(offset, 17) for offset in range(0, train.height, 17)]
    for variant in (shuffled, pl.concat(batches[::-1])):
        again, again_stats, again_distribution = apply_mix(variant, plan, SEED)
        assert canonical(again) == canonical(mixed)
        assert again_distribution == distribution
        assert {s: v.as_dict() for s, v in again_stats.items()} == {s: v.as_dict() for s, v in stats.items()}


def test_another_seed_draws_other_copies(mixed_frame) -> None:
    train, (mixed, _, _), plan = mixed_frame
    other, _, _ = apply_mix(train, plan, SEED + 1)
    assert other.height == mixed.height
    assert dict(Counter(other["category"])) == dict(Counter(mixed["category"]))
    assert set(other["id"]) != set(mixed["id"])
    assert other.sort("_order")["id"].to_list() != mixed.sort("_order")["id"].to_list()


# --- the [mix] section of a recipe -----------------------------------------------------------

RECIPE_HEAD = """
[corpus]
name = "t"
seed = 1

[[sources]]
name = "general"
adapter = "alpaca"
path = "data.json"
category = "general"
lang = "en"

[[sources]]
name = "gsm8k"
adapter = "gsm8k"
path = "math.jsonl"
category = "math"
lang = "en"
"""


def test_a_valid_mix_section_becomes_a_mix_config(tmp_path: Path) -> None:
    path = write_recipe(
        tmp_path / "r.toml",
        RECIPE_HEAD
        + '\n[mix]\nanchor = "general"\n[mix.categories.general]\nshare = 1.0\n'
        + "[mix.categories.math]\ncount = 12\nmax_copies = 2.5\nskip_if_empty = true\n",
    )
    mix = sd.load_recipe(path).mix
    assert mix == MixConfig(
        {
            "general": CategoryTarget(share=1.0),
            "math": CategoryTarget(count=12, max_copies=2.5, skip_if_empty=True),
        },
        anchor="general",
    )
    assert sd.load_recipe(write_recipe(tmp_path / "none.toml", RECIPE_HEAD)).mix is None


@pytest.mark.parametrize(
    ("section", "where"),
    [
        pytest.param(
            "total = 10\n[mix.categories.general]\nshare = -0.5\n",
            r"mix\.categories\.general\.share",
            id="negative-share",
        ),
        pytest.param(
            "total = 10\n[mix.categories.general]\nshare = 0\n", r"mix\.categories\.general\.share", id="zero-share"
        ),
        pytest.param(
            "total = 10\n[mix.categories.general]\nshare = 1.5\n", r"mix\.categories\.general\.share", id="share-over-1"
        ),
        pytest.param(
            "total = 10\n[mix.categories.general]\ncount = -1\n",
            r"mix\.categories\.general\.count",
            id="negative-count",
        ),
        pytest.param(
            "total = 10\n[mix.categories.general]\ncount = 2.5\n",
            r"mix\.categories\.general\.count",
            id="fractional-count",
        ),
        pytest.param(
            "total = 10\n[mix.categories.general]\nshare = 1\nmax_copies = 0.5\n",
            r"mix\.categories\.general\.max_copies",
            id="max-copies-below-1",
        ),
        pytest.param(
            'total = 10\nanchor = "general"\n[mix.categories.general]\nshare = 1\n', r"\bmix\b", id="total-and-anchor"
        ),
        pytest.param(
            "total = 10\n[mix.categories.general]\nshare = 1\ncount = 3\n",
            r"mix\.categories\.general",
            id="share-and-count",
        ),
        pytest.param(
            "total = 10\n[mix.categories.general]\nmax_copies = 2\n",
            r"mix\.categories\.general",
            id="neither-share-nor-count",
        ),
        pytest.param("total = -3\n[mix.categories.general]\nshare = 1\n", r"mix\.total", id="negative-total"),
        pytest.param("total = 10\n[mix.categories]\n", r"mix\.categories", id="no-categories"),
        pytest.param(
            "total = 10\n[mix.categories.general]\nshares = 1\n",
            r"mix\.categories\.general.*'shares'",
            id="unknown-key",
        ),
    ],
)
def test_invalid_mix_sections_are_recipe_errors_naming_mix(tmp_path: Path, section: str, where: str) -> None:
    path = write_recipe(tmp_path / "r.toml", RECIPE_HEAD + "\n[mix]\n" + section)
    with pytest.raises(RecipeError, match=where):
        sd.load_recipe(path)
