"""exact_dedup: among records with the same content hash, keep the first by
(_rank, _source_order, _file_index, source_row); the others carry the kept id."""

from __future__ import annotations

import polars as pl
import pytest

from stellar_data.hashing import content_keys
from stellar_data.steps.dedup import RANK_COLUMNS, exact_dedup

THIN_SCHEMA = {
    "id": pl.String,
    "source": pl.String,
    "_rank": pl.Int64,
    "_source_order": pl.Int64,
    "_file_index": pl.Int64,
    "source_row": pl.Int64,
}


def thin(*rows: tuple[str, str, tuple[str, str, str], int, int, int, int]) -> pl.DataFrame:
    """rows: (id, source, triple, _rank, _source_order, _file_index, source_row)."""
    frame = pl.DataFrame(
        [(rid, source, rank, order, file_index, row) for rid, source, _, rank, order, file_index, row in rows],
        schema=THIN_SCHEMA,
        orient="row",
    )
    triples = pl.DataFrame([r[2] for r in rows], schema=["instruction", "input", "output"], orient="row")
    return frame.with_columns(content_keys(triples))


A = ("What is a black hole?", "", "A region of spacetime ...")
B = ("What is a pulsar?", "", "A rotating neutron star ...")
C = ("Add 2 and 3.", "", "5")


def test_rank_columns_order() -> None:
    assert RANK_COLUMNS == ("_rank", "_source_order", "_file_index", "source_row")


def test_no_duplicates_keeps_everything() -> None:
    frame = thin(("s:0", "s", A, 0, 0, 0, 0), ("s:1", "s", B, 0, 0, 0, 1), ("t:0", "t", C, 1, 1, 0, 0))
    kept, duplicates, stats = exact_dedup(frame)
    assert sorted(kept["id"].to_list()) == ["s:0", "s:1", "t:0"]
    assert duplicates.height == 0
    assert {s: (st.total, st.kept, dict(st.dropped)) for s, st in stats.items()} == {"s": (2, 2, {}), "t": (1, 1, {})}


def test_kept_frame_has_the_input_columns() -> None:
    frame = thin(("s:0", "s", A, 0, 0, 0, 0), ("s:1", "s", A, 0, 0, 0, 1))
    kept, duplicates, _ = exact_dedup(frame)
    assert kept.columns == frame.columns
    assert duplicates.columns == [*frame.columns, "kept_id"]


def test_first_row_in_file_wins_within_a_source() -> None:
    frame = thin(("s:7", "s", A, 0, 0, 0, 7), ("s:2", "s", A, 0, 0, 0, 2), ("s:9", "s", A, 0, 0, 0, 9))
    kept, duplicates, stats = exact_dedup(frame)
    assert kept["id"].to_list() == ["s:2"]
    assert sorted(duplicates.select("id", "kept_id").rows()) == [("s:7", "s:2"), ("s:9", "s:2")]
    assert (stats["s"].total, stats["s"].kept, dict(stats["s"].dropped)) == (3, 1, {"duplicate": 2})


def test_earlier_file_wins_over_lower_row_in_later_file() -> None:
    frame = thin(("s:b.json:0", "s", A, 0, 0, 1, 0), ("s:a.json:50", "s", A, 0, 0, 0, 50))
    kept, duplicates, _ = exact_dedup(frame)
    assert kept["id"].to_list() == ["s:a.json:50"]
    assert duplicates.select("id", "kept_id").rows() == [("s:b.json:0", "s:a.json:50")]


def test_lower_rank_wins_even_when_it_appears_later_in_the_frame() -> None:
    # source "late" is listed second in the recipe (order 1) but has priority 0; "early" has rank 1.
    frame = thin(
        ("early:0", "early", A, 1, 0, 0, 0),
        ("early:1", "early", B, 1, 0, 0, 1),
        ("late:5", "late", A, 0, 1, 0, 5),
    )
    kept, duplicates, stats = exact_dedup(frame)
    assert sorted(kept["id"].to_list()) == ["early:1", "late:5"]
    assert duplicates.select("id", "source", "kept_id").rows() == [("early:0", "early", "late:5")]
    assert (stats["early"].total, stats["early"].kept, dict(stats["early"].dropped)) == (2, 1, {"duplicate": 1})
    assert (stats["late"].total, stats["late"].kept, dict(stats["late"].dropped)) == (1, 1, {})


def test_source_order_breaks_rank_ties() -> None:
    frame = thin(("b:0", "b", A, 0, 1, 0, 0), ("a:3", "a", A, 0, 0, 0, 3))
    kept, duplicates, _ = exact_dedup(frame)
    assert kept["id"].to_list() == ["a:3"]
    assert duplicates["kept_id"].to_list() == ["a:3"]


def test_rank_beats_source_order_file_and_row() -> None:
    frame = thin(("x:0", "x", A, 1, 0, 0, 0), ("y:99", "y", A, 0, 5, 3, 99))
    kept, _, _ = exact_dedup(frame)
    assert kept["id"].to_list() == ["y:99"]


def test_different_text_split_across_fields_is_not_a_duplicate() -> None:
    frame = thin(("s:0", "s", ("ab", "", "c"), 0, 0, 0, 0), ("s:1", "s", ("a", "b", "c"), 0, 0, 0, 1))
    kept, duplicates, _ = exact_dedup(frame)
    assert kept.height == 2 and duplicates.height == 0


def test_each_duplicate_points_to_the_kept_record_of_its_own_content() -> None:
    frame = thin(
        ("s:0", "s", A, 0, 0, 0, 0),
        ("s:1", "s", B, 0, 0, 0, 1),
        ("s:2", "s", A, 0, 0, 0, 2),
        ("t:0", "t", B, 1, 1, 0, 0),
        ("t:1", "t", C, 1, 1, 0, 1),
        ("t:2", "t", C, 1, 1, 0, 2),
    )
    kept, duplicates, _ = exact_dedup(frame)
    assert sorted(kept["id"].to_list()) == ["s:0", "s:1", "t:1"]
    assert sorted(duplicates.select("id", "kept_id").rows()) == [("s:2", "s:0"), ("t:0", "s:1"), ("t:2", "t:1")]
    # every kept_id is a kept record with the same hash
    joined = duplicates.join(
        kept.select(pl.col("id").alias("kept_id"), pl.col("_hash").alias("kept_hash")), on="kept_id"
    )
    assert joined.height == duplicates.height
    assert (joined["_hash"] == joined["kept_hash"]).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_result_does_not_depend_on_frame_order_and_stats_reconcile(seed: int) -> None:
    triples = [A, B, C, ("x", "", "y"), ("x", "y", "")]
    rows = []
    for source, (rank, order) in {"s": (2, 0), "t": (0, 1), "u": (1, 2)}.items():
        for file_index in range(2):
            for row in range(20):
                triple = triples[(row * 7 + file_index * 3 + rank) % len(triples)]
                rows.append((f"{source}:{file_index}:{row}", source, triple, rank, order, file_index, row))
    frame = thin(*rows)
    kept, duplicates, stats = exact_dedup(frame.sample(fraction=1.0, shuffle=True, seed=seed))
    reference_kept, reference_dups, _ = exact_dedup(frame)
    assert sorted(kept["id"].to_list()) == sorted(reference_kept["id"].to_list())
    assert sorted(duplicates.select("id", "kept_id").rows()) == sorted(reference_dups.select("id", "kept_id").rows())
    # one record per distinct content, all from the winning source "t" (rank 0 holds every triple)
    assert kept.height == len(triples)
    assert set(kept["source"].to_list()) == {"t"}
    assert kept.height + duplicates.height == frame.height
    for source, st in stats.items():
        assert st.reconciles
        assert st.step == "dedup" and st.source == source
        assert st.total == frame.filter(pl.col("source") == source).height
        assert st.dropped["duplicate"] == duplicates.filter(pl.col("source") == source).height
    assert set(stats) == {"s", "t", "u"}
    assert sum(st.kept for st in stats.values()) == kept.height
