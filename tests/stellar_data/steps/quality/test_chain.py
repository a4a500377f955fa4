"""The quality steps in a build: where they sit in the chain, how their refusals are counted, and the
issue's done-when on real data (a copy of alpaca_zh_demo with 40 records read as cp1252)."""

from __future__ import annotations

import json
from pathlib import Path

import ftfy.bad_codecs  # noqa: F401  (registers sloppy-windows-1252, which reads every byte)
import polars as pl
import pytest

import stellar_data as sd
from tests.helpers import write_json, write_recipe

ALPACA_ZH = Path("LLaMA-Factory/data/alpaca_zh_demo.json")


def recipe(folder: Path, filters: str = "", source_extra: str = "") -> Path:
    return write_recipe(
        folder / "recipe.toml",
        f"""
        [corpus]
        name = "t"
        seed = 3
        sources_dir = "src"

        [split]
        validation_fraction = 0.1

        [[sources]]
        name = "alpaca_zh"
        adapter = "alpaca"
        path = "data.json"
        category = "general"
        lang = "zh"
        opencc = "t2s"
        {source_extra}
        {filters}
        """,
    )


def unprefixed(records: list[dict]) -> list[dict]:
    """Records whose fields carry no `输入：` / `输出：` prefix: the adapter strips those before any
    record step runs, so it cannot strip them inside mojibake (docs/quality/mojibake.md)."""
    return [r for r in records if not any(v.lstrip().startswith(("输入", "输出")) for v in r.values())]


@pytest.fixture(scope="module")
def alpaca_200(shared_sources: Path) -> list[dict]:
    records = unprefixed(json.loads((shared_sources / ALPACA_ZH).read_text(encoding="utf-8")))[:200]
    assert len(records) == 200
    return records


def misread(records: list[dict], every: int) -> list[dict]:
    return [
        {k: v.encode("utf-8").decode("sloppy-windows-1252") for k, v in r.items()} if i % every == 0 else r
        for i, r in enumerate(records)
    ]


def data_files(corpus: Path) -> dict[str, bytes]:
    files = {p.relative_to(corpus).as_posix(): p.read_bytes() for p in sorted((corpus / "data").rglob("*.parquet"))}
    assert files
    return files


def test_the_40_misread_records_are_repaired_byte_for_byte(tmp_path: Path, alpaca_200: list[dict]) -> None:
    crafted = misread(alpaca_200, 5)
    assert sum(a != b for a, b in zip(crafted, alpaca_200, strict=True)) == 40
    built = {}
    for name, records in (("clean", alpaca_200), ("crafted", crafted)):
        write_json(tmp_path / name / "src" / "data.json", records)
        built[name] = sd.build(recipe(tmp_path / name, "[filters.mojibake]"), out=tmp_path / name / "out", workers=1)
    assert data_files(tmp_path / "crafted" / "out") == data_files(tmp_path / "clean" / "out")
    steps = {s["step"]: s for s in built["crafted"].manifest["steps"]}
    assert steps["mojibake"]["repaired"] == 40 and steps["mojibake"]["kept"] == 200
    assert built["crafted"].manifest["filters"]["mojibake"]["repair"] is True


def test_without_the_step_the_misread_records_reach_the_splits(tmp_path: Path, alpaca_200: list[dict]) -> None:
    write_json(tmp_path / "src" / "data.json", misread(alpaca_200, 5))
    corpus = sd.build(recipe(tmp_path), out=tmp_path / "out", workers=1)
    records = pl.concat([corpus.frame_of(split).collect() for split in ("train", "validation")])
    assert records.height >= 200
    # The UTF-8 lead bytes of Han characters (E4-E9) read as cp1252: ä å æ ç è é
    assert records.filter(pl.col("instruction").str.contains("[\u00e4-\u00e9]")).height == 40


def test_unrepairable_mojibake_is_quarantined_and_counts_toward_the_quarantine_limit(
    tmp_path: Path, alpaca_200: list[dict]
) -> None:
    write_json(tmp_path / "src" / "data.json", misread(alpaca_200, 5))
    path = recipe(tmp_path, "[filters.mojibake]\nrepair = false", "max_quarantine_ratio = 0.25")
    corpus = sd.build(path, out=tmp_path / "out", workers=1)
    counts = corpus.manifest["sources"]["alpaca_zh"]["counts"]
    assert counts["quarantined"] == {"mojibake": 40} and counts["filtered"] == {} and counts["valid"] == 160
    quarantine = pl.read_parquet(tmp_path / "out" / "quarantine.parquet").filter(pl.col("rule") == "mojibake")
    assert quarantine.height == 40
    assert quarantine["location"].str.starts_with("item ").all() and not quarantine["deliberate"].any()
    with pytest.raises(sd.QuarantineLimitError, match=r"40 of 200 items quarantined .*mojibake 40"):
        sd.build(recipe(tmp_path, "[filters.mojibake]\nrepair = false"), out=tmp_path / "out2", workers=1)


def test_a_source_excluded_from_a_step_passes_it_counted(tmp_path: Path, alpaca_200: list[dict]) -> None:
    write_json(tmp_path / "src" / "data.json", misread(alpaca_200, 5))
    corpus = sd.build(
        recipe(tmp_path, '[filters.mojibake]\nexclude_sources = ["alpaca_zh"]'), out=tmp_path / "out", workers=1
    )
    steps = {s["step"]: s for s in corpus.manifest["steps"]}
    assert steps["mojibake"]["total"] == steps["mojibake"]["kept"] == 200 and "repaired" not in steps["mojibake"]
    assert "mojibake" in corpus.manifest["filters"]  # on in the recipe, off for this source


def test_an_unknown_filter_is_one_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(sd.RecipeError, match=r"filters: unknown key 'mojibak'"):
        sd.load_recipe(recipe(tmp_path, "[filters.mojibak]"))
