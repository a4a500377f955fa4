"""Mixing end to end: the manifest's mix section, train.json and the train shards hold exactly the
mixed set, copies only in train and never adjacent, no validation leak, caps reported in the
manifest and the console, `stellar-data plan` writes nothing, builds are reproducible."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import tempfile
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import stellar_data as sd
from stellar_data.cli import app
from tests.conftest import ROOT
from tests.helpers import write_json, write_recipe

DEFAULT_RECIPE = ROOT / "corpus" / "default.toml"
CATEGORIES = ("astronomy", "math", "general", "self_cognition")
TEXT = ["instruction", "input", "output"]
runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> sd.Corpus:
    return sd.build(DEFAULT_RECIPE, out=tmp_path_factory.mktemp("mixed") / "corpus", workers=1)


def split_rows(corpus: sd.Corpus, split: str) -> pl.DataFrame:
    """The split as written: its shards read in the manifest's order."""
    shards = corpus.manifest["splits"][split]["shards"]
    return pl.concat([pl.read_parquet(corpus.path / shard) for shard in shards])


def base_id(record_id: str) -> str:
    return re.sub(r":c\d+$", "", record_id)


def shard_digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((directory / "data").glob("train-*"))}


def copy_ids(corpus: sd.Corpus) -> set[str]:
    return set(split_rows(corpus, "train").filter(pl.col("copy_index") > 0)["id"])


# --- the default recipe ----------------------------------------------------------------------


def test_the_manifest_reports_the_mix_per_category(corpus: sd.Corpus) -> None:
    manifest = corpus.manifest
    mix = manifest["mix"]
    train = split_rows(corpus, "train")
    assert set(mix["categories"]) == set(CATEGORIES)
    assert mix["anchor"] == "astronomy" and mix["total"] is None
    before = Counter()
    for source in manifest["sources"].values():
        before[source["category"]] += source["counts"]["mix"]["before"]
    achieved_in_train = Counter(train["category"])
    for name, entry in mix["categories"].items():
        assert entry["available"] == before[name], name
        assert entry["achieved"] == achieved_in_train[name], name
        assert entry["achieved"] == min(entry["target"], math.floor(entry["available"] * entry["max_copies"]))
        assert entry["achieved_share"] == pytest.approx(entry["achieved"] / train.height, abs=1e-6)
        assert entry["target_share"] == pytest.approx(entry["target"] / mix["total_target"], abs=1e-6)
        assert not entry["capped"] and not entry["skipped"]
        # the distribution {times a record appears: records} covers every record and every appearance
        copies = {int(times): n for times, n in entry["copies"].items()}
        assert sum(copies.values()) == entry["available"], name
        assert sum(times * n for times, n in copies.items()) == entry["achieved"], name
        ratio = entry["achieved"] / entry["available"]
        assert set(copies) <= {math.floor(ratio), math.ceil(ratio)}, (name, copies)
    categories = mix["categories"]
    assert categories["astronomy"]["achieved"] == categories["astronomy"]["available"]  # the anchor keeps its size
    assert categories["self_cognition"]["achieved"] == 30  # a count
    # astronomy 0.6 and math / general 0.2 each of what the counts leave
    rest = mix["total_target"] - 30
    assert categories["math"]["target"] == categories["general"]["target"] == round(rest * 0.2)
    assert categories["astronomy"]["target"] == round(rest * 0.6)
    assert sum(c["achieved"] for c in categories.values()) == mix["total_achieved"] == train.height
    assert manifest["splits"]["train"]["records"] == train.height
    assert sum(c["achieved_share"] for c in categories.values()) == pytest.approx(1, abs=1e-5)
    assert mix["warnings"] == [] and manifest["warnings"] == []
    assert {c: manifest["categories"][c]["train"] for c in CATEGORIES} == {
        c: categories[c]["achieved"] for c in CATEGORIES
    }


def test_the_default_recipe_upsamples_something(corpus: sd.Corpus) -> None:
    """Otherwise the tests below would pass vacuously."""
    train = split_rows(corpus, "train")
    assert train.filter(pl.col("copy_index") > 0).height > 50
    assert train.filter(pl.col("copy_index") == 2).height > 0


def test_train_json_holds_exactly_the_mixed_train_split(corpus: sd.Corpus) -> None:
    records = json.loads((corpus.path / "train.json").read_text(encoding="utf-8"))
    train = split_rows(corpus, "train")
    assert len(records) == train.height == corpus.manifest["mix"]["total_achieved"]
    assert records == train.select(TEXT).to_dicts()
    assert train["id"].n_unique() == train.height


def test_copies_exist_only_in_train_and_repeat_their_original(corpus: sd.Corpus) -> None:
    train, validation = split_rows(corpus, "train"), split_rows(corpus, "validation")
    assert validation.height == corpus.manifest["splits"]["validation"]["records"] > 0
    assert validation["copy_index"].to_list() == [0] * validation.height
    assert not any(re.search(r":c\d+$", i) for i in validation["id"])
    originals = {row["id"]: row for row in train.filter(pl.col("copy_index") == 0).iter_rows(named=True)}
    for row in train.filter(pl.col("copy_index") > 0).iter_rows(named=True):
        assert row["id"] == f"{base_id(row['id'])}:c{row['copy_index']}"
        original = originals[base_id(row["id"])]  # the original is in train too
        assert {k: v for k, v in row.items() if k not in ("id", "copy_index")} == {
            k: v for k, v in original.items() if k not in ("id", "copy_index")
        }
    # the copies in train are the mix's: achieved - records kept, per category
    mix = corpus.manifest["mix"]["categories"]
    for category in CATEGORIES:
        part = train.filter(pl.col("category") == category)
        assert (
            part.filter(pl.col("copy_index") > 0).height
            == mix[category]["achieved"] - part["id"].map_elements(base_id, return_dtype=pl.String).n_unique()
        )


def test_no_validation_record_equals_a_train_record(corpus: sd.Corpus) -> None:
    def hashes(frame: pl.DataFrame) -> set[tuple[str, ...]]:
        return set(frame.select(TEXT).iter_rows())

    train, validation = split_rows(corpus, "train"), split_rows(corpus, "validation")
    assert validation.height and train.height
    assert hashes(train).isdisjoint(hashes(validation))
    assert set(train["group"]).isdisjoint(set(validation["group"]))


def test_copies_of_one_record_are_not_adjacent(corpus: sd.Corpus) -> None:
    order = [base_id(i) for i in split_rows(corpus, "train")["id"]]
    adjacent = [(a, i) for i, (a, b) in enumerate(itertools.pairwise(order)) if a == b]
    assert adjacent == []
    # and copies are spread over the whole split, not gathered at its end
    positions = [i for i, k in enumerate(split_rows(corpus, "train")["copy_index"]) if k > 0]
    assert positions[0] < len(order) // 4 and positions[-1] > 3 * len(order) // 4


def test_per_source_counts_reconcile_with_the_mix(corpus: sd.Corpus) -> None:
    manifest = corpus.manifest
    for name, source in manifest["sources"].items():
        counts = source["counts"]
        mix = next(s for s in manifest["steps"] if s["source"] == name and s["step"] == "mix")
        assert (
            counts["records"]["train"]
            == counts["mix"]["before"] - counts["mix"]["downsampled"] + counts["mix"]["copies"]
        )
        assert mix["total"] == mix["kept"] + mix.get("dropped_downsampled", 0)
        assert mix["records"] == mix["kept"] + mix["copies"] == counts["records"]["train"]


def test_the_same_recipe_builds_identical_train_shards(corpus: sd.Corpus, tmp_path: Path) -> None:
    again = sd.build(DEFAULT_RECIPE, out=tmp_path / "again", workers=1)
    assert shard_digests(again.path) == shard_digests(corpus.path)
    assert (again.path / "train.json").read_bytes() == (corpus.path / "train.json").read_bytes()
    assert again.manifest["mix"] == corpus.manifest["mix"]


def test_shard_size_and_workers_do_not_change_the_mix(corpus: sd.Corpus, tmp_path: Path) -> None:
    recipe = dataclasses.replace(sd.load_recipe(DEFAULT_RECIPE), shard_records=40)
    small = sd.build(recipe, out=tmp_path / "small", workers=3)
    assert len(small.manifest["splits"]["train"]["shards"]) > 1
    assert split_rows(small, "train").equals(split_rows(corpus, "train"))
    assert small.manifest["mix"] == corpus.manifest["mix"]


def test_another_seed_draws_other_copies(corpus: sd.Corpus, tmp_path: Path) -> None:
    other = sd.build(DEFAULT_RECIPE, out=tmp_path / "other", seed=7, workers=1)
    assert copy_ids(other) and copy_ids(other) != copy_ids(corpus)
    assert shard_digests(other.path) != shard_digests(corpus.path)
    # still exact: the anchor keeps its size and the count is met
    mix = other.manifest["mix"]["categories"]
    assert mix["astronomy"]["achieved"] == mix["astronomy"]["available"]
    assert mix["self_cognition"]["achieved"] == 30
    assert sum(c["achieved"] for c in mix.values()) == other.manifest["splits"]["train"]["records"]


# --- `stellar-data plan` ---------------------------------------------------------------------


def listing(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))


def plan_table(output: str) -> dict[str, list[str]]:
    """category -> the cells of its row in the printed table."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 8 and cells[0] in CATEGORIES:
            rows[cells[0]] = cells
    return rows


def test_plan_prints_the_mixture_and_writes_nothing(
    corpus: sd.Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd, scratch = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the plan's work folder goes
    corpus_dir = listing(DEFAULT_RECIPE.parent)

    result = runner.invoke(app, ["plan", str(DEFAULT_RECIPE), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert listing(cwd) == [] and listing(scratch) == []
    assert listing(DEFAULT_RECIPE.parent) == corpus_dir
    rows = plan_table(result.output)
    assert set(rows) == set(CATEGORIES), result.output
    mix = corpus.manifest["mix"]["categories"]
    for category, cells in rows.items():
        _, available, target, achieved, *_, status = cells
        assert (int(available), int(target), int(achieved)) == (
            mix[category]["available"],
            mix[category]["target"],
            mix[category]["achieved"],
        ), category
        assert status == "ok"
    assert f"validation: {corpus.manifest['splits']['validation']['records']} records" in result.output


# --- crafted recipes -------------------------------------------------------------------------


def write_sources(directory: Path, general: int, math_records: int) -> None:
    write_json(
        directory / "general.json",
        [
            {"instruction": f"Describe object number {i}.", "input": "", "output": f"Object {i} is a star."}
            for i in range(general)
        ],
    )
    write_json(
        directory / "math.json",
        [
            {"instruction": f"What is {i} plus {i}?", "input": "", "output": f"The answer is {2 * i}."}
            for i in range(math_records)
        ],
    )


SOURCES = """
[corpus]
name = "mixed"
seed = 3
sources_dir = "."

[split]
validation_fraction = 0.0

[[sources]]
name = "general"
adapter = "alpaca"
path = "general.json"
category = "general"
lang = "en"

[[sources]]
name = "math"
adapter = "alpaca"
path = "{math_path}"
category = "math"
lang = "en"
{math_extra}
"""


def crafted(directory: Path, mix: str, *, math_path: str = "math.json", math_extra: str = "") -> Path:
    """Sources and recipe in `directory/src` (a build may not write inside its sources folder)."""
    directory = directory / "src"
    write_sources(directory, general=40, math_records=5)
    return write_recipe(directory / "recipe.toml", SOURCES.format(math_path=math_path, math_extra=math_extra) + mix)


CAPPED_MIX = """
[mix]
total = 60

[mix.categories.general]
share = 0.5

[mix.categories.math]
share = 0.5
max_copies = 2
"""


def test_an_unreachable_target_is_capped_and_reported(tmp_path: Path) -> None:
    recipe = crafted(tmp_path, CAPPED_MIX)
    result = runner.invoke(app, ["build", str(recipe), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    math_entry = manifest["mix"]["categories"]["math"]
    assert (math_entry["available"], math_entry["target"], math_entry["achieved"]) == (5, 30, 10)
    assert math_entry["capped"] is True and math_entry["copies"] == {"2": 5}
    general = manifest["mix"]["categories"]["general"]
    assert (general["target"], general["achieved"], general["capped"]) == (30, 30, False)
    assert general["copies"] == {"0": 10, "1": 30}
    warnings = [w for w in manifest["warnings"] if "'math'" in w]
    assert len(warnings) == 1 and "capped at 10" in warnings[0]
    assert warnings == manifest["mix"]["warnings"]
    assert warnings[0] in result.output
    assert manifest["splits"]["train"]["records"] == 40
    records = json.loads((tmp_path / "out" / "train.json").read_text(encoding="utf-8"))
    assert len(records) == 40

    plan = runner.invoke(app, ["plan", str(recipe), "--workers", "1"])
    assert plan.exit_code == 0, plan.output
    assert warnings[0] in plan.output
    assert plan_table(plan.output)["math"][-1] == "capped by max_copies"


EMPTY_MATH = {
    # an optional source whose file is absent
    "missing-optional-source": {"math_path": "missing.json", "math_extra": "optional = true"},
    # a source whose every record goes to validation
    "all-in-validation": {"math_extra": "validation_fraction = 0.999"},
}


@pytest.mark.parametrize("how", sorted(EMPTY_MATH))
def test_an_empty_category_is_a_recipe_error(tmp_path: Path, how: str) -> None:
    recipe = crafted(tmp_path, CAPPED_MIX, **EMPTY_MATH[how])
    with pytest.raises(sd.RecipeError, match=r"\bmath\b"):
        sd.build(recipe, out=tmp_path / "out", workers=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", sorted(EMPTY_MATH))
def test_an_empty_category_is_skipped_when_the_recipe_asks(tmp_path: Path, how: str) -> None:
    """`math` has no train records; `skip_if_empty = true` drops it from the plan, with a warning."""
    mix = CAPPED_MIX + "skip_if_empty = true\n"
    recipe = crafted(tmp_path, mix, **EMPTY_MATH[how])
    corpus = sd.build(recipe, out=tmp_path / "out", workers=1)
    mix_section = corpus.manifest["mix"]
    assert mix_section["categories"]["math"]["skipped"] is True
    assert mix_section["categories"]["math"]["achieved"] == 0
    assert mix_section["categories"]["general"]["achieved"] == 40  # share rescaled to 1 of total 60, capped at 40
    assert any("'math'" in w and "skipped" in w for w in corpus.manifest["warnings"])
    assert split_rows(corpus, "train").filter(pl.col("category") == "math").height == 0


def test_a_count_for_every_category_builds_the_exact_size(tmp_path: Path) -> None:
    mix = """
[mix]
total = 50

[mix.categories.general]
count = 20

[mix.categories.math]
count = 30
max_copies = 6
"""
    corpus = sd.build(crafted(tmp_path, mix), out=tmp_path / "out", workers=1)
    train = split_rows(corpus, "train")
    assert dict(Counter(train["category"])) == {"general": 20, "math": 30}
    assert Counter(Counter(base_id(i) for i in train.filter(pl.col("category") == "math")["id"]).values()) == {6: 5}
    order = [base_id(i) for i in train["id"]]
    # 5 records x 6 appearances in 50: a random order leaves ~3 neighbours (75 pairs x 2/50);
    # copies in runs would leave 25
    assert sum(a == b for a, b in itertools.pairwise(order)) <= 10
