"""sd.load opens a built corpus the way sd.build returned it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import stellar_data as sd
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> sd.Corpus:
    return sd.build(ROOT / "corpus" / "default.toml", out=tmp_path_factory.mktemp("c") / "corpus", workers=1)


def test_load_sees_what_build_returned(built: sd.Corpus) -> None:
    loaded = sd.load(built.path)
    assert loaded.manifest == built.manifest
    assert loaded.frame.collect().equals(built.frame.collect())
    assert loaded.table.num_rows == built.manifest["splits"]["train"]["records"]
    assert loaded.frame_of("validation").collect().height == built.manifest["splits"]["validation"]["records"]
    assert "train=" in repr(loaded)


def test_frame_is_lazy_and_queryable(built: sd.Corpus) -> None:
    assert isinstance(built.frame, pl.LazyFrame)
    by_category = dict(built.frame.group_by("category").len().collect().iter_rows())
    assert set(by_category) == {"astronomy", "math", "self_cognition", "general"}


def test_stats_has_one_row_per_source_that_reconciles(built: sd.Corpus) -> None:
    stats = built.stats()
    assert stats["source"].to_list() == [s.name for s in sd.load_recipe(ROOT / "corpus" / "default.toml").sources]
    for row in stats.iter_rows(named=True):
        assert row["read"] == row["valid"] + row["quarantined"] + row["excluded"]
        assert row["valid"] == row["kept"] + row["duplicates"] + row["held_out"]
        assert row["kept"] == row["train"] + row["validation"]
    records = {name: info["records"] for name, info in built.manifest["splits"].items()}
    assert (
        stats["train_records"].sum() == records["train"] and stats["validation_records"].sum() == records["validation"]
    )


def test_quarantine_rows_name_source_file_location_rule_and_message(built: sd.Corpus) -> None:
    quarantine = built.quarantine
    assert quarantine.columns[:6] == ["source", "file", "location", "row", "rule", "message"]
    assert quarantine.filter(pl.col("message") == "").height == 0
    empty = quarantine.filter(pl.col("rule") == "empty_option").row(0, named=True)
    assert empty["file"].endswith("single-select multi choice(4)_ZH.xlsx") and "ID 10" in empty["location"]


def test_the_heldout_benchmark_is_its_own_table(built: sd.Corpus) -> None:
    heldout = built.table_of("astro_qa_heldout").collect()
    assert heldout.height == built.manifest["tables"]["astro_qa_heldout"]["records"] > 0
    assert {"question", "options", "answer", "type", "subfield", "lang"} <= set(heldout.columns)
    with pytest.raises(KeyError, match="no table 'nope'"):
        built.table_of("nope")


def test_unknown_split_and_non_corpus_dir(built: sd.Corpus, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="no split 'test'"):
        built.frame_of("test")
    with pytest.raises(sd.CorpusDirError, match="not a built corpus"):
        sd.load(tmp_path)
