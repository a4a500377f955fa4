"""neardup.py: near_dedup clusters MinHash signatures by LSH and keeps one item per cluster by
priority (_rank, recipe order, file, row), the others dropped with `kept_id` and `similarity`; a
cluster report."""

from __future__ import annotations

import random

import polars as pl
import pytest

from stellar_data.similarity.minhash import SIGNATURE
from stellar_data.steps.neardup import NearDedupConfig, near_dedup
from tests.stellar_data.similarity.test_minhash import (
    CONFIG,
    LONG_EN,
    LONG_ZH,
    WORDS,
    estimated,
    folded,
    replaced_tail,
    shingle_jaccard,
    sig,
)

# --- near_dedup -----------------------------------------------------------------------------------


def thin(rows: list[tuple[str, str, str, int, int, int, int]], config: NearDedupConfig = CONFIG) -> pl.DataFrame:
    """rows: (id, source, text, _rank, _source_order, _file_index, source_row)."""
    s = sig(*(r[2] for r in rows), config=config)
    return pl.DataFrame(
        {
            "id": [r[0] for r in rows],
            "source": [r[1] for r in rows],
            "_rank": [r[3] for r in rows],
            "_source_order": [r[4] for r in rows],
            "_file_index": [r[5] for r in rows],
            "source_row": [r[6] for r in rows],
        },
        schema={
            "id": pl.String,
            "source": pl.String,
            "_rank": pl.Int64,
            "_source_order": pl.Int64,
            "_file_index": pl.Int64,
            "source_row": pl.Int64,
        },
    ).with_columns(pl.Series(SIGNATURE, s, dtype=pl.Array(pl.UInt32, config.num_perm)))


NEAR = replaced_tail(LONG_EN, 6, han=False)  # exact 5-gram Jaccard ~0.9
NEAR_ZH = LONG_ZH[:-8] + "天文学是一门科学"
UNRELATED = [" ".join(random.Random(k).choice(WORDS) for _ in range(120)) for k in range(5)]


def test_constructed_near_pairs_are_near() -> None:
    assert shingle_jaccard(*folded(LONG_EN, NEAR).to_list()) > 0.85
    assert shingle_jaccard(*folded(LONG_ZH, NEAR_ZH).to_list()) > 0.85


def test_near_duplicate_dropped_with_the_kept_id_and_its_similarity() -> None:
    frame = thin([
        ("s:0", "s", UNRELATED[0], 0, 0, 0, 0),
        ("s:1", "s", LONG_EN, 0, 0, 0, 1),
        ("s:2", "s", NEAR, 0, 0, 0, 2),
        ("s:3", "s", UNRELATED[1], 0, 0, 0, 3),
    ])  # fmt: skip
    kept, dropped, stats, report = near_dedup(frame, CONFIG)
    assert sorted(kept["id"]) == ["s:0", "s:1", "s:3"]
    assert dropped.select("id", "kept_id").rows() == [("s:2", "s:1")]
    similarity = dropped["similarity"][0]
    assert CONFIG.threshold <= similarity <= 1
    assert similarity == pytest.approx(estimated(frame[SIGNATURE].to_numpy(), 1, 2))
    assert {"similarity", "kept_id", *frame.columns} == set(dropped.columns)
    assert set(kept.columns) == set(frame.columns)
    assert (stats["s"].total, stats["s"].kept, dict(stats["s"].dropped)) == (4, 3, {"near_duplicate": 1})
    assert report["clusters"] == 1 and report["dropped"] == 1 and report["cluster_sizes"] == {"2": 1}
    assert report["largest"] == [{"kept": "s:1", "dropped": ["s:2"], "min_similarity": round(similarity, 3)}]


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        ((0, 0, 0, 9), (0, 0, 0, 2), "b"),  # the earlier row
        ((0, 0, 1, 0), (0, 0, 0, 50), "b"),  # the earlier file
        ((0, 1, 0, 0), (0, 0, 0, 7), "b"),  # the source listed first in the recipe
        ((1, 0, 0, 0), (0, 1, 0, 5), "b"),  # the higher priority (lower _rank) beats recipe order
        ((0, 0, 0, 1), (0, 0, 0, 2), "a"),
    ],
)
def test_the_higher_priority_item_is_kept(first: tuple[int, ...], second: tuple[int, ...], winner: str) -> None:
    frame = thin([("a", "sa", LONG_ZH, *first), ("b", "sb", NEAR_ZH, *second)])  # type: ignore[list-item]
    kept, dropped, stats, _ = near_dedup(frame, CONFIG)
    loser = "a" if winner == "b" else "b"
    assert kept["id"].to_list() == [winner]
    assert dropped.select("id", "kept_id").rows() == [(loser, winner)]
    assert stats[f"s{loser}"].dropped == {"near_duplicate": 1} and not stats[f"s{winner}"].dropped


def test_unrelated_texts_all_survive() -> None:
    rows = [(f"s:{i}", "s", text, 0, 0, 0, i) for i, text in enumerate([*UNRELATED, LONG_EN, LONG_ZH, "短文本", ""])]
    kept, dropped, stats, report = near_dedup(thin(rows), CONFIG)
    assert kept.height == len(rows) and dropped.height == 0
    assert report == {"clusters": 0, "dropped": 0, "cluster_sizes": {}, "largest": []}
    assert stats["s"].kept == len(rows)


def test_empty_texts_are_never_near_duplicates_of_each_other() -> None:
    rows = [(f"s:{i}", "s", text, 0, 0, 0, i) for i, text in enumerate(["", "", "。", "!!"])]
    kept, dropped, _, _ = near_dedup(thin(rows), CONFIG)
    assert kept.height == 4 and dropped.height == 0


def test_below_the_threshold_survives_above_is_dropped() -> None:
    half = replaced_tail(LONG_EN, 100, han=False)  # exact Jaccard ~0.3
    rows = [("s:0", "s", LONG_EN, 0, 0, 0, 0), ("s:1", "s", half, 0, 0, 0, 1)]
    kept, dropped, _, _ = near_dedup(thin(rows), CONFIG)
    assert kept.height == 2
    assert dropped.height == 0
    lenient = NearDedupConfig(threshold=0.2, num_perm=64, bands=64)  # one row per band: every shared bin a candidate
    _, dropped, _, _ = near_dedup(thin(rows, lenient), lenient)
    assert dropped["id"].to_list() == ["s:1"]


def test_exclude_sources_leaves_a_source_out() -> None:
    rows = [
        ("id:0", "identity", LONG_EN, 0, 0, 0, 0),
        ("id:1", "identity", LONG_EN, 0, 0, 0, 1),
        ("gen:0", "general", LONG_ZH, 0, 1, 0, 0),
        ("gen:1", "general", NEAR_ZH, 0, 1, 0, 1),
        ("gen:2", "general", NEAR, 0, 1, 0, 2),  # near an excluded item: nothing to be a duplicate of
    ]
    config = NearDedupConfig(exclude_sources=("identity",))
    kept, dropped, stats, _ = near_dedup(thin(rows, config), config)
    assert dropped.select("id", "kept_id").rows() == [("gen:1", "gen:0")]
    assert sorted(kept["id"]) == ["gen:0", "gen:2", "id:0", "id:1"]
    assert (stats["identity"].total, stats["identity"].kept) == (2, 2)
    kept, dropped, _, _ = near_dedup(thin(rows), CONFIG)  # without the exclusion both sources lose items
    assert sorted(dropped["id"]) == ["gen:1", "gen:2", "id:1"]


def test_cluster_report_counts_sizes_and_lists_the_largest_first() -> None:
    triple = [LONG_EN, NEAR, replaced_tail(LONG_EN, 4, han=False)]
    pair = [LONG_ZH, NEAR_ZH]
    rows = [(f"a:{i}", "a", text, 0, 0, 0, i) for i, text in enumerate(pair + triple + UNRELATED[:2])]
    kept, dropped, _, report = near_dedup(thin(rows), CONFIG)
    assert report["clusters"] == 2 and report["dropped"] == dropped.height == 3
    assert report["cluster_sizes"] == {"2": 1, "3": 1}
    assert [(c["kept"], c["dropped"]) for c in report["largest"]] == [("a:2", ["a:3", "a:4"]), ("a:0", ["a:1"])]
    assert all(CONFIG.threshold <= c["min_similarity"] <= 1 for c in report["largest"])
    assert sorted(kept["id"]) == ["a:0", "a:2", "a:5", "a:6"]


def test_near_dedup_is_deterministic_whatever_the_input_order() -> None:
    rows = [(f"a:{i}", "a", t, 0, 0, 0, i) for i, t in enumerate([LONG_EN, NEAR, *UNRELATED, LONG_ZH, NEAR_ZH])]
    frame = thin(rows)
    first = near_dedup(frame, CONFIG)
    second = near_dedup(frame.reverse(), CONFIG)
    assert first[0].equals(second[0]) and first[1].equals(second[1]) and first[3] == second[3]
