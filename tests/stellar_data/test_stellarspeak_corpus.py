"""The real StellarSpeak recipe on ../shared/sources: counts, the held-out benchmark, no leakage."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import polars as pl
import pytest

import stellar_data as sd
from stellar_data.sources import SourceFile
from stellar_data.sources.astro_qa.adapter import workbook_path
from stellar_data.sources.astro_qa.cells import load_date_cells, read_sheet
from stellar_data.sources.astro_qa.items import KIND_BY_NAME, AstroQaOptions
from stellar_data.sources.astro_qa.pairing import _duplicate_key, pair_items
from stellar_data.writers.manifest import reconcile_errors
from tests.conftest import ROOT

RECIPE = ROOT / "corpus" / "stellarspeak.toml"


@pytest.fixture(scope="module")
def corpus(shared_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> sd.Corpus:
    return sd.build(RECIPE, out=tmp_path_factory.mktemp("real") / "corpus", sources=shared_sources, workers=2)


def records(corpus: sd.Corpus) -> pl.DataFrame:
    return pl.concat([corpus.frame.collect(), corpus.frame_of("validation").collect()])


def test_counts_match_the_sources_and_reconcile(corpus: sd.Corpus) -> None:
    counts = {name: s["counts"] for name, s in corpus.manifest["sources"].items()}
    assert counts["gsm8k"]["read"] == 7473
    assert counts["identity"]["read"] == 91 and counts["identity"]["validation"] == 0
    assert counts["alpaca_zh"]["read"] == 1000 and counts["alpaca_zh"]["duplicates"] == 8
    assert counts["alpaca_en"]["read"] == 999 and counts["alpaca_en"]["duplicates"] == 14
    assert reconcile_errors(corpus.manifest) == []
    originals = corpus.frame.filter(pl.col("copy_index") == 0)  # before the mix's copies
    langs = originals.group_by("source", "lang").len().collect().sort("source", "lang").rows()
    assert ("identity", "en", 16) in langs and ("identity", "zh", 75) in langs


def test_about_100k_astronomy_triples_counted_by_type_subfield_and_language(corpus: sd.Corpus) -> None:
    astro = corpus.manifest["sources"]["astro_qa"]["counts"]
    total = sum(astro["records"].values())
    assert 95_000 <= total <= 105_000
    breakdown = corpus.manifest["breakdown"]["astro_qa"]
    assert sum(row["len"] for row in breakdown["records"]) == total
    assert {row["lang"] for row in breakdown["records"]} == {"zh", "en"}
    assert {row["type"] for row in breakdown["records"]} == {
        "single_choice_4",
        "single_choice_5",
        "multi_select",
        "judgment",
        "subjective",
    }
    assert "天体物理学" in {row["subfield"] for row in breakdown["records"]}
    assert sum(row["len"] for row in breakdown["held_out"]) == corpus.manifest["tables"]["astro_qa_heldout"]["records"]


def test_template_variants_are_varied_and_shuffled(corpus: sd.Corpus) -> None:
    astro = corpus.frame.filter(pl.col("source") == "astro_qa").collect()
    assert astro["template_id"].null_count() == 0 and astro["template_id"].n_unique() > 100
    per_item = astro.with_columns(pl.col("id").str.replace(r":t\d+$", "").alias("item")).group_by("item").len()
    assert per_item["len"].max() == 20
    train_ids = corpus.frame.select("id").collect()["id"].to_list()
    adjacent = sum(1 for a, b in itertools.pairwise(train_ids) if a.rsplit(":", 1)[0] == b.rsplit(":", 1)[0])
    assert adjacent < 0.01 * len(train_ids)  # variants of one item are not next to each other


def test_heldout_benchmark_items_are_plain_and_stratified(corpus: sd.Corpus) -> None:
    heldout = corpus.table_of("astro_qa_heldout").collect()
    assert set(heldout["lang"]) == {"zh", "en"}
    assert set(heldout["type"]) == {"single_choice_4", "single_choice_5", "multi_select", "judgment", "subjective"}
    choice = heldout.filter(pl.col("type") == "single_choice_4").row(0, named=True)
    assert len(choice["options"]) == 4 and choice["answer"] in "ABCD"
    groups = heldout.group_by("type", "subfield").agg(pl.col("group").n_unique().alias("held"))
    all_groups = pl.concat(
        [
            records(corpus).filter(pl.col("source") == "astro_qa").select("group"),
            heldout.select("group"),
        ]
    ).unique()
    assert all_groups.height > 2000
    # 10% of the groups of each (type, subfield) stratum, rounded: about 10% overall.
    assert 0.09 <= heldout["group"].n_unique() / all_groups.height <= 0.11
    assert groups.height >= 10


def test_no_heldout_group_or_question_reaches_train_or_validation(corpus: sd.Corpus, shared_sources: Path) -> None:
    heldout = corpus.table_of("astro_qa_heldout").collect()
    train_validation = records(corpus).filter(pl.col("source") == "astro_qa")
    assert not set(heldout["group"]) & set(train_validation["group"])

    # By the duplicate key too (ZH question + unordered options, punctuation and whitespace folded).
    options = AstroQaOptions(date_cells=str(ROOT / "corpus" / "astro_qa" / "date_cells.toml"))
    cells = load_date_cells(Path(options.date_cells))
    folder = SourceFile(shared_sources / "Astro-QA" / "data", "Astro-QA/data")
    key_of: dict[str, tuple[str, ...]] = {}
    for name in ("single_choice_4", "single_choice_5", "multi_select", "judgment", "subjective"):
        kind = KIND_BY_NAME[name]
        zh = read_sheet(*workbook_path(folder, kind, "zh"), kind, "zh", cells)
        en = read_sheet(*workbook_path(folder, kind, "en"), kind, "en", cells)
        for item in pair_items(zh, en, options):
            if item.lang == "zh" and item.problem is None:
                key_of[f"{kind.segment}:{item.item_id}"] = _duplicate_key(item)

    def keys(ids: list[str]) -> set[tuple[str, ...]]:
        found = set()
        for record_id in ids:
            match = re.match(r"astro_qa:(?:zh|en):([^:]+:[^:]+)", record_id)
            if match and match.group(1) in key_of:
                found.add(key_of[match.group(1)])
        return found

    held_keys = keys(heldout["id"].to_list())
    assert held_keys and not held_keys & keys(train_validation["id"].to_list())


def test_protected_term_survives(corpus: sd.Corpus) -> None:
    text = pl.concat(
        [
            records(corpus).select(pl.col("instruction") + pl.col("input") + pl.col("output")).to_series().alias("t"),
            corpus.table_of("astro_qa_heldout").collect()["question"].alias("t"),
        ]
    )
    assert text.str.contains("蒭藁").any()
    assert not text.str.contains("𫇴").any()
