"""The bench generator and the naive peer, at ~2k records: reproducible bytes, a recipe that builds
and quarantines the planted malformed records with their reasons, and a naive peer that keeps
exactly as many records as ours on the core chain."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest

import stellar_data as sd
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import generate
import naive_build

RECORDS, SEED = 2000, 7


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate.generate(RECORDS, SEED, tmp_path_factory.mktemp("gen") / "data")


def test_same_seed_gives_byte_identical_files(data: Path, tmp_path: Path) -> None:
    again = generate.generate(RECORDS, SEED, tmp_path / "again")
    first, second = _files(data), _files(again)
    assert sorted(first) == sorted(second)
    assert any(name.endswith(".xlsx") for name in first)
    assert [name for name in first if first[name] != second[name]] == []


def test_another_seed_gives_other_records(data: Path, tmp_path: Path) -> None:
    other = generate.generate(RECORDS, SEED + 1, tmp_path / "other")
    assert (other / "core" / "part-0.jsonl").read_bytes() != (data / "core" / "part-0.jsonl").read_bytes()


def test_cached_folder_is_reused(data: Path) -> None:
    stamp = data / generate.STAMP
    before = stamp.stat().st_mtime_ns
    assert generate.generate(RECORDS, SEED, data) == data
    assert stamp.stat().st_mtime_ns == before


def test_counts_add_up_to_n(data: Path) -> None:
    counts = json.loads((data / generate.STAMP).read_text(encoding="utf-8"))["counts"]
    assert counts["core"] == RECORDS
    assert sum(v for k, v in counts.items() if k != "core") == RECORDS
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in (data / "core").glob("part-*.jsonl"))
    assert lines == RECORDS


def test_full_recipe_builds_and_quarantines_malformed_records_with_reasons(data: Path, tmp_path: Path) -> None:
    sd.build(data / "recipe.toml", out=tmp_path / "out", workers=1)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    quarantine = pl.read_parquet(tmp_path / "out" / "quarantine.parquet")
    by_source = {
        source: set(rules)
        for source, rules in quarantine.filter(pl.col("rule") != "duplicate")
        .group_by("source")
        .agg(pl.col("rule").unique())
        .iter_rows()
    }
    # The planted defects, each under the reason its adapter or the validator gives.
    assert {"malformed_json", "wrong_type", "no_final_answer"} <= by_source["gsm8k"]
    for source in ("alpaca_zh", "alpaca_en"):
        assert {"missing_field", "wrong_type", "invalid_instruction", "invalid_output"} <= by_source[source]
    assert "wrong_type" in by_source["identity"]
    assert quarantine.filter(pl.col("message").str.len_chars() == 0).height == 0
    # 10% exact copies; the traditional twins of Chinese records are duplicates once OpenCC has run.
    duplicates = manifest["quarantine"]["by_rule"]["duplicate"]
    assert duplicates >= RECORDS * generate.DUP_SHARE * 0.95
    # Every step ran: near-duplicates, the GSM8K test questions planted in train, held-out items, mixing.
    rules = manifest["quarantine"]["by_rule"]
    assert rules.get("near_duplicate", 0) > 0
    assert rules.get("contaminated", 0) > 0
    assert manifest["mix"]["categories"].keys() == {"general", "astronomy", "math", "self_cognition"}


def test_naive_peer_keeps_as_many_records_as_ours_on_the_core_chain(data: Path, tmp_path: Path) -> None:
    sd.build(data / "core.toml", out=tmp_path / "ours", workers=1)
    manifest = json.loads((tmp_path / "ours" / "manifest.json").read_text(encoding="utf-8"))
    ours = sum(step["kept"] for step in manifest["steps"] if step["step"] == "dedup")
    naive = naive_build.build(data, tmp_path / "naive", SEED)
    assert naive["read"] == RECORDS
    assert naive["kept"] == ours
    assert naive["train"] + naive["validation"] == naive["kept"]
    assert len(json.loads((tmp_path / "naive" / "train.json").read_text(encoding="utf-8"))) == naive["train"]
    assert pl.read_parquet(tmp_path / "naive" / "train.parquet").height == naive["train"]
