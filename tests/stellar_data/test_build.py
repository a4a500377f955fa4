"""End to end: recipe -> data shards, train.json, quarantine, manifest, card."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

import datasets
import polars as pl
import pyarrow.parquet as pq
import pytest

import stellar_data as sd
from stellar_data.record import RECORD_SCHEMA
from stellar_data.writers.manifest import reconcile_errors
from tests.conftest import ROOT
from tests.helpers import alpaca_recipe, write_json, write_jsonl, write_recipe

DEFAULT_RECIPE = ROOT / "corpus" / "default.toml"


def digests(directory: Path) -> dict[str, str]:
    """sha256 of every file except the manifest (whose `volatile` part may differ)."""
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def stable_manifest(directory: Path) -> dict:
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    manifest.pop("volatile")
    return manifest


@pytest.fixture(scope="module")
def default_corpus(tmp_path_factory: pytest.TempPathFactory) -> sd.Corpus:
    return sd.build(DEFAULT_RECIPE, out=tmp_path_factory.mktemp("default") / "corpus", workers=2)


def test_writes_the_documented_layout(default_corpus: sd.Corpus) -> None:
    names = {p.relative_to(default_corpus.path).as_posix() for p in default_corpus.path.rglob("*") if p.is_file()}
    assert names == {
        "README.md",
        "report.html",
        "manifest.json",
        "quarantine.parquet",
        "train.json",
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
        "astro_qa_heldout/test-00000-of-00001.parquet",
    }
    leftovers = [p.name for p in default_corpus.path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_shards_have_the_explicit_schema_zstd_and_a_page_index(default_corpus: sd.Corpus) -> None:
    for shard in (default_corpus.path / "data").iterdir():
        parquet = pq.ParquetFile(shard)
        assert parquet.schema_arrow.remove_metadata() == RECORD_SCHEMA
        column = parquet.metadata.row_group(0).column(1)
        assert column.compression == "ZSTD"
        assert column.has_offset_index and column.has_column_index


def test_loads_with_datasets_and_polars(default_corpus: sd.Corpus) -> None:
    splits = default_corpus.manifest["splits"]
    loaded = datasets.load_dataset(str(default_corpus.path))
    assert {name: len(split) for name, split in loaded.items()} == {n: s["records"] for n, s in splits.items()}
    assert loaded["train"].column_names == list(RECORD_SCHEMA.names)
    scanned = pl.scan_parquet(str(default_corpus.path / "data" / "*.parquet")).collect()
    assert scanned.height == splits["train"]["records"] + splits["validation"]["records"]


def test_datasets_sees_a_rebuilt_corpus_not_its_stale_cache(tmp_path: Path) -> None:
    # datasets names its cache for a local folder by the folder and a hash of the card, not of the
    # files: the card's exact sizes are what make a rebuild (or another corpus) load afresh.
    first = sd.build(DEFAULT_RECIPE, out=tmp_path / "a" / "corpus", workers=1)
    assert len(datasets.load_dataset(str(first.path))["train"]) == first.manifest["splits"]["train"]["records"]
    rebuilt = sd.build(DEFAULT_RECIPE, out=first.path, seed=5, workers=1)
    other = sd.build(
        alpaca_recipe(
            tmp_path,
            sources=str(
                write_json(
                    tmp_path / "src" / "data.json",
                    [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(7)],
                ).parent
            ),
            extra="[split]\nvalidation_fraction = 0.0",
        ),
        out=tmp_path / "b" / "corpus",
        workers=1,
    )
    for corpus in (rebuilt, other):
        loaded = datasets.load_dataset(str(corpus.path))
        assert len(loaded["train"]) == corpus.manifest["splits"]["train"]["records"]
        assert sorted(loaded["train"]["id"]) == sorted(corpus.frame.collect()["id"])


def test_the_heldout_table_loads_as_its_own_config(default_corpus: sd.Corpus) -> None:
    heldout = datasets.load_dataset(str(default_corpus.path), "astro_qa_heldout")["test"]
    assert len(heldout) == default_corpus.manifest["tables"]["astro_qa_heldout"]["records"]
    assert set(heldout[0]["options"][0]) == {"label", "text"}


def test_train_json_is_the_train_split_in_alpaca_format(default_corpus: sd.Corpus) -> None:
    records = json.loads((default_corpus.path / "train.json").read_text(encoding="utf-8"))
    train = default_corpus.frame.select("instruction", "input", "output").collect()
    assert records == train.to_dicts()
    assert all(set(r) == {"instruction", "input", "output"} for r in records)


def test_groups_never_straddle_the_splits(default_corpus: sd.Corpus) -> None:
    train_groups = set(default_corpus.frame.select("group").collect()["group"])
    validation_groups = set(default_corpus.frame_of("validation").select("group").collect()["group"])
    assert validation_groups and train_groups
    assert not train_groups & validation_groups


def test_counts_reconcile_per_source_and_per_step(default_corpus: sd.Corpus) -> None:
    manifest = default_corpus.manifest
    assert reconcile_errors(manifest) == []
    for step in manifest["steps"]:
        drops = sum(v for k, v in step.items() if k.startswith("dropped_"))
        assert step["total"] == step["kept"] + drops, step
    for name in manifest["sources"]:
        chain = [s for s in manifest["steps"] if s["source"] == name]
        assert [s["step"] for s in chain] == [
            "read",
            "mojibake",
            "normalize",
            "validate",
            "length",
            "repetition",
            "refusal",
            "language",
            "dedup",
            "neardup",
            "holdout",
            "decontaminate",
            "split",
            "expand",
            "mix",
        ]
        items, (expand, mix) = chain[:-2], chain[-2:]
        for before, after in itertools.pairwise(items):
            assert before["kept"] == after["total"], (name, before, after)
        records = manifest["sources"][name]["counts"]["records"]
        assert expand["records"] == mix["total"] + records["validation"]  # only train is mixed
        assert mix["records"] == records["train"] == mix["kept"] + mix["copies"]
    quarantined = default_corpus.quarantine
    assert quarantined.height == manifest["quarantine"]["records"]
    written = sum(s["records"] for s in manifest["splits"].values())
    assert written == sum(sum(s["counts"]["records"].values()) for s in manifest["sources"].values())


def test_manifest_records_checksums_of_every_data_file(default_corpus: sd.Corpus) -> None:
    files = default_corpus.manifest["files"]
    assert set(files) == set(digests(default_corpus.path))
    for name, entry in files.items():
        assert entry["sha256"] == hashlib.sha256((default_corpus.path / name).read_bytes()).hexdigest()


def test_two_builds_are_byte_identical(default_corpus: sd.Corpus, tmp_path: Path) -> None:
    again = sd.build(DEFAULT_RECIPE, out=tmp_path / "again", workers=1)
    assert digests(again.path) == digests(default_corpus.path)
    assert stable_manifest(again.path) == stable_manifest(default_corpus.path)


def item_ids(corpus: sd.Corpus) -> list[str]:
    """Every item in train, validation and the held-out table (template variants and mixing copies
    folded to their item; the default recipe's mix only upsamples, so no item is dropped)."""
    records = pl.concat([corpus.frame.collect(), corpus.frame_of("validation").collect()])
    heldout = corpus.table_of("astro_qa_heldout").collect()
    return sorted({re.sub(r"(:t\d+)?(:c\d+)?$", "", i) for i in records["id"]} | set(heldout["id"]))


def test_another_seed_changes_the_split_but_not_the_items(default_corpus: sd.Corpus, tmp_path: Path) -> None:
    other = sd.build(DEFAULT_RECIPE, out=tmp_path / "other", seed=7, workers=1)
    assert item_ids(other) == item_ids(default_corpus)
    assert other.frame.collect()["id"].to_list() != default_corpus.frame.collect()["id"].to_list()
    assert (
        other.table_of("astro_qa_heldout").collect()["id"].to_list()
        != default_corpus.table_of("astro_qa_heldout").collect()["id"].to_list()
    )


def test_sample_quirks_are_handled(default_corpus: sd.Corpus) -> None:
    records = pl.concat([default_corpus.frame.collect(), default_corpus.frame_of("validation").collect()])
    heldout = default_corpus.table_of("astro_qa_heldout").collect()
    text = "\n".join(
        records["instruction"].to_list()
        + records["input"].to_list()
        + records["output"].to_list()
        + heldout["question"].to_list()
    )
    assert "蒭藁" in text and "𫇴" not in text  # protected term survives OpenCC t2s
    assert "請" not in text  # the traditional-character alpaca record was converted
    assert "{{" not in text and "\u3000" not in text and "\u00a0" not in text
    assert "输入：" not in records["input"].str.slice(0, 3).to_list()
    rules = set(default_corpus.quarantine["rule"])
    assert {
        "duplicate",
        "empty_option",
        "empty_option_in_zh",
        "answer_key_mismatch",
        "unreviewed_date_cell",
        "no_answer_key",
    } <= rules


def test_quarantine_over_the_limit_fails_and_keeps_the_previous_corpus(tmp_path: Path) -> None:
    sources = tmp_path / "src"
    write_json(sources / "data.json", [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(10)])
    recipe = alpaca_recipe(tmp_path, sources=str(sources))
    out = tmp_path / "corpus"
    sd.build(recipe, out=out, workers=1)
    before = digests(out)

    write_json(
        sources / "data.json",
        [{"instruction": f"q{i}", "input": "", "output": "" if i % 2 else f"a{i}"} for i in range(10)],
    )
    with pytest.raises(
        sd.QuarantineLimitError, match=r"source 'general': 5 of 10 items quarantined .*invalid_output 5"
    ):
        sd.build(recipe, out=out, workers=1)
    assert digests(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "recipe.toml", "src"]


def test_a_bad_file_fails_with_one_error_naming_it_and_keeps_the_previous_corpus(tmp_path: Path) -> None:
    sources = tmp_path / "src"
    write_json(sources / "data.json", [{"instruction": "q", "input": "", "output": "a"}])
    recipe = alpaca_recipe(tmp_path, sources=str(sources))
    out = tmp_path / "corpus"
    sd.build(recipe, out=out, workers=1)
    before = digests(out)

    (sources / "data.json").write_bytes(
        json.dumps([{"instruction": "天文", "input": "", "output": "星空"}], ensure_ascii=False).encode("gbk")
    )
    with pytest.raises(sd.SourceFileError, match=r"data\.json: not UTF-8"):
        sd.build(recipe, out=out, workers=2)
    assert digests(out) == before


def test_record_level_problems_are_quarantined_with_their_location(tmp_path: Path) -> None:
    sources = tmp_path / "src"
    good = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(40)]
    write_jsonl(
        sources / "data.json", [*good[:10], '{"instruction": "broken",', {"instruction": 3, "output": "x"}, *good[10:]]
    )
    with (sources / "data.json").open("ab") as handle:
        handle.write(b'{"instruction": "bad \xff byte", "input": "", "output": "x"}\n')
    recipe = alpaca_recipe(tmp_path, sources=str(sources), extra="[quality]\nmax_quarantine_ratio = 0.1")
    corpus = sd.build(recipe, out=tmp_path / "corpus", workers=1)
    rows = corpus.quarantine.select("file", "location", "rule").rows()
    assert rows == [
        ("data.json", "line 11", "malformed_json"),
        ("data.json", "line 12", "wrong_type"),
        ("data.json", "line 43", "invalid_utf8"),
    ]
    assert corpus.manifest["sources"]["general"]["counts"]["read"] == 43


def test_optional_missing_source_is_a_warning_and_required_is_an_error(tmp_path: Path) -> None:
    sources = tmp_path / "src"
    write_json(sources / "data.json", [{"instruction": "q", "input": "", "output": "a"}])
    body = f"""
        [corpus]
        name = "t"
        sources_dir = "{sources}"

        [[sources]]
        name = "general"
        adapter = "alpaca"
        path = "data.json"
        category = "general"
        lang = "en"

        [[sources]]
        name = "extra"
        adapter = "alpaca"
        path = "missing/*.json"
        category = "general"
        lang = "en"
        optional = {{optional}}
        """
    recipe = write_recipe(tmp_path / "optional.toml", body.replace("{optional}", "true"))
    corpus = sd.build(recipe, out=tmp_path / "corpus", workers=1)
    assert corpus.manifest["sources"]["extra"]["status"] == "missing_optional"
    assert any("extra" in w and "missing/*.json" in w for w in corpus.manifest["warnings"])

    recipe = write_recipe(tmp_path / "required.toml", body.replace("{optional}", "false"))
    with pytest.raises(sd.SourceFileError, match=r"source 'extra': file not found .*missing/\*\.json"):
        sd.build(recipe, out=tmp_path / "corpus2", workers=1)


def test_refuses_to_replace_a_directory_that_is_not_a_corpus(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(sd.CorpusDirError, match="not a stellar-data corpus"):
        sd.build(DEFAULT_RECIPE, out=out, workers=1)
    assert (out / "notes.txt").read_text() == "keep me"
